"""Model input sequences from the token store, and sequence packing (design.md §3.3).

The work is done by the C++ core (`claimsfm._native`, csrc/sequence.cpp and csrc/pack.cpp); this
module validates arguments, turns C++ errors into ClaimsfmError and wraps results. The pure-Python
twins in claimsfm.data.reference define the same outputs and serve as test oracles.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from claimsfm.errors import ClaimsfmError
from claimsfm.native import native


@dataclass
class Sequences:
    """k sequences in CSR form: sequence i is [offsets[i], offsets[i+1]) of the token arrays.

    offsets (k+1,) int64; input_ids, age_months, visit, months (T,) int32; segment (T,) int8;
    days_before, gap_days (T,) int32 (the time inputs, see build_sequences); subjects (k,) int64 the
    store rows they came from; max_len and vocab_size as built.
    """
    offsets: np.ndarray
    input_ids: np.ndarray
    age_months: np.ndarray
    visit: np.ndarray
    months: np.ndarray
    segment: np.ndarray
    days_before: np.ndarray
    gap_days: np.ndarray
    subjects: np.ndarray
    max_len: int
    vocab_size: int

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        """(k,) int64 tokens per sequence, [CLS] included."""
        return np.diff(self.offsets)

    def tokens(self, i: int) -> np.ndarray:
        """(L_i,) int32 input ids of sequence i."""
        return self.input_ids[self.offsets[i]:self.offsets[i + 1]]


def _days(name: str, days, subjects: np.ndarray):
    if days is None:
        return None
    days = np.ascontiguousarray(days, dtype=np.int32).reshape(-1)
    if days.shape != subjects.shape:
        raise ClaimsfmError(f"{name} has {len(days)} entries for {len(subjects)} subjects")
    return days


def check_request(store, subjects, cutoff_day, max_len):
    """Validated (subjects (k,) int64, cutoff (k,) int32 or None) for a sequence request."""
    subjects = np.ascontiguousarray(subjects, dtype=np.int64).reshape(-1)
    if len(subjects) and (subjects.min() < 0 or subjects.max() >= store.n_subjects):
        raise ClaimsfmError(f"subject row index out of range [0, {store.n_subjects})")
    if int(max_len) < 2:
        raise ClaimsfmError(f"--max-len must be >= 2, got {max_len}")
    return subjects, _days("cutoff_day", cutoff_day, subjects)


def _store_arrays(store):
    return (store.offsets, store.token, store.day, store.visit, store.birth_day)


def sequence_lengths(store, subjects, cutoff_day=None, max_len: int = 512) -> np.ndarray:
    """Length (with [CLS]) that build_sequences would give each subject, without building them.

    subjects (k,) int64 store rows; cutoff_day (k,) int32 or None -> (k,) int64.
    """
    subjects, cutoff_day = check_request(store, subjects, cutoff_day, max_len)
    return native().sequence_lengths(*_store_arrays(store), subjects, cutoff_day, int(max_len))


def build_sequences(store, subjects, cutoff_day=None, max_len: int = 512, reference_day=None) -> Sequences:
    """Sequences of the given store rows: [CLS], then events in time order, [SEP] between visits.

    The one builder of model inputs for pretraining, probe and fine-tuning (design.md §3.3).
    subjects (k,) int64 row indices into the store; cutoff_day (k,) int32 (only events with
    day <= cutoff_day[i] are used) or None for whole histories. Truncation keeps [CLS] and the most
    recent max_len-1 tokens (never opening the kept part with a [SEP]). Per token: age_months (-1 for
    [CLS] and when the birth day is unknown), visit (1, 2, ... within the sequence; 0 for [CLS]; a [SEP] carries the
    visit it closes), months since the subject's first event, segment = visit % 2, and the time inputs:
    days_before = reference day - the token's day ([CLS] 0; a [SEP] takes the last day of the visit it
    closes); gap_days = days from the previous event to the first event of the token's visit (-1 when
    nothing came before), and on [CLS] the days from the last kept event to the reference (-1 without events).
    reference_day (k,) int32: the reference of each sequence; default the cutoff day (the prediction
    time), or without a cutoff the last day of the month of the subject's last event.
    """
    subjects, cutoff_day = check_request(store, subjects, cutoff_day, max_len)
    reference_day = _days("reference_day", reference_day, subjects)
    parts = native().build_sequences(*_store_arrays(store), subjects, cutoff_day, reference_day, int(max_len))
    return Sequences(*parts, subjects=subjects, max_len=int(max_len), vocab_size=store.vocab_size)


# Pretraining references: the end of the last event's month, or with probability 1/2 that many months
# later (1..PRETRAIN_MAX_GAP_MONTHS, uniform), so that the [CLS] gap and the days before the reference
# cover what prediction times show (a prediction time often falls months after the last claim).
PRETRAIN_MAX_GAP_MONTHS = 24


def _subject_keys(subjects: np.ndarray, *parts: int) -> np.ndarray:
    """One uint64 key per store row from (parts..., row): the seeded draws of pretraining sequences."""
    from claimsfm.splits import splitmix64

    return splitmix64(splitmix64(np.array(parts, dtype=np.int64)).sum() + subjects.astype(np.uint64))


def pretrain_reference(store, subjects, seed: int, epoch: int) -> np.ndarray:
    """Reference day of each pretraining sequence, keyed by (seed, epoch, store row).  (k,) -> (k,) int32

    Subjects without events get the end of the store's last month (their [CLS] has no time anyway).
    """
    from claimsfm.data.format import month_end_day, month_of_day

    subjects = np.asarray(subjects, dtype=np.int64)
    ends = np.asarray(store.offsets)[subjects + 1]
    has = ends > np.asarray(store.offsets)[subjects]
    month = np.where(has, month_of_day(np.asarray(store.day)[np.maximum(ends - 1, 0)]), store.last_month)
    key = _subject_keys(subjects, seed, epoch)
    later = (key >> np.uint64(63)) == 1
    gap = np.where(later, 1 + (key % np.uint64(PRETRAIN_MAX_GAP_MONTHS)).astype(np.int64), 0)
    end = month_end_day(month + gap)
    return end.astype(np.int64).astype(np.int32)


def pretrain_cutoff(store, subjects, seed: int, epoch: int) -> np.ndarray:
    """Prediction-time-like cutoffs for the future-codes objective.  (k,) store rows -> (k,) int32 days

    The end of a month drawn uniformly from the subject's first event's month to the store's last month,
    keyed by (seed, epoch, store row): the sequence keeps the events up to it, and it is the reference.
    Cutoffs cover mid-history points (the future is known) and points after the last claim, as
    prediction times do. Subjects without events get the end of the store's last month.
    """
    from claimsfm.data.format import month_end_day, month_of_day

    subjects = np.asarray(subjects, dtype=np.int64)
    offsets = np.asarray(store.offsets)
    starts, has = offsets[subjects], offsets[subjects + 1] > offsets[subjects]
    first = np.where(has, month_of_day(np.asarray(store.day)[np.minimum(starts, max(len(store.day) - 1, 0))]),
                     store.last_month)
    span = np.maximum(store.last_month - first + 1, 1).astype(np.uint64)
    key = _subject_keys(subjects, seed, epoch, 0x46555455)
    month = first + (key % span).astype(np.int64)
    return month_end_day(month).astype(np.int64).astype(np.int32)


def future_codes(store, subjects, cutoff_day, months: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The codes each subject has in the `months` months after its cutoff: the future-codes targets.

    subjects (k,) store rows, cutoff_day (k,) month-end days -> (ids (n,) int64, sequence index (n,) int64,
    known (k,) bool). The window is (cutoff, end of the cutoff's month + months], as a task's prediction
    window; `known` is False where it runs past the store's last month (no target: the future is unseen).
    """
    from claimsfm.data.format import month_end_day, month_of_day

    subjects = np.asarray(subjects, dtype=np.int64)
    cutoff = np.asarray(cutoff_day, dtype=np.int64)
    end_month = month_of_day(cutoff) + int(months)
    known = end_month <= store.last_month
    end = month_end_day(end_month)
    offsets, day, token = np.asarray(store.offsets), np.asarray(store.day), np.asarray(store.token)
    ids, seq = [], []
    for i in np.flatnonzero(known):
        a, b = offsets[subjects[i]], offsets[subjects[i] + 1]
        days = day[a:b]  # time order within a subject
        lo, hi = a + np.searchsorted(days, cutoff[i], "right"), a + np.searchsorted(days, end[i], "right")
        ids.append(token[lo:hi])
        seq.append(np.full(hi - lo, i, dtype=np.int64))
    if not ids:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), known
    return np.concatenate(ids).astype(np.int64), np.concatenate(seq), known


def pack_lengths(lengths, max_tokens: int) -> np.ndarray:
    """First-fit-decreasing: the row of each sequence when packing into rows of max_tokens tokens.

    lengths (n,) int64 -> (n,) int64 row indices 0..R-1 (rows numbered in the order they open).
    A sequence is never split; every row holds at most max_tokens tokens.
    """
    lengths = np.ascontiguousarray(lengths, dtype=np.int64).reshape(-1)
    if int(max_tokens) < 1:
        raise ClaimsfmError(f"max_tokens must be >= 1, got {max_tokens}")
    if len(lengths) and (lengths.min() < 0 or lengths.max() > max_tokens):
        raise ClaimsfmError(f"sequence lengths must lie in [0, max_tokens={max_tokens}], "
                            f"found {lengths.min()}..{lengths.max()}")
    return native().pack_ffd(lengths, int(max_tokens))
