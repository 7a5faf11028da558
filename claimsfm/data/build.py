"""Build the token store from a MEDS dataset, one shard at a time (design.md §3.2, internals.md §4).

Two passes over `data/**/*.parquet`: the first counts codes (all splits, for codes.json; train only,
for the vocabulary, so held-out patients never shape it) and events per subject; the second sorts
each shard's events and scatters them into `.npy` files opened as writable memory maps at their
final positions. Only one shard is in memory at a time.
"""
from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from claimsfm import __version__
from claimsfm.data import format as F
from claimsfm.data.format import BIRTH, CODE_LEVELS, DEATH, INPATIENT, SEX_CODES, month_of_day
from claimsfm.data.store import Store
from claimsfm.errors import ClaimsfmError, located
from claimsfm.io import atomic_dir, read_parquet, write_json
from claimsfm.native import native
from claimsfm.splits import SPLITS, TRAIN, split_codes

_US_PER_DAY = 86_400_000_000


def _progress(items, desc):
    from tqdm.auto import tqdm

    return tqdm(total=len(items), desc=desc, unit="shard", disable=None, leave=False)


@dataclass
class _Shard:
    path: Path
    sid: np.ndarray          # (R,) int64 per row
    dated: np.ndarray        # (R,) bool: time is not null
    day: np.ndarray          # (R,) int32 (0 where not dated)
    code: pa.ChunkedArray    # (R,) string
    value: np.ndarray        # (R,) float32, NaN when null
    facility: pa.ChunkedArray | None
    suspected: np.ndarray    # (R,) bool


def _read_shard(path: Path) -> _Shard:
    try:
        names = set(pq.read_schema(path).names)
        missing = [c for c in ("subject_id", "time", "code") if c not in names]
        if missing:
            raise located(path, None, f"not a MEDS shard: missing column(s) {', '.join(missing)}")
        cols = ["subject_id", "time", "code"] + [c for c in ("numeric_value", "facility", "suspected") if c in names]
        t = pq.read_table(path, columns=cols)
        time_us = pc.cast(t["time"], pa.timestamp("us")).cast(pa.int64())
        sid = pc.cast(t["subject_id"], pa.int64())
        code = pc.cast(t["code"], pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise located(path, None, f"unreadable MEDS shard ({exc})") from None
    if sid.null_count or code.null_count:
        raise located(path, None, "null subject_id or code")
    dated = time_us.is_valid().to_numpy(zero_copy_only=False)
    us = pc.fill_null(time_us, 0).to_numpy()
    n = len(t)
    value = (pc.fill_null(pc.cast(t["numeric_value"], pa.float32()), float("nan")).to_numpy()
             if "numeric_value" in names else np.full(n, np.nan, np.float32))
    susp = (pc.fill_null(pc.cast(t["suspected"], pa.bool_()), False).to_numpy(zero_copy_only=False).astype(bool)
            if "suspected" in names else np.zeros(n, bool))
    return _Shard(path, sid.to_numpy(), dated, np.floor_divide(us, _US_PER_DAY).astype(np.int32), code,
                  value.astype(np.float32), t["facility"] if "facility" in names else None, susp)


def _event_mask(sh: _Shard) -> np.ndarray:
    """Rows that become CSR events: dated, and not MEDS_BIRTH (which fills birth_day instead)."""
    return sh.dated & ~pc.equal(sh.code, BIRTH).to_numpy(zero_copy_only=False)


class _Splits:
    """Split per subject: metadata/subject_splits.parquet, else the shard's folder name, else the hash."""

    def __init__(self, meds_dir: Path):
        self.ids = None
        path = meds_dir / "metadata" / "subject_splits.parquet"
        if path.is_file():
            t = pq.read_table(path, columns=["subject_id", "split"])
            ids = t["subject_id"].to_numpy().astype(np.int64)
            names = t["split"].to_pylist()
            bad = sorted({s for s in names if s not in SPLITS})
            if bad:
                raise located(path, None, f"unknown split name(s) {bad}; expected {', '.join(SPLITS)}")
            codes = np.array([SPLITS.index(s) for s in names], dtype=np.uint8)
            order = np.argsort(ids, kind="stable")
            self.ids, self.codes = ids[order], codes[order]

    def of(self, ids: np.ndarray, folder: str) -> np.ndarray:
        out = np.full(len(ids), SPLITS.index(folder), np.uint8) if folder in SPLITS else split_codes(ids)
        if self.ids is not None and len(self.ids):
            pos = np.minimum(np.searchsorted(self.ids, ids), len(self.ids) - 1)
            hit = self.ids[pos] == ids
            out[hit] = self.codes[pos[hit]]
        return out


@dataclass
class _Scan:
    """What pass 1 learns about one shard."""
    path: Path
    ids: np.ndarray        # (m,) int64 sorted unique subject ids
    n_events: np.ndarray   # (m,) int64 events per subject
    split: np.ndarray      # (m,) uint8
    code_counts: Counter = field(default_factory=Counter)   # raw code -> rows (all splits)
    train_counts: Counter = field(default_factory=Counter)  # (raw code, suspected) -> train events
    month_range: tuple | None = None


def _scan(path: Path, splits: _Splits) -> _Scan:
    sh = _read_shard(path)
    ids, inverse = np.unique(sh.sid, return_inverse=True)
    ev = _event_mask(sh)
    split = splits.of(ids, path.parent.name)
    scan = _Scan(path, ids, np.bincount(inverse[ev], minlength=len(ids)).astype(np.int64), split)
    vc = pc.value_counts(sh.code)
    scan.code_counts.update(dict(zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist())))
    train_ev = ev & (split[inverse] == TRAIN)
    if train_ev.any():
        t = pa.table({"code": sh.code, "suspected": pa.array(sh.suspected)}).filter(pa.array(train_ev))
        g = t.group_by(["code", "suspected"]).aggregate([("code", "count")])
        for c, s, k in zip(g["code"].to_pylist(), g["suspected"].to_pylist(), g["code_count"].to_pylist()):
            scan.train_counts[(c, bool(s))] += k
    months = month_of_day(sh.day[ev])
    if len(months):
        scan.month_range = (int(months.min()), int(months.max()))
    return scan


