"""End to end with the real generator: `claimsfm synth` output ingests cleanly, both parsers agree
on it, and truth/keys.parquet maps onto exactly the subjects in the data (both link modes)."""
import numpy as np
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from claimsfm import _native
from claimsfm.ingest import reference, truth


def test_synth_folder(cli, tmp_path):
    synth = tmp_path / "synth"
    res = cli("synth", "--out", synth, "--patients", "120", "--hospitals", "2", "--months", "12", "--seed", "3")
    assert res.returncode == 0, res.stderr
    paths = sorted(str(p) for p in (synth / "uke").rglob("*.UKE"))
    keys = pq.read_table(synth / "truth" / "keys.parquet")
    for link_by in ("chart", "insurer"):
        a, b = _native.parse_uke(paths, link_by, True, 2), reference.parse_files(paths, link_by, True)
        assert a["rejects"] == [] and a["codes"] == b["codes"] and a["stats"] == b["stats"]
        assert np.array_equal(a["day"], b["day"]) and np.array_equal(a["key"], b["key"])
        out = tmp_path / f"out_{link_by}"
        res = cli("ingest", synth, "--out", out, "--link-by", link_by, "--min-count", "1", "--no-progress",
                  env={"CLAIMSFM_SALT": "synth-test"})
        assert res.returncode == 0, res.stderr
        subjects = set(ds.dataset(out / "data").to_table(columns=["subject_id"]).column(0).to_pylist())
        _, mapped = truth.patient_subjects(keys, b"synth-test", link_by)
        assert set(mapped.tolist()) == subjects
        assert (out / "store" / "format.json").is_file() and not (out / "truth" / "keys.parquet").exists()
        codes = pq.read_table(out / "metadata" / "codes.parquet").to_pylist()
        assert any(c["parent_codes"] for c in codes if c["code"].startswith("JPDX//"))
