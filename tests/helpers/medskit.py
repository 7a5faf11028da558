"""Hand-made MEDS datasets for the tests (schema of design.md §3.1, internals.md §2).

A subject is a dict: `id`, `split`, optional `sex` ("M"/"F"), `birth` (y, m, d), and `events`, a list
of (date (y, m, d), code, facility, suspected[, value]); `write_meds` writes them as parquet shards.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from claimsfm.splits import SPLITS

PARENTS = {
    "JPDX//1000001": ["ICD10//E119", "ICD10//E11"],
    "JPDX//1000002": ["ICD10//E112", "ICD10//E11"],
    "JPDX//1000003": ["ICD10//I10", "ICD10//I10"],
    "JPDRUG//600000001": ["YJ//2189015", "YJ//2189"],
    "JPDRUG//600000002": ["YJ//3969010", "YJ//3969"],
    "JPPROC//100000001": ["KUBUN//D007", "KUBUN//D"],
}


def day(y, m, d) -> int:
    return (dt.date(y, m, d) - dt.date(1970, 1, 1)).days


def _rows(subject):
    rows = []
    if "sex" in subject:
        rows.append((subject["id"], None, f"SEX//{subject['sex']}", None, None, False))
    if "birth" in subject:
        rows.append((subject["id"], dt.datetime(*subject["birth"]), "MEDS_BIRTH", None, None, False))
    for ev in subject["events"]:
        date, code, fac, susp = ev[:4]
        value = ev[4] if len(ev) > 4 else None
        rows.append((subject["id"], dt.datetime(*date), code, value, fac, susp))
    return rows


def write_meds(root, subjects, shards_per_split=1, codes=True, splits_file=True, parents=None):
    """Write `subjects` as a MEDS dataset under root/data/<split>/<k>.parquet (+ metadata).

    `parents` (code -> parent codes, default PARENTS) fills metadata/codes.parquet.
    """
    parents = PARENTS if parents is None else parents
    by_split = {}
    for s in subjects:
        by_split.setdefault(s["split"], []).append(s)
    for split, subs in by_split.items():
        subs = sorted(subs, key=lambda s: s["id"])
        for k in range(shards_per_split):
            part = subs[k::shards_per_split]
            rows = [r for s in part for r in _rows(s)]
            rows.sort(key=lambda r: (r[0], r[1] is not None, r[1] or dt.datetime.min))
            cols = list(zip(*rows)) if rows else [[]] * 6
            table = pa.table({
                "subject_id": pa.array(cols[0], pa.int64()),
                "time": pa.array(cols[1], pa.timestamp("us")),
                "code": pa.array(cols[2], pa.string()),
                "numeric_value": pa.array(cols[3], pa.float32()),
                "facility": pa.array(cols[4], pa.string()),
                "suspected": pa.array(cols[5], pa.bool_()),
            })
            (root / "data" / split).mkdir(parents=True, exist_ok=True)
            pq.write_table(table, root / "data" / split / f"{k}.parquet")
    meta = root / "metadata"
    meta.mkdir(parents=True, exist_ok=True)
    if codes:
        pq.write_table(pa.table({
            "code": pa.array(list(parents), pa.string()),
            "description": pa.array([f"name of {c}" for c in parents], pa.string()),
            "parent_codes": pa.array(list(parents.values()), pa.list_(pa.string())),
        }), meta / "codes.parquet")
    if splits_file:
        pq.write_table(pa.table({
            "subject_id": pa.array([s["id"] for s in subjects], pa.int64()),
            "split": pa.array([s["split"] for s in subjects], pa.string()),
        }), meta / "subject_splits.parquet")
    return root


CODES = ["JPDX//1000001", "JPDX//1000002", "JPDX//1000003", "JPDRUG//600000001", "JPDRUG//600000002",
         "JPPROC//100000001", "JPPROC//100000002", "JPDRUG//600000003"]


def random_subjects(n, seed=0, start=(2019, 1), months=36, facilities=("F1", "F2", "F3")):
    """n random subjects with monthly visits, several facilities, suspected codes and deaths."""
    rng = np.random.default_rng(seed)
    splits = np.array(SPLITS)
    out = []
    for _ in range(n):
        events = []
        n_visits = int(rng.integers(0, 14))
        for _ in range(n_visits):
            mo = int(rng.integers(0, months))
            y, m = start[0] + (start[1] - 1 + mo) // 12, (start[1] - 1 + mo) % 12 + 1
            fac = str(rng.choice(facilities))
            kind = "INPATIENT" if rng.random() < 0.2 else "OUTPATIENT"
            events.append(((y, m, int(rng.integers(1, 10))), f"JPVISIT//{kind}", fac, False))
            for _ in range(int(rng.integers(1, 8))):
                d = (y, m, int(rng.integers(1, 29)))
                events.append((d, str(rng.choice(CODES)), fac, bool(rng.random() < 0.1), float(rng.integers(1, 4))))
        if events and rng.random() < 0.05:
            last = max(e[0] for e in events)
            events.append((last, "MEDS_DEATH", None, False))
        subject = {"id": int(rng.integers(1, 2**62)), "split": str(rng.choice(splits, p=[0.8, 0.1, 0.1])),
                   "events": events}
        if rng.random() < 0.95:
            subject["birth"] = (int(rng.integers(1930, 2015)), int(rng.integers(1, 13)), int(rng.integers(1, 29)))
        if rng.random() < 0.95:
            subject["sex"] = str(rng.choice(["M", "F"]))
        out.append(subject)
    return out
