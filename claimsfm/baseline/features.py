"""Sparse count / recency features from the token store for the LightGBM baseline (never imports torch).

One row per (subject, prediction time); only events with `day <= t_day` (and inside the task's
observation window when it has one) are read. Columns, per vocab token v (the same vocabulary the
foundation model sees, so suspected diagnoses stay distinct from confirmed ones):

    [0V, 1V)  count of v over the observation window
    [1V, 2V)  count of v in the last 3 months up to t
    [2V, 3V)  count of v in the last 12 months up to t
    [3V, 4V)  recency 1 / (1 + months since the last v); 0 = never, so "absent" sorts as "long ago"
    then      age (years), sex M, sex F, events, visits, months since the first event
"""
from __future__ import annotations

import numpy as np

from claimsfm.data.format import month_end_day, month_of_day
from claimsfm.tasks.cohort import age_years, count_le

DENSE = ("age_years", "sex_m", "sex_f", "n_events", "n_visits", "history_months")
_CHUNK_EVENTS = 5_000_000  # events gathered per chunk of rows: bounds peak memory


def feature_names(store) -> list[str]:
    toks = list(store.id_to_token)
    return ([f"count:{t}" for t in toks] + [f"count3m:{t}" for t in toks] + [f"count12m:{t}" for t in toks]
            + [f"recency:{t}" for t in toks] + list(DENSE))


def event_ranges(store, subject_idx, t_day, observation_months: int = 0):
    """[lo, hi) event rows of each sample: the subject's events in the observation window up to t."""
    offsets = np.asarray(store.offsets, dtype=np.int64)
    day = np.asarray(store.day)
    first, last = offsets[subject_idx], offsets[subject_idx + 1]
    hi = first + count_le(day, first, last, t_day)
    lo = first
    if observation_months > 0:
        start = month_end_day(month_of_day(t_day) - observation_months)
        lo = first + count_le(day, first, last, start)
    return lo, hi


def _gather(lo, hi):
    """Flat event rows of samples [lo, hi) and the sample each belongs to."""
    lens = hi - lo
    row = np.repeat(np.arange(len(lo)), lens)
    starts = np.repeat(lo - np.r_[0, np.cumsum(lens)[:-1]], lens)
    return row, np.arange(int(lens.sum()), dtype=np.int64) + starts


def _chunk_features(store, subject_idx, t_day, lo, hi):
    import scipy.sparse as sp

    V, n = int(store.vocab_size), len(subject_idx)
    row, ev = _gather(lo, hi)
    tok = np.asarray(store.token)[ev].astype(np.int64)
    ago = month_of_day(t_day)[row] - month_of_day(np.asarray(store.day)[ev])  # months before t, >= 0
    blocks = [(row, tok, np.ones(len(ev)))]
    for k, months in ((1, 3), (2, 12)):
        m = ago < months
        blocks.append((row[m], tok[m] + k * V, np.ones(int(m.sum()))))
    key = row * V + tok
    uniq, first_rev = np.unique(key[::-1], return_index=True)  # reversed: first hit = latest event
    last_ago = ago[::-1][first_rev]
    blocks.append((uniq // V, uniq % V + 3 * V, 1.0 / (1.0 + last_ago)))
    visits = np.asarray(store.visit)[ev]
    n_events = np.bincount(row, minlength=n)
    n_visits = np.zeros(n)
    if len(ev):
        np.maximum.at(n_visits, row, visits + 1)  # visit indices run 0.. within a subject
    first_day = np.where(n_events > 0, np.asarray(store.day)[np.minimum(lo, len(store.day) - 1)], t_day)
    sex = np.asarray(store.sex)[subject_idx]
    birth = np.asarray(store.birth_day)[subject_idx]
    dense = np.stack([np.where(birth != -1, age_years(birth, t_day), np.nan), sex == 1, sex == 2,
                      n_events, n_visits, month_of_day(t_day) - month_of_day(first_day)], axis=1).astype(float)
    r, c = np.nonzero(np.nan_to_num(dense, nan=1.0))
    blocks.append((r, c + 4 * V, dense[r, c]))
    rows = np.concatenate([b[0] for b in blocks])
    cols = np.concatenate([b[1] for b in blocks])
    vals = np.concatenate([b[2] for b in blocks])
    return sp.csr_matrix((vals, (rows, cols)), shape=(n, 4 * V + len(DENSE)), dtype=np.float32)


def build_features(store, subject_idx, t_day, observation_months: int = 0):
    """CSR (n, 4V + 6) float32 features of the samples (subject row, t_day)."""
    import scipy.sparse as sp

    subject_idx = np.asarray(subject_idx, dtype=np.int64)
    t_day = np.asarray(t_day, dtype=np.int64)
    lo, hi = event_ranges(store, subject_idx, t_day, observation_months)
    cum = np.cumsum(hi - lo)
    bounds = [0]
    while bounds[-1] < len(subject_idx):
        base = cum[bounds[-1] - 1] if bounds[-1] else 0
        nxt = int(np.searchsorted(cum, base + _CHUNK_EVENTS, side="right"))
        bounds.append(max(nxt, bounds[-1] + 1))
    parts = [_chunk_features(store, subject_idx[a:b], t_day[a:b], lo[a:b], hi[a:b])
             for a, b in zip(bounds[:-1], bounds[1:])]
    if not parts:
        return sp.csr_matrix((0, 4 * int(store.vocab_size) + len(DENSE)), dtype=np.float32)
    return sp.vstack(parts, format="csr")
