"""Out-of-core UKE ingest: memory bounded by `--memory-limit`, not by the corpus (internals.md §1b).

Stages (each timed, each with a progress bar):
  parse      C++ parser on --threads. As each file is merged (in input order), every new patient key
             gets its subject_id (HMAC-SHA256 in C++ for ASCII keys, csrc/sha256.hpp; pseudo.py's
             NFKC rules through a callback for the others) and every event goes, as a 16-byte record
             (csrc/spill.hpp SpillRecord, after a context record for each run of one key and facility),
             into the spill file of its subject_id range: equal ranges of [0, 2^63), so the files are
             even (subject_id is a keyed hash) and file order is subject_id order. There are more files
             than buckets (SPILL_FILES_PER_BUCKET), since the event count is known only afterwards; then
             facilities get their labels.
  sort+write each bucket (consecutive spill files holding about events_per_bucket events) on its own:
             the once-only rules and the total sort of events.py, then the rows go to
             shards.ShardWriter, which cuts the same shards write_data cuts from the whole table.
             Buckets are prepared on --threads worker threads, written in order.
The in-memory path (pipeline._read_uke + meds.write_data) is the reference twin: the same input and
salt give byte-identical files (tests/ingest/test_spill.py).
"""
from __future__ import annotations

import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from claimsfm.errors import ClaimsfmError
from claimsfm.ingest import events, meds, shards

# The numpy twin of csrc SpillRow (28 bytes, little-endian): a spill file's rows once decoded. The pad is a field
# so that numpy copies whole rows (a dtype with gaps may leave them uninitialised in a copy).
SPILL_DTYPE = np.dtype({"names": ["key", "day", "code", "facility", "dx_start", "value", "suspected", "pad"],
                        "formats": ["<i4", "<i4", "<i4", "<i4", "<i4", "<f4", "u1", "V3"],
                        "offsets": [0, 4, 8, 12, 16, 20, 24, 25], "itemsize": 28})
# On disk: 16-byte records (csrc/spill.hpp SpillRecord), seen here as 4 little-endian int32 words. A context
# record (word 1 == SPILL_CONTEXT) carries the key and facility of the event records after it; an event record
# is day, code | suspected << 31, dx_start, value bits.
SPILL_RECORD = np.dtype("<i4")
SPILL_RECORD_WORDS = 4
SPILL_CONTEXT = -1  # 0xFFFFFFFF as int32
# Bytes of RAM reserved per raw event of a bucket in flight (the spill row, the EventTable, the sort
# permutations, the store rows). Conservative: on the bulk corpus the measured peak stays near half of
# --memory-limit (0.4 GB: 485 MB, 2 GB: 528 MB at the 1 GiB default, 2 threads).
BYTES_PER_EVENT = 400
MEMORY_FRACTION = 0.125   # default --memory-limit: this fraction of the available RAM ...
MAX_DEFAULT_MEMORY = 1 << 30  # ... up to 1 GiB: larger buckets sort no faster, they only hold more RAM
MIN_MEMORY = 64 << 20     # below this the per-bucket overhead dominates
BASE_MEMORY = 160 << 20   # interpreter, numpy, pyarrow, the key table: not available to buckets
MAX_BUCKETS = 4096        # spill files open at once during the parse (7 KiB of buffer each)
MIN_BUCKET_EVENTS = 1 << 16  # below this a bucket's fixed costs (files, per-call tables) dominate: a limit under
#                              BASE_MEMORY gave 4096 buckets of ~3k events and a 5x slower sort+write
MAX_BUCKET_EVENTS = 1 << 18  # above this a bucket sorts no faster and only holds more RAM, so a larger --memory-limit
#                              is a ceiling, not a target: at the 1 GiB default (654k-event buckets) the sort+write
#                              heap grew with the number of buckets (glibc fragmentation: 0.4 -> 2 GB of bulk UKE
#                              +17%), at 256k events it stays flat (measured in docs/internals.md)
SPILL_FILES_PER_BUCKET = 4  # spill files per bucket of the event count guessed from the input size, so that
#                             buckets can be cut close to events_per_bucket once the count is known
BYTES_PER_RAW_EVENT = 24  # the guess of the input bytes per parsed event (also csrc/uke_files.cpp reserve_events):
#                           low, so that the guess errs towards more, smaller spill files
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_memory(text: str | int | None) -> int:
    """`--memory-limit` ("1.5G", "800M", "2GB", bytes; None/"": MEMORY_FRACTION of the available RAM, at most
    MAX_DEFAULT_MEMORY) -> bytes."""
    if text is None or text == "" or text == 0:
        return max(MIN_MEMORY, min(MAX_DEFAULT_MEMORY, int(available_memory() * MEMORY_FRACTION)))
    if isinstance(text, int):
        value = text
    else:
        m = _SIZE.match(str(text))
        if not m:
            raise ClaimsfmError(f"--memory-limit: '{text}' is not a size such as 2G, 1500M or 800MB")
        value = int(float(m.group(1)) * (1 << (10 * " kmgt".index(m.group(2).lower() or " "))))
    if value < MIN_MEMORY:
        raise ClaimsfmError(f"--memory-limit: {text} is below the minimum of {MIN_MEMORY >> 20}M")
    return value


