"""PretrainLoader: packed MLM batches for pretraining, sharded by DDP rank, resumable (epoch, step).

An epoch's plan is a pure function of (seed, epoch, rank, world_size): the split's subjects are
shuffled, dealt round-robin to the ranks (disjoint), cut into chunks, and each chunk's whole-history
sequence lengths are packed first-fit-decreasing into batches of at most `batch_tokens` tokens.
Every rank gets the same number of steps (the smallest rank's count), so DDP never waits on a rank
that ran out. Batch `step` is built (C++ builder + masking) only when asked for, from the plan alone,
which is what makes resuming at (epoch, step) and worker processes give identical batches.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from claimsfm.data.collate import MASK_PROB, collate
from claimsfm.data.sequences import (
    build_sequences,
    future_codes,
    pack_lengths,
    pretrain_cutoff,
    pretrain_reference,
    sequence_lengths,
)
from claimsfm.data.store import Store, open_store
from claimsfm.errors import ClaimsfmError
from claimsfm.optional import torch as _torch
from claimsfm.splits import SPLITS, TRAIN_NAME


class PretrainLoader:
    """Iterate one epoch of packed MLM batches (dicts of torch tensors, claimsfm.data.collate).

    store: a Store or its path; split: "train" | "tuning" | "held_out"; each batch holds whole
    sequences of at most max_len tokens, batch_tokens tokens in all. rank / world_size shard the
    subjects for DistributedDataParallel; num_workers > 0 builds batches in DataLoader workers.
    future_months > 0 adds the future-codes objective: each sequence stops at a cutoff (`pretrain_cutoff`,
    also its reference) and the batch carries future_ids / future_seq (the codes of the next future_months
    months, flat, with their sequence index) and future_known (B,) bool; 0 = whole histories, MLM only.
    `for batch in loader` runs from the saved position to the end of the epoch, then moves to the
    next epoch; state_dict() = {"epoch", "step"} of the next batch to be yielded.
    """

    def __init__(self, store, split: str = TRAIN_NAME, max_len: int = 512, batch_tokens: int = 16384, seed: int = 0,
                 rank: int = 0, world_size: int = 1, num_workers: int = 0, layout: str = "varlen",
                 chunk_subjects: int = 65536, mask_prob: float = MASK_PROB, pin_memory: bool = False,
                 future_months: int = 0):
        self.store = store if isinstance(store, Store) else open_store(Path(store))
        if split not in SPLITS:
            raise ClaimsfmError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        if batch_tokens < max_len:
            raise ClaimsfmError(f"--batch-tokens ({batch_tokens}) must be >= --max-len ({max_len})")
        if not 0 <= rank < world_size:
            raise ClaimsfmError(f"rank {rank} outside world_size {world_size}")
        if seed < 0 or num_workers < 0 or chunk_subjects < 1:
            raise ClaimsfmError("seed and num_workers must be >= 0, chunk_subjects >= 1")
        self.split, self.max_len, self.batch_tokens, self.seed = split, int(max_len), int(batch_tokens), int(seed)
        self.rank, self.world_size, self.num_workers = int(rank), int(world_size), int(num_workers)
        self.layout, self.chunk, self.mask_prob, self.pin_memory = layout, int(chunk_subjects), mask_prob, pin_memory
        self.future_months = int(future_months)
        rows = np.flatnonzero(np.asarray(self.store.split) == SPLITS.index(split)).astype(np.int64)
        lengths = sequence_lengths(self.store, rows, None, self.max_len)
        keep = lengths > 1  # a subject with no events is a lone [CLS]: nothing to predict
        # A split with no subjects (a tiny dataset's tuning split) simply yields no batches.
        self.rows, self.lengths = rows[keep], lengths[keep]
        self.epoch, self.step = 0, 0
        self._plan_cache: tuple[int, list[np.ndarray]] | None = None

    # -- the plan ------------------------------------------------------------------------------
    def _rank_plan(self, epoch: int, rank: int) -> list[np.ndarray]:
        """Batches (arrays of store rows) of one rank in one epoch, before equalising ranks."""
        perm = np.random.default_rng([self.seed, epoch]).permutation(len(self.rows))
        shard = perm[rank::self.world_size]
        batches: list[np.ndarray] = []
        for c, lo in enumerate(range(0, len(shard), self.chunk)):
            part = np.sort(shard[lo:lo + self.chunk])
            row = pack_lengths(self.lengths[part], self.batch_tokens)
            order = np.argsort(row, kind="stable")
            groups = np.split(self.rows[part[order]], np.cumsum(np.bincount(row))[:-1])
            # FFD fills its first rows with the longest sequences: shuffle so steps look alike.
            shuffle = np.random.default_rng([self.seed, epoch, rank, c]).permutation(len(groups))
            batches += [groups[i] for i in shuffle]
        return batches

    def plan(self, epoch: int) -> list[np.ndarray]:
        """This rank's batches of `epoch`: each (B,) int64 store rows; equal in number on all ranks."""
        if self._plan_cache is None or self._plan_cache[0] != epoch:
            counts = [len(self._rank_plan(epoch, r)) for r in range(self.world_size) if r != self.rank]
            mine = self._rank_plan(epoch, self.rank)
            self._plan_cache = (epoch, mine[:min([len(mine)] + counts)])
        return self._plan_cache[1]

    def __len__(self) -> int:
        return len(self.plan(self.epoch))

    def batch(self, epoch: int, step: int) -> dict:
        """Batch `step` of `epoch` on this rank (a pure function of the settings and these numbers)."""
        subjects = self.plan(epoch)[step]
        if self.future_months:
            cutoff = pretrain_cutoff(self.store, subjects, self.seed, epoch)
            seqs = build_sequences(self.store, subjects, cutoff, self.max_len, cutoff)
        else:
            reference = pretrain_reference(self.store, subjects, self.seed, epoch)
            seqs = build_sequences(self.store, subjects, None, self.max_len, reference)
        # The masking stream of a rank: steps are interleaved so no two ranks share a key.
        mlm = (self.seed, epoch, step * self.world_size + self.rank)
        batch = collate(seqs, np.arange(len(subjects)), mlm=mlm, layout=self.layout, row_tokens=self.max_len,
                        mask_prob=self.mask_prob)
        if self.future_months:
            torch = _torch()
            ids, seq, known = future_codes(self.store, subjects, cutoff, self.future_months)
            batch.update(future_ids=torch.from_numpy(ids), future_seq=torch.from_numpy(seq),
                         future_known=torch.from_numpy(known))
        return batch

    # -- iteration and state -------------------------------------------------------------------
    def __iter__(self):
        epoch, start = self.epoch, self.step
        self.plan(epoch)  # computed once here; worker processes inherit the cached plan
        dataset = _epoch_dataset(self, epoch, start)
        if self.num_workers == 0:
            batches = iter(dataset)
        else:
            torch = _torch()
            batches = iter(torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=self.num_workers,
                                                       pin_memory=self.pin_memory))
        for step, batch in enumerate(batches, start):
            self.step = step + 1
            yield batch
        self.epoch, self.step = epoch + 1, 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "step": self.step}

    def load_state_dict(self, state: dict) -> None:
        epoch, step = int(state["epoch"]), int(state["step"])
        if epoch < 0 or step < 0:
            raise ClaimsfmError(f"loader state must be non-negative, got {state}")
        self.epoch, self.step = epoch, step


class _EpochIterator:
    """Steps start.. of one epoch; DataLoader worker w builds steps start+w, start+w+W, ... which the
    DataLoader's round-robin fetching returns in step order."""

    def __init__(self, loader: PretrainLoader, epoch: int, start: int):
        self.loader, self.epoch, self.start = loader, epoch, start

    def __reduce__(self):
        # A spawned worker has no class yet: rebuild through the factory, which makes it there.
        return (_epoch_dataset, (self.loader, self.epoch, self.start))

    def __iter__(self):
        info = _torch().utils.data.get_worker_info()
        wid, n_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for step in range(self.start + wid, len(self.loader.plan(self.epoch)), n_workers):
            yield self.loader.batch(self.epoch, step)


_EpochDataset = None


def _epoch_dataset(loader: PretrainLoader, epoch: int, start: int):
    """An IterableDataset over one epoch. The class is made on first use so that importing
    claimsfm.data never imports torch; it is stored as a module global so workers can unpickle it."""
    global _EpochDataset
    if _EpochDataset is None:
        base = _torch().utils.data.IterableDataset
        _EpochDataset = type("_EpochDataset", (_EpochIterator, base), {"__module__": __name__})
    return _EpochDataset(loader, epoch, start)
