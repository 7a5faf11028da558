"""Calibration against synthetic-data.md §3, the truth files, and labels re-derived from the UKE."""
import csv
from collections import defaultdict

import numpy as np
import pyarrow.parquet as pq
import pytest

from claimsfm.synth.diseases import INDEX
from claimsfm.synth.hospitals import draw_hospitals
from claimsfm.synth.population import draw_population
from claimsfm.synth.simulate import Simulation
from claimsfm.synth.streams import patient_keys
from claimsfm.tasks.spec import builtin_task_names, load_task, prediction_months, prediction_time

# NHNS 2016 "diabetes strongly suspected" and H30 NHNS hypertension: (module, sex, lo, hi, target, rel. tolerance)
TARGETS = [
    ("t2d", 1, 50, 60, .126, .3), ("t2d", 1, 60, 70, .218, .25), ("t2d", 1, 70, 85, .232, .25),
    ("t2d", 2, 50, 60, .061, .35), ("t2d", 2, 60, 70, .120, .3), ("t2d", 2, 70, 85, .168, .3),
    ("htn", 1, 60, 70, .72, .1), ("htn", 1, 70, 85, .76, .1), ("htn", 2, 60, 70, .51, .15), ("htn", 2, 70, 85, .74, .1),
]


@pytest.fixture(scope="module")
def big_start():
    """The initial (prevalent) state of 30,000 census-profile people: no months simulated."""
    keys = patient_keys(11, 30000)
    hosp = draw_hospitals(11, 4)
    pop = draw_population(keys, "census", 2016 * 12, np.array([h.weight for h in hosp]))
    return Simulation(keys, pop, hosp, 2016 * 12)


@pytest.mark.parametrize("module, sex, lo, hi, target, tol", TARGETS)
def test_prevalence_by_age_band(big_start, module, sex, lo, hi, target, tol):
    sim = big_start
    age = sim.age(sim.start)
    sel = (sim.pop.sex == sex) & (age >= lo) & (age < hi)
    got = (sim.onset[sel, INDEX[module]] >= 0).mean()
    assert abs(got - target) <= tol * target, (got, target)


def test_prevalence_stays_calibrated_over_the_run(cohort):
    _, summary = cohort
    end = summary["prevalence_end"]["t2d"]
    assert 0.10 <= end["M60-70"]["prevalence"] <= 0.35
    assert 0.50 <= summary["prevalence_end"]["htn"]["M70-"]["prevalence"] <= 0.95


def test_first_line_dpp4i_share(cohort):
    # NDB 2014-17: DPP-4i 65.1% of first-line; MDV: 56.8%. Tolerance: 0.50-0.78 on ~150 starts.
    fl = cohort[1]["first_line_t2d"]
    assert fl["starts"] >= 80
    assert 0.50 <= fl["shares"]["dpp4i"] <= 0.78
    assert fl["shares"]["dpp4i"] > fl["shares"]["metformin"] > 0.03


def test_suspected_code_rate(cohort):
    assert 0.01 <= cohort[1]["suspected_code_rate"] <= 0.15


def test_every_task_has_labels_and_an_informative_oracle(cohort):
    tasks = cohort[1]["tasks"]
    assert sorted(tasks) == builtin_task_names()
    for name, t in tasks.items():
        assert t["positives"] >= 8 and t["prevalence"] < 0.5, (name, t)
        assert t["auprc_observable"] >= 2 * t["prevalence"], (name, t)
        assert t["auprc_latent"] >= 0.8 * t["auprc_observable"], (name, t)
        assert abs(t["mean_p_observable"] - t["prevalence"]) < 0.5 * t["prevalence"] + 0.002, (name, t)


def test_oracle_files_follow_the_grid(cohort):
    out, summary = cohort
    first, last = summary["parameters"]["first_month"], summary["parameters"]["last_month"]
    for name in builtin_task_names():
        t = _read(out / "truth" / f"oracle_{name}.parquet")
        assert list(t) == ["patient", "prediction_time", "p_observable", "p_latent", "p_observable_se", "p_latent_se",
                           "label"]
        grid = {np.datetime64(prediction_time(m), "us") for m in prediction_months(load_task(name), first, last)}
        assert set(t["prediction_time"].astype("datetime64[us]").tolist()) <= {g.item() for g in grid}
        for col in ("p_observable", "p_latent"):
            assert ((t[col] >= 0) & (t[col] <= 1)).all()
        pairs = set(zip(t["patient"].tolist(), t["prediction_time"].tolist()))
        assert len(pairs) == len(t["patient"])


def _read(path) -> dict:
    table = pq.read_table(path)
    return {c: table.column(c).to_numpy() for c in table.column_names}