def available_memory() -> int:
    """MemAvailable from /proc/meminfo (bytes), else the physical memory."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


MMAP_THRESHOLD = 32 << 20  # glibc's largest dynamic value, fixed: a bucket's arrays (< 32 MiB) come from the heap
M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, M_ARENA_MAX = -3, -1, -8  # mallopt parameters (malloc.h)
# Measured (2 threads, load ~3; user / system CPU s, peak RSS at 0.4 GB -> 2 GB of bulk UKE):
#   8 MiB threshold + malloc_trim after each bucket (session 3): 27.3 / 15.5 s, 500 -> 547 MB
#   32 MiB, no per-bucket trim, one arena:                       30.1 /  6.8 s, 574 -> 607 MB (+6%)
#   default threshold, no per-bucket trim, one arena:            28.9 /  9.8 s, 516 -> 571 MB (+11%)


def configure_malloc() -> None:
    """Let the buckets reuse each other's memory instead of faulting in fresh pages: every bucket allocates
    and frees the same few sizes, so glibc keeps them in one arena (M_ARENA_MAX 1: the worker threads do not
    grow arenas of their own, whose free holes stayed resident and grew with the number of buckets) and does
    not trim the heap after each free (M_TRIM_THRESHOLD); blocks of MMAP_THRESHOLD and more are still unmapped
    when freed. Process-wide; no-op off glibc."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)  # a fixed value turns the dynamic one off
        libc.mallopt(M_TRIM_THRESHOLD, 8 * MMAP_THRESHOLD)
        libc.mallopt(M_ARENA_MAX, 1)
    except (OSError, AttributeError):
        pass


