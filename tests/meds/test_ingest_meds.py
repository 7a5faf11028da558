"""Ingest output that MEDS tools read, and `--format meds` input that keeps what a foreign dataset says:
its splits, name, version, text values and times of day; bad times and special-token names refused
or escaped with one line."""
import datetime as dt
import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from claimsfm.data import open_store
from claimsfm.data.format import SPECIALS, escape_code
from claimsfm.ingest import meds
from claimsfm.splits import SPLITS

from helpers.medstools import need_tool, run_tool, write_meds_rows

D = dt.datetime


def _rows(n_subjects=40, per=12, seed=0):
    """Dated rows with a time of day, a text value every third row, one static row per subject."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(1, n_subjects + 1):
        rows.append({"subject_id": s, "time": None, "code": "static//eye//" + "ab"[s % 2], "numeric_value": None,
                     "text_value": None})
        rows.append({"subject_id": s, "time": D(1960, 1, 1), "code": "MEDS_BIRTH", "numeric_value": None,
                     "text_value": None})
        for k in range(per):
            t = D(2015, 1, 1) + dt.timedelta(days=int(rng.integers(0, 2000)), seconds=int(rng.integers(0, 86400)))
            rows.append({"subject_id": s, "time": t, "code": f"LAB//{int(rng.integers(0, 6))}",
                         "numeric_value": float(k), "text_value": "positive" if k % 3 == 0 else None})
    return rows


def _splits(n_subjects=40):
    # Not the hash split: held_out first, so a recomputed split would differ.
    return {s: SPLITS[2] if s <= 8 else SPLITS[1] if s <= 14 else SPLITS[0] for s in range(1, n_subjects + 1)}


def _ingest(cli, src, out, *extra):
    return cli("ingest", src, "--format", "meds", "--out", out, "--no-progress", "--min-count", "1", *extra)


def _out_splits(out):
    t = pq.read_table(out / "metadata" / "subject_splits.parquet").to_pydict()
    return dict(zip(t["subject_id"], t["split"]))


def test_output_schema_metadata_and_source(ingested):
    data, _ = ingested
    schema = pq.read_schema(next((data / "data" / "train").glob("*.parquet")))
    assert schema.field("suspected").type == pa.int8() and schema.field("text_value").type == pa.string()
    meta = json.loads((data / "metadata" / "dataset.json").read_text())
    for key in ("site_id_columns", "other_extension_columns"):
        assert meta[key] and all(c in schema.names for c in meta[key])
    try:
        assert meta["meds_version"] == version("meds")
    except PackageNotFoundError:
        assert meta["meds_version"] == meds.MEDS_VERSION
    assert meta["dataset_name"] == "data" and meta["claimsfm"]["inputs"]
    fmt = json.loads((data / "store" / "format.json").read_text())
    assert fmt["source"] == str(data.resolve())
    suspected = pq.read_table(data / "data" / "train", columns=["suspected"])["suspected"].to_numpy()
    assert set(np.unique(suspected)) == {0, 1}


@pytest.mark.slow  # ~1 s alone, but 20-40 s measured on a busy 2-core machine
def test_meds_reader_converts_and_verifies(ingested, tmp_path):
    convert = need_tool("meds_reader_convert", "meds-reader")
    verify = need_tool("meds_reader_verify", "meds-reader")
    data, _ = ingested
    run_tool([convert, data, tmp_path / "db"], tmp_path)
    proc = run_tool([verify, data, tmp_path / "db"], tmp_path)
    assert "Test passed" in proc.stdout + proc.stderr


def test_foreign_splits_name_text_and_time_of_day_kept(cli, tmp_path):
    rows = _rows()
    src = write_meds_rows(tmp_path / "src", rows, _splits(), {"dataset_name": "foreign", "dataset_version": "7.1"})
    out = tmp_path / "out"
    proc = _ingest(cli, src, out)
    assert proc.returncode == 0, proc.stderr
    assert f"splits: kept from {src / 'metadata' / 'subject_splits.parquet'}" in proc.stderr
    assert _out_splits(out) == _splits()
    store = open_store(out)
    assert [SPLITS[c] for c in store.split] == [_splits()[int(s)] for s in store.subject_ids]
    meta = json.loads((out / "metadata" / "dataset.json").read_text())
    assert (meta["dataset_name"], meta["dataset_version"]) == ("foreign", "7.1")
    back = pq.read_table(out / "data").to_pylist()
    key = lambda r: (r["subject_id"], r["time"] or D(1, 1, 1), r["code"], r["numeric_value"] or -1.0)  # noqa: E731
    want = sorted(((r["subject_id"], r["time"], r["code"], r["numeric_value"], r["text_value"]) for r in rows),
                  key=lambda x: key(dict(zip(("subject_id", "time", "code", "numeric_value"), x))))
    got = sorted(((r["subject_id"], r["time"], r["code"], r["numeric_value"], r["text_value"]) for r in back),
                 key=lambda x: key(dict(zip(("subject_id", "time", "code", "numeric_value"), x))))
    assert got == want  # times of day and text values survive
    assert "40 static rows are kept in data/ but are not tokens: static//eye//a (20), static//eye//b (20)" \
        in proc.stderr.replace("\n", " ")
    assert "text_value entries are kept" in proc.stderr and "events have a time of day" in proc.stderr
    named = _ingest(cli, src, tmp_path / "named", "--name", "mine")
    assert named.returncode == 0
    assert json.loads((tmp_path / "named" / "metadata" / "dataset.json").read_text())["dataset_name"] == "mine"


def test_splits_computed_only_when_absent(cli, tmp_path):
    src = write_meds_rows(tmp_path / "src", _rows(n_subjects=30))
    proc = _ingest(cli, src, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert "splits: computed from a hash of subject_id (the input has no metadata/subject_splits.parquet)" \
        in proc.stderr
    from claimsfm.splits import split_names

    got = _out_splits(tmp_path / "out")
    assert got == dict(zip(got, split_names(np.array(list(got)))))


def test_subject_in_two_splits_is_a_located_error(cli, tmp_path):
    src = write_meds_rows(tmp_path / "src", _rows(n_subjects=5))
    pq.write_table(pa.table({"subject_id": pa.array([1, 2, 3, 2], pa.int64()),
                             "split": ["train", "held_out", "train", "train"]}),
                   src / "metadata" / "subject_splits.parquet")
    proc = _ingest(cli, src, tmp_path / "out")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{src / 'metadata' / 'subject_splits.parquet'}:4: subject_id 2 is in split 'train'" in proc.stderr
    assert ":2" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    pq.write_table(pa.table({"subject_id": pa.array([1], pa.int64()), "split": ["test"]}),
                   src / "metadata" / "subject_splits.parquet")
    proc = _ingest(cli, src, tmp_path / "out")
    assert proc.returncode == 2 and "subject_splits.parquet:1: split 'test' is not one of" in proc.stderr


@pytest.mark.parametrize("case", ["int64", "float", "old", "future"])
def test_bad_time_column_is_one_line(cli, tmp_path, case):
    rows = [{"subject_id": 1, "time": D(2020, 1, 1), "code": "A"},
            {"subject_id": 1, "time": D(2020, 2, 1), "code": "B"}]
    schema = None
    if case in ("int64", "float"):
        us = [1_577_836_800, 1_580_515_200]  # seconds since 1970, as an integer column would hold them
        rows = [{**r, "time": u if case == "int64" else float(u)} for r, u in zip(rows, us)]
        schema = pa.schema([("subject_id", pa.int64()), ("time", pa.int64() if case == "int64" else pa.float64()),
                            ("code", pa.string())])
    else:
        rows[1]["time"] = D(1850, 5, 1) if case == "old" else D(2150, 5, 1)
    src = write_meds_rows(tmp_path / "src", rows, schema=schema)
    proc = _ingest(cli, src, tmp_path / "out")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    if case in ("int64", "float"):
        assert "column 'time' cannot be read as timestamp[us]: it is" in proc.stderr
    else:
        assert "row 2: time" in proc.stderr and "outside 1900-2100" in proc.stderr
    if case == "future":
        assert _ingest(cli, src, tmp_path / "wide", "--time-range", "1900:2200").returncode == 0


def test_other_time_units_convert(tmp_path):
    t = pa.table({"subject_id": pa.array([1, 1], pa.int64()),
                  "time": pa.array([D(2020, 1, 1, 12, 30), D(2020, 1, 2)], pa.timestamp("ns")),
                  "code": ["A", "B"]})
    (tmp_path / "data").mkdir()
    pq.write_table(t, tmp_path / "data" / "0.parquet")
    table = meds.read_data(tmp_path)
    assert table.time_us.tolist() == [int(np.datetime64(x, "us").astype(np.int64))
                                      for x in ("2020-01-01T12:30", "2020-01-02")]
    pq.write_table(t.set_column(1, "time", pa.array([dt.date(2020, 1, 1), None], pa.date32())),
                   tmp_path / "data" / "0.parquet")
    assert meds.read_data(tmp_path).time_us[0] == int(np.datetime64("2020-01-01", "us").astype(np.int64))


def test_special_token_names_are_escaped(cli, tmp_path):
    rows = []
    weird = [*SPECIALS, "\\[MASK]", "\\odd"]
    for s in range(1, 11):
        for k, code in enumerate(weird + ["REAL//1"]):
            rows.append({"subject_id": s, "time": D(2020, 1 + k % 12, 1), "code": code})
    src = write_meds_rows(tmp_path / "src", rows, {s: "train" for s in range(1, 11)})
    proc = _ingest(cli, src, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    store = open_store(tmp_path / "out")
    assert list(store.vocab)[:len(SPECIALS)] == list(SPECIALS)
    assert store.vocab_size == len(SPECIALS) + len(weird) + 1  # nothing collapsed onto a special
    for code in weird:
        assert escape_code(code) in store.vocab and store.vocab[escape_code(code)] >= len(SPECIALS)
    names = np.asarray(store.code_names, dtype=object)[np.asarray(store.code)]
    tokens = np.asarray(store.token)
    for code in weird:
        assert set(tokens[names == code]) == {store.vocab[escape_code(code)]}


def test_meds_testing_helpers_dataset_keeps_every_split(cli, tmp_path):
    build = need_tool("build_sample_MEDS_dataset", "meds-testing-helpers")
    run_tool([build, "seed=1", "N_subjects=300", f"output_dir={tmp_path / 'sample'}",
              f"hydra.run.dir={tmp_path / 'hydra'}"], tmp_path)
    src = tmp_path / "sample"
    # Its generator draws times past 2100 for some subjects; the default window refuses them, a wider one keeps all.
    proc = _ingest(cli, src, tmp_path / "out", "--time-range", "1900:2200")
    assert proc.returncode == 0, proc.stderr
    given = pq.read_table(src / "metadata" / "subject_splits.parquet").to_pydict()
    assert _out_splits(tmp_path / "out") == dict(zip(given["subject_id"], given["split"]))
    foreign = json.loads((src / "metadata" / "dataset.json").read_text())
    meta = json.loads((tmp_path / "out" / "metadata" / "dataset.json").read_text())
    assert meta["dataset_name"] == foreign["dataset_name"] and meta["dataset_version"] == foreign["dataset_version"]
    assert "static rows are kept in data/ but are not tokens" in proc.stderr


def test_mixed_folder_layout_reads(tmp_path):
    """Splits of several input folders merge; the same subject in two of them with two splits is refused."""
    a = write_meds_rows(tmp_path / "a", _rows(n_subjects=3), {1: "train", 2: "tuning", 3: "held_out"})
    b = write_meds_rows(tmp_path / "b", _rows(n_subjects=3), {3: "train"})
    from claimsfm.errors import ClaimsfmError

    assert meds.read_splits([a]).codes.tolist() == [0, 1, 2]
    with pytest.raises(ClaimsfmError, match=r"b/metadata/subject_splits.parquet:1: subject_id 3"):
        meds.read_splits([a, b])
    assert meds.read_splits([Path(tmp_path / "none")]) is None
