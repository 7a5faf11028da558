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


def subject_starts(subject: np.ndarray) -> np.ndarray:
    """The first row of each run of one subject_id in `subject` (sorted by it): (k,) int64, empty for no rows."""
    if not len(subject):
        return np.zeros(0, np.int64)
    return np.flatnonzero(np.r_[True, subject[1:] != subject[:-1]])


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

    def _packed(self) -> np.ndarray:
        """(N,) int64 code rank, facility rank and suspected, so that one integer compares like the three."""
        code_rank = code_ranks(self.code_names)
        fac_rank = code_ranks(self.facility_names)
        fac = np.where(self.facility >= 0, fac_rank[np.maximum(self.facility, 0)] if len(fac_rank) else 0, -1)
        packed = (code_rank[self.code].astype(np.int64) << 33 if len(self.code) else self.code.astype(np.int64))
        return packed | ((fac.astype(np.int64) + 1) << 1) | self.suspected.astype(np.int64)

    def sorted_native(self) -> "EventTable":
        """`sorted()` in C++ (csrc/event_sort.cpp, GIL released): the same rows in the same order."""
        from claimsfm.native import native

        order = native().sort_events(self.subject, self.time_us, self._packed(), self.value, self.dx_start_us)
        return self.take(order)

    def sorted(self) -> "EventTable":
        """Order by (subject, time with static rows first, code, facility, suspected, value,
        dx_start) — a total order, so the output does not depend on which parser or how many
        threads produced it. Sorts on three keys, then only the tied rows on the other two."""
        packed = self._packed()
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


_NAME_CACHE: dict[int, tuple] = {}  # id(name list) -> (the list, its tables): buckets share one list


def _name_tables(names: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rank, is_dx, once) per name: rank in sorted order (int64), so ids compare like the strings;
    whether a code is a diagnosis or a once-per-subject code. Cached per list object, since the
    out-of-core ingest asks for the same code table once per bucket."""
    hit = _NAME_CACHE.get(id(names))
    if hit is not None and hit[0] is names and len(hit[0]) == len(hit[1][0]):
        return hit[1]
    arr = np.asarray(names, dtype=object)
    rank = np.argsort(np.argsort(arr, kind="stable")).astype(np.int64)
    is_dx = np.array([str(n).startswith("JPDX//") for n in names], dtype=bool)
    once = np.isin(arr, _ONCE_PER_SUBJECT) if len(names) else np.zeros(0, bool)
    if len(_NAME_CACHE) > 8:
        _NAME_CACHE.clear()
    _NAME_CACHE[id(names)] = (names, (rank, is_dx, once))
    return rank, is_dx, once


def code_ranks(names: list) -> np.ndarray:
    """(len(names),) int64 rank of each name in sorted order."""
    return _name_tables(names)[0]



def _days_to_us(day: np.ndarray) -> np.ndarray:
    return np.where(day == NO_DAY, NO_TIME, day.astype(np.int64) * US_PER_DAY)


def from_uke(raw: dict, salt: bytes) -> EventTable:
    """Raw parser output (see csrc/uke_parser.hpp) -> de-duplicated, sorted EventTable."""
    key_sid = pseudo.subject_ids(salt, raw["keys"], raw["key_utf8"])
    facility_names = [pseudo.facility_label(salt, f) for f in raw["facilities"]]
    return raw_table(key_sid, raw["key"], raw["day"], raw["code"], list(raw["codes"]), raw["value"],
                     raw["facility"], facility_names, raw["suspected"], raw["dx_start"])


def raw_table(key_sid, key, day, code, code_names, value, facility, facility_names, suspected,
              dx_start, native_sort: bool = False) -> EventTable:
    """Raw event columns (key ids, days) of whole subjects -> de-duplicated, sorted EventTable.
    The whole corpus (from_uke) or one subject_id bucket of it (spill.py) gives the same rows."""
    subject = key_sid[key] if len(key) else np.zeros(0, np.int64)
    table = EventTable(subject, _days_to_us(day), code.astype(np.int32), code_names, value.astype(np.float32),
                       facility.astype(np.int32), facility_names, suspected.astype(bool), _days_to_us(dx_start))
    table = first_observations(table)
    return table.sorted_native() if native_sort else table.sorted()


def first_observations(t: EventTable) -> EventTable:
    """Keep the first diagnosis per (subject, code, suspected), one sex/birth/death per subject."""
    _, is_dx, once = _name_tables(t.code_names)
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
