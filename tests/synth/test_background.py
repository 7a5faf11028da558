"""The background code layer (claimsfm/synth/background.py): the planted cohort is unchanged by it, its
codes map to nothing a planted module or a task uses, its statistics agree with what ingest sees, and its
latent conditions carry the structure they are built with (season, age)."""
import json
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pytest

from claimsfm import _native
from claimsfm.synth.background import PLANTED_ICD3, PLANTED_KUBUN, PLANTED_YJ4, Background, background_codes, catalogue
from claimsfm.synth.masters import DISEASES, DRUGS, PROCEDURES, drug_code
from claimsfm.synth.run import SynthConfig, run
from claimsfm.synth.streams import patient_keys
from claimsfm.tasks.spec import builtin_task_names, load_task

CFG = dict(patients=400, hospitals=3, start="2019-11", months=18, seed=11, progress=False)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("bg")
    out = {}
    for level in ("none", "default"):
        out[level] = (root / level, run(SynthConfig(out=str(root / level), background=level, **CFG)))
    return out


def _uke_without_background(folder: Path, drop: set) -> dict:
    """Every UKE file as its lines, background records removed and the HO / GO point totals blanked."""
    out = {}
    for f in sorted((folder / "uke").rglob("*.UKE")):
        lines = []
        for line in f.read_bytes().decode("cp932").split("\r\n"):
            r = line.split(",")
            if r[0] == "SY" and "JPDX//" + r[1] in drop or r[0] in ("SI", "IY", "TO") and len(r) > 3 and (
                    {"SI": "JPPROC//", "IY": "JPDRUG//", "TO": "JPDEVICE//"}[r[0]] + r[3]) in drop:
                continue
            if r[0] == "HO":
                r[5] = ""
            if r[0] == "GO":
                r[2] = ""
            lines.append(",".join(r))
        out[str(f.relative_to(folder))] = lines
    return out


def _events(folder: Path, drop: set) -> list:
    paths = sorted(str(p) for p in (folder / "uke").rglob("*.UKE"))
    a = _native.parse_uke(paths, "insurer", True, 1)
    assert a["rejects"] == []
    code = np.array(a["codes"], dtype=object)[a["code"]]
    keep = np.array([c not in drop for c in code.tolist()], bool)
    keys = np.array(a["keys"], dtype=object)[a["key"]]
    value = np.nan_to_num(a["value"], nan=-1.0)
    cols = (keys, a["day"], code, value, a["facility"], a["suspected"], a["dx_start"])
    return sorted(zip(*(c[keep].tolist() for c in cols), strict=True))


def test_dropping_background_gives_the_none_cohort(pair):
    (none, s0), (full, s1) = pair["none"], pair["default"]
    drop = background_codes()
    # truth (keys, labels, oracle, hazards) is byte-identical
    truth0 = {p.relative_to(none): p.read_bytes() for p in sorted((none / "truth").rglob("*")) if p.is_file()}
    truth1 = {p.relative_to(full): p.read_bytes() for p in sorted((full / "truth").rglob("*")) if p.is_file()}
    assert truth0 and truth0 == truth1
    # the receipts: the same files, and line for line the same once background records are removed
    u0, u1 = _uke_without_background(none, drop), _uke_without_background(full, drop)
    assert u0.keys() == u1.keys() and u0 == u1
    assert (full / "uke").stat() and sum((p.stat().st_size for p in (full / "uke").rglob("*.UKE"))) > sum(
        p.stat().st_size for p in (none / "uke").rglob("*.UKE"))
    # the events ingest parses: identical after dropping background codes, and there are background codes
    e0, e1 = _events(none, drop), _events(full, drop)
    assert e0 == e1 and len(e0) > 10000
    assert len(_events(full, set())) > len(e1)
    # synth.json: the planted statistics are the same
    for key in ("patients_with_claims", "deaths", "prevalence_start", "prevalence_end", "calibration_end",
                "first_line_t2d", "tasks"):
        assert json.dumps(s0[key], sort_keys=True) == json.dumps(s1[key], sort_keys=True), key   # NaN-safe
    planted_counts = [{k: v for k, v in s["counts"].items() if k != "lines"} for s in (s0, s1)]
    assert planted_counts[0] == planted_counts[1]
    # planted master rows unchanged; background rows follow them
    for name in ("diseases.csv", "drugs.csv", "procedures.csv"):
        a = (none / "masters" / name).read_text().splitlines()
        b = (full / "masters" / name).read_text().splitlines()
        assert b[:len(a)] == a and len(b) > len(a) + 1000
    assert not (none / "masters" / "devices.csv").exists() and (full / "masters" / "devices.csv").is_file()