def _load_parents(meds_dir: Path) -> dict[str, list[str]]:
    path = meds_dir / "metadata" / "codes.parquet"
    if not path.is_file():
        return {}
    t = read_parquet(path, required=("code",))
    parents = t["parent_codes"].to_pylist() if "parent_codes" in t.column_names else [None] * len(t)
    return {c: [p for p in (ps or []) if p] for c, ps in zip(t["code"].to_pylist(), parents)}


def _token_name(code: str, suspected: bool, parents: dict, code_level: str) -> str:
    base = code
    if code_level == "mapped" and parents.get(code):
        base = parents[code][-1]  # the coarsest parent: ICD-10 3-char, YJ4 class, 区分 section
    base = F.escape_code(base)  # a code named like a special token ([MASK], ...) must not collapse onto it
    return base + F.SUSPECTED_SUFFIX if suspected else base


def _make_vocab(train_counts: Counter, parents, code_level, min_count) -> dict[str, int]:
    counts: Counter = Counter()
    for (code, susp), k in train_counts.items():
        counts[_token_name(code, susp, parents, code_level)] += k
    kept = sorted((t for t, k in counts.items() if k >= min_count), key=lambda t: (-counts[t], t))
    return {tok: i for i, tok in enumerate(list(F.SPECIALS) + kept)}


def _token_tables(code_names, vocab, parents, code_level) -> tuple[np.ndarray, np.ndarray]:
    """(n_codes,) int32 token id of each raw code, plain and suspected."""
    plain = np.array([vocab.get(_token_name(c, False, parents, code_level), F.UNK) for c in code_names], np.int32)
    susp = np.array([vocab.get(_token_name(c, True, parents, code_level), F.UNK) for c in code_names], np.int32)
    return plain, susp


def _subject_fields(sh: _Shard, inverse: np.ndarray, m: int) -> dict[str, np.ndarray]:
    """birth_day, sex, death_day of the shard's m subjects."""
    big = np.iinfo(np.int32).max
    out = {}
    for name, code in (("birth_day", BIRTH), ("death_day", DEATH)):
        rows = pc.equal(sh.code, code).to_numpy(zero_copy_only=False) & sh.dated
        first = np.full(m, big, np.int32)
        np.minimum.at(first, inverse[rows], sh.day[rows])
        out[name] = np.where(first == big, -1, first).astype(np.int32)
    sex = np.zeros(m, np.int8)
    for code, val in SEX_CODES.items():
        sex[inverse[pc.equal(sh.code, code).to_numpy(zero_copy_only=False)]] = val
    out["sex"] = sex
    return out


def _facility_ids(sh: _Shard, ev: np.ndarray) -> np.ndarray:
    if sh.facility is None:
        return np.full(int(ev.sum()), -1, np.int32)
    fac = pc.cast(sh.facility, pa.string()).filter(pa.array(ev))
    names = pa.array(sorted(x for x in pc.unique(fac).to_pylist() if x is not None), pa.string())
    return pc.fill_null(pc.index_in(fac, value_set=names), -1).to_numpy(zero_copy_only=False).astype(np.int32)


