"""Evaluation fast paths against their slow twins; prints one JSON object.

- bootstrap: 1,000 patient resamples of AUPRC + AUROC + Brier, vectorised (claimsfm.eval.metrics)
  vs a scikit-learn call per resample (timed on a few resamples and scaled to 1,000);
- cohort: the vectorised cohort engine vs a per-(subject, month) Python loop on a random store.

    python benchmarks/evaluate.py [--rows 20000] [--subjects 3000]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import time

import numpy as np


def bench_bootstrap(rows: int, seed: int = 0) -> dict:
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    from claimsfm.eval.metrics import _resample_weights, summarize

    rng = np.random.default_rng(seed)
    y = rng.random(rows) < 0.1
    p = np.clip(0.1 + 0.3 * y + rng.normal(0, 0.2, rows), 0, 1)
    groups = rng.integers(0, rows // 3, rows)
    t0 = time.perf_counter()
    summarize(y, p, groups, n_boot=1000, seed=seed)
    fast = time.perf_counter() - t0
    k = 20
    t0 = time.perf_counter()
    for w in _resample_weights(groups, k, seed):
        for row in w:
            average_precision_score(y, p, sample_weight=row)
            roc_auc_score(y, p, sample_weight=row)
            brier_score_loss(y, p, sample_weight=row)
    slow = (time.perf_counter() - t0) * 1000 / k
    return {"rows": rows, "n_boot": 1000, "vectorised_s": round(fast, 3), "sklearn_loop_s": round(slow, 3),
            "speedup": round(slow / fast, 1)}


def _test_helpers():
    """The hand-built store and the loop twin live with the tests: load tests/helpers as `helpers`."""
    import importlib.util
    import sys
    from pathlib import Path

    init = Path(__file__).resolve().parents[1] / "tests" / "helpers" / "__init__.py"
    spec = importlib.util.spec_from_file_location("helpers", init, submodule_search_locations=[str(init.parent)])
    sys.modules["helpers"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sys.modules["helpers"])


def _random_store(subjects: int, seed: int):
    from helpers.storekit import ListStore

    rng = np.random.default_rng(seed)
    codes = ["JPDX//1000001", "JPDX//1000002", "JPDRUG//600000001", "JPPROC//100000001"]
    recs = []
    for sid in range(subjects):
        ev = []
        for _ in range(int(rng.integers(1, 40))):
            d = dt.date(2014, 1, 1) + dt.timedelta(days=int(rng.integers(0, 7 * 365)))
            ev.append(((d.year, d.month, d.day), codes[int(rng.integers(4))], bool(rng.random() < 0.2)))
        recs.append({"subject_id": 7 + sid, "birth": (int(rng.integers(1930, 1995)), 4, 2), "events": ev})
    return ListStore(recs)


def bench_cohort(subjects: int, seed: int = 0) -> dict:
    _test_helpers()
    from claimsfm.tasks.cohort import build_cohort

    from helpers.cohortkit import incidence, reference_cohort, rows

    store = _random_store(subjects, seed)
    spec = incidence()
    t0 = time.perf_counter()
    fast_rows = rows(build_cohort(store, spec))
    fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow_rows = reference_cohort(store, spec)
    slow = time.perf_counter() - t0
    return {"subjects": subjects, "events": int(store.n_events), "rows": len(fast_rows),
            "equal": fast_rows == slow_rows, "vectorised_s": round(fast, 4), "loop_s": round(slow, 3),
            "speedup": round(slow / fast, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--subjects", type=int, default=3000)
    args = ap.parse_args()
    print(json.dumps({"bootstrap": bench_bootstrap(args.rows), "cohort": bench_cohort(args.subjects)}, indent=2))


if __name__ == "__main__":
    main()
