"""A `claimsfm synth`-shaped input folder: uke/ is read, masters/ used, truth/ re-keyed by subject_id."""
import datetime as dt
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from claimsfm.ingest import IngestConfig, write_dataset

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "uke"


def make_synth(root: Path) -> Path:
    shutil.copytree(FIXTURES / "good", root / "uke")
    (root / "synth.json").write_text(json.dumps({"seed": 0}))
    (root / "masters").mkdir()
    (root / "masters" / "diseases.csv").write_text("code,name,mapped_code,class\n8830052,糖尿病,E119,E11\n")
    truth = root / "truth"
    truth.mkdir()
    birth_a, birth_b = dt.date(1980, 1, 15), dt.date(1981, 4, 18)
    keys = pa.table({
        "patient": pa.array([0, 0, 1], pa.int64()),
        "facility_code": ["1312345", "2723456", "1312345"],
        "chart_no": ["P0001", "Q77", "B1"],
        "insurer_no": ["06139999", "06139999", "133066"],
        "card_symbol": ["７７１２３４", "771234", "ＸＱＺ８８"],
        "card_number": ["４５６７８９", "456789", "９８７６５４"],
        "birth_date": pa.array([birth_a, birth_a, birth_b], pa.date32()),
        "sex": pa.array([2, 2, 1], pa.int8()),
    })
    pq.write_table(keys, truth / "keys.parquet")
    t = dt.datetime(2024, 5, 31, 23, 59, 59)
    pq.write_table(pa.table({"patient": pa.array([0, 1], pa.int64()),
                             "prediction_time": pa.array([t, t], pa.timestamp("us")),
                             "p_observable": [0.1, 0.2], "p_latent": [0.3, 0.4], "label": [True, False]}),
                   truth / "oracle_t2dm.parquet")
    pq.write_table(pa.table({"patient": pa.array([0, 1, 1], pa.int64()), "month": [1, 2, 3], "module": ["a", "b", "c"],
                             "h": pa.array([0.1, 0.2, 0.3], pa.float32()), "state": pa.array([0, 1, 0], pa.int8())}),
                   truth / "hazards.parquet")
    return root


@pytest.mark.parametrize("link_by,sub", [("chart", ""), ("insurer", ""), ("insurer", "uke")])
def test_truth_rekeyed(tmp_path, monkeypatch, link_by, sub):
    monkeypatch.setenv("CLAIMSFM_SALT", "truth")
    synth = make_synth(tmp_path / "synth")
    out = tmp_path / "out"
    out.mkdir()
    cfg = IngestConfig(inputs=[synth / sub if sub else synth], out=out, link_by=link_by, progress=False)
    summary = write_dataset(cfg, out)
    assert summary["files"] == 3 and sorted(summary["truth_files"]) == ["hazards.parquet", "oracle_t2dm.parquet"]
    assert not (out / "truth" / "keys.parquet").exists()
    data = pa.concat_tables(pq.read_table(f) for f in (out / "data").rglob("*.parquet"))
    subjects = set(data.column("subject_id").to_pylist())
    oracle = pq.read_table(out / "truth" / "oracle_t2dm.parquet")
    assert oracle.column_names == ["subject_id", "prediction_time", "p_observable", "p_latent", "label"]
    rows = oracle.to_pylist()
    a_rows = [r for r in rows if r["p_observable"] == 0.1]
    if link_by == "chart":  # patient 0 was seen at two facilities: two subjects, the row repeated
        assert len(a_rows) == 2
        assert len({r["subject_id"] for r in a_rows} & subjects) == 1  # the facility with a chart number
    else:
        assert len(a_rows) == 1 and a_rows[0]["subject_id"] in subjects
        b_rows = [r for r in rows if r["p_observable"] == 0.2]
        assert len(b_rows) == 1 and b_rows[0]["subject_id"] in subjects
        assert len(subjects) == 2
    hazards = pq.read_table(out / "truth" / "hazards.parquet")
    assert "patient" not in hazards.column_names and hazards.num_rows >= 3
    codes = {r["code"]: r for r in pq.read_table(out / "metadata" / "codes.parquet").to_pylist()}
    assert codes["JPDX//8830052"]["parent_codes"] == ["ICD10//E119", "ICD10//E11"]
