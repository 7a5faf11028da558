"""`claimsfm ingest`: UKE / CSV / MEDS input -> MEDS dataset + token store, built atomically.

`run(config)` builds everything in a temporary folder beside `--out` and renames it into place,
so a failed run leaves nothing half-written. `write_dataset` is the MEDS part alone (tests use it
without the token store).
"""
from __future__ import annotations

import functools
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from claimsfm.data.format import CODE_LEVELS
from claimsfm.errors import ClaimsfmError, located
from claimsfm.ingest import csvfmt, events, masters, meds, pseudo, shards, spill, truth
from claimsfm.ingest.inputs import Inputs, find_inputs, fingerprint, same_dataset
from claimsfm.io import read_parquet, write_run_config, write_text
from claimsfm.outdir import build

FORMATS = ("uke", "meds", "csv")
LINK_BY = ("chart", "insurer")
ON_ERROR = ("raise", "skip")


@dataclass(frozen=True)
class IngestConfig:
    inputs: list[Path]
    out: Path
    format: str = "uke"
    masters: Path | None = None
    threads: int = 0              # 0 = all cores
    salt_file: Path | None = None
    link_by: str = "chart"
    on_error: str = "raise"
    overwrite: bool = False
    min_count: int = 5
    code_level: str = "raw"
    shard_rows: int = 1_000_000
    progress: bool = True
    name: str | None = None       # dataset.json dataset_name (default: the input's own, else the --out name)
    time_range: str = meds.TIME_RANGE  # --format meds: years a `time` may fall in (outside: an error)
    memory_limit: str | None = None  # --memory-limit for the out-of-core UKE ingest (None: spill.MEMORY_FRACTION)

    def check(self) -> None:
        for flag, value, allowed in (("--format", self.format, FORMATS), ("--link-by", self.link_by, LINK_BY),
                                     ("--on-error", self.on_error, ON_ERROR),
                                     ("--code-level", self.code_level, CODE_LEVELS)):
            if value not in allowed:
                raise ClaimsfmError(f"{flag}: '{value}' is not one of {', '.join(allowed)}")
        if self.threads < 0:
            raise ClaimsfmError("--threads: must be >= 0 (0 = all cores)")
        if self.min_count < 1:
            raise ClaimsfmError("--min-count: must be >= 1")
        if self.shard_rows < 1:
            raise ClaimsfmError("--shard-rows: must be >= 1")
        spill.parse_memory(self.memory_limit)

    def n_threads(self) -> int:
        return self.threads or os.cpu_count() or 1


def run(config: IngestConfig) -> dict:
    """Ingest, build the token store, and move the finished folder to `config.out`."""
    config.check()
    t0 = time.perf_counter()
    found = find_inputs(config.inputs, config.format, config.on_error == "skip")
    fp = fingerprint(found.files, _identity(config))
    inputs = [*config.inputs, *found.synth, config.masters, config.salt_file]
    replace = config.overwrite or same_dataset(config.out, fp)
    with build(config.out, "ingest", inputs, replace=replace) as work:
        summary = write_dataset(config, work, found, fp, store=True)
        if "store" not in summary["stages"]:  # the out-of-core UKE path builds it while it writes MEDS
            from claimsfm.data.build import build_store

            t1, c0 = time.perf_counter(), time.process_time()
            build_store(meds_dir=work, out_dir=work / "store", min_count=config.min_count,
                        code_level=config.code_level, source=Path(config.out).resolve(), threads=config.n_threads())
            summary["stages"]["store"] = round(time.perf_counter() - t1, 3)
            summary["stages_cpu"]["store"] = round(time.process_time() - c0, 3)
            summary["stages_peak_mb"]["store"] = spill.peak_rss_mb()
        write_run_config(work, _settings(config))
    summary["seconds"] = round(time.perf_counter() - t0, 3)  # the whole run, the build folder's rename included
    return summary


def _identity(config: IngestConfig) -> dict:
    """The settings that make two ingests of the same files different datasets."""
    return {"format": config.format, "link_by": config.link_by}


def _settings(config: IngestConfig) -> dict:
    s = asdict(config)
    s.pop("progress")
    return {k: (str(v) if isinstance(v, Path) else [str(x) for x in v] if k == "inputs" else v) for k, v in s.items()}


