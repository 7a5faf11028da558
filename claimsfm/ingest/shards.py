"""MEDS shards written piece by piece (the out-of-core ingest, spill.py): the files `meds.write_data`
writes for the whole table, from sorted pieces over increasing subject_id ranges."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from claimsfm.ingest.events import EventTable
from claimsfm.ingest.meds import Splits, to_arrow
from claimsfm.splits import SPLITS, split_codes


class ShardWriter:
    """`write_data` fed one piece at a time: pieces are sorted EventTables over increasing subject_id
    ranges (the out-of-core ingest's buckets). Each split keeps its pending rows (as numpy columns,
    ~37 bytes a row; Arrow with its strings only for the shard being written) until a shard is
    complete, so memory is bounded by a shard per split plus one piece, and the files are byte for
    byte those `write_data` writes for the whole table (tests/ingest/test_spill.py)."""

    BYTES_PER_ROW = 40  # a pending row (EventTable columns); spill.py reserves shard_rows of them per split

    def __init__(self, out: Path, shard_rows: int, splits: Splits | None = None):
        from concurrent.futures import ThreadPoolExecutor

        self.shard_rows, self.splits = shard_rows, splits
        self.io = ThreadPoolExecutor(max_workers=1)  # parquet writes (GIL released) overlap the next piece
        self.writing = None
        self.folders = [out / "data" / name for name in SPLITS]
        for folder in self.folders:
            folder.mkdir(parents=True, exist_ok=True)
        self.pending: list[list[EventTable]] = [[] for _ in SPLITS]
        self.starts: list[list[np.ndarray]] = [[] for _ in SPLITS]  # subject starts of each pending piece
        self.rows = [0] * len(SPLITS)
        self.shards = [0] * len(SPLITS)
        self.counts = {name: 0 for name in SPLITS}

    def add(self, t: EventTable) -> None:
        codes = self.splits.of(t.subject) if self.splits is not None else split_codes(t.subject)
        for code, name in enumerate(SPLITS):
            rows = np.flatnonzero(codes == code)
            if not len(rows):
                continue
            sub = t.subject[rows]
            starts = np.flatnonzero(np.r_[True, sub[1:] != sub[:-1]]) + self.rows[code]
            self.pending[code].append(t.take(rows))
            self.starts[code].append(starts)
            self.rows[code] += len(rows)
            self.counts[name] += int(len(rows))
            self._cut(code, final=False)

    def close(self) -> dict:
        try:
            for code in range(len(SPLITS)):
                self._cut(code, final=True)
            self._wait()
        finally:
            self.io.shutdown(wait=True)
        return self.counts

    def _wait(self) -> None:
        if self.writing is not None:
            self.writing.result()  # re-raises a failed write
            self.writing = None

    def _cut(self, code: int, final: bool) -> None:
        """Write every complete shard: it ends at the first subject start at or past shard_rows
        (a start at the very end of the pending rows is known only once the next piece or the end comes)."""
        while self.rows[code]:
            starts = np.concatenate(self.starts[code])
            i = np.searchsorted(starts, self.shard_rows)
            if i < len(starts):
                end = int(starts[i])
            elif final:
                end = self.rows[code]
            else:
                return
            table = concat_tables(self.pending[code])
            self._wait()  # one Arrow shard at a time (converted or being written): memory bounded by a shard
            shard = to_arrow(table.take(slice(0, end)))  # views: to_arrow copies
            self.writing = self.io.submit(pq.write_table, shard, self.folders[code] / f"{self.shards[code]}.parquet")
            self.shards[code] += 1
            self.rows[code] -= end
            self.pending[code] = [table.take(np.arange(end, len(table)))] if self.rows[code] else []
            self.starts[code] = [starts[starts >= end] - end] if self.rows[code] else []


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
