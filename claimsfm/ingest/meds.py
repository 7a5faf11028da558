"""MEDS 0.4 on disk: write an EventTable as split shards plus metadata, and read one back.

Layout (internals.md §2): data/<split>/<n>.parquet sorted by (subject_id, time), static rows
first; metadata/codes.parquet, metadata/dataset.json, metadata/subject_splits.parquet.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from claimsfm import __version__
from claimsfm.errors import ClaimsfmError
from claimsfm.ingest.events import NO_TIME, EventTable
from claimsfm.splits import SPLITS, split_codes

MEDS_VERSION = "0.4.0"
SCHEMA = pa.schema([
    ("subject_id", pa.int64()),
    ("time", pa.timestamp("us")),
    ("code", pa.string()),
    ("numeric_value", pa.float32()),
    ("facility", pa.string()),
    ("suspected", pa.bool_()),
    ("dx_start", pa.timestamp("us")),
])
CODES_SCHEMA = pa.schema([("code", pa.string()), ("description", pa.string()),
                          ("parent_codes", pa.list_(pa.string()))])


def _timestamps(us: np.ndarray) -> pa.Array:
    return pa.array(us, type=pa.timestamp("us"), mask=us == NO_TIME)


def to_arrow(t: EventTable) -> pa.Table:
    code = pc.take(pa.array(t.code_names, pa.string()), pa.array(t.code))
    fac_names = pa.array(list(t.facility_names) + [None], pa.string())
    fac = pc.take(fac_names, pa.array(np.where(t.facility >= 0, t.facility, len(t.facility_names))))
    value = pa.array(t.value, pa.float32(), mask=np.isnan(t.value))
    cols = [pa.array(t.subject, pa.int64()), _timestamps(t.time_us), code, value, fac,
            pa.array(t.suspected, pa.bool_()), _timestamps(t.dx_start_us)]
    return pa.Table.from_arrays(cols, schema=SCHEMA)


def write_data(t: EventTable, out: Path, shard_rows: int) -> dict:
    """Shards by split; a subject never straddles two shards. `t` must be sorted."""
    table = to_arrow(t)
    splits = split_codes(t.subject)
    counts = {}
    for code, name in enumerate(SPLITS):
        rows = np.flatnonzero(splits == code)
        folder = out / "data" / name
        folder.mkdir(parents=True, exist_ok=True)
        counts[name] = int(len(rows))
        sub = table.take(pa.array(rows))
        for shard, (lo, hi) in enumerate(_shard_bounds(t.subject[rows], shard_rows)):
            pq.write_table(sub.slice(lo, hi - lo), folder / f"{shard}.parquet")
    return counts


def _shard_bounds(subject: np.ndarray, shard_rows: int) -> list[tuple[int, int]]:
    """Row ranges of at most ~shard_rows rows, cut only where a new subject starts (none for an
    empty split: its folder stays empty)."""
    n = len(subject)
    starts = np.flatnonzero(np.r_[True, subject[1:] != subject[:-1]]) if n else np.zeros(0, np.int64)
    bounds = [0]
    while bounds[-1] < n:
        target = bounds[-1] + shard_rows
        i = np.searchsorted(starts, target)
        bounds.append(n if target >= n or i >= len(starts) else int(starts[i]))
    return list(zip(bounds[:-1], bounds[1:]))


def write_metadata(t: EventTable, out: Path, codes_table: pa.Table, info: dict) -> dict:
    meta = out / "metadata"
    meta.mkdir(parents=True, exist_ok=True)
    subjects = np.unique(t.subject)
    names = np.asarray(SPLITS, dtype=object)[split_codes(subjects)]
    pq.write_table(pa.table({"subject_id": pa.array(subjects, pa.int64()),
                             "split": pa.array(names.tolist(), pa.string())}),
                   meta / "subject_splits.parquet")
    pq.write_table(codes_table.cast(CODES_SCHEMA), meta / "codes.parquet")
    dataset = {
        "dataset_name": info.pop("dataset_name"),
        "dataset_version": info.pop("dataset_version"),
        "etl_name": "claimsfm.ingest",
        "etl_version": __version__,
        "meds_version": MEDS_VERSION,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "claimsfm": info,
    }
    from claimsfm.io import write_json

    write_json(meta / "dataset.json", dataset)
    return {"subjects": int(len(subjects))}


def read_data(folder: Path) -> EventTable:
    """Read every shard under `folder/data` (or `folder` itself) into one EventTable."""
    folder = Path(folder)
    root = folder / "data" if (folder / "data").is_dir() else folder
    files = sorted(root.rglob("*.parquet"))
    if not files:
        raise ClaimsfmError(f"{folder}: no MEDS shards (data/**/*.parquet)")
    tables = [_read_shard(f) for f in files]
    table = pa.concat_tables(tables)
    return from_arrow(table)


def _read_shard(path: Path) -> pa.Table:
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise ClaimsfmError(f"{path}: not a readable parquet file ({exc})") from None
    for name in ("subject_id", "time", "code"):
        if name not in table.column_names:
            raise ClaimsfmError(f"{path}: missing MEDS column '{name}'")
    n = table.num_rows
    defaults = {"numeric_value": pa.nulls(n, pa.float32()), "facility": pa.nulls(n, pa.string()),
                "suspected": pa.array(np.zeros(n, bool)), "dx_start": pa.nulls(n, pa.timestamp("us"))}
    cols = []
    for field in SCHEMA:
        col = table.column(field.name) if field.name in table.column_names else defaults[field.name]
        try:
            col = col.cast(field.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise ClaimsfmError(f"{path}: column '{field.name}' cannot be read as {field.type}") from None
        cols.append(col)
    table = pa.Table.from_arrays(cols, schema=SCHEMA)
    if table.column("subject_id").null_count or table.column("code").null_count:
        raise ClaimsfmError(f"{path}: null subject_id or code")
    return table


def _us(col: pa.ChunkedArray) -> np.ndarray:
    arr = col.cast(pa.int64()).fill_null(NO_TIME)
    return arr.to_numpy().astype(np.int64)


def from_arrow(table: pa.Table) -> EventTable:
    code = pc.dictionary_encode(table.column("code")).combine_chunks()
    fac = pc.dictionary_encode(table.column("facility")).combine_chunks()
    value = table.column("numeric_value").fill_null(np.nan).to_numpy().astype(np.float32)
    return EventTable(
        table.column("subject_id").to_numpy().astype(np.int64), _us(table.column("time")),
        code.indices.to_numpy().astype(np.int32), code.dictionary.to_pylist(), value,
        fac.indices.fill_null(-1).to_numpy().astype(np.int32), fac.dictionary.to_pylist(),
        table.column("suspected").fill_null(False).to_numpy().astype(bool), _us(table.column("dx_start")))