def write_dataset(config: IngestConfig, work: Path, found: Inputs | None = None, fp: str | None = None,
                  in_memory: bool = False, store: bool = False) -> dict:
    """The MEDS dataset (data/, metadata/, truth/, rejects.txt) into the folder `work`.

    UKE input goes through the out-of-core path (spill.py) unless `in_memory`: the whole table in
    RAM, kept as the reference twin that the out-of-core files must equal byte for byte. With `store`,
    the out-of-core path also writes the token store (`work/store`, data/stream.py) and the summary's
    `stages` has a "store" entry; otherwise the caller builds it from the MEDS files."""
    config.check()
    found = found or find_inputs(config.inputs, config.format, config.on_error == "skip")
    fp = fp or fingerprint(found.files, _identity(config))
    work = Path(work)
    t0 = time.perf_counter()
    stages = spill.Stages()
    salt, salt_source = None, None
    foreign = found.files if config.format == "meds" else []
    if config.format == "uke":
        salt, salt_source = pseudo.resolve_salt(config.salt_file, config.out, work)
    streamed = None
    if config.format == "uke" and not in_memory:
        splits = meds.dataset_splits(None, foreign, config.format)
        rejects, stats, written, master_rows, streamed = _write_uke_spilled(config, work, found, salt, splits,
                                                                            stages, store)
    else:
        with stages("parse"):
            table, rejects, stats = _read_table(config, found, salt)
        rejects = _skipped(found) + rejects
        _check_events(config, found, len(table), rejects)
        master_rows = _master_rows(config, found)
        splits = meds.dataset_splits(table, foreign, config.format)
        with stages("sort+write"):
            written = _write_table(table, work, config.shard_rows, splits)
    parse_s = stats.pop("parse_seconds", stages.seconds.get("parse", 0.0))
    unused = written["unused"]
    info = {"dataset_name": Path(config.out).name, "dataset_version": fp[:16], "input_fingerprint": fp,
            **meds.dataset_names(config.name, foreign), "inputs": [str(p) for p in config.inputs],
            "format": config.format, "link_by": config.link_by, "salt": salt_source, "splits": splits.source,
            "events_with_time_of_day": unused["events_with_time_of_day"]}
    with stages("metadata"):
        counts = meds.write_metadata(None, work, masters.codes_table(written["code_names"], master_rows), info,
                                     splits, subjects=written["subjects"])
        if config.on_error == "skip":
            write_text(work / "rejects.txt", "".join(line + "\n" for line in rejects))
        rekeyed = []
        if found.truth is not None and salt is not None:
            rekeyed = truth.rekey_truth(found.truth, work / "truth", salt, config.link_by)
    if streamed is not None:
        with stages("store"):
            try:
                streamed.close(written["per_code"], work, config.min_count, config.code_level,
                               str(Path(config.out).resolve()), config.progress, config.n_threads())
            finally:
                streamed.abort()
    accounting = {"files_read": int(stats.get("files", len(found.files)) - stats.get("files_rejected", 0)),
                  "inputs_skipped": len(found.skipped), "duplicate_inputs": found.duplicates}
    summary = _summary(written, stats, rejects, counts, rekeyed, parse_s, time.perf_counter() - t0)
    return {**accounting, **summary, "splits": splits.source, "notes": splits.notes, **unused,
            "stages": stages.seconds, "stages_cpu": stages.cpu, "stages_peak_mb": stages.peak_mb}


def _read_table(config: IngestConfig, found: Inputs, salt: bytes | None):
    if config.format == "uke":
        return _read_uke(config, found.files, salt)
    if config.format == "csv":
        table, rejects, stats = csvfmt.read_csv(found.files, config.n_threads(), config.on_error == "skip")
        return table.sorted(), rejects, stats
    return _read_meds(found.files, config.time_range)


def _skipped(found: Inputs) -> list[str]:
    """Unreadable inputs left out under --on-error skip, as reject lines."""
    return [f"{path}: {why}" for path, why in found.skipped]


