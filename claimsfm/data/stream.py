"""The token store written while the out-of-core ingest writes its buckets (claimsfm.ingest.spill).

The streaming twin of `build.build`, which reads the MEDS shards back twice: buckets arrive as sorted
EventTables over increasing subject_id ranges, which is the store's subject order, so every array is
appended to its `.npy` file, each event's code as its code's rank among the parser's codes. What needs
the whole dataset waits for `close()`: the vocabulary (train counts) and the token array, written in one
chunked pass; the final code ids are the codes seen at all, in sorted order, which are the ranks already
written unless some parser code has no events (then the same pass rewrites the codes). Memory is
bounded by a bucket and a chunk; the files equal `build.build`'s byte for byte (tests/ingest/test_spill.py).
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np

from claimsfm.data import format as F
from claimsfm.data.build import _load_parents, _make_vocab, _token_tables, write_json_files
from claimsfm.errors import ClaimsfmError
from claimsfm.native import native
from claimsfm.splits import TRAIN

HEADER = 128           # bytes of a 1-D .npy header (version 1.0) for any length below 10^18
CHUNK = 1 << 20        # events per step of the final pass (4 MiB a column: at 4 Mi events its temporaries on two
#                        threads raised the heap by 130 MB, and the store stage set the ingest's peak RSS at 2 GB)
_US_PER_DAY = 86_400_000_000
_NO_TIME = np.iinfo(np.int64).min


def npy_header(dtype, n: int) -> bytes:
    """The header np.lib.format.open_memmap writes for shape (n,)."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                               "fortran_order": False, "shape": (n,)})
    return buf.getvalue()


def _code_ids(names: list, wanted: tuple) -> list[int]:
    index = {n: i for i, n in enumerate(names)}
    return [index.get(w, -1) for w in wanted]


