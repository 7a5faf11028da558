"""Hand-built stores for the eval-area tests.

`ListStore` holds the token-store fields of docs/internals.md §4 in memory, built from plain Python
records, so a test states exactly which event sits on which day. `write_meds` writes the same records
as a MEDS dataset, for tests that build a real store with `claimsfm.data.build_store`.
"""
from __future__ import annotations

import datetime as dt

import numpy as np

from claimsfm.splits import split_codes

SPECIALS = ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"]
PARENTS = {
    "JPDX//1000001": ["ICD10//E119", "ICD10//E11"],   # type 2 diabetes
    "JPDX//1000002": ["ICD10//I10", "ICD10//I10"],    # hypertension
    "JPDX//1000003": ["ICD10//N183", "ICD10//N18"],   # CKD
    "JPDRUG//600000001": ["YJ//2189015", "YJ//2189"],  # atorvastatin
    "JPDRUG//600000002": ["YJ//3969010", "YJ//3969"],  # sitagliptin
    "JPPROC//100000001": ["KUBUN//D007", "KUBUN//D"],
}


def day(y: int, m: int, d: int) -> int:
    return (dt.date(y, m, d) - dt.date(1970, 1, 1)).days


def epoch_month(y: int, m: int) -> int:
    return y * 12 + m - 1


class ListStore:
    """records: list of dicts {subject_id, birth: (y,m,d), sex, events: [((y,m,d), code, suspected)]}."""

    def __init__(self, records):
        self.code_names = sorted({c for r in records for _, c, _ in r["events"]} | set(PARENTS))
        self.code_parents = [PARENTS.get(c, []) for c in self.code_names]
        index = {c: i for i, c in enumerate(self.code_names)}
        tokens = SPECIALS + self.code_names + [c + "//S" for c in self.code_names]
        self.vocab = {t: i for i, t in enumerate(tokens)}
        self.id_to_token, self.vocab_size = tokens, len(tokens)
        offsets, code, token, days, flags, visit = [0], [], [], [], [], []
        for r in records:
            events = sorted((day(*d), c, bool(s)) for d, c, s in r["events"])
            months = sorted({d // 28 for d, _, _ in events})
            for d, c, s in events:
                code.append(index[c])
                token.append(self.vocab[c + "//S" if s else c])
                days.append(d)
                flags.append(int(s))
                visit.append(months.index(d // 28))
            offsets.append(len(code))
        self.subject_ids = np.array([r["subject_id"] for r in records], dtype=np.int64)
        self.n_subjects, self.n_events = len(records), len(code)
        self.split = split_codes(self.subject_ids) if records and "split" not in records[0] else \
            np.array([r["split"] for r in records], dtype=np.uint8)
        self.birth_day = np.array([day(*r["birth"]) for r in records], dtype=np.int32)
        self.sex = np.array([r.get("sex", 1) for r in records], dtype=np.int8)
        self.offsets = np.array(offsets, dtype=np.int64)
        self.code = np.array(code, dtype=np.int32)
        self.token = np.array(token, dtype=np.int32)
        self.day = np.array(days, dtype=np.int32)
        self.visit = np.array(visit, dtype=np.int32)
        self.flags = np.array(flags, dtype=np.uint8)
        self.value = np.full(len(code), np.nan, dtype=np.float32)
        death = np.full(self.n_subjects, -1, dtype=np.int32)
        for i in range(self.n_subjects):
            for k in range(offsets[i], offsets[i + 1]):
                if self.code_names[code[k]] == "MEDS_DEATH":
                    death[i] = days[k]
        self.death_day = death
        ev = self.day.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64) + 1970 * 12
        self.first_month, self.last_month = int(ev.min()), int(ev.max())

    def match_codes(self, prefixes):
        return np.array([any(x.startswith(tuple(prefixes)) for x in [c, *p])
                         for c, p in zip(self.code_names, self.code_parents)], dtype=bool)


def write_meds(records, root) -> None:
    """The same records as a MEDS dataset under `root` (data/<split>/0.parquet, metadata/)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from claimsfm.splits import SPLITS

    splits = split_codes([r["subject_id"] for r in records])
    for code, name in enumerate(SPLITS):
        rows = []
        for r, s in zip(records, splits):
            if s != code:
                continue
            sid = r["subject_id"]
            rows.append((sid, None, "SEX//M" if r.get("sex", 1) == 1 else "SEX//F", False))
            rows.append((sid, dt.datetime(*r["birth"]), "MEDS_BIRTH", False))
            for d, c, susp in sorted(r["events"]):
                rows.append((sid, dt.datetime(*d), c, bool(susp)))
        table = pa.table({
            "subject_id": pa.array([x[0] for x in rows], pa.int64()),
            "time": pa.array([x[1] for x in rows], pa.timestamp("us")),
            "code": pa.array([x[2] for x in rows], pa.string()),
            "numeric_value": pa.array([None] * len(rows), pa.float32()),
            "facility": pa.array(["F1"] * len(rows), pa.string()),
            "suspected": pa.array([x[3] for x in rows], pa.bool_()),
        })
        (root / "data" / name).mkdir(parents=True, exist_ok=True)
        pq.write_table(table, root / "data" / name / "0.parquet")
    meta = root / "metadata"
    meta.mkdir(parents=True, exist_ok=True)
    codes = sorted(PARENTS)
    pq.write_table(pa.table({"code": codes, "description": codes,
                             "parent_codes": [PARENTS[c] for c in codes]}), meta / "codes.parquet")
    pq.write_table(pa.table({"subject_id": pa.array([r["subject_id"] for r in records], pa.int64()),
                             "split": [SPLITS[s] for s in splits]}), meta / "subject_splits.parquet")


def planted_records(n: int = 1000, seed: int = 0):
    """Monthly visits 2015-01 .. 2019-12 with two planted signals the tests can find:
    statin use follows a hypertension code, and subjects with frequent lab procedures develop T2D."""
    rng = np.random.default_rng(seed)
    recs = []
    for sid in range(n):
        risky, htn_month, events, t2d = rng.random() < 0.3, int(rng.integers(0, 90)), [], False
        for k in range(60):
            if rng.random() > 0.5:
                continue
            date = (2015 + k // 12, k % 12 + 1, int(rng.integers(1, 28)))
            events.append((date, "JPPROC//100000001" if risky or rng.random() < 0.1 else "JPDX//1000003", False))
            if k >= htn_month:
                events.append((date, "JPDX//1000002", False))
                if rng.random() < 0.6:
                    events.append((date, "JPDRUG//600000001", False))
            if not t2d and rng.random() < (0.06 if risky else 0.002):
                events.append((date, "JPDX//1000001", False))
                t2d = True
        recs.append({"subject_id": 1_000_003 * (sid + 1), "birth": (int(rng.integers(1930, 1985)), 6, 1),
                     "sex": 1 + int(rng.random() < 0.5), "events": events or [((2016, 1, 5), "JPDX//1000003", False)]})
    return recs