def _check_events(config: IngestConfig, found: Inputs, n_events: int, rejects: list) -> None:
    if n_events == 0:  # else the token store would fail later, naming the temporary build folder
        first = config.inputs[0] if config.inputs else "INPUT"
        raise ClaimsfmError(f"{first}{' (and the other inputs)' if len(config.inputs) > 1 else ''}: no valid "
                            f"events to ingest ({len(found.files)} files read, {len(rejects)} lines rejected); "
                            "nothing was written")


def _write_table(table, work: Path, shard_rows: int, splits) -> dict:
    """The in-memory writer: the whole table at once (the reference twin of spill.sort_and_write)."""
    split_counts = meds.write_data(table, work, shard_rows, splits)
    per_code = np.bincount(table.code, minlength=len(table.code_names))
    return {"code_names": table.code_names, "per_code": per_code, "events": len(table), "split_counts": split_counts,
            "subjects": np.unique(table.subject), "unused": meds.unused_by_store(table)}


def _write_uke_spilled(config: IngestConfig, work: Path, found: Inputs, salt: bytes, splits, stages, store: bool):
    """Parse into spill files by subject_id range (keys pseudonymised as they are merged), sort and write each
    bucket (and its token store rows, with `store`: the StoreWriter returned, to close once metadata/ is written)."""
    folder = spill.spill_folder(work)
    spill.configure_malloc()
    streamed = writer = None
    try:
        memory = spill.parse_memory(config.memory_limit)
        workers = config.n_threads() + 1
        with stages("parse"):
            input_bytes = sum(os.path.getsize(f) for f in found.files)
            n_files = min(spill.spill_file_count(input_bytes, memory, workers, config.shard_rows), spill.file_budget())
            files = [folder / f"bucket{b:04d}.bin" for b in range(n_files)]
            raw = parse_uke_with_progress([str(f) for f in found.files], config, buckets=files, salt=salt)
            rejects = _skipped(found) + _uke_rejects(config, found.files, raw)
            key_sid = raw.pop("key_sid")
            facility_names = [pseudo.facility_label(salt, f) for f in raw["facilities"]]
            spill.trim_heap()
        _check_events(config, found, raw["spilled"], rejects)
        master_rows = _master_rows(config, found)
        per_bucket = spill.events_per_bucket(memory, workers, config.shard_rows, raw["spilled"])
        buckets = [[files[f] for f in group] for group in spill.group_files(raw["bucket_rows"], per_bucket)]
        writer = shards.ShardWriter(work, config.shard_rows, folder, splits,
                                    writers=shards.writer_threads(config.n_threads()))
        code_names = list(raw["codes"])
        if store:
            from claimsfm.data.stream import StoreWriter

            streamed = StoreWriter(work / "store", code_names, events.code_ranks(code_names),
                                   events.code_ranks(facility_names), splits)
        with stages("sort+write"):
            totals = spill.sort_and_write(buckets, key_sid, code_names, facility_names, writer, streamed,
                                          config.n_threads(), config.progress)
            split_counts = writer.close()
            spill.trim_heap()  # the buckets' free heap back to the OS before metadata/ and the store's final pass
    except BaseException:
        if streamed is not None:
            streamed.abort()
        if writer is not None:
            writer.abort()
        raise
    finally:
        spill.remove_spill(work)
    written = {"code_names": code_names, "per_code": totals.per_code, "events": totals.events,
               "split_counts": split_counts, "subjects": totals.all_subjects(), "unused": totals.unused_by_store()}
    stats = {**raw["stats"], "buckets": len(buckets), "spill_files": len(files), "memory_limit_mb": memory >> 20}
    return rejects, stats, written, master_rows, streamed


def _master_rows(config: IngestConfig, found: Inputs) -> dict | None:
    folder = config.masters or found.masters
    rows = {}
    if config.format == "meds":
        for f in found.files:
            path = Path(f) / "metadata" / "codes.parquet"
            if path.is_file():
                for r in read_parquet(path, required=("code",)).to_pylist():
                    rows[r["code"]] = (r.get("description"), list(r.get("parent_codes") or []))
    if folder is not None:
        rows.update(masters.read_masters(folder))
    return rows


