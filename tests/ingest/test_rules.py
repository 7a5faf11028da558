"""design.md §3.1 rules on the hand-written fixtures, checked on the MEDS output."""
import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from claimsfm.ingest import IngestConfig, pseudo, write_dataset
from claimsfm.splits import split_names

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "uke"
SALT = "test-salt"


def ingest(tmp_path, link_by="chart", **kw):
    out = tmp_path / f"out_{link_by}"
    out.mkdir()
    cfg = IngestConfig(inputs=[FIXTURES / "good"], out=out, link_by=link_by, progress=False, **kw)
    summary = write_dataset(cfg, out)
    table = pa.concat_tables(pq.read_table(f) for f in sorted((out / "data").rglob("*.parquet")))
    return out, summary, table.to_pylist()


def sid(key: str) -> int:
    return pseudo.subject_id(SALT.encode(), key)


@pytest.fixture(autouse=True)
def _salt(monkeypatch):
    monkeypatch.setenv("CLAIMSFM_SALT", SALT)


def d(s):
    return dt.datetime.fromisoformat(s)


def rows_of(rows, subject):
    return [(r["time"], r["code"], r["numeric_value"], r["suspected"], r["dx_start"]) for r in rows
            if r["subject_id"] == subject]


def test_chart_linking_and_events(tmp_path):
    _, summary, rows = ingest(tmp_path)
    a = sid(pseudo.chart_key("1312345", "P0001"))
    ev = rows_of(rows, a)
    assert ev[0] == (None, "SEX//F", None, False, None)  # static row first
    assert (d("1980-01-15"), "MEDS_BIRTH", None, False, None) in ev
    dx = [e for e in ev if e[1].startswith("JPDX//")]
    assert dx == [
        (d("2024-05-01"), "JPDX//8833421", None, False, d("2024-03-01")),  # start before the month
        (d("2024-05-07"), "JPDX//8830052", None, False, d("2024-05-07")),  # start inside the month
        (d("2024-05-14"), "JPDX//8840107", None, True, d("2024-05-14")),   # suspected (8002)
        (d("2024-06-01"), "JPDX//8840107", None, False, d("2024-05-14")),  # confirmed later
    ]
    drugs = [e[:3] for e in ev if e[1].startswith("JPDRUG//")]
    assert drugs == [(d("2024-05-07"), "JPDRUG//620000001", 7.0), (d("2024-05-07"), "JPDRUG//620000002", 7.0),
                     (d("2024-06-03"), "JPDRUG//620000001", 14.0)]
    blood = [e[:3] for e in ev if e[1] == "JPPROC//160008010"]
    assert blood == [(d("2024-05-14"), "JPPROC//160008010", 1.0), (d("2024-05-28"), "JPPROC//160008010", 2.0)]
    visits = [e[:2] for e in ev if e[1].startswith("JPVISIT//")]
    assert visits == [(d("2024-05-07"), "JPVISIT//OUTPATIENT"), (d("2024-06-03"), "JPVISIT//OUTPATIENT")]
    assert summary["subjects"] == 3 and summary["receipts"] == 4 and summary["records_unknown"] == 1


def test_inpatient_death_era_birth(tmp_path):
    _, _, rows = ingest(tmp_path)
    b = [r for r in rows if r["code"] == "MEDS_DEATH"]
    assert len(b) == 1 and b[0]["time"] == d("2024-05-31")
    ev = rows_of(rows, b[0]["subject_id"])
    assert (d("1981-04-18"), "MEDS_BIRTH", None, False, None) in ev
    assert (d("2024-05-01"), "JPVISIT//INPATIENT", None, False, None) in ev
    assert (d("1994-01-01")) == [e for e in ev if e[1] == "JPDX//8831234"][0][4]  # era start date
    devices = [e[:3] for e in ev if e[1].startswith("JPDEVICE//")]
    assert devices == [(d("2024-05-02"), "JPDEVICE//700010000", 1.0), (d("2024-05-03"), "JPDEVICE//700010000", 1.0)]