def _shard_events(sh: _Shard, inverse: np.ndarray, code_index: pa.Array, tokens) -> dict[str, np.ndarray]:
    """The shard's events sorted by (subject, day, visit, code), plus `sid` (local subject index)."""
    ev = _event_mask(sh)
    code = pc.index_in(sh.code.filter(pa.array(ev)), value_set=code_index).to_numpy(zero_copy_only=False)
    code = code.astype(np.int32)
    sid, day, susp = inverse[ev], sh.day[ev], sh.suspected[ev]
    inpatient = (code == code_index.index(INPATIENT).as_py()).astype(np.uint8)
    o, visit, inp = native().order_events(sid.astype(np.int64), day, _facility_ids(sh, ev), code, inpatient,
                                          int(inverse.max(initial=-1)) + 1)
    flags = susp.astype(np.uint8) * F.FLAG_SUSPECTED | inp.astype(np.uint8) * F.FLAG_INPATIENT
    plain, suspected = tokens
    token = np.where(susp, suspected[code], plain[code]).astype(np.int32)
    return {"sid": sid[o], "code": code[o], "token": token[o], "day": day[o], "visit": visit[o],
            "flags": flags[o], "value": sh.value[ev][o]}


def _subject_order(scans: list[_Scan]) -> tuple[list[np.ndarray], np.ndarray]:
    """Global rows (subjects sorted by id) of each shard's subjects, and the CSR offsets."""
    ids = np.concatenate([s.ids for s in scans]) if scans else np.zeros(0, np.int64)
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    dup = np.flatnonzero(sorted_ids[1:] == sorted_ids[:-1])
    if len(dup):
        shard_of = np.repeat(np.arange(len(scans)), [len(s.ids) for s in scans])[order]
        a, b = scans[shard_of[dup[0]]].path, scans[shard_of[dup[0] + 1]].path
        raise ClaimsfmError(f"{b}: a subject also appears in {a}; each subject must live in one MEDS shard")
    row = np.empty(len(ids), np.int64)
    row[order] = np.arange(len(ids))
    counts = np.concatenate([s.n_events for s in scans])[order] if scans else np.zeros(0, np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    bounds = np.cumsum([0] + [len(s.ids) for s in scans])
    return [row[bounds[k]:bounds[k + 1]] for k in range(len(scans))], offsets


def _write_shard(mm: dict, scan: _Scan, rows: np.ndarray, code_index, tokens) -> None:
    if len(scan.ids) == 0:
        return
    sh = _read_shard(scan.path)
    ids, inverse = np.unique(sh.sid, return_inverse=True)
    for name, arr in _subject_fields(sh, inverse, len(ids)).items():
        mm[name][rows] = arr
    mm["subject_ids"][rows] = ids
    mm["split"][rows] = scan.split
    ev = _shard_events(sh, inverse, code_index, tokens)
    local_start = np.cumsum(scan.n_events) - scan.n_events
    dest = (np.repeat(mm["offsets"][rows], scan.n_events)
            + np.arange(len(ev["sid"])) - np.repeat(local_start, scan.n_events))
    for name in F.EVENT_ARRAYS:
        mm[name][dest] = ev[name]


def write_json_files(folder: Path, vocab: dict, code_names: list, parents: dict, code_counts, n: int, n_events: int,
                     code_level: str, min_count: int, months: tuple, source: str) -> None:
    """vocab.json, codes.json and format.json (also written by claimsfm.data.stream, the streaming twin)."""
    write_json(folder / "vocab.json", vocab)
    write_json(folder / "codes.json", [{"code": c, "parents": parents.get(c, []), "count": code_counts[c]}
                                       for c in code_names])
    write_json(folder / "format.json", {
        "FORMAT_VERSION": F.FORMAT_VERSION, "n_subjects": n, "n_events": n_events,
        "n_codes": len(code_names), "vocab_size": len(vocab), "code_level": code_level,
        "min_count": min_count, "vocab_split": SPLITS[TRAIN], "first_month": months[0],
        "last_month": months[1], "source": source, "claimsfm_version": __version__,
    })


def _release(mm: dict) -> None:
    """Unmap the pages written so far (they stay in the page cache and reach the file): mapped pages
    count in the process's RSS, which would otherwise grow with the dataset. MADV_DONTNEED is safe on a
    shared file mapping, even while another thread writes: the next access maps the same page again."""
    import mmap

    for arr in mm.values():
        raw = getattr(arr, "_mmap", None)  # numpy.memmap keeps its mmap.mmap here
        if raw is not None and hasattr(raw, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
            raw.madvise(mmap.MADV_DONTNEED)


def _shard_paths(meds_dir: Path) -> list[Path]:
    data = meds_dir / "data"
    paths = sorted(data.rglob("*.parquet")) if data.is_dir() else []
    if not paths:
        raise ClaimsfmError(f"{data}: no MEDS shards found (expected data/<split>/<shard>.parquet)")
    return paths


def _merge_scans(scans: list[_Scan]):
    code_counts, train_counts, ranges = Counter(), Counter(), []
    for s in scans:
        code_counts.update(s.code_counts)
        train_counts.update(s.train_counts)
        if s.month_range:
            ranges.append(s.month_range)
    first = min(r[0] for r in ranges) if ranges else None
    last = max(r[1] for r in ranges) if ranges else None
    return code_counts, train_counts, first, last


def build_store(meds_dir, out_dir, min_count: int = 5, code_level: str = "raw", overwrite: bool = True,
                source=None, threads: int = 1) -> Store:
    """Build the token store of the MEDS dataset `meds_dir` into `out_dir` and open it.

    Streams one MEDS shard at a time (two passes: counts, then arrays written into memory-mapped
    `.npy` files), so the dataset may be larger than RAM. `code_level` is "raw" (receipt codes) or
    "mapped" (a code's coarsest parent in metadata/codes.parquet, e.g. ICD10//E11, YJ//3969);
    tokens seen fewer than `min_count` times in the train split become [UNK]. `threads` shards are read
    and written at once (Arrow, numpy and order_events release the GIL; shards fill disjoint rows), so
    memory grows with `threads` shards; the files do not depend on it.
    """
    build(Path(meds_dir), Path(out_dir), min_count=min_count, code_level=code_level, overwrite=overwrite,
          source=source, threads=threads)
    return Store(out_dir)


def _map(fn, items, threads: int, desc: str) -> list:
    """[fn(x) for x in items] on `threads` threads, in order, with a progress bar."""
    items = list(items)
    bar = _progress(range(len(items)), desc)
    if threads <= 1 or len(items) <= 1:
        out = []
        for x in items:
            out.append(fn(x))
            bar.update(1)
        bar.close()
        return out
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(fn, x) for x in items]
        out = []
        for f in futures:
            out.append(f.result())
            bar.update(1)
    bar.close()
    return out


def build(meds_dir: Path, out_dir: Path, min_count: int, code_level: str, overwrite: bool, source=None,
          threads: int = 1) -> None:
    """Write the store (see build_store) without opening it."""
    if code_level not in CODE_LEVELS:
        raise ClaimsfmError(f"--code-level must be one of {', '.join(CODE_LEVELS)}, got {code_level!r}")
    if min_count < 1:
        raise ClaimsfmError(f"--min-count must be >= 1, got {min_count}")
    paths = _shard_paths(meds_dir)
    parents = _load_parents(meds_dir)
    if code_level == "mapped" and not parents:
        raise ClaimsfmError(f"{meds_dir / 'metadata' / 'codes.parquet'}: --code-level mapped needs parent codes "
                            "(ingest with --masters)")
    splits = _Splits(meds_dir)
    scans = _map(lambda p: _scan(p, splits), paths, threads, "store: counting")
    code_counts, train_counts, first_month, last_month = _merge_scans(scans)
    code_names = sorted(code_counts)
    vocab = _make_vocab(train_counts, parents, code_level, min_count)
    tokens = _token_tables(code_names, vocab, parents, code_level)
    rows, offsets = _subject_order(scans)
    n, n_events = len(offsets) - 1, int(offsets[-1])
    try:
        with atomic_dir(out_dir, overwrite=overwrite) as tmp:
            mm = {}
            for name, (dtype, kind) in F.ARRAYS.items():
                size = {"subjects": n, "offsets": n + 1, "events": n_events}[kind]
                mm[name] = np.lib.format.open_memmap(tmp / f"{name}.npy", mode="w+", dtype=dtype, shape=(size,))
            mm["offsets"][:] = offsets
            code_index = pa.array(code_names, pa.string())

            def write(sr, mm):
                _write_shard(mm, sr[0], sr[1], code_index, tokens)
                _release(mm)

            _map(functools.partial(write, mm=mm), list(zip(scans, rows)), threads, "store: writing")
            for arr in mm.values():
                arr.flush()
            del mm
            write_json_files(tmp, vocab, code_names, parents, code_counts, n, n_events, code_level, min_count,
                             (first_month, last_month), str(source or meds_dir))
    except FileExistsError:
        raise ClaimsfmError(f"{out_dir}: already exists (pass overwrite=True / --overwrite)") from None
