"""Cohorts and labels: one row per (subject, prediction time) a task keeps, built from the token store.

Conventions (docs/internals.md): a prediction time is a month end, its day `t_day`; inputs are events
with `day <= t_day`; labels come from events with `t_day < day <= month_end(t_month + window)`.
Targets are matched over raw codes (`store.code`) and their parents, never over vocab tokens, so a
min-count or code-level setting of the store cannot change a label.

Every query is "how many events of a subject fall in a day range", answered by a vectorised binary
search inside each subject's CSR segment; nothing of size n_events is allocated per prediction time.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from claimsfm.data.format import FLAG_SUSPECTED, month_end_day, month_of_day
from claimsfm.errors import ClaimsfmError
from claimsfm.splits import SPLITS
from claimsfm.tasks.spec import TaskSpec, prediction_months


def age_years(birth_day, t_day) -> np.ndarray:
    """Completed years of age on `t_day` (calendar, not days / 365)."""
    b = np.asarray(birth_day, dtype=np.int64).astype("datetime64[D]")
    t = np.asarray(t_day, dtype=np.int64).astype("datetime64[D]")
    by, ty = b.astype("datetime64[Y]"), t.astype("datetime64[Y]")
    years = ty.astype(np.int64) - by.astype(np.int64)
    birthday_passed = (t - ty.astype("datetime64[D]")) >= (b - by.astype("datetime64[D]"))
    return years - (~birthday_passed)


def count_le(day: np.ndarray, lo: np.ndarray, hi: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Per segment [lo, hi) of the day-sorted array `day`: the number of entries <= x.

    (n,) int64 bounds, (n,) threshold -> (n,) int64.  A binary search run on all segments at once.
    """
    lo, hi = lo.astype(np.int64).copy(), hi.astype(np.int64).copy()
    start = lo.copy()
    x = np.asarray(x, dtype=np.int64)
    if len(day) == 0:
        return np.zeros(len(lo), dtype=np.int64)
    while True:
        open_ = lo < hi
        if not open_.any():
            return lo - start
        mid = np.minimum((lo + hi) // 2, len(day) - 1)
        right = day[mid] <= x
        lo = np.where(open_ & right, mid + 1, lo)
        hi = np.where(open_ & ~right, mid, hi)


@dataclass
class EventSubset:
    """The day-sorted events of every subject that pass a code mask, as CSR (offsets, day)."""

    offsets: np.ndarray  # (n+1,) int64
    day: np.ndarray      # (M,) int32

    @classmethod
    def of(cls, store, event_mask: np.ndarray) -> "EventSubset":
        idx = np.flatnonzero(event_mask)
        return cls(np.searchsorted(idx, np.asarray(store.offsets)).astype(np.int64), np.asarray(store.day)[idx])

    def count(self, subjects: np.ndarray, after_day, upto_day) -> np.ndarray:
        """Events with after_day < day <= upto_day, per subject.  (n,) -> (n,) int64"""
        lo, hi = self.offsets[subjects], self.offsets[subjects + 1]
        return count_le(self.day, lo, hi, upto_day) - count_le(self.day, lo, hi, after_day)

    def first_day(self, subjects: np.ndarray) -> np.ndarray:
        """Day of the first event per subject; int64 max when there is none."""
        lo, hi = self.offsets[subjects], self.offsets[subjects + 1]
        out = np.full(len(subjects), np.iinfo(np.int64).max, dtype=np.int64)
        has = hi > lo
        out[has] = self.day[lo[has]]
        return out


@dataclass
class Cohort:
    """Rows of one task, in (t_month, subject) order."""

    task: str
    kind: str
    subject_idx: np.ndarray      # (n,) int64 row in the store
    t_month: np.ndarray          # (n,) int32 month index of the prediction time
    t_day: np.ndarray            # (n,) int32 day of the prediction time (month end)
    label: np.ndarray            # (n,) bool
    split: np.ndarray            # (n,) uint8 0 train / 1 tuning / 2 held_out
    subject_id: np.ndarray       # (n,) int64
    prediction_time: np.ndarray  # (n,) datetime64[us], the month end at 23:59:59

    def __len__(self) -> int:
        return len(self.subject_idx)

    def take(self, rows: np.ndarray) -> "Cohort":
        fields = ("subject_idx", "t_month", "t_day", "label", "split", "subject_id", "prediction_time")
        return Cohort(self.task, self.kind, **{f: getattr(self, f)[rows] for f in fields})


def target_events(store, spec: TaskSpec) -> EventSubset:
    """The events that count for a task's target: confirmed only for incidence, any for medication."""
    code_hit = np.asarray(store.match_codes(list(spec.target)), dtype=bool)
    hit = code_hit[np.asarray(store.code)]
    if spec.kind == "incidence":
        hit &= (np.asarray(store.flags) & FLAG_SUSPECTED) == 0
    return EventSubset.of(store, hit)


def _eligible(store, spec: TaskSpec, subjects, t_month, t_day, first_day, everything, target):
    """The cohort rules of design.md §3.5 at one prediction time.  (n,) -> (n,) bool"""
    keep = first_day <= t_day  # some history to predict from
    keep &= month_of_day(np.minimum(first_day, t_day)) <= t_month - spec.min_history_months
    if spec.active_months > 0:
        keep &= everything.count(subjects, month_end_day(t_month - spec.active_months), t_day) > 0
    death = np.asarray(store.death_day)[subjects]
    keep &= ~((death >= 0) & (death <= t_day))
    if spec.min_age > 0:
        birth = np.asarray(store.birth_day)[subjects]
        keep &= (birth != -1) & (age_years(birth, np.full(len(subjects), t_day)) >= spec.min_age)
    if spec.washout == "ever":
        keep &= target.first_day(subjects) > t_day
    elif spec.washout == "new_user":
        keep &= target.count(subjects, month_end_day(t_month - spec.washout_months), t_day) == 0
    return keep


def build_cohort(store, spec: TaskSpec, everything: EventSubset | None = None) -> Cohort:
    """All (subject, prediction time) rows a task keeps, with their labels and splits.

    `everything` (EventSubset of all events) may be passed in to share it across tasks.
    """
    n = int(store.n_subjects)
    if everything is None:
        everything = EventSubset(np.asarray(store.offsets, dtype=np.int64), np.asarray(store.day))
    target = target_events(store, spec)
    subjects_all = np.arange(n, dtype=np.int64)
    first_day = everything.first_day(subjects_all)
    parts = []
    for t_month in prediction_months(spec, int(store.first_month), int(store.last_month)):
        t_day = int(month_end_day(t_month))
        keep = _eligible(store, spec, subjects_all, t_month, t_day, first_day, everything, target)
        subjects = subjects_all[keep]
        end_day = int(month_end_day(t_month + spec.prediction_months))
        label = target.count(subjects, t_day, end_day) > 0
        parts.append((subjects, np.full(len(subjects), t_month, np.int32), label))
    if parts:
        subject_idx = np.concatenate([p[0] for p in parts])
        t_month = np.concatenate([p[1] for p in parts])
        label = np.concatenate([p[2] for p in parts])
    else:
        subject_idx, t_month, label = np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, bool)
    t_day = month_end_day(t_month).astype(np.int32)
    ptime = (t_day.astype("datetime64[D]") + np.timedelta64(86399, "s")).astype("datetime64[us]")
    return Cohort(
        task=spec.name, kind=spec.kind, subject_idx=subject_idx, t_month=t_month, t_day=t_day,
        label=label, split=np.asarray(store.split)[subject_idx],
        subject_id=np.asarray(store.subject_ids)[subject_idx], prediction_time=ptime,
    )


