"""MEDS 0.4 on disk: write an EventTable as split shards plus metadata, and read one back.

Layout (internals.md §2): data/<split>/<n>.parquet sorted by (subject_id, time), static rows
first; metadata/codes.parquet, metadata/dataset.json, metadata/subject_splits.parquet.
Reading a foreign dataset (`ingest --format meds`) keeps its splits, name, version and
`text_value`, and refuses a `time` column that is not a timestamp or lies outside 1900-2100.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from claimsfm import __version__
from claimsfm.errors import ClaimsfmError, located
from claimsfm.ingest.events import NO_TIME, EventTable, subject_starts
from claimsfm.io import arrow_array, arrow_strings, read_parquet
from claimsfm.splits import SPLITS, split_codes

MEDS_VERSION = "0.4.0"  # the MEDS version this writer follows, when the `meds` package is not installed
# `suspected` is int8 0/1, not bool: meds_reader 0.2 refuses bool columns ("Unsupported type bool").
SUSPECTED_TYPE = pa.int8()
# subject_id and code are never null (MEDS requires both): declared so, parquet stores them as REQUIRED
# columns and skips their definition levels (13% of a shard's write time on the bulk corpus).
SCHEMA = pa.schema([
    pa.field("subject_id", pa.int64(), nullable=False),
    ("time", pa.timestamp("us")),
    pa.field("code", pa.string(), nullable=False),
    ("numeric_value", pa.float32()),
    ("text_value", pa.string()),
    ("facility", pa.string()),
    ("suspected", SUSPECTED_TYPE),
    ("dx_start", pa.timestamp("us")),
])
# dataset.json declarations of the columns beyond the MEDS core (MEDS 0.4 DatasetMetadataSchema).
EXTENSION_COLUMNS = {"site_id_columns": ["facility"], "other_extension_columns": ["suspected", "dx_start"]}
CODES_SCHEMA = pa.schema([("code", pa.string()), ("description", pa.string()),
                          ("parent_codes", pa.list_(pa.string()))])
SPLITS_FILE = Path("metadata") / "subject_splits.parquet"
TIME_RANGE = "1900:2100"  # default --time-range (years, both included): a time outside is likely a unit error
_US_PER_DAY = 86_400_000_000


def meds_version() -> str:
    """The installed `meds` schema package's version, else the version this writer follows."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("meds")
    except PackageNotFoundError:
        return MEDS_VERSION


def _timestamps(us: np.ndarray) -> pa.Array:
    return arrow_array(us, pa.timestamp("us"), us == NO_TIME)


def _dictionary(indices: np.ndarray, names) -> pa.DictionaryArray:
    """Rows as indices into `names` (-1 = null): no string is copied per row."""
    idx = np.asarray(indices, np.int32)
    return pa.DictionaryArray.from_arrays(arrow_array(idx, pa.int32(), idx < 0), arrow_strings(names))


def to_arrow(t: EventTable, dictionary: bool = False) -> pa.Table:
    """The MEDS table of `t` (SCHEMA), or with `dictionary` its code, text and facility columns as Arrow
    dictionary arrays over the name tables (what `write_shard` writes: a sixth of ingest's sort+write time went
    into copying code strings per row, then hashing them back into parquet's dictionary)."""
    text = pa.nulls(len(t), pa.string()) if t.text is None else _dictionary(t.text, t.text_names)
    value = np.asarray(t.value, np.float32)
    cols = [arrow_array(t.subject, pa.int64()), _timestamps(t.time_us), _dictionary(t.code, t.code_names),
            arrow_array(value, pa.float32(), np.isnan(value)), text, _dictionary(t.facility, t.facility_names),
            arrow_array(t.suspected.astype(np.int8), SUSPECTED_TYPE), _timestamps(t.dx_start_us)]
    table = pa.Table.from_arrays(cols, schema=pa.schema([pa.field(f.name, c.type, f.nullable)
                                                         for f, c in zip(SCHEMA, cols)]))
    return table if dictionary else table.cast(SCHEMA)


