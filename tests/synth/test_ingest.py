"""The synthetic cohort ingests with zero rejects, and the task engine, run on the ingested store,
keeps exactly the truth rows with exactly the truth labels (re-keyed by ingest)."""
import os
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from claimsfm.tasks.spec import builtin_task_names, load_task


@pytest.fixture(scope="module")
def ingested(cohort, tmp_path_factory):
    out, _ = cohort
    dest = tmp_path_factory.mktemp("ingest") / "data"
    proc = subprocess.run([sys.executable, "-P", "-m", "claimsfm.cli.main", "ingest", str(out), "--out", str(dest),
                           "--link-by", "insurer", "--on-error", "skip"], capture_output=True, text=True, timeout=600,
                          cwd=tmp_path_factory.mktemp("cwd"), env={**os.environ, "CLAIMSFM_SALT": "synth-test-salt"})
    if "not built yet" in proc.stderr:
        pytest.skip("claimsfm ingest is not built yet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return dest, proc.stdout


def test_zero_rejects(ingested, cohort):
    dest, stdout = ingested
    assert not (dest / "rejects.txt").exists() or (dest / "rejects.txt").read_text().strip() == ""
    from claimsfm.data import open_store
    store = open_store(dest)
    assert store.n_subjects == cohort[1]["patients_with_claims"]


def test_engine_labels_equal_truth_labels(ingested):
    from claimsfm.data import open_store
    from claimsfm.tasks.cohort import build_cohort

    dest, _ = ingested
    store = open_store(dest)
    for name in builtin_task_names():
        c = build_cohort(store, load_task(name))
        engine = dict(zip(zip(c.subject_id.tolist(),
                              c.prediction_time.astype("datetime64[us]").astype(np.int64).tolist()), c.label.tolist()))
        t = pq.read_table(dest / "truth" / f"oracle_{name}.parquet")
        times = t.column("prediction_time").to_numpy().astype("datetime64[us]").astype(np.int64)
        truth = dict(zip(zip(t.column("subject_id").to_numpy().tolist(), times.tolist()),
                         t.column("label").to_numpy().tolist()))
        assert engine == truth, name
