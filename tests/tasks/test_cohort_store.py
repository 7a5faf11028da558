"""The cohort engine on a real token store (MEDS -> build_store) equals the hand-built in-memory twin."""
import datetime as dt

import numpy as np

from claimsfm.data import build_store
from claimsfm.tasks.cohort import build_cohort

from helpers.cohortkit import incidence, medication, rows
from helpers.storekit import ListStore, write_records


def _records(seed=3, n=50):
    rng = np.random.default_rng(seed)
    codes = ["JPDX//1000001", "JPDX//1000002", "JPDRUG//600000001", "JPPROC//100000001"]
    recs = []
    for sid in range(n):
        ev = set()
        for _ in range(int(rng.integers(1, 25))):
            d = dt.date(2014, 1, 1) + dt.timedelta(days=int(rng.integers(0, 7 * 365)))
            c = codes[int(rng.integers(4))]
            ev.add(((d.year, d.month, d.day), c, bool(rng.random() < 0.3) and c.startswith("JPDX")))
        recs.append({"subject_id": 10_000 + 7919 * sid, "birth": (int(rng.integers(1930, 1990)), 3, 9),
                     "sex": 1 + sid % 2, "events": sorted(ev)})
    return recs


def test_real_store_gives_the_same_cohorts(tmp_path):
    recs = _records()
    write_records(recs, tmp_path)
    store = build_store(tmp_path, tmp_path / "store", min_count=1)
    twin = ListStore(sorted(recs, key=lambda r: r["subject_id"]))
    assert store.first_month == twin.first_month and store.last_month == twin.last_month
    for spec in (incidence(), medication(), medication("none")):
        real = build_cohort(store, spec)
        assert rows(real) == rows(build_cohort(twin, spec))
        assert np.array_equal(real.split, store.split[real.subject_idx])