# Columns whose min/max go into the parquet footer: what readers prune row groups by (a subject or a time
# range). On the others (code strings, values, facilities) statistics cost 30% of the write (1M-row shard of the
# bulk corpus: 0.107 -> 0.076 s; for a dictionary column parquet finds the used entries of the whole name
# table first) and serve no filter.
STATISTICS_COLUMNS = ["subject_id", "time"]


# Page compression of the data shards: none. Dictionary and run-length encoding already hold the shards small;
# snappy on top saved 7% of the bytes for 38% more write time (1M-row shard of the bulk corpus: 4.11 vs
# 4.38 MB, 98 vs 61 ms), and zstd level 1 11% of the bytes for 46% more.
SHARD_COMPRESSION = "none"


def write_shard(table: pa.Table, path: Path) -> None:
    """One MEDS data shard. Dictionary columns go into parquet's own dictionary encoding as they are; the
    Arrow schema is not stored, so every reader sees SCHEMA's plain strings (tests/ingest/test_spill.py);
    statistics for STATISTICS_COLUMNS only; no page compression (SHARD_COMPRESSION)."""
    pq.write_table(table, path, store_schema=False, write_statistics=STATISTICS_COLUMNS,
                   compression=SHARD_COMPRESSION)


@dataclass
class Splits:
    """A split per subject: `ids` (k,) int64 sorted unique, `codes` (k,) uint8, and where they came from."""

    ids: np.ndarray
    codes: np.ndarray
    source: str
    notes: list = field(default_factory=list)

    @classmethod
    def hashed(cls, why: str) -> "Splits":
        """No given splits: every subject gets the hash split (`of` falls through to split_codes)."""
        return cls(np.zeros(0, np.int64), np.zeros(0, np.uint8), f"computed from a hash of subject_id ({why})")

    def of(self, subjects: np.ndarray) -> np.ndarray:
        """Split code of each subject; one absent from `ids` gets the hash split."""
        subjects = np.asarray(subjects, np.int64)
        out = split_codes(subjects)
        if len(self.ids):
            pos = np.minimum(np.searchsorted(self.ids, subjects), len(self.ids) - 1)
            hit = self.ids[pos] == subjects
            out[hit] = self.codes[pos[hit]]
        return out

    def cover(self, subjects: np.ndarray) -> "Splits":
        """These splits restricted to `subjects`, the missing ones hashed (and counted in `notes`)."""
        subjects = np.unique(subjects)
        codes = self.of(subjects)
        missing = int(len(subjects) - np.isin(subjects, self.ids).sum())
        notes = list(self.notes)
        if missing:
            notes.append(f"{missing} subject(s) with data but absent from the splits: split by subject_id hash")
        return Splits(subjects, codes, self.source, notes)


def write_data(t: EventTable, out: Path, shard_rows: int, splits: Splits | None = None) -> dict:
    """Shards by split; a subject never straddles two shards. `t` must be sorted."""
    table = to_arrow(t, dictionary=True)
    codes = splits.of(t.subject) if splits is not None else split_codes(t.subject)
    counts = {}
    for code, name in enumerate(SPLITS):
        rows = np.flatnonzero(codes == code)
        folder = out / "data" / name
        folder.mkdir(parents=True, exist_ok=True)
        counts[name] = int(len(rows))
        sub = table.take(arrow_array(np.asarray(rows, np.int64), pa.int64()))
        for shard, (lo, hi) in enumerate(_shard_bounds(t.subject[rows], shard_rows)):
            write_shard(sub.slice(lo, hi - lo), folder / f"{shard}.parquet")
    return counts


def _shard_bounds(subject: np.ndarray, shard_rows: int) -> list[tuple[int, int]]:
    """Row ranges of at most ~shard_rows rows, cut only where a new subject starts (none for an
    empty split: its folder stays empty)."""
    n = len(subject)
    starts = subject_starts(subject)
    bounds = [0]
    while bounds[-1] < n:
        target = bounds[-1] + shard_rows
        i = np.searchsorted(starts, target)
        bounds.append(n if target >= n or i >= len(starts) else int(starts[i]))
    return list(zip(bounds[:-1], bounds[1:]))