def cohort_summary(cohort: Cohort) -> dict:
    """Rows, subjects, positives and prevalence per split (the `cohort` entry of metrics.json)."""
    out = {}
    for code, name in enumerate(SPLITS):
        rows = cohort.split == code
        n, pos = int(rows.sum()), int(cohort.label[rows].sum())
        out[name] = {"n": n, "n_subjects": int(len(np.unique(cohort.subject_idx[rows]))),
                     "n_pos": pos, "prevalence": pos / n if n else float("nan")}
    out["prediction_months"] = sorted(int(m) for m in np.unique(cohort.t_month))
    return out


def check_cohort(cohort: Cohort) -> None:
    """An empty cohort is a user error: say which task and what is missing."""
    if len(cohort) == 0:
        raise ClaimsfmError(f"task '{cohort.task}': empty cohort (no subject meets the cohort rules "
                            "at any prediction time; check the data's date range and the task file)")


def unusable_reason(cohort: Cohort) -> str | None:
    """Why a cohort cannot be trained and scored (a split without positives or negatives), or None."""
    for code, name in enumerate(SPLITS):
        rows = cohort.split == code
        n, pos = int(rows.sum()), int(cohort.label[rows].sum())
        if pos == 0 or pos == n:
            return f"the {name} split has {n} rows and {pos} positives; every split needs both classes"
    return None