class StoreWriter:
    """`prepare(t)` (any thread: numpy and order_events release the GIL), then `append(...)` in subject order."""

    def __init__(self, folder: Path, code_names: list, code_rank: np.ndarray, facility_rank: np.ndarray, splits):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.code_names, self.code_rank, self.fac_rank, self.splits = code_names, code_rank, facility_rank, splits
        self.birth, self.death, self.inpatient = _code_ids(code_names, (F.BIRTH, F.DEATH, F.INPATIENT))
        self.sex = list(zip(_code_ids(code_names, tuple(F.SEX_CODES)), F.SEX_CODES.values()))
        self.files = {}
        for name in F.ARRAYS:
            f = open(self.folder / f"{name}.npy", "wb")
            f.seek(HEADER)
            self.files[name] = f
        self.files["offsets"].write(np.zeros(1, np.int64).tobytes())
        self.n_subjects = self.n_events = 0
        self.train = np.zeros(2 * len(code_names), np.int64)  # (code rank, suspected) -> train events
        self.months: list[int] = []

    def prepare(self, t) -> dict:
        """One bucket (a sorted EventTable of whole subjects) -> the rows to append, in C++ with the GIL released
        (csrc/store.cpp store_rows); `prepare_numpy` is its twin."""
        r = native().store_rows(t.subject, t.time_us, t.code, t.facility, t.suspected.view(np.uint8), t.value,
                                self.code_rank, self.fac_rank, self.birth, self.death, self.inpatient, self.sex,
                                F.FLAG_SUSPECTED, F.FLAG_INPATIENT)
        r["split"] = self.splits.of(r["subject_ids"]).astype(np.uint8)
        pair = (r["code"] << 1) | ((r["flags"] & F.FLAG_SUSPECTED) != 0)  # int32: (code rank, suspected)
        r["train"] = np.bincount(pair[np.repeat(r["split"] == TRAIN, r["counts"])], minlength=len(self.train))
        lo, hi = r.pop("day_range")
        r["months"] = tuple(F.month_of_day([lo, hi])) if hi >= lo else None
        return r

    def prepare_numpy(self, t) -> dict:
        """The numpy twin of `prepare` (tests/ingest/test_spill.py compares them)."""
        s = t.subject
        new = np.r_[True, s[1:] != s[:-1]] if len(s) else np.zeros(0, bool)
        ids = s[new]
        inverse = np.cumsum(new) - 1
        m = len(ids)
        dated = t.time_us != _NO_TIME
        day_all = np.where(dated, t.time_us // _US_PER_DAY, 0).astype(np.int32)
        ev = dated & (t.code != self.birth)
        sid, day, code = inverse[ev], day_all[ev], t.code[ev]
        fac = t.facility[ev]
        fac = np.where(fac >= 0, self.fac_rank[np.maximum(fac, 0)] if len(self.fac_rank) else 0, -1).astype(np.int32)
        rank = self.code_rank[code].astype(np.int32)  # what order_events compares, and the code written
        o, visit, inp = native().order_events(sid.astype(np.int64), day, fac, rank,
                                              (code == self.inpatient).astype(np.uint8), m)
        susp = t.suspected[ev]
        flags = susp.astype(np.uint8) * F.FLAG_SUSPECTED | inp.astype(np.uint8) * F.FLAG_INPATIENT
        split = self.splits.of(ids).astype(np.uint8)
        train = ev & (split[inverse] == TRAIN)
        out = {"subject_ids": ids, "split": split, "sex": np.zeros(m, np.int8),
               "counts": np.bincount(sid, minlength=m).astype(np.int64),
               "code": rank[o], "day": day[o], "visit": visit[o], "flags": flags[o],
               "value": t.value[ev][o].astype(np.float32),
               "train": np.bincount(self.code_rank[t.code[train]] * 2 + t.suspected[train], minlength=len(self.train)),
               "months": tuple(F.month_of_day([day.min(), day.max()])) if len(day) else None}  # monotone in day
        for name, cid in (("birth_day", self.birth), ("death_day", self.death)):
            rows = (t.code == cid) & dated
            first = np.full(m, np.iinfo(np.int32).max, np.int32)
            np.minimum.at(first, inverse[rows], day_all[rows])
            out[name] = np.where(first == np.iinfo(np.int32).max, -1, first).astype(np.int32)
        for cid, val in self.sex:
            out["sex"][inverse[t.code == cid]] = val
        return out

    def append(self, p: dict) -> None:
        def put(name: str, values: np.ndarray, dtype) -> None:  # the array's own buffer when it has the dtype
            self.files[name].write(np.ascontiguousarray(values, dtype).data)

        for name in ("subject_ids", "split", "birth_day", "sex", "death_day"):
            put(name, p[name], F.ARRAYS[name][0])
        put("offsets", self.n_events + np.cumsum(p["counts"]), np.int64)
        for name in ("code", "day", "visit", "flags", "value"):
            put(name, p[name], F.EVENT_ARRAYS[name][0])
        self.n_subjects += len(p["subject_ids"])
        self.n_events += int(p["counts"].sum())
        self.train += p["train"]
        if p["months"] is not None:
            self.months += [int(p["months"][0]), int(p["months"][1])]

    def close(self, per_code: np.ndarray, meds_dir: Path, min_count: int, code_level: str, source: str,
              progress: bool = False, threads: int = 1) -> None:
        """Vocabulary, final code ids and tokens, .npy headers, vocab/codes/format.json.
        `per_code` (n_codes,) rows per parser code over all splits; `meds_dir` holds metadata/codes.parquet."""
        parents = _load_parents(meds_dir)
        if code_level == "mapped" and not parents:
            raise ClaimsfmError(f"{meds_dir / 'metadata' / 'codes.parquet'}: --code-level mapped needs parent codes "
                                "(ingest with --masters)")
        seen = np.flatnonzero(per_code > 0)
        names = [self.code_names[i] for i in seen.tolist()]
        code_names = sorted(names)
        by_rank = [""] * len(self.code_names)  # parser code names in rank order (the ranks written as codes)
        for name, r in zip(self.code_names, self.code_rank.tolist()):
            by_rank[r] = name
        final = None  # every parser code has events: its rank is its final id, nothing to rewrite
        if len(seen) < len(self.code_names):
            index = {name: i for i, name in enumerate(code_names)}
            final = np.full(len(self.code_names), -1, np.int32)  # rank -> final code id
            final[self.code_rank[seen]] = np.fromiter((index[name] for name in names), np.int32, len(names))
        nonzero = np.flatnonzero(self.train).tolist()  # plain ints: no numpy scalar per code
        counts = self.train[nonzero].tolist()
        train = Counter({(by_rank[c >> 1], bool(c & 1)): k for c, k in zip(nonzero, counts)})
        vocab = _make_vocab(train, parents, code_level, min_count)
        plain, suspected = _token_tables(code_names, vocab, parents, code_level)
        self._final_pass(final, plain, suspected, progress, threads)
        lengths = {"subjects": self.n_subjects, "offsets": self.n_subjects + 1, "events": self.n_events}
        for name, (dtype, kind) in F.ARRAYS.items():
            f = self.files.pop(name)
            header = npy_header(dtype, lengths[kind])
            if len(header) != HEADER:  # not for any realistic length; refuse rather than write a bad file
                raise ClaimsfmError(f"{self.folder}: {name}.npy header is {len(header)} bytes, not {HEADER}")
            f.seek(0)
            f.write(header)
            f.close()
        counts = {self.code_names[i]: int(per_code[i]) for i in seen}
        write_json_files(self.folder, vocab, code_names, parents, counts, self.n_subjects, self.n_events,
                         code_level, min_count, (min(self.months, default=None), max(self.months, default=None)),
                         source)

    def _final_pass(self, final: np.ndarray | None, plain: np.ndarray, suspected: np.ndarray, progress: bool,
                    threads: int = 1) -> None:
        """The token of each event (and with `final`, code ranks -> final code ids), CHUNK events at a time on
        `threads` threads (chunks are independent: positional reads and writes, numpy and the I/O release the
        GIL)."""
        from concurrent.futures import ThreadPoolExecutor

        from tqdm import tqdm

        for name in ("code", "flags", "token"):
            self.files[name].flush()
        token_fd = self.files["token"].fileno()
        with (open(self.folder / "code.npy", "rb" if final is None else "r+b") as code_f,
              open(self.folder / "flags.npy", "rb") as flag_f):
            code_fd, flag_fd = code_f.fileno(), flag_f.fileno()

            def one(lo: int) -> None:
                k = min(CHUNK, self.n_events - lo)
                code = np.frombuffer(_pread(code_fd, 4 * k, HEADER + 4 * lo), np.int32)
                susp = (np.frombuffer(_pread(flag_fd, k, HEADER + lo), np.uint8) & F.FLAG_SUSPECTED) != 0
                if final is not None:
                    code = final[code]
                    _pwrite(code_fd, code, HEADER + 4 * lo)
                _pwrite(token_fd, np.where(susp, suspected[code], plain[code]).astype(np.int32, copy=False),
                        HEADER + 4 * lo)

            chunks = range(0, self.n_events, CHUNK)
            with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
                for _ in tqdm(pool.map(one, chunks), total=len(chunks), desc="store: tokens", unit="chunk",
                              disable=not progress, leave=False):
                    pass

    def abort(self) -> None:
        for f in self.files.values():
            f.close()
        self.files = {}


def _pread(fd: int, n: int, at: int) -> bytes:
    data = os.pread(fd, n, at)
    if len(data) != n:
        raise ClaimsfmError(f"store: short read at byte {at} (the store folder changed during ingest?)")
    return data


def _pwrite(fd: int, data, at: int) -> None:
    """All of `data` (bytes or a contiguous array, written from its own buffer) at byte `at`."""
    view = memoryview(data).cast("B")
    while view:
        n = os.pwrite(fd, view, at)
        view, at = view[n:], at + n