def write_metadata(t: EventTable | None, out: Path, codes_table: pa.Table, info: dict,
                   splits: Splits | None = None, subjects: np.ndarray | None = None) -> dict:
    """codes.parquet, subject_splits.parquet and dataset.json. `info` holds dataset_name,
    dataset_version and the claimsfm-specific fields (kept under "claimsfm"). `subjects` (sorted
    unique subject_ids) stands in for `t` when the events are not in memory."""
    meta = out / "metadata"
    meta.mkdir(parents=True, exist_ok=True)
    subjects = np.unique(t.subject) if subjects is None else subjects
    codes = splits.of(subjects) if splits is not None else split_codes(subjects)
    names = pa.DictionaryArray.from_arrays(arrow_array(codes.astype(np.int32), pa.int32()),
                                           arrow_strings(SPLITS)).cast(pa.string())
    pq.write_table(pa.table({"subject_id": arrow_array(np.asarray(subjects, np.int64), pa.int64()), "split": names}),
                   meta / "subject_splits.parquet")
    pq.write_table(codes_table.cast(CODES_SCHEMA), meta / "codes.parquet")
    dataset = {
        "dataset_name": info.pop("dataset_name"),
        "dataset_version": info.pop("dataset_version"),
        "etl_name": "claimsfm.ingest",
        "etl_version": __version__,
        "meds_version": meds_version(),
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **EXTENSION_COLUMNS,
        "claimsfm": info,
    }
    from claimsfm.io import write_json

    write_json(meta / "dataset.json", dataset)
    return {"subjects": int(len(subjects))}


def parse_time_range(text: str) -> tuple[int, int, str]:
    """`--time-range FIRST:LAST` (years, both included) -> [lo, hi) in microseconds since 1970, and the label."""
    try:
        first, last = (int(x) for x in str(text).split(":"))
        lo, hi = dt.datetime(first, 1, 1), dt.datetime(last + 1, 1, 1)
    except (ValueError, OverflowError):
        raise ClaimsfmError(f"--time-range: '{text}' is not FIRST:LAST years, e.g. {TIME_RANGE}") from None
    if first > last:
        raise ClaimsfmError(f"--time-range: '{text}': the first year is after the last")
    epoch = dt.datetime(1970, 1, 1)
    return (lo - epoch) // dt.timedelta(microseconds=1), (hi - epoch) // dt.timedelta(microseconds=1), f"{first}-{last}"


def read_data(folder: Path, time_range: str = TIME_RANGE) -> EventTable:
    """Read every shard under `folder/data` (or `folder` itself) into one EventTable."""
    folder = Path(folder)
    root = folder / "data" if (folder / "data").is_dir() else folder
    files = sorted(root.rglob("*.parquet"))
    if not files:
        raise ClaimsfmError(f"{folder}: no MEDS shards (data/**/*.parquet)")
    window = parse_time_range(time_range)
    table = pa.concat_tables([_read_shard(f, window) for f in files])
    return from_arrow(table)


def _time_column(col: pa.ChunkedArray, path: Path, window: tuple[int, int, str]) -> pa.ChunkedArray:
    """`time` as timestamp[us]: a timestamp of any unit or a date converts; anything else (an int64
    column has no unit to trust) or a time outside the --time-range years is a one-line error."""
    ty = col.type
    if pa.types.is_timestamp(ty) or pa.types.is_date(ty) or pa.types.is_null(ty):
        col = pc.cast(col, pa.timestamp("us"), safe=False)
    else:
        raise located(path, None, f"column 'time' cannot be read as timestamp[us]: it is {ty} (convert it to "
                                  "a timestamp first; an integer time has no unit claimsfm could trust)")
    us = col.cast(pa.int64())
    lo, hi, label = window
    bad = pc.or_(pc.less(us, lo), pc.greater_equal(us, hi)).fill_null(False)
    if pc.any(bad).as_py():
        row = int(pc.index(bad, True).as_py())
        when = np.datetime64(us[row].as_py(), "us")
        raise located(path, None, f"row {row + 1}: time {when} is outside {label} (a wrong unit or a "
                                  "placeholder date? if such times are real, widen --time-range)")
    return col


