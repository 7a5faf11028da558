"""The event table between a parser and the MEDS writer, and the UKE rules that need subject_ids.

Parsers (C++ or the Python reference) return raw events keyed by patient-key ids. `from_uke`
turns keys into subject_ids and then applies the once-only rules of design.md §3.1: a diagnosis
once per (subject, code, suspected) at its first observation; sex, birth and death once per
subject. Everything is vectorised numpy, so it costs little next to parsing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from claimsfm.ingest import pseudo

NO_DAY = np.iinfo(np.int32).min
NO_TIME = np.iinfo(np.int64).min
US_PER_DAY = 86_400_000_000
_ONCE_PER_SUBJECT = ("SEX//M", "SEX//F", "MEDS_BIRTH", "MEDS_DEATH")


@dataclass
class EventTable:
    """Columns of equal length; ids index the name tables. Null time / dx_start = NO_TIME."""

    subject: np.ndarray      # (N,) int64
    time_us: np.ndarray      # (N,) int64
    code: np.ndarray         # (N,) int32 -> code_names
    code_names: list
    value: np.ndarray        # (N,) float32, NaN = none
    facility: np.ndarray     # (N,) int32 -> facility_names, -1 = none
    facility_names: list
    suspected: np.ndarray    # (N,) bool
    dx_start_us: np.ndarray  # (N,) int64
    text: np.ndarray | None = None   # (N,) int32 -> text_names, -1 = none (MEDS text_value; None: no text)
    text_names: list | None = None

    def __len__(self) -> int:
        return len(self.subject)

    def take(self, idx: np.ndarray) -> "EventTable":
        return EventTable(self.subject[idx], self.time_us[idx], self.code[idx], self.code_names,
                          self.value[idx], self.facility[idx], self.facility_names,
                          self.suspected[idx], self.dx_start_us[idx],
                          None if self.text is None else self.text[idx], self.text_names)

    def sorted(self) -> "EventTable":
        """Order by (subject, time with static rows first, code, facility, suspected, value,
        dx_start) — a total order, so the output does not depend on which parser or how many
        threads produced it. Sorts on three keys, then only the tied rows on the other two."""
        code_rank = _ranks(self.code_names)
        fac_rank = _ranks(self.facility_names)
        fac = np.where(self.facility >= 0, fac_rank[np.maximum(self.facility, 0)] if len(fac_rank) else 0, -1)
        packed = (code_rank[self.code].astype(np.int64) << 33 if len(self.code) else self.code.astype(np.int64))
        packed = packed | ((fac.astype(np.int64) + 1) << 1) | self.suspected.astype(np.int64)
        order = np.lexsort((packed, self.time_us, self.subject))
        s, t, p = self.subject[order], self.time_us[order], packed[order]
        same = (s[1:] == s[:-1]) & (t[1:] == t[:-1]) & (p[1:] == p[:-1])
        if same.any():
            group = np.cumsum(np.r_[True, ~same])
            pos = np.flatnonzero(np.r_[same, False] | np.r_[False, same])
            rows = order[pos]
            value = np.where(np.isnan(self.value[rows]), -np.inf, self.value[rows])
            order[pos] = rows[np.lexsort((self.dx_start_us[rows], value, group[pos]))]
        return self.take(order)


def _ranks(names: list) -> np.ndarray:
    """Rank of each name in sorted order (int64), so ids compare like the strings."""
    return np.argsort(np.argsort(np.asarray(names, dtype=object), kind="stable")).astype(np.int64)


def _days_to_us(day: np.ndarray) -> np.ndarray:
    return np.where(day == NO_DAY, NO_TIME, day.astype(np.int64) * US_PER_DAY)


def from_uke(raw: dict, salt: bytes) -> EventTable:
    """Raw parser output (see csrc/uke_parser.hpp) -> de-duplicated, sorted EventTable."""
    key_sid = pseudo.subject_ids(salt, raw["keys"], raw["key_utf8"])
    subject = key_sid[raw["key"]] if len(raw["key"]) else np.zeros(0, np.int64)
    facility_names = [pseudo.facility_label(salt, f) for f in raw["facilities"]]
    table = EventTable(subject, _days_to_us(raw["day"]), raw["code"].astype(np.int32),
                       list(raw["codes"]), raw["value"].astype(np.float32),
                       raw["facility"].astype(np.int32), facility_names,
                       raw["suspected"].astype(bool), _days_to_us(raw["dx_start"]))
    return first_observations(table).sorted()


def first_observations(t: EventTable) -> EventTable:
    """Keep the first diagnosis per (subject, code, suspected), one sex/birth/death per subject."""
    names = np.asarray(t.code_names, dtype=object)
    is_dx = np.array([n.startswith("JPDX//") for n in names], dtype=bool)
    once = np.isin(names, _ONCE_PER_SUBJECT) if len(names) else np.zeros(0, bool)
    if not len(t):
        return t
    dx, single = is_dx[t.code], once[t.code]
    cand = np.flatnonzero(dx | single)
    susp = np.where(dx[cand], t.suspected[cand], False)
    # Within a group the earliest time wins; ties break on the remaining columns.
    order = np.lexsort((t.facility[cand], t.dx_start_us[cand], t.time_us[cand], susp,
                        t.code[cand], t.subject[cand]))
    c = cand[order]
    s = susp[order]
    new_group = np.ones(len(c), dtype=bool)
    new_group[1:] = (t.subject[c][1:] != t.subject[c][:-1]) | (t.code[c][1:] != t.code[c][:-1]) | (s[1:] != s[:-1])
    keep = np.ones(len(t), dtype=bool)
    keep[cand] = False
    keep[c[new_group]] = True
    return t.take(np.flatnonzero(keep))
