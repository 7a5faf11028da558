"""MEDS shards written piece by piece (the out-of-core ingest, spill.py): the files `meds.write_data`
writes for the whole table, from sorted pieces over increasing subject_id ranges."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from claimsfm.ingest.events import EventTable, subject_starts
from claimsfm.ingest.meds import Splits, to_arrow, write_shard
from claimsfm.splits import SPLITS, split_codes

# The columns of a pending piece kept on disk (EventTable's arrays; `text` too where the pieces have one). Not the
# subject_id: the rows are sorted by it, so each piece keeps its subjects and their row counts in memory instead.
PENDING_COLUMNS = ("time_us", "code", "value", "facility", "suspected", "dx_start_us", "text")


class PendingRows:
    """One split's rows not yet in a shard: a file per column in `folder`, appended piece by piece, and the
    subjects in memory (a subject_id and a row count each: a few hundred KB at most). Held in RAM, up to
    shard_rows rows per split (3 x 37 MB at the default) lived across dozens of buckets among their short-lived
    arrays: they were most of the growth of sort+write's peak RSS with the corpus, as the three splits' pending
    rows lined up and as their holes fragmented the heap (docs/internals.md §1b). The files are short-lived and
    read back at once, so they stay in the page cache, which is not the process's memory. Pieces hold whole
    subjects (a subject never spans two pieces)."""

    def __init__(self, folder: Path, name: str):
        self.folder, self.name = Path(folder), name
        self.generation = 0
        self.files: dict = {}      # column -> unbuffered file being appended to
        self.dtypes: dict = {}     # column -> dtype, from the first piece
        self.ids: list = []        # each piece's subject_ids (one per subject, sorted)
        self.counts: list = []     # and each subject's rows
        self.rows = 0
        self.like: EventTable | None = None  # an empty piece: its name tables

    def _path(self, column: str) -> Path:
        return self.folder / f"pending-{self.name}-{self.generation}.{column}.bin"

    def append(self, t: EventTable) -> None:
        if self.like is None:
            self.like = t.take(slice(0, 0))
            self.dtypes = {c: getattr(t, c).dtype for c in PENDING_COLUMNS if getattr(t, c) is not None}
        if not self.files:
            self.files = {c: open(self._path(c), "wb", buffering=0) for c in self.dtypes}
        for column, f in self.files.items():
            f.write(np.ascontiguousarray(getattr(t, column), self.dtypes[column]).data)
        s = t.subject
        first = subject_starts(s)
        self.ids.append(s[first])
        self.counts.append(np.diff(np.r_[first, len(s)]))
        self.rows += len(t)

    def subject_start(self, at: int) -> int | None:
        """The first row at or past `at` that starts a subject, or None when none does (a start at the very end
        is known only once the next piece or the end comes)."""
        counts = np.concatenate(self.counts)
        starts = np.cumsum(counts) - counts
        i = int(np.searchsorted(starts, at))
        return int(starts[i]) if i < len(starts) else None

    def read(self, lo: int, hi: int) -> EventTable:
        """Rows [lo, hi) as an EventTable."""
        c = {name: np.fromfile(self._path(name), dtype, count=hi - lo, offset=lo * dtype.itemsize)
             for name, dtype in self.dtypes.items()}
        subject = np.repeat(np.concatenate(self.ids), np.concatenate(self.counts))[lo:hi]
        like = self.like
        return EventTable(subject, c["time_us"], c["code"], like.code_names, c["value"], c["facility"],
                          like.facility_names, c["suspected"], c["dx_start_us"], c.get("text"), like.text_names)

    def drop_head(self, end: int) -> None:
        """Forget rows [0, end) (written to a shard; a subject starts at `end`): the rest moves to the next
        generation's files, as one piece."""
        rest = self.read(end, self.rows) if end < self.rows else None
        self.discard()
        self.generation += 1
        if rest is not None:
            self.append(rest)

    def discard(self) -> None:
        """Close and delete the files (nothing pending afterwards)."""
        for column, f in self.files.items():
            f.close()
            self._path(column).unlink(missing_ok=True)
        self.files, self.ids, self.counts, self.rows = {}, [], [], 0


def writer_threads(threads: int) -> int:
    """Shard writer threads for an ingest on `threads` threads: about half of sort+write's CPU is the shards'
    Arrow conversion and parquet write, so one per two threads (on 2 cores, a second writer was no faster and
    its shards in flight raised the peak RSS)."""
    return max(1, threads // 2)


def shard_memory(shard_rows: int, threads: int) -> int:
    """Bytes a ShardWriter holds at most: writer_threads(threads) shards being converted or written."""
    return writer_threads(threads) * shard_rows * ShardWriter.BYTES_PER_ROW


class ShardWriter:
    """`write_data` fed one piece at a time: pieces are sorted EventTables over increasing subject_id
    ranges (the out-of-core ingest's buckets). Each split's rows wait on disk (PendingRows, in `scratch`)
    until a shard is complete, so memory is bounded by one piece and the shards being converted and
    written (`writers` at once), not by shard_rows per split, and the files are byte for byte those
    `write_data` writes for the whole table (tests/ingest/test_spill.py)."""

    BYTES_PER_ROW = 40  # a row of a shard being converted (EventTable columns); spill.py reserves room for those

    def __init__(self, out: Path, shard_rows: int, scratch: Path, splits: Splits | None = None, writers: int = 1):
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
        Path(scratch).mkdir(parents=True, exist_ok=True)
        self.pending = [PendingRows(scratch, name) for name in SPLITS]
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
        first = subject_starts(s)
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
            self.counts[SPLITS[code]] += int(len(table))
            self._cut(code, final=False)

    def close(self) -> dict:
        try:
            for code in range(len(SPLITS)):
                self._cut(code, final=True)
            self._wait(0)
        finally:
            self.io.shutdown(wait=True)
            self.abort()
        return self.counts

    def abort(self) -> None:
        """Delete the pending files (after `close`, or when the ingest stops)."""
        for pending in self.pending:
            pending.discard()

    def _wait(self, keep: int = 0) -> None:
        """Wait for the oldest shard writes until at most `keep` are in flight."""
        while len(self.writing) > keep:
            self.writing.pop(0).result()  # re-raises a failed write

    def _cut(self, code: int, final: bool) -> None:
        """Write every complete shard: it ends at the first subject start at or past shard_rows."""
        pending = self.pending[code]
        while pending.rows:
            if not final and pending.rows <= self.shard_rows:
                return  # no subject starts at or past shard_rows yet
            end = pending.subject_start(self.shard_rows)
            if end is None:
                if not final:
                    return
                end = pending.rows
            self._wait(self.writers - 1)  # at most `writers` shards converted or being written
            # Read and converted here (the caller's thread, idle while the workers prepare the next pieces),
            # written on a writer thread: a writer that also converted became the slowest thread of sort+write.
            shard = to_arrow(pending.read(0, end), dictionary=True)
            path = self.folders[code] / f"{self.shards[code]}.parquet"
            self.writing.append(self.io.submit(write_shard, shard, path))
            self.shards[code] += 1
            pending.drop_head(end)


