"""Hand-built stores for the tasks, baseline and eval tests.

`ListStore` holds the token-store fields of docs/internals.md §4 in memory, built from plain Python
records, so a test states exactly which event sits on which day. `write_records` writes the same records
as a MEDS dataset (through `medskit.write_meds`), for tests that build a real store with
`claimsfm.data.build_store`.
"""
from __future__ import annotations

import numpy as np

from claimsfm.data.format import FLAG_SUSPECTED, SPECIALS, SUSPECTED_SUFFIX, month_of_day
from claimsfm.splits import SPLITS, split_codes

from helpers.medskit import day, write_meds

PARENTS = {
    "JPDX//1000001": ["ICD10//E119", "ICD10//E11"],   # type 2 diabetes
    "JPDX//1000002": ["ICD10//I10", "ICD10//I10"],    # hypertension
    "JPDX//1000003": ["ICD10//N183", "ICD10//N18"],   # CKD
    "JPDRUG//600000001": ["YJ//2189015", "YJ//2189"],  # atorvastatin
    "JPDRUG//600000002": ["YJ//3969010", "YJ//3969"],  # sitagliptin
    "JPPROC//100000001": ["KUBUN//D007", "KUBUN//D"],
}


def epoch_month(y: int, m: int) -> int:
    return y * 12 + m - 1


class ListStore:
    """records: list of dicts {subject_id, birth: (y,m,d), sex, events: [((y,m,d), code, suspected)]}."""

    def __init__(self, records):
        self.code_names = sorted({c for r in records for _, c, _ in r["events"]} | set(PARENTS))
        self.code_parents = [PARENTS.get(c, []) for c in self.code_names]
        index = {c: i for i, c in enumerate(self.code_names)}
        tokens = [*SPECIALS, *self.code_names, *(c + SUSPECTED_SUFFIX for c in self.code_names)]
        self.vocab = {t: i for i, t in enumerate(tokens)}
        self.id_to_token, self.vocab_size = tokens, len(tokens)
        offsets, code, token, days, flags, visit = [0], [], [], [], [], []
        for r in records:
            events = sorted((day(*d), c, bool(s)) for d, c, s in r["events"])
            months = sorted({d // 28 for d, _, _ in events})
            for d, c, s in events:
                code.append(index[c])
                token.append(self.vocab[c + SUSPECTED_SUFFIX if s else c])
                days.append(d)
                flags.append(FLAG_SUSPECTED if s else 0)
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
        ev = month_of_day(self.day)
        self.first_month, self.last_month = int(ev.min()), int(ev.max())

    def match_codes(self, prefixes):
        return np.array([any(x.startswith(tuple(prefixes)) for x in [c, *p])
                         for c, p in zip(self.code_names, self.code_parents)], dtype=bool)


def write_records(records, root) -> None:
    """The same records as a MEDS dataset under `root` (data/<split>/0.parquet, metadata/)."""
    splits = split_codes([r["subject_id"] for r in records])
    subjects = [{"id": r["subject_id"], "split": SPLITS[s], "sex": "M" if r.get("sex", 1) == 1 else "F",
                 "birth": r["birth"], "events": [(d, c, "F1", bool(susp)) for d, c, susp in r["events"]]}
                for r, s in zip(records, splits)]
    write_meds(root, subjects, parents=PARENTS)


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