def _read_uke(config: IngestConfig, files: list[Path], salt: bytes):
    t0 = time.perf_counter()
    raw = parse_uke_with_progress([str(f) for f in files], config)
    parse_s = time.perf_counter() - t0
    rejects = _uke_rejects(config, files, raw)
    return events.from_uke(raw, salt), rejects, {**raw["stats"], "parse_seconds": parse_s}


def _uke_rejects(config: IngestConfig, files: list[Path], raw: dict) -> list[str]:
    """The parser's rejects as lines for rejects.txt; under --on-error raise, the first one stops the ingest."""
    rejects = []
    for file_idx, line, reason, text in raw["rejects"]:
        path = files[file_idx]
        if config.on_error == "raise":
            raise located(path, line or None, reason)
        shown = text.decode("utf-8" if _is_utf8(path) else "cp932", "backslashreplace")
        where = f"{path}:{line}" if line else f"{path}"
        rejects.append(f"{where}: {reason}" + (f"\t{shown}" if shown else ""))
    return rejects


@functools.lru_cache(maxsize=256)
def _is_utf8(path: Path) -> bool:
    try:
        Path(path).read_bytes().decode("utf-8")
        return True
    except (UnicodeDecodeError, OSError):
        return False


def parse_uke_with_progress(paths: list[str], config: IngestConfig, spill_path: Path | None = None,
                            buckets: list[Path] = (), salt: bytes = b"") -> dict:
    """Run the C++ parser on a worker thread (it releases the GIL) and draw a byte progress bar.
    With `spill_path`, the events go to that file instead of the returned columns; with `buckets` (and the
    salt), each goes to the file of its subject_id range (see spill.py)."""
    from claimsfm.native import native

    _native = native()
    total = sum(os.path.getsize(p) for p in paths)
    hasher = pseudo.key_subject_id(salt) if buckets else None
    try:
        return spill.with_byte_bar(lambda progress: _native.parse_uke(
            paths, config.link_by, config.on_error == "raise", config.n_threads(), progress, str(spill_path or ""),
            [str(b) for b in buckets], salt, hasher), total, "parse UKE", config.progress)
    except RuntimeError as exc:  # the C++ side: a spill file that cannot be created or written (disk full)
        raise ClaimsfmError(f"ingest: {exc}") from None


def _read_meds(folders: list[Path], time_range: str):
    tables = [meds.read_data(f, time_range) for f in folders]
    if len(tables) > 1:
        import pyarrow as pa

        table = meds.from_arrow(pa.concat_tables([meds.to_arrow(t) for t in tables]))
    else:
        table = tables[0]
    return table.sorted(), [], {"files": len(folders)}


TOP_K = 10  # the summary names this many codes and code kinds; the rest are totals


def _summary(written, stats, rejects, counts, rekeyed, parse_s, total_s) -> dict:
    """Totals plus the TOP_K most frequent codes and code kinds (never one entry per code)."""
    names = np.asarray(written["code_names"], dtype=object)
    per_code = written["per_code"] if len(names) else np.zeros(0, int)
    by_kind: dict[str, int] = {}
    for name, c in zip(names, per_code, strict=True):
        kind = name.split("//")[0] if "//" in name else name
        by_kind[kind] = by_kind.get(kind, 0) + int(c)
    mb = stats.get("bytes", 0) / 1e6
    order = np.argsort(-per_code, kind="stable")[:TOP_K]
    return {**{k: int(v) for k, v in stats.items()}, "subjects": counts["subjects"], "events": written["events"],
            "codes": len(names), "events_by_kind": _top(by_kind),
            "top_codes": {names[i]: int(per_code[i]) for i in order},
            "events_by_split": written["split_counts"], "rejects": len(rejects), "truth_files": rekeyed,
            "parse_seconds": round(parse_s, 3), "seconds": round(total_s, 3), "mb": round(mb, 3),
            "mb_per_s": round(mb / max(parse_s, 1e-9), 1)}


def _top(counts: dict[str, int]) -> dict[str, int]:
    """The TOP_K largest entries by count (ties by name), the rest summed under "(other N)"."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    out = dict(sorted(ranked[:TOP_K]))
    if len(ranked) > TOP_K:
        out[f"(other {len(ranked) - TOP_K})"] = sum(c for _, c in ranked[TOP_K:])
    return out
