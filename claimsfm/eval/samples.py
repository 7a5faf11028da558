"""Prediction samples shared across tasks, seeded caps, and the synthetic-data oracle.

Many tasks ask about the same (subject, prediction time): a pool of the distinct pairs lets the
sequences, [CLS] embeddings and LightGBM features be built once and indexed by every task. The caps
(`--max-train`, `--max-eval`) keep the pairs with the smallest keyed hash of (subject_id, month, seed),
so different tasks tend to keep the *same* pairs and the pool stays small.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from claimsfm.errors import ClaimsfmError
from claimsfm.splits import TRAIN, splitmix64
from claimsfm.tasks.cohort import Cohort


def sample_hash(subject_id, t_month, seed: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        key = splitmix64(np.asarray(subject_id, dtype=np.int64).view(np.uint64)) ^ splitmix64(
            np.asarray(t_month, dtype=np.int64).astype(np.uint64) + np.uint64(seed) * np.uint64(1_000_003))
    return splitmix64(key)


def subsample(cohort: Cohort, max_train: int | None, max_eval: int | None, seed: int = 0) -> Cohort:
    """At most max_train train rows and max_eval rows of each other split (None = all)."""
    h = sample_hash(cohort.subject_id, cohort.t_month, seed)
    keep = np.zeros(len(cohort), dtype=bool)
    for code in np.unique(cohort.split):
        rows = np.flatnonzero(cohort.split == code)
        cap = max_train if code == TRAIN else max_eval
        if cap is not None and len(rows) > cap:
            rows = rows[np.argsort(h[rows], kind="stable")[:cap]]
        keep[rows] = True
    return cohort.take(np.flatnonzero(keep))


def _pair_key(subject_idx, t_day) -> np.ndarray:
    """One int64 per (subject row, day); days within +-2^20 of 1970 (years (-900, 4840))."""
    return (np.asarray(subject_idx, np.int64) << 21) + (np.asarray(t_day, np.int64) + (1 << 20))


@dataclass
class Pool:
    """Distinct (subject row, t_day) pairs of several cohorts."""

    subject_idx: np.ndarray  # (m,) int64
    t_day: np.ndarray        # (m,) int32
    split: np.ndarray        # (m,) uint8

    @classmethod
    def of(cls, cohorts: list[Cohort]) -> "Pool":
        subj = np.concatenate([c.subject_idx for c in cohorts]) if cohorts else np.zeros(0, np.int64)
        day = np.concatenate([c.t_day for c in cohorts]) if cohorts else np.zeros(0, np.int32)
        split = np.concatenate([c.split for c in cohorts]) if cohorts else np.zeros(0, np.uint8)
        keys = np.unique(np.stack([subj, day.astype(np.int64)], axis=1), axis=0, return_index=True)
        first = keys[1]
        return cls(subj[first].astype(np.int64), day[first].astype(np.int32), split[first])

    def rows(self, cohort: Cohort) -> np.ndarray:
        """Pool index of every cohort row."""
        key = _pair_key(self.subject_idx, self.t_day)
        want = _pair_key(cohort.subject_idx, cohort.t_day)
        order = np.argsort(key, kind="stable")
        pos = order[np.searchsorted(key, want, sorter=order)]
        assert np.array_equal(key[pos], want)
        return pos

    def __len__(self) -> int:
        return len(self.subject_idx)


def oracle_path(data_dir, task: str) -> Path:
    return Path(data_dir) / "truth" / f"oracle_{task}.parquet"


def oracle_unit_note(data_dir) -> str | None:
    """Why the synthetic oracle is no upper bound here, or None when its unit is the label's.

    The oracle is per simulated patient; with chart linking (`ingest --link-by chart`) one patient
    becomes a subject per facility, whose label counts only that facility's claims.
    """
    import json

    meta = Path(data_dir) / "metadata" / "dataset.json"
    try:
        link_by = json.loads(meta.read_text(encoding="utf-8")).get("link_by")
    except (OSError, ValueError):
        link_by = None
    if link_by != "chart":   # insurer linking: one patient is one subject (no link mode: not ingested UKE)
        return None
    return ("link_by=chart: the oracle's unit (patient) is not the label's (subject, one per facility), so it is "
            "approximate and left out of the metrics (ingest with --link-by insurer for an upper bound)")


def load_oracle(data_dir, cohort: Cohort):
    """(p_observable, p_latent, oracle_label, matched) for the cohort rows, or None without truth files.

    Joined on (subject_id, prediction_time); `matched` (n,) bool marks rows the oracle covers.
    """
    path = oracle_path(data_dir, cohort.task)
    if not path.is_file():
        return None
    import pyarrow.parquet as pq

    try:
        t = pq.read_table(path, columns=["subject_id", "prediction_time", "p_observable", "p_latent", "label"])
    except Exception as exc:  # pyarrow raises several types for missing columns or a broken file
        raise ClaimsfmError(f"{path}: cannot read oracle ({exc})") from None
    sid = t["subject_id"].to_numpy().astype(np.int64)
    ptime = t["prediction_time"].cast("timestamp[us]").to_numpy().astype("datetime64[us]").astype(np.int64)
    key_o = np.stack([sid, ptime], axis=1)
    key_c = np.stack([cohort.subject_id, cohort.prediction_time.astype(np.int64)], axis=1)
    both = np.concatenate([key_o, key_c])
    _, inverse = np.unique(both, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    lookup = np.full(inverse.max() + 1 if len(inverse) else 0, -1, dtype=np.int64)
    lookup[inverse[: len(key_o)]] = np.arange(len(key_o))  # duplicates (chart linking): any copy is equal
    hit = lookup[inverse[len(key_o):]]
    matched = hit >= 0
    pick = np.where(matched, hit, 0)
    cols = [t[c].to_numpy(zero_copy_only=False) for c in ("p_observable", "p_latent", "label")]
    return (cols[0][pick].astype(np.float64), cols[1][pick].astype(np.float64),
            cols[2][pick].astype(bool), matched)
