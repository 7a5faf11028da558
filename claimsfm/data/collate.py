"""Batches for the model: varlen (flat tokens + cu_seqlens, FlashAttention style) or padded (B, L).

Gathering is numpy; MLM masking is C++ (csrc/mask.cpp) keyed by (seed, epoch, step), so a batch is
a pure function of those numbers and the chosen sequences, and the same in both layouts.
"""
from __future__ import annotations

import numpy as np

from claimsfm.data.sequences import Sequences, native, pack_lengths
from claimsfm.errors import ClaimsfmError

MASK_PROB = 0.15
LAYOUTS = ("varlen", "padded")
# The per-token batch keys: Sequences fields of the same names, plus the MLM labels.
TOKEN_KEYS = ("input_ids", "age_months", "visit", "segment", "days_before", "gap_days", "labels")


def _check_mlm(mlm) -> tuple[int, int, int]:
    try:
        seed, epoch, step = (int(x) for x in mlm)
    except (TypeError, ValueError):
        raise ClaimsfmError(f"mlm must be None or (seed, epoch, step), got {mlm!r}") from None
    if min(seed, epoch, step) < 0:
        raise ClaimsfmError(f"mlm (seed, epoch, step) must be non-negative, got {mlm!r}")
    return seed, epoch, step


def gather(seqs: Sequences, idx) -> dict[str, np.ndarray]:
    """The flat numpy arrays of sequences `idx` (in that order): (T,) columns plus cu_seqlens (B+1,)."""
    idx = np.asarray(idx, dtype=np.int64).reshape(-1)
    if len(idx) and (idx.min() < 0 or idx.max() >= len(seqs)):
        raise ClaimsfmError(f"sequence index out of range [0, {len(seqs)})")
    lens = seqs.lengths[idx]
    cu = np.zeros(len(idx) + 1, dtype=np.int64)
    np.cumsum(lens, out=cu[1:])
    shift = np.repeat(cu[:-1], lens)
    src = np.repeat(seqs.offsets[idx], lens) + np.arange(cu[-1]) - shift
    return {"cu_seqlens": cu, **{key: getattr(seqs, key)[src] for key in TOKEN_KEYS if key != "labels"}}


def mask_tokens(input_ids, cu_seqlens, vocab_size: int, mlm, mask_prob: float = MASK_PROB):
    """MLM masking of flat ids: (masked ids (T,) int32, labels (T,) int64, -100 = no target)."""
    seed, epoch, step = _check_mlm(mlm)
    nat = native()
    key = nat.mlm_batch_key(seed, epoch, step)
    return nat.mlm_mask(np.ascontiguousarray(input_ids, np.int32), np.ascontiguousarray(cu_seqlens, np.int64),
                        key, int(vocab_size), float(mask_prob))


def _padded(flat: dict, lens: np.ndarray) -> dict[str, np.ndarray]:
    B, L = len(lens), int(lens.max()) if len(lens) else 0
    rows = np.repeat(np.arange(B), lens)
    cols = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)  # position inside the sequence
    out = {}
    for key in TOKEN_KEYS:
        if key in flat:
            grid = np.full((B, L), -100 if key == "labels" else 0, dtype=np.int64)
            grid[rows, cols] = flat[key]
            out[key] = grid
    mask = np.zeros((B, L), dtype=bool)
    mask[rows, cols] = True
    out["attention_mask"] = mask
    return out


def collate(seqs: Sequences, idx, mlm=None, layout: str = "varlen", row_tokens: int | None = None,
            mask_prob: float = MASK_PROB) -> dict:
    """A batch of sequences `idx` (in that order) as a dict of torch tensors.

    varlen: input_ids, age_months, visit, segment, days_before, gap_days (T,) long; cu_seqlens (B+1,) int32;
    max_seqlen int; seq_row (B,) long, the row of each sequence when the batch is packed
    first-fit-decreasing into rows of `row_tokens` (default seqs.max_len) for models that want
    fixed-length rows; labels (T,) long with -100 off target (only when mlm = (seed, epoch, step)).
    padded: the same keys shaped (B, L), L = longest sequence, plus attention_mask (B, L) bool;
    no cu_seqlens; seq_row = arange(B).
    """
    from claimsfm.optional import torch as _torch

    torch = _torch()
    if layout not in LAYOUTS:
        raise ClaimsfmError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    flat = gather(seqs, idx)
    cu = flat.pop("cu_seqlens")
    lens = np.diff(cu)
    if mlm is not None:
        flat["input_ids"], flat["labels"] = mask_tokens(flat["input_ids"], cu, seqs.vocab_size, mlm, mask_prob)
    max_seqlen = int(lens.max()) if len(lens) else 0
    if layout == "padded":
        out = {k: torch.from_numpy(v) for k, v in _padded(flat, lens).items()}
        out["seq_row"] = torch.arange(len(lens))
        out["max_seqlen"] = max_seqlen
        return out
    out = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.int64)) for k, v in flat.items()}
    out["cu_seqlens"] = torch.from_numpy(cu.astype(np.int32))
    out["max_seqlen"] = max_seqlen
    out["seq_row"] = torch.from_numpy(pack_lengths(lens, row_tokens or max(seqs.max_len, max_seqlen, 1)))
    return out