def test_statistics_match_what_ingest_sees(pair, cli, tmp_path):
    folder, summary = pair["default"]
    res = cli("ingest", folder, "--out", tmp_path / "data", "--link-by", "insurer", "--min-count", "1", "--no-progress",
              env={"CLAIMSFM_SALT": "bg-test"})
    assert res.returncode == 0, res.stderr
    codes = ds.dataset(tmp_path / "data" / "data").to_table(columns=["code"]).column(0).to_numpy(zero_copy_only=False)
    v = summary["vocabulary"]
    bg = background_codes()
    assert v["tokens"] == len(codes)
    assert v["background_tokens"] == sum(1 for c in codes.tolist() if c in bg) > 0
    distinct = set(codes.tolist())
    for prefix, kind in (("JPDX//", "diagnoses"), ("JPDRUG//", "drugs"), ("JPPROC//", "procedures"),
                         ("JPDEVICE//", "devices")):
        assert v["distinct_codes_by_kind"][kind] == sum(1 for c in distinct if c.startswith(prefix)), kind
    assert 0.3 < v["background_token_share"] < 0.85
    assert v["distinct_codes"] > 1500 and v["rank_frequency"]["loglog_slope_ranks_10_1000"] < 0
    json.dumps(v)
    vocab = json.loads((tmp_path / "data" / "store" / "vocab.json").read_text())
    assert len(vocab) > 1000


def test_background_codes_map_to_nothing_planted():
    cat = catalogue()
    planted_codes = {"JPDX//" + r[0] for r in DISEASES} | {"JPDRUG//" + drug_code(r[0]) for r in DRUGS} | {
        "JPPROC//" + r[1] for r in PROCEDURES}
    bg = background_codes()
    assert not bg & planted_codes
    assert len(bg) == len(cat.dx) + len(cat.drugs) + len(cat.procs) + len(cat.devices)   # unique codes
    assert len(cat.dx) >= 3500 and len(cat.drugs) >= 3500 and len(cat.procs) >= 1200
    assert all(len(r[0]) == 7 and r[0].isdigit() for r in cat.dx)
    assert all(len(r[0]) == 9 and r[0].isdigit() and r[0][1:8] == r[2] and r[2][:4] == r[3] for r in cat.drugs)
    assert all(len(r[0]) == 9 and r[0].isdigit() for r in cat.procs + cat.devices)
    parents = ({"ICD10//" + r[2] for r in cat.dx} | {"ICD10//" + r[3] for r in cat.dx}
               | {"YJ//" + r[2] for r in cat.drugs} | {"KUBUN//" + r[2] for r in cat.procs})
    targets = [t for name in builtin_task_names() for t in load_task(name).target]
    assert targets and not [(p, t) for p in parents for t in targets if p.startswith(t)]
    assert not {r[3] for r in cat.dx} & PLANTED_ICD3 and not {r[3] for r in cat.drugs} & PLANTED_YJ4
    assert not {r[2] for r in cat.procs} & PLANTED_KUBUN


def test_latent_conditions_have_season_and_age():
    n, start = 6000, 2015 * 12
    keys = patient_keys(3, n)
    rng = np.random.default_rng(0)
    birth = (np.array([(2015 - 1970) * 365.25]) - rng.uniform(1, 90, n) * 365.25).astype(np.int64)
    sex = rng.integers(1, 3, n)
    bg = Background(keys, birth, sex, start, False)
    cat = bg.cat
    winter = np.array([0.0, 0.0])
    by_month = cat.rate[:, 10, 0]                       # (K, 12) at age 50-55, men; index 0 = January
    resp = ((cat.kind == 0) & (by_month.std(axis=1) > 0.3 * by_month.mean(axis=1))
            & np.isin(by_month.argmax(axis=1), (11, 0, 1)))
    for m in range(start, start + 24):
        bg.step(m)
        new = (bg.cond >= 0) & (bg.end >= m)
        seasonal = new & resp[np.maximum(bg.cond, 0)]
        if m % 12 in (0, 1, 11):
            winter[0] += seasonal.sum()
        if m % 12 in (5, 6, 7):
            winter[1] += seasonal.sum()
    assert resp.sum() > 20 and winter[0] > 2 * winter[1]     # winter infections
    active = ((bg.cond >= 0) & (bg.end >= start + 23)).sum(axis=1)
    age = (start / 12 - 1970 - birth / 365.25)
    assert active[age > 65].mean() > 1.5 * active[age < 30].mean()


def test_bad_background_flag_is_a_one_line_error(cli, tmp_path):
    res = cli("synth", "--out", tmp_path / "x", "--patients", "5", "--months", "1", "--background", "lots")
    assert res.returncode == 2 and "--background" in res.stderr and "Traceback" not in res.stderr