def trim_heap() -> None:
    """Give the free pages inside glibc's heaps back to the OS (malloc_trim): the parser's key strings and
    each bucket's small arrays leave free holes that otherwise stay resident. No-op off glibc."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def events_per_bucket(memory: int, workers: int, shard_rows: int = 0, n_events: int = 0, cap: bool = True) -> int:
    """Events a bucket may hold so that `workers` buckets at a time fit in `memory` beside the MEDS shards being
    converted and written (of up to `shard_rows` rows, shards.shard_memory; `workers` is --threads + 1), at most
    MAX_BUCKET_EVENTS (unless not `cap`). Never below MIN_BUCKET_EVENTS: a limit too small for that is exceeded
    rather than met slowly."""
    pending = shards.shard_memory(min(shard_rows, n_events), workers - 1)
    fits = (memory - BASE_MEMORY - pending) // (BYTES_PER_EVENT * max(1, workers))
    return int(max(MIN_BUCKET_EVENTS, min(MAX_BUCKET_EVENTS, fits) if cap else fits))


def bucket_count(n_events: int, memory: int, workers: int, shard_rows: int = 0, cap: bool = True) -> int:
    """How many buckets of at most events_per_bucket events hold n_events (at most MAX_BUCKETS). Not rounded
    to a power of two, so a bucket holds about the same number of events whatever the corpus size."""
    per_bucket = events_per_bucket(memory, workers, shard_rows, n_events, cap)
    return int(min(MAX_BUCKETS, max(1, -(-n_events // per_bucket))))


def spill_file_count(input_bytes: int, memory: int, workers: int, shard_rows: int = 0) -> int:
    """Spill files for the parse to scatter into, before the event count is known: SPILL_FILES_PER_BUCKET per
    bucket of the count guessed from the input size (BYTES_PER_RAW_EVENT), at most MAX_BUCKETS. The buckets
    here are those the memory limit allows (not capped at MAX_BUCKET_EVENTS): more, smaller files made more,
    smaller spill writes (4 GB of bulk UKE: 2,400 files of 13 KiB buffers, +4 system CPU-s), while the
    sort+write buckets, runs of consecutive files, are cut at the cap anyway."""
    guess = bucket_count(input_bytes // BYTES_PER_RAW_EVENT, memory, workers, shard_rows, cap=False)
    return int(min(MAX_BUCKETS, SPILL_FILES_PER_BUCKET * guess))


RESERVED_FDS = 64  # descriptors kept free beside the spill files: the input files being read, Python's own


def file_budget() -> int:
    """Spill files the parse may hold open at once: the soft RLIMIT_NOFILE less RESERVED_FDS, after raising the
    soft limit towards the hard one (a common default of 1,024 would cap a corpus of a few GB). At most
    MAX_BUCKETS; at least 1 (fewer files than wanted make larger buckets, not a failure)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = MAX_BUCKETS + RESERVED_FDS
    if soft != resource.RLIM_INFINITY and soft < want:
        raised = want if hard == resource.RLIM_INFINITY else min(want, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return MAX_BUCKETS
    return int(max(1, min(MAX_BUCKETS, soft - RESERVED_FDS)))


def group_files(rows, per_bucket: int) -> list[list[int]]:
    """Buckets as runs of consecutive spill files (rows: the events in each) of at most `per_bucket` events,
    except a single file that holds more; empty files join their neighbours. Consecutive files are
    consecutive subject_id ranges, so bucket order stays subject_id order."""
    groups: list[list[int]] = []
    held = 0
    for f, n in enumerate(np.asarray(rows, np.int64).tolist()):
        if not groups or (n > 0 and held > 0 and held + n > per_bucket):
            groups.append([])
            held = 0
        groups[-1].append(f)
        held += n
    return groups


def bucket_of(subject_ids: np.ndarray, count: int) -> np.ndarray:
    """(n,) uint16 bucket of each subject_id in [0, 2^63): `count` equal ranges, so bucket order is id order
    (the numpy twin of csrc/spill.hpp bucket_of_subject)."""
    width = -(-(1 << 63) // count)  # fits int64 for count >= 2
    return (subject_ids // width).astype(np.uint16) if count > 1 else np.zeros(len(subject_ids), np.uint16)


class Stages:
    """Wall seconds per stage, in order (the summary's `stages` and the CLI's timing table), their CPU
    seconds, and the process's peak RSS in MB when each stage ended (`peak_mb`: which stage sets the peak)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}  # CPU seconds of all threads: what a shared machine does not distort
        self.peak_mb: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - t0, 3)
            self.cpu[name] = round(self.cpu.get(name, 0.0) + time.process_time() - c0, 3)
            self.peak_mb[name] = peak_rss_mb()


def peak_rss_mb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def blob_keys(blob: bytes, offsets: np.ndarray):
    """The patient keys of a spilling parse_uke (one bytes object and (n+1,) offsets), one at a time."""
    view = memoryview(blob)
    bounds = offsets.tolist()
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        yield bytes(view[lo:hi])


def bar(total: int, desc: str, unit: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, disable=not enabled, leave=False)


def with_byte_bar(fn, total: int, desc: str, enabled: bool):
    """fn(progress) on a worker thread (a C++ call that releases the GIL and advances the native Progress
    counter), while this thread draws a byte progress bar; fn's result, or its exception re-raised here."""
    import threading

    from claimsfm.native import native

    progress = native().Progress()
    result: dict = {}

    def work():
        try:
            result["value"] = fn(progress)
        except BaseException as exc:  # re-raised on the caller's thread
            result["error"] = exc

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    with bar(total, desc, "B", enabled) as pb:
        while worker.is_alive():
            worker.join(0.2)
            pb.update(progress.value - pb.n)
        pb.update(progress.value - pb.n)
    if "error" in result:
        raise result["error"]
    return result["value"]


def encode_spill(rows: np.ndarray) -> np.ndarray:
    """The records of one spill file holding `rows` (SPILL_DTYPE, in file order): the numpy twin of
    csrc/spill.hpp encode_spill (a context record wherever the key or facility changes, and first)."""
    n = len(rows)
    key, fac = rows["key"], rows["facility"]
    new = np.ones(n, bool)
    new[1:] = (key[1:] != key[:-1]) | (fac[1:] != fac[:-1])
    out = np.zeros((n + int(new.sum()), SPILL_RECORD_WORDS), SPILL_RECORD)
    at = np.arange(n) + np.cumsum(new)  # each event's record; its context record (if any) just before it
    ctx = at[new] - 1
    out[ctx, 0], out[ctx, 1], out[ctx, 2] = key[new], SPILL_CONTEXT, fac[new]
    word1 = rows["code"].astype(np.uint32) | (rows["suspected"].astype(np.uint32) << np.uint32(31))
    out[at, 0], out[at, 1], out[at, 2] = rows["day"], word1.view(np.int32), rows["dx_start"]
    out[at, 3] = np.ascontiguousarray(rows["value"]).view(np.int32)
    return out


def decode_spill(records: np.ndarray, name: str = "spill file") -> np.ndarray:
    """(n, 4) int32 records of one file -> its rows (SPILL_DTYPE): the numpy twin of csrc SpillDecoder."""
    records = records.reshape(-1, SPILL_RECORD_WORDS)
    ctx = records[:, 1] == SPILL_CONTEXT
    if len(records) and not ctx[0]:
        raise ClaimsfmError(f"{name}: an event record before any context record")
    last = np.maximum.accumulate(np.where(ctx, np.arange(len(records)), 0))[~ctx]
    ev = records[~ctx]
    word1 = ev[:, 1].view(np.uint32)
    rows = np.zeros(len(ev), SPILL_DTYPE)
    rows["key"], rows["facility"] = records[last, 0], records[last, 2]
    rows["day"], rows["dx_start"] = ev[:, 0], ev[:, 2]
    rows["code"] = (word1 & np.uint32(0x7FFFFFFF)).astype(np.int32)
    rows["suspected"] = (word1 >> np.uint32(31)).astype(np.uint8)
    rows["value"] = np.ascontiguousarray(ev[:, 3]).view(np.float32)
    return rows


def read_spill(paths: list[Path]) -> np.ndarray:
    """The rows of spill files, in order (each decoded on its own: a context never crosses files)."""
    parts = []
    for p in paths:
        words = np.fromfile(p, dtype=SPILL_RECORD)
        if len(words) % SPILL_RECORD_WORDS:
            raise ClaimsfmError(f"{p}: not a whole number of spill records")
        parts.append(decode_spill(words, str(p)))
    return np.concatenate(parts) if parts else np.zeros(0, SPILL_DTYPE)


def partition_numpy(spill: Path, folder: Path, bucket_of_key: np.ndarray, n_buckets: int) -> list[Path]:
    """Scatter a single spill file (parse_uke's `spill` mode) into bucket files by a per-key bucket table, keeping
    input order inside each: the numpy twin of the parser's own scatter (`buckets` mode; tests compare the files).
    Reads the whole file (a test twin, for small corpora)."""
    paths = [folder / f"bucket{b:04d}.bin" for b in range(n_buckets)]
    rows = read_spill([spill])
    bucket = bucket_of_key[rows["key"]]
    order = np.argsort(bucket, kind="stable")  # uint16: numpy's radix sort
    rows = rows[order]
    bounds = np.searchsorted(bucket[order], np.arange(n_buckets + 1))
    for b, path in enumerate(paths):
        encode_spill(rows[bounds[b]:bounds[b + 1]]).tofile(path)
    spill.unlink()
    return paths


def bucket_table(paths: list[Path], key_sid: np.ndarray, code_names: list, facility_names: list) -> events.EventTable:
    """A bucket (its spill files, in order) -> its de-duplicated, sorted EventTable (as events.from_uke does for
    the whole corpus), in C++ with the GIL released (csrc/bucket_events.cpp); `bucket_table_numpy` is its twin."""
    from claimsfm.native import native

    rank, is_dx, once = events._name_tables(code_names)
    rule = is_dx.astype(np.uint8) | (once.astype(np.uint8) << 1)
    try:
        c = native().bucket_events([str(p) for p in paths], key_sid, rank, rule, events.code_ranks(facility_names))
    except RuntimeError as exc:  # an unreadable or damaged spill file
        raise ClaimsfmError(f"ingest: {exc}") from None
    for path in paths:
        path.unlink()
    return events.EventTable(c["subject"], c["time_us"], c["code"], code_names, c["value"], c["facility"],
                             facility_names, c["suspected"].view(bool), c["dx_start_us"])


def bucket_table_numpy(paths: list[Path], key_sid: np.ndarray, code_names: list,
                       facility_names: list) -> events.EventTable:
    """The numpy twin of `bucket_table` (events.raw_table: first_observations, then EventTable.sorted)."""
    rows = read_spill(paths)
    for path in paths:
        path.unlink()
    return events.raw_table(key_sid, rows["key"], rows["day"], rows["code"], code_names, rows["value"],
                            rows["facility"], facility_names, rows["suspected"], rows["dx_start"])


class Totals:
    """What the summary and metadata need from the whole table, summed over buckets."""

    def __init__(self, n_codes: int, max_subjects: int = 0):
        self.per_code = np.zeros(n_codes, np.int64)
        # The sorted subject_ids, in one array for the whole corpus filled bucket by bucket: a small array kept per
        # bucket lived to the end between the buckets' large arrays and pinned holes in the heap.
        self.subjects = np.empty(max_subjects, np.int64)
        self.n_subjects = 0
        self.events = 0
        self.unused: dict = {"static_rows_not_tokens": {}, "text_values": 0, "events_with_time_of_day": 0}

    def part(self, t: events.EventTable) -> tuple:
        """What `merge` adds for one piece (reads no state: worker threads call it)."""
        s = t.subject  # sorted: the first row of each subject
        return (len(t), np.bincount(t.code, minlength=len(self.per_code)), s[events.subject_starts(s)],
                meds.unused_by_store(t))

    def merge(self, part: tuple) -> None:
        n, per_code, subjects, u = part
        self.events += n
        self.per_code += per_code
        k = len(subjects)
        if self.n_subjects + k > len(self.subjects):  # not with max_subjects = the number of patient keys
            grown = np.empty(2 * (self.n_subjects + k), np.int64)
            grown[:self.n_subjects] = self.subjects[:self.n_subjects]
            self.subjects = grown
        self.subjects[self.n_subjects:self.n_subjects + k] = subjects
        self.n_subjects += k
        for code, count in u["static_rows_not_tokens"].items():
            self.unused["static_rows_not_tokens"][code] = self.unused["static_rows_not_tokens"].get(code, 0) + count
        for name in ("text_values", "events_with_time_of_day"):
            self.unused[name] += u[name]

    def all_subjects(self) -> np.ndarray:
        return self.subjects[:self.n_subjects]

    def unused_by_store(self) -> dict:
        return {**self.unused, "static_rows_not_tokens": dict(sorted(self.unused["static_rows_not_tokens"].items()))}


def sort_and_write(buckets: list[list[Path]], key_sid, code_names, facility_names, writer: shards.ShardWriter,
                   store, threads: int, progress: bool) -> Totals:
    """Prepare buckets (each its spill files; and their token store rows, with a data.stream.StoreWriter `store`,
    else None) on `threads` threads (numpy, Arrow and order_events release the GIL); write them in order."""

    totals = Totals(len(code_names), len(key_sid))

    def prepare(paths):  # all of a bucket's work that does not depend on the buckets before it
        t = bucket_table(paths, key_sid, code_names, facility_names)
        rows = store.prepare(t) if store is not None else None  # first: its temporaries are gone before the
        part = totals.part(t)                                    # split pieces copy the bucket
        return writer.pieces(t), rows, part
    # Buckets submitted and not yet written: one per thread (while the main thread writes the oldest, the others
    # prepare theirs and its own worker waits; parquet's writer thread and the appends keep the cores busy). One
    # more in flight, as until session 10, raised the 2 GB peak by 16 MB in six pairs (a third bucket in the heap)
    # for no measurable wall time; a single thread keeps two, so that preparing and writing overlap. (The limit is
    # still divided by threads + 1, the `workers` of events_per_bucket, which also sizes the spill files: the bulk
    # corpus's buckets of ~174k events were measured with it.)
    in_flight = max(2, threads)
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool, bar(len(buckets), "sort+write", "bucket",
                                                                       progress) as pb:
        pending = []
        for paths in buckets:
            pending.append(pool.submit(prepare, paths))
            if len(pending) >= in_flight:
                _write_one(*pending.pop(0).result(), writer, store, totals, pb)
        for future in pending:
            _write_one(*future.result(), writer, store, totals, pb)
    return totals


def _write_one(pieces: list, rows, part: tuple, writer: shards.ShardWriter, store, totals: Totals, pb) -> None:
    writer.add_pieces(pieces)
    if store is not None:
        store.append(rows)
    totals.merge(part)
    pb.update(1)


def output_checksums(root: Path) -> dict:
    """sha256 of every file under `root` (path -> hex), dataset.json without its creation time and format.json
    without its source path: what the out-of-core and in-memory ingests must agree on (tests, benchmarks)."""
    import hashlib
    import json

    out = {}
    for f in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        data = f.read_bytes()
        if f.name in ("dataset.json", "format.json"):
            meta = json.loads(data)
            meta.pop("created_at" if f.name == "dataset.json" else "source")
            data = json.dumps(meta, sort_keys=True).encode()
        out[str(f.relative_to(root))] = hashlib.sha256(data).hexdigest()
    return out


def spill_folder(work: Path) -> Path:
    folder = Path(work) / ".spill"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def remove_spill(work: Path) -> None:
    """Delete the spill folder: only the files written there (events.bin, bucket*.bin, shards.PendingRows's
    pending-*.bin)."""
    folder = Path(work) / ".spill"
    if not folder.is_dir():
        return
    for f in folder.iterdir():
        if (f.name == "events.bin" or f.name.startswith(("bucket", "pending-"))) and f.suffix == ".bin" and f.is_file():
            f.unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        pass  # something else is in there: not ours to delete
