"""A small structured token store for the training tests, built once per session.

Patients belong to one of four latent groups; each group draws its codes from its own pool, so a
model that learns co-occurrence predicts masked codes better than their frequencies do (the loss
must fall). Written as a MEDS dataset and turned into a store by `claimsfm.data.build_store`.
"""
import datetime as dt
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from claimsfm.splits import split_names

N_GROUPS, POOL = 4, 12


def _subject_rows(rng, sid):
    group = rng.integers(N_GROUPS)
    codes = [f"JPDX//{1000000 + group * POOL + k}" for k in range(POOL)]
    rows = [(sid, None, "SEX//M" if rng.random() < 0.5 else "SEX//F"),
            (sid, dt.datetime(1940 + int(rng.integers(60)), 1 + int(rng.integers(12)), 1), "MEDS_BIRTH")]
    month = dt.date(2019, 1, 1)
    for _ in range(int(rng.integers(3, 12))):
        month = (month.replace(day=28) + dt.timedelta(days=int(rng.integers(5, 90)))).replace(day=1)
        picks = rng.choice(POOL, size=int(rng.integers(2, 6)), replace=False)
        for k in sorted(picks):
            rows.append((sid, dt.datetime(month.year, month.month, 1 + int(rng.integers(27))), codes[k]))
    rows[2:] = sorted(rows[2:], key=lambda r: r[1])
    return rows


def write_cohort(root, n_subjects=400, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n_subjects + 1, dtype=np.int64) * 7919
    names = split_names(ids)
    by_split = {}
    for sid, split in zip(ids.tolist(), names):
        by_split.setdefault(split, []).extend(_subject_rows(rng, sid))
    for split, rows in by_split.items():
        sid, time, code = zip(*rows)
        n = len(rows)
        table = pa.table({
            "subject_id": pa.array(sid, pa.int64()), "time": pa.array(time, pa.timestamp("us")),
            "code": pa.array(code, pa.string()), "numeric_value": pa.array([None] * n, pa.float32()),
            "facility": pa.array(["F1"] * n, pa.string()), "suspected": pa.array([False] * n, pa.bool_()),
        })
        (root / "data" / split).mkdir(parents=True, exist_ok=True)
        pq.write_table(table, root / "data" / split / "0.parquet")
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"subject_id": pa.array(ids), "split": pa.array(list(names))}),
                   root / "metadata" / "subject_splits.parquet")
    return root


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory):
    from claimsfm.data import build_store

    root = write_cohort(tmp_path_factory.mktemp("cohort"))
    build_store(root, root / "store", min_count=1)
    return root


@pytest.fixture
def run_python():
    """Run a Python snippet in a fresh interpreter that imports the installed claimsfm."""

    def _run(code, cwd, env=None, timeout=300, wait=True):
        full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
        args = [sys.executable, "-P", "-c", code]
        if not wait:
            return subprocess.Popen(args, cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
        return subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)

    return _run


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run faster on one thread (no OpenMP barriers); restored for other areas' tests."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)
