"""Model input sequences from the token store, and sequence packing (design.md §3.3).

The work is done by the C++ core (`claimsfm._native`, csrc/sequence.cpp and csrc/pack.cpp); this
module validates arguments, turns C++ errors into ClaimsfmError and wraps results. The pure-Python
twins in claimsfm.data.reference define the same outputs and serve as test oracles.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from claimsfm.errors import ClaimsfmError


def native():
    """The compiled core, with a clear error when the package was installed without it."""
    try:
        from claimsfm import _native
    except ImportError as exc:
        raise ClaimsfmError(f"claimsfm's C++ core is not built ({exc}); reinstall with "
                            "`pip install --no-build-isolation -e .`") from None
    return _native


@dataclass
class Sequences:
    """k sequences in CSR form: sequence i is [offsets[i], offsets[i+1]) of the token arrays.

    offsets (k+1,) int64; input_ids, age_months, visit, months (T,) int32; segment (T,) int8;
    subjects (k,) int64 the store rows they came from; max_len and vocab_size as built.
    """
    offsets: np.ndarray
    input_ids: np.ndarray
    age_months: np.ndarray
    visit: np.ndarray
    months: np.ndarray
    segment: np.ndarray
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


def check_request(store, subjects, cutoff_day, max_len):
    """Validated (subjects (k,) int64, cutoff (k,) int32 or None) for a sequence request."""
    subjects = np.ascontiguousarray(subjects, dtype=np.int64).reshape(-1)
    if len(subjects) and (subjects.min() < 0 or subjects.max() >= store.n_subjects):
        raise ClaimsfmError(f"subject row index out of range [0, {store.n_subjects})")
    if int(max_len) < 2:
        raise ClaimsfmError(f"--max-len must be >= 2, got {max_len}")
    if cutoff_day is not None:
        cutoff_day = np.ascontiguousarray(cutoff_day, dtype=np.int32).reshape(-1)
        if cutoff_day.shape != subjects.shape:
            raise ClaimsfmError(f"cutoff_day has {len(cutoff_day)} entries for {len(subjects)} subjects")
    return subjects, cutoff_day


def _store_arrays(store):
    return (store.offsets, store.token, store.day, store.visit, store.birth_day)


def sequence_lengths(store, subjects, cutoff_day=None, max_len: int = 512) -> np.ndarray:
    """Length (with [CLS]) that build_sequences would give each subject, without building them.

    subjects (k,) int64 store rows; cutoff_day (k,) int32 or None -> (k,) int64.
    """
    subjects, cutoff_day = check_request(store, subjects, cutoff_day, max_len)
    return native().sequence_lengths(*_store_arrays(store), subjects, cutoff_day, int(max_len))


def build_sequences(store, subjects, cutoff_day=None, max_len: int = 512) -> Sequences:
    """Sequences of the given store rows: [CLS], then events in time order, [SEP] between visits.

    subjects (k,) int64 row indices into the store; cutoff_day (k,) int32 (only events with
    day <= cutoff_day[i] are used) or None for whole histories. Truncation keeps [CLS] and the most
    recent max_len-1 tokens (never opening the kept part with a [SEP]). Per token: age_months (-1 for
    [CLS] and when the birth day is unknown), visit (1, 2, ... within the sequence; 0 for [CLS]; a [SEP] carries the
    visit it closes), months since the subject's first event, segment = visit % 2.
    """
    subjects, cutoff_day = check_request(store, subjects, cutoff_day, max_len)
    parts = native().build_sequences(*_store_arrays(store), subjects, cutoff_day, int(max_len))
    return Sequences(*parts, subjects=subjects, max_len=int(max_len), vocab_size=store.vocab_size)


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
