"""The token store's on-disk schema, in one place (design.md §3.2, docs/internals.md §4).

`claimsfm.data.store` reads what `claimsfm.data.build` writes; both, and every other user (tasks,
ingest, tests), take the names, dtypes, specials, flag bits and day/month helpers from here. This
module imports nothing heavier than numpy, and nothing from the rest of claimsfm.

Days are int32 days since 1970-01-01; a month index is `year * 12 + (month - 1)`.
"""
from __future__ import annotations

import numpy as np

FORMAT_VERSION = 1  # format.json "FORMAT_VERSION"; a reader refuses any other

# Vocabulary: these tokens come first, in this order, then codes by descending train count.
SPECIALS = ("[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]")
PAD, CLS, SEP, MASK, UNK = range(len(SPECIALS))
N_SPECIAL = len(SPECIALS)
CODE_ESCAPE = "\\"  # prefixed to a data code that equals a special's name or starts with CODE_ESCAPE


def escape_code(code: str) -> str:
    """The vocabulary name of a data code: the code itself, or CODE_ESCAPE + code when it would read as a
    special token (a MEDS code `[MASK]` becomes `\\[MASK]`; injective, so two codes never share a token)."""
    return CODE_ESCAPE + code if code in SPECIALS or code.startswith(CODE_ESCAPE) else code


SUSPECTED_SUFFIX = "//S"  # a suspected diagnosis is its own token: "<code>//S"

# Bits of the per-event `flags` array.
FLAG_SUSPECTED = 1
FLAG_INPATIENT = 2

# How raw MEDS codes become tokens: the receipt code itself, or its coarsest parent code.
CODE_LEVELS = ("raw", "mapped")

# MEDS codes the store treats specially: birth fills birth_day (not an event), death fills
# death_day (and stays an event), an inpatient visit row sets FLAG_INPATIENT on its visit, sex fills `sex`.
BIRTH, DEATH, INPATIENT = "MEDS_BIRTH", "MEDS_DEATH", "JPVISIT//INPATIENT"
SEX_CODES = {"SEX//M": 1, "SEX//F": 2}  # `sex` array value; 0 = unknown

# name -> (dtype, length: "subjects" (n,), "offsets" (n+1,), "events" (N,)); one `<name>.npy` each.
SUBJECT_ARRAYS = {
    "subject_ids": (np.int64, "subjects"),
    "split": (np.uint8, "subjects"),
    "birth_day": (np.int32, "subjects"),
    "sex": (np.int8, "subjects"),
    "death_day": (np.int32, "subjects"),
    "offsets": (np.int64, "offsets"),
}
EVENT_ARRAYS = {
    "code": (np.int32, "events"),
    "token": (np.int32, "events"),
    "day": (np.int32, "events"),
    "visit": (np.int32, "events"),
    "flags": (np.uint8, "events"),
    "value": (np.float32, "events"),
}
ARRAYS = {**SUBJECT_ARRAYS, **EVENT_ARRAYS}

EPOCH_MONTH = 1970 * 12  # month index of January 1970 (day 0)


def month_of_day(day) -> np.ndarray:
    """Month index of days since 1970-01-01.  (N,) int -> (N,) int64"""
    d = np.asarray(day, dtype=np.int64).astype("datetime64[D]")
    return d.astype("datetime64[M]").astype(np.int64) + EPOCH_MONTH


def month_end_day(month) -> np.ndarray:
    """Day (since 1970-01-01) of the last day of each month index.  (N,) int -> (N,) int64"""
    m = np.asarray(month, dtype=np.int64) - EPOCH_MONTH + 1
    return m.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64) - 1
