"""MEDS shards written piece by piece (the out-of-core ingest, spill.py): the files `meds.write_data`
writes for the whole table, from sorted pieces over increasing subject_id ranges."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from claimsfm.ingest.events import EventTable
from claimsfm.ingest.meds import Splits, to_arrow, write_shard
from claimsfm.splits import SPLITS, split_codes


class ShardWriter:
    """`write_data` fed one piece at a time: pieces are sorted EventTables over increasing subject_id
    ranges (the out-of-core ingest's buckets). Each split keeps its pending rows (as numpy columns,
    ~37 bytes a row; Arrow with its strings only for the shard being written) until a shard is
    complete, so memory is bounded by a shard per split plus one piece and the `writers` shards being
    written, and the files are byte for byte those `write_data` writes for the whole table
    (tests/ingest/test_spill.py)."""

    BYTES_PER_ROW = 40  # a pending row (EventTable columns); spill.py reserves shard_rows of them per split

    def __init__(self, out: Path, shard_rows: int, splits: Splits | None = None, writers: int = 1):
        from concurrent.futures import ThreadPoolExecutor

        self.shard_rows, self.splits = shard_rows, splits
        # Shards are converted and written on `writers` threads (Arrow and parquet release the GIL), overlapping
        # each other and the next pieces.
        self.writers = max(1, writers)
        self.io = ThreadPoolExecutor(max_workers=self.writers)
        self.writing: list = []
        self.folders = [out / "data" / name for name in SPLITS]
        for folder in self.folders:
            folder.mkdir(parents=True, exist_ok=True)
        self.pending: list[list[EventTable]] = [[] for _ in SPLITS]
        self.rows = [0] * len(SPLITS)
        self.shards = [0] * len(SPLITS)
        self.counts = {name: 0 for name in SPLITS}

    def add(self, t: EventTable) -> None:
        self.add_pieces(self.pieces(t))

    def pieces(self, t: EventTable) -> list:
        """A piece's rows of each split: (split code, EventTable) for the non-empty splits. Reads no state, so
        worker threads call it; `add_pieces` then appends in order."""
        s = t.subject  # sorted: a split per subject, looked up once per subject and not once per row
        if not len(s):
            return []
        first = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
        counts = np.diff(np.r_[first, len(s)])
        per_subject = self.splits.of(s[first]) if self.splits is not None else split_codes(s[first])
        codes = np.repeat(per_subject, counts)
        out = []
        for code in range(len(SPLITS)):
            if (per_subject == code).any():
                out.append((code, t.take(codes == code)))  # a mask: numpy copies it faster than indices
        return out

    def add_pieces(self, pieces: list) -> None:
        for code, table in pieces:
            self.pending[code].append(table)
            self.rows[code] += len(table)
            self.counts[SPLITS[code]] += int(len(table))
            self._cut(code, final=False)

    def close(self) -> dict:
        try:
            for code in range(len(SPLITS)):
                self._cut(code, final=True)
            self._wait(0)
        finally:
            self.io.shutdown(wait=True)
        return self.counts

    def _wait(self, keep: int = 0) -> None:
        """Wait for the oldest shard writes until at most `keep` are in flight."""
        while len(self.writing) > keep:
            self.writing.pop(0).result()  # re-raises a failed write

    def _subject_start(self, code: int, at: int) -> int | None:
        """The first subject start at or past row `at` of the split's pending rows, or None when no row there or after
        starts one (a start at the very end is known only once the next piece or the end comes). Pieces hold whole
        subjects, sorted: a piece starts a subject, and inside one the next start is where its subject_id changes."""
        offset = 0
        for i, piece in enumerate(self.pending[code]):
            n = len(piece)
            if at < offset + n:
                j = at - offset
                s = piece.subject
                if j == 0 or s[j] != s[j - 1]:
                    return at
                k = int(np.searchsorted(s, s[j], side="right"))
                if k < n:
                    return offset + k
                return offset + n if i + 1 < len(self.pending[code]) else None
            offset += n
        return None

    def _cut(self, code: int, final: bool) -> None:
        """Write every complete shard: it ends at the first subject start at or past shard_rows."""
        while self.rows[code]:
            if not final and self.rows[code] <= self.shard_rows:
                return  # no subject starts at or past shard_rows yet
            end = self._subject_start(code, self.shard_rows)
            if end is None:
                if not final:
                    return
                end = self.rows[code]
            head, rest, at = [], [], 0  # the pieces split at `end`; slices are views, nothing is copied here
            for piece in self.pending[code]:
                if at + len(piece) <= end:
                    head.append(piece)
                elif at >= end:
                    rest.append(piece)
                else:
                    head.append(piece.take(slice(0, end - at)))
                    rest.append(piece.take(slice(end - at, None)))
                at += len(piece)
            self._wait(self.writers - 1)  # at most `writers` shards converted or being written
            # Joined and converted here (the caller's thread, idle while the workers prepare the next pieces),
            # written on a writer thread: a writer that also converted became the slowest thread of sort+write.
            shard = to_arrow(concat_tables(head), dictionary=True)
            path = self.folders[code] / f"{self.shards[code]}.parquet"
            self.writing.append(self.io.submit(write_shard, shard, path))
            self.shards[code] += 1
            self.rows[code] -= end
            self.pending[code] = rest


def concat_tables(tables: list[EventTable]) -> EventTable:
    """One EventTable of pieces that share their name tables."""
    if len(tables) == 1:
        return tables[0]
    first = tables[0]

    def cat(name):
        return np.concatenate([getattr(t, name) for t in tables])

    return EventTable(cat("subject"), cat("time_us"), cat("code"), first.code_names, cat("value"), cat("facility"),
                      first.facility_names, cat("suspected"), cat("dx_start_us"),
                      None if first.text is None else cat("text"), first.text_names)