def _read_shard(path: Path, window: tuple[int, int, str]) -> pa.Table:
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise ClaimsfmError(f"{path}: not a readable parquet file ({exc})") from None
    for name in ("subject_id", "time", "code"):
        if name not in table.column_names:
            raise ClaimsfmError(f"{path}: missing MEDS column '{name}'")
    n = table.num_rows
    defaults = {"numeric_value": pa.nulls(n, pa.float32()), "text_value": pa.nulls(n, pa.string()),
                "facility": pa.nulls(n, pa.string()), "suspected": pa.array(np.zeros(n, np.int8)),
                "dx_start": pa.nulls(n, pa.timestamp("us"))}
    cols = []
    for f in SCHEMA:
        col = table.column(f.name) if f.name in table.column_names else defaults[f.name]
        if f.name == "time":
            cols.append(_time_column(col, path, window))
            continue
        try:
            col = col.cast(f.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise ClaimsfmError(f"{path}: column '{f.name}' cannot be read as {f.type}") from None
        cols.append(col)
    if any(c.null_count for f, c in zip(SCHEMA, cols) if not f.nullable):  # before SCHEMA declares them non-null
        raise ClaimsfmError(f"{path}: null subject_id or code")
    return pa.Table.from_arrays(cols, schema=SCHEMA)


def _us(col: pa.ChunkedArray) -> np.ndarray:
    arr = col.cast(pa.int64()).fill_null(NO_TIME)
    return arr.to_numpy().astype(np.int64)


def from_arrow(table: pa.Table) -> EventTable:
    code = pc.dictionary_encode(table.column("code")).combine_chunks()
    fac = pc.dictionary_encode(table.column("facility")).combine_chunks()
    value = table.column("numeric_value").fill_null(np.nan).to_numpy().astype(np.float32)
    text, text_names = None, None
    if "text_value" in table.column_names and table.column("text_value").null_count < table.num_rows:
        enc = pc.dictionary_encode(table.column("text_value")).combine_chunks()
        text, text_names = enc.indices.fill_null(-1).to_numpy().astype(np.int32), enc.dictionary.to_pylist()
    susp = pc.cast(table.column("suspected"), pa.bool_()).fill_null(False)
    return EventTable(
        table.column("subject_id").to_numpy().astype(np.int64), _us(table.column("time")),
        code.indices.to_numpy().astype(np.int32), code.dictionary.to_pylist(), value,
        fac.indices.fill_null(-1).to_numpy().astype(np.int32), fac.dictionary.to_pylist(),
        susp.to_numpy().astype(bool), _us(table.column("dx_start")), text, text_names)


# --- a foreign MEDS dataset (`ingest --format meds`): splits, metadata, what the store leaves out ---

def read_splits(folders: list[Path]) -> Splits | None:
    """The input's own metadata/subject_splits.parquet (all folders together), or None when none has one.

    MEDS names map one to one (train, tuning, held_out); another name, a null, or a subject listed
    in two splits is a `file:row: reason` error.
    """
    parts = []
    for folder in folders:
        path = Path(folder) / SPLITS_FILE
        if path.is_file():
            parts.append(_read_split_file(path))
    if not parts:
        return None
    ids = np.concatenate([p[0] for p in parts])
    codes = np.concatenate([p[1] for p in parts])
    where = [(p[2], r) for p in parts for r in range(len(p[0]))]
    order = np.argsort(ids, kind="stable")
    ids, codes = ids[order], codes[order]
    same = ids[1:] == ids[:-1]
    clash = np.flatnonzero(same & (codes[1:] != codes[:-1]))
    if len(clash):
        i = clash[0]
        (pa_, ra), (pb, rb) = where[order[i]], where[order[i + 1]]
        raise located(pb, rb + 1, f"subject_id {ids[i]} is in split '{SPLITS[codes[i + 1]]}' here but in "
                                  f"'{SPLITS[codes[i]]}' at {pa_}:{ra + 1}; a subject must be in one split")
    keep = np.r_[True, ~same]
    source = "kept from " + ", ".join(str(p[2]) for p in parts)
    return Splits(ids[keep], codes[keep], source)


def _read_split_file(path: Path) -> tuple[np.ndarray, np.ndarray, Path]:
    t = read_parquet(path)
    for name in ("subject_id", "split"):
        if name not in t.column_names:
            raise located(path, None, f"missing column '{name}' (MEDS subject_splits: subject_id, split)")
    try:
        ids = pc.cast(t["subject_id"], pa.int64())
        names = pc.cast(t["split"], pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise located(path, None, "subject_id must be an integer and split a string") from None
    if ids.null_count or names.null_count:
        row = int(pc.index(pc.or_(pc.is_null(ids), pc.is_null(names)), True).as_py())
        raise located(path, row + 1, "null subject_id or split")
    known = pc.is_in(names, value_set=pa.array(SPLITS))
    if not pc.all(known).as_py():
        row = int(pc.index(known, False).as_py())
        raise located(path, row + 1, f"split '{names[row].as_py()}' is not one of {', '.join(SPLITS)} "
                                     "(MEDS split names; claimsfm maps them one to one)")
    codes = pc.index_in(names, value_set=pa.array(SPLITS)).to_numpy(zero_copy_only=False).astype(np.uint8)
    return ids.to_numpy().astype(np.int64), codes, path


def foreign_metadata(folders: list[Path]) -> dict:
    """dataset_name / dataset_version of the input's metadata/dataset.json (first folder that has one)."""
    from claimsfm.io import read_json

    for folder in folders:
        path = Path(folder) / "metadata" / "dataset.json"
        if path.is_file():
            meta = read_json(path)
            return {k: str(meta[k]) for k in ("dataset_name", "dataset_version") if meta.get(k) is not None}
    return {}


def unused_by_store(t: EventTable) -> dict:
    """What the token store will not turn into tokens, with counts (logged, and in the summary):
    static rows other than sex, text values, and times of day (the store keeps days)."""
    from claimsfm.data.format import SEX_CODES

    names = np.asarray(t.code_names, dtype=object)
    static = t.time_us == NO_TIME
    counts = np.bincount(t.code[static], minlength=len(names)) if len(names) else np.zeros(0, np.int64)
    nonzero = np.flatnonzero(counts).tolist()  # not a loop over every code: the out-of-core path calls this per bucket
    other = {str(names[i]): int(counts[i]) for i in nonzero if names[i] not in SEX_CODES}
    dated = t.time_us[~static]
    return {"static_rows_not_tokens": dict(sorted(other.items())),
            "text_values": 0 if t.text is None else int((t.text >= 0).sum()),
            "events_with_time_of_day": int((dated % _US_PER_DAY != 0).sum())}


def dataset_splits(t: EventTable | None, foreign: list[Path], fmt: str) -> Splits:
    """The splits an ingest writes: a foreign MEDS input's own (one to one), else the subject_id hash."""
    given = read_splits(foreign) if foreign else None
    if given is not None:
        return given.cover(t.subject)
    why = "the input has no metadata/subject_splits.parquet" if foreign else f"{fmt} input"
    return Splits.hashed(why)


def dataset_names(name: str | None, foreign: list[Path]) -> dict:
    """dataset_name / dataset_version overrides: `--name`, else the foreign input's dataset.json."""
    out = foreign_metadata(foreign) if foreign else {}
    if name:
        out["dataset_name"] = name
    return out