def _month(times) -> np.ndarray:
    m = times.astype("datetime64[M]").astype(np.int64)
    return m + 1970 * 12


def _uke_events(out):
    """Per (facility, chart): months with a confirmed T2D code and months with a DPP-4i, from the UKE."""
    masters = {r["code"]: r for r in csv.DictReader(open(out / "masters" / "diseases.csv", encoding="utf-8"))}
    drugs = {r["code"]: r for r in csv.DictReader(open(out / "masters" / "drugs.csv", encoding="utf-8"))}
    dx, dpp = defaultdict(set), defaultdict(set)
    for f in sorted((out / "uke").rglob("*.UKE")):
        facility = f.parent.name
        for line in f.read_bytes()[:-1].decode("cp932").split("\r\n")[:-1]:
            r = line.split(",")
            if r[0] == "RE":
                key, month = (facility, r[13]), int(r[3][:4]) * 12 + int(r[3][4:]) - 1
            elif r[0] == "SY" and masters[r[1]]["class"] in ("E11", "E14") and "8002" not in r[4]:
                dx[key].add(month)
            elif r[0] == "IY" and drugs[r[3]]["mapped_code"] in ("3969010", "3969014", "3969015"):
                dpp[key].add(month)
    return dx, dpp


def test_labels_match_what_the_claims_show(cohort):
    out, _ = cohort
    keys = pq.read_table(out / "truth" / "keys.parquet").to_pylist()
    ident = defaultdict(set)
    for k in keys:
        ident[k["patient"]].add((k["insurer_no"], k["card_symbol"], k["card_number"], k["birth_date"], k["sex"]))
    assert all(len(v) == 1 for v in ident.values())       # one insurer identity across hospitals
    dx, dpp = _uke_events(out)
    by_patient_dx, by_patient_dpp = defaultdict(set), defaultdict(set)
    for k in keys:
        by_patient_dx[k["patient"]] |= dx.get((k["facility_code"], k["chart_no"]), set())
        by_patient_dpp[k["patient"]] |= dpp.get((k["facility_code"], k["chart_no"]), set())
    for task, events, window in (("t2dm", by_patient_dx, 12), ("dpp4i_new_user", by_patient_dpp, 3)):
        t = _read(out / "truth" / f"oracle_{task}.parquet")
        tm = _month(t["prediction_time"])
        want = [any(tt < m <= tt + window for m in events[p]) for p, tt in zip(t["patient"].tolist(), tm.tolist())]
        assert (t["label"] == np.array(want)).all(), task
        assert t["label"].sum() >= 8
        if task == "t2dm":   # incidence washout: nobody already coded at t
            assert not any(any(m <= tt for m in events[p]) for p, tt in zip(t["patient"].tolist(), tm.tolist()))


def test_af_and_stroke_have_observable_precursors(cohort):
    # AF (疑い prodrome, HTN duration, recent HF) and stroke (AF without anticoagulant, CHADS2 parts,
    # recent TIA, untreated HTN) reach >= 10x / 5x prevalence on 20k patients; 4x here because the
    # 1,500-patient cohort has only ~15-30 positives per task.
    tasks = cohort[1]["tasks"]
    for name in ("atrial_fibrillation", "ischemic_stroke"):
        assert tasks[name]["auprc_observable"] >= 4 * tasks[name]["prevalence"], (name, tasks[name])


def test_ckd_under_coding(cohort):
    # Target 23% coded (Takeuchi 2021). Kept near 40-50% so the CKD, CKD G4-5 and dialysis tasks keep
    # enough labels in a small cohort (their hazards need a coded parent); 62% before under-coding was tuned.
    share = cohort[1]["calibration_end"]["ckd_coded_share"]
    assert 0.15 <= share <= 0.55, share


def test_new_users_start_after_a_recent_indication():
    from claimsfm.synth.prescribing import REGIMENS, start_probability
    reg = REGIMENS["t2d"]
    dx = np.full((5, len(INDEX)), -1)
    dx[:, INDEX["t2d"]] = 100 - np.array([0, 2, 8, 30, 100])   # diagnosed 0, 2, 8, 30, 100 months before month 100
    p = start_probability(reg, dx, 100, np.full(5, 60.0), np.ones(5))
    assert p[1] > 3 * p[0] and p[1] > 3 * p[2] > 9 * p[3]         # peak 1-3 months after the diagnosis
    assert p[3] == p[4] and p[4] < 0.01                             # a low background for old diagnoses
    dx[:, INDEX["t2d"]] = -1
    assert (start_probability(reg, dx, 100, np.full(5, 60.0), np.ones(5)) == 0).all()