def test_insurer_linking_joins_facilities(tmp_path):
    _, _, chart_rows = ingest(tmp_path, "chart")
    _, _, ins_rows = ingest(tmp_path, "insurer")
    assert len({r["subject_id"] for r in chart_rows}) == 3
    a = sid(pseudo.insurer_key("06139999", "771234", "456789", (dt.date(1980, 1, 15) - dt.date(1970, 1, 1)).days, 2))
    ev = rows_of(ins_rows, a)
    assert len({r["subject_id"] for r in ins_rows}) == 2
    assert [e[1] for e in ev].count("SEX//F") == 1 and [e[1] for e in ev].count("MEDS_BIRTH") == 1
    # 8830052 was seen at both hospitals: once, at its first observation.
    assert [e[0] for e in ev if e[1] == "JPDX//8830052"] == [d("2024-05-07")]
    assert len({r["facility"] for r in ins_rows if r["subject_id"] == a}) == 2


def test_meds_layout_and_schema(tmp_path):
    out, _, rows = ingest(tmp_path)
    shard = next((out / "data").rglob("*.parquet"))
    schema = pq.read_schema(shard)
    assert str(schema.field("subject_id").type) == "int64" and str(schema.field("time").type) == "timestamp[us]"
    assert str(schema.field("numeric_value").type) == "float" and str(schema.field("suspected").type) == "int8"
    assert str(schema.field("dx_start").type) == "timestamp[us]" and str(schema.field("code").type) == "string"
    splits = pq.read_table(out / "metadata" / "subject_splits.parquet").to_pylist()
    for s in splits:
        assert s["split"] == split_names([s["subject_id"]])[0]
        assert list((out / "data" / s["split"]).glob("*.parquet"))
    keys = [(r["subject_id"], r["time"] is not None, r["time"] or d("1900-01-01")) for r in rows]
    by_shard = {}
    for f in (out / "data").rglob("*.parquet"):
        t = pq.read_table(f)
        k = list(zip(t.column("subject_id").to_pylist(), [x is not None for x in t.column("time").to_pylist()],
                     [x or d("1900-01-01") for x in t.column("time").to_pylist()]))
        assert k == sorted(k)
        by_shard[f] = k
    assert sum(len(v) for v in by_shard.values()) == len(keys)
    codes = pq.read_table(out / "metadata" / "codes.parquet")
    assert set(codes.column("code").to_pylist()) == {r["code"] for r in rows}


def test_masters_fill_codes(tmp_path):
    masters = tmp_path / "masters"
    masters.mkdir()
    (masters / "diseases.csv").write_text("code,name,mapped_code,class\n8830052,2型糖尿病,E119,E11\n", encoding="utf-8")
    (masters / "drugs.csv").write_text("code,name,mapped_code,class\n620000001,シタグリプチン,3969010,3969\n",
                                       encoding="utf-8")
    out, _, _ = ingest(tmp_path, masters=masters)
    codes = {r["code"]: r for r in pq.read_table(out / "metadata" / "codes.parquet").to_pylist()}
    assert codes["JPDX//8830052"]["parent_codes"] == ["ICD10//E119", "ICD10//E11"]
    assert codes["JPDX//8830052"]["description"] == "2型糖尿病"
    assert codes["JPDRUG//620000001"]["parent_codes"] == ["YJ//3969010", "YJ//3969"]
    assert codes["JPDX//8840107"]["parent_codes"] == []


def test_small_shards_never_split_a_subject(tmp_path):
    out, _, rows = ingest(tmp_path, shard_rows=3)
    seen = {}
    for f in (out / "data").rglob("*.parquet"):
        for s in set(pq.read_table(f).column("subject_id").to_pylist()):
            assert s not in seen
            seen[s] = f
    assert len(seen) == len({r["subject_id"] for r in rows})


def test_thread_count_does_not_change_output(tmp_path):
    outs = []
    for threads in (1, 2):
        out = tmp_path / f"t{threads}"
        out.mkdir()
        write_dataset(IngestConfig(inputs=[FIXTURES / "good"], out=out, threads=threads, progress=False), out)
        outs.append(pa.concat_tables(pq.read_table(f) for f in sorted((out / "data").rglob("*.parquet"))))
    assert outs[0].equals(outs[1])
