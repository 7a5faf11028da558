"""--format csv (C++ parser vs its Python twin) and --format meds (validate + re-shard)."""
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from claimsfm import _native
from claimsfm.errors import ClaimsfmError
from claimsfm.ingest import IngestConfig, csvfmt, write_dataset

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "uke"


def write_csv(path, n=3000, seed=0, damage=False):
    rng = random.Random(seed)
    lines = ["subject_id,time,code,numeric_value"]
    for _ in range(n):
        t = rng.choice(["", "2020-01-05", "2021-12-31T23:59:59", "2019-02-03 04:05", "2018-07-08T01:02:03.25"])
        v = rng.choice(["", "1", "-2.5", "3e2", ".5", "1e30"])
        lines.append(f"{rng.randint(-5, 400)},{t},CODE//{rng.randint(0, 60)},{v}")
    if damage:
        for _ in range(20):
            i = rng.randrange(1, len(lines))
            lines[i] = rng.choice(["1,2020-13-01,X,", "x,2020-01-01,X,", "1,2020-01-01,,", "1,2020-01-01,X,1,2",
                                   "1,2020-01-01,X,abc", '1,"2020",X,', "1,2020-02-30,X,", "1,2020-01-01T25:00,X,",
                                   "1,2020-01-01,X,1e400"])
    path.write_text("\r\n".join(lines) + "\n")
    return path


def assert_same(a, b):
    for k in ("subject_id", "time_us", "code", "value"):
        assert np.array_equal(a[k], b[k], equal_nan=k == "value"), k
    for k in ("codes", "rejects", "rows", "bytes", "has_value_column"):
        assert a[k] == b[k], k


@pytest.mark.parametrize("damage", [False, True])
def test_csv_native_matches_reference(tmp_path, damage):
    path = write_csv(tmp_path / "e.csv", damage=damage)
    for skip in (False, True):
        ref = csvfmt.parse_reference(path, skip_bad=skip)
        for threads in (1, 2, 3):
            assert_same(_native.parse_csv(str(path), threads, skip), ref)


def test_group_by_subject():
    subject = np.array([5, 3, 5, 3, 9, 5], np.int64)
    time = np.array([30, 20, 10, 20, np.iinfo(np.int64).min, 10], np.int64)
    order, offsets, subjects = _native.group_by_subject(subject, time)
    assert subjects.tolist() == [3, 5, 9] and offsets.tolist() == [0, 2, 5, 6]
    assert order.tolist() == [1, 3, 2, 5, 0, 4]


def test_csv_ingest_and_errors(tmp_path):
    path = write_csv(tmp_path / "e.csv", n=200)
    out = tmp_path / "o"
    out.mkdir()
    summary = write_dataset(IngestConfig(inputs=[path], out=out, format="csv", progress=False), out)
    table = pa.concat_tables(pq.read_table(f) for f in (out / "data").rglob("*.parquet"))
    assert table.num_rows == 200 == summary["events"]
    bad = tmp_path / "bad.csv"
    bad.write_text("subject_id,time,code\n1,2020-01-01,A\n2,2020-13-01,B\n")
    with pytest.raises(ClaimsfmError, match=r"bad.csv:3: bad time"):
        write_dataset(IngestConfig(inputs=[bad], out=out, format="csv", progress=False), tmp_path / "o2")


def test_meds_roundtrip_reshards(tmp_path, monkeypatch):
    monkeypatch.setenv("CLAIMSFM_SALT", "meds")
    first = tmp_path / "first"
    first.mkdir()
    write_dataset(IngestConfig(inputs=[FIXTURES / "good"], out=first, progress=False), first)
    second = tmp_path / "second"
    second.mkdir()
    write_dataset(IngestConfig(inputs=[first], out=second, format="meds", shard_rows=4, progress=False), second)

    def read(d):
        return pa.concat_tables(pq.read_table(f) for f in sorted((d / "data").rglob("*.parquet")))

    a, b = read(first), read(second)
    key = [("subject_id", "ascending"), ("time", "ascending"), ("code", "ascending")]
    assert a.sort_by(key).equals(b.sort_by(key))
    assert len(list((second / "data").rglob("*.parquet"))) > len(list((first / "data").rglob("*.parquet")))
    assert pq.read_table(second / "metadata" / "codes.parquet").num_rows == pq.read_table(
        first / "metadata" / "codes.parquet").num_rows


def test_meds_validation(tmp_path):
    src = tmp_path / "src" / "data" / "train"
    src.mkdir(parents=True)
    pq.write_table(pa.table({"subject_id": [1, 2], "code": ["A", "B"]}), src / "0.parquet")
    with pytest.raises(ClaimsfmError, match="missing MEDS column 'time'"):
        write_dataset(IngestConfig(inputs=[tmp_path / "src"], out=tmp_path / "o", format="meds", progress=False),
                      tmp_path / "o")
    pq.write_table(pa.table({"subject_id": [1, 2], "time": ["x", "y"], "code": ["A", "B"]}), src / "0.parquet")
    with pytest.raises(ClaimsfmError, match="column 'time' cannot be read as timestamp"):
        write_dataset(IngestConfig(inputs=[tmp_path / "src"], out=tmp_path / "o", format="meds", progress=False),
                      tmp_path / "o")


def test_csv_integer_values_match_reference(tmp_path):
    # Plain integers take a fast path that skips strtod; signs, zeros and float rounding must agree.
    values = ["0", "-0", "+7", "007", "-12", "16777217", "123456789012345", "9999999999999999", "+0.0"]
    lines = ["subject_id,time,code,numeric_value"] + [f"{i},2020-01-01,C,{v}" for i, v in enumerate(values)]
    path = tmp_path / "v.csv"
    path.write_text("\n".join(lines) + "\n")
    got, ref = _native.parse_csv(str(path), 1, False), csvfmt.parse_reference(path)
    assert_same(got, ref)
    assert np.signbit(got["value"][1]) and got["value"][5] == np.float32(16777217.0)


def test_group_by_subject_matches_stable_lexsort():
    rng = np.random.default_rng(0)
    subject = rng.integers(-50, 50, 20_000)
    time = rng.integers(0, 30, 20_000)  # many ties: file order must break them
    time[rng.random(20_000) < 0.05] = np.iinfo(np.int64).min
    order, offsets, subjects = _native.group_by_subject(subject, time)
    assert order.tolist() == np.lexsort((time, subject)).tolist()
    for threads in (2, 3, 1000):  # more threads than subjects too
        assert np.array_equal(_native.group_by_subject(subject, time, threads)[0], order)
    assert subjects.tolist() == np.unique(subject).tolist()
    assert offsets.tolist() == [0] + np.cumsum(np.unique(subject, return_counts=True)[1]).tolist()
