"""`claimsfm ingest`: UKE / CSV / MEDS input -> MEDS dataset + token store, built atomically.

`run(config)` builds everything in a temporary folder beside `--out` and renames it into place,
so a failed run leaves nothing half-written. `write_dataset` is the MEDS part alone (tests use it
without the token store).
"""
from __future__ import annotations

import functools
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from claimsfm.data.format import CODE_LEVELS
from claimsfm.errors import ClaimsfmError, located
from claimsfm.ingest import csvfmt, events, masters, meds, pseudo, truth
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

    def n_threads(self) -> int:
        return self.threads or os.cpu_count() or 1


def run(config: IngestConfig) -> dict:
    """Ingest, build the token store, and move the finished folder to `config.out`."""
    config.check()
    found = find_inputs(config.inputs, config.format, config.on_error == "skip")
    fp = fingerprint(found.files, _identity(config))
    inputs = [*config.inputs, *found.synth, config.masters, config.salt_file]
    replace = config.overwrite or same_dataset(config.out, fp)
    with build(config.out, "ingest", inputs, replace=replace) as work:
        summary = write_dataset(config, work, found, fp)
        from claimsfm.data.build import build_store

        build_store(meds_dir=work, out_dir=work / "store", min_count=config.min_count,
                    code_level=config.code_level, source=Path(config.out).resolve())
        write_run_config(work, _settings(config))
    return summary


def _identity(config: IngestConfig) -> dict:
    """The settings that make two ingests of the same files different datasets."""
    return {"format": config.format, "link_by": config.link_by}


def _settings(config: IngestConfig) -> dict:
    s = asdict(config)
    s.pop("progress")
    return {k: (str(v) if isinstance(v, Path) else [str(x) for x in v] if k == "inputs" else v) for k, v in s.items()}


def write_dataset(config: IngestConfig, work: Path, found: Inputs | None = None, fp: str | None = None) -> dict:
    """The MEDS dataset (data/, metadata/, truth/, rejects.txt) into the folder `work`."""
    config.check()
    found = found or find_inputs(config.inputs, config.format, config.on_error == "skip")
    fp = fp or fingerprint(found.files, _identity(config))
    work = Path(work)
    t0 = time.perf_counter()
    salt, salt_source = None, None
    if config.format == "uke":
        salt, salt_source = pseudo.resolve_salt(config.salt_file, config.out, work)
        table, rejects, stats = _read_uke(config, found.files, salt)
    elif config.format == "csv":
        table, rejects, stats = csvfmt.read_csv(found.files, config.n_threads(), config.on_error == "skip")
        table = table.sorted()
    else:
        table, rejects, stats = _read_meds(found.files, config.time_range)
    rejects = [f"{path}: {why}" for path, why in found.skipped] + rejects  # unreadable inputs (--on-error skip)
    if len(table) == 0:  # else the token store would fail later, naming the temporary build folder
        first = config.inputs[0] if config.inputs else "INPUT"
        raise ClaimsfmError(f"{first}{' (and the other inputs)' if len(config.inputs) > 1 else ''}: no valid "
                            f"events to ingest ({len(found.files)} files read, {len(rejects)} lines rejected); "
                            "nothing was written")
    master_rows = _master_rows(config, found)
    parse_s = stats.pop("parse_seconds", time.perf_counter() - t0)
    foreign = found.files if config.format == "meds" else []
    splits = meds.dataset_splits(table, foreign, config.format)
    unused = meds.unused_by_store(table)
    split_counts = meds.write_data(table, work, config.shard_rows, splits)
    info = {"dataset_name": Path(config.out).name, "dataset_version": fp[:16], "input_fingerprint": fp,
            **meds.dataset_names(config.name, foreign), "inputs": [str(p) for p in config.inputs],
            "format": config.format, "link_by": config.link_by, "salt": salt_source, "splits": splits.source,
            "events_with_time_of_day": unused["events_with_time_of_day"]}
    counts = meds.write_metadata(table, work, masters.codes_table(table.code_names, master_rows), info, splits)
    if config.on_error == "skip":
        write_text(work / "rejects.txt", "".join(line + "\n" for line in rejects))
    rekeyed = []
    if found.truth is not None and salt is not None:
        rekeyed = truth.rekey_truth(found.truth, work / "truth", salt, config.link_by)
    accounting = {"files_read": int(stats.get("files", len(found.files)) - stats.get("files_rejected", 0)),
                  "inputs_skipped": len(found.skipped), "duplicate_inputs": found.duplicates}
    summary = _summary(table, stats, rejects, counts, split_counts, rekeyed, parse_s, time.perf_counter() - t0)
    return {**accounting, **summary, "splits": splits.source, "notes": splits.notes, **unused}


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
    rejects = []
    for file_idx, line, reason, text in raw["rejects"]:
        path = files[file_idx]
        if config.on_error == "raise":
            raise located(path, line or None, reason)
        shown = text.decode("utf-8" if _is_utf8(path) else "cp932", "backslashreplace")
        where = f"{path}:{line}" if line else f"{path}"
        rejects.append(f"{where}: {reason}" + (f"\t{shown}" if shown else ""))
    return events.from_uke(raw, salt), rejects, {**raw["stats"], "parse_seconds": parse_s}


@functools.lru_cache(maxsize=256)
def _is_utf8(path: Path) -> bool:
    try:
        Path(path).read_bytes().decode("utf-8")
        return True
    except (UnicodeDecodeError, OSError):
        return False


def parse_uke_with_progress(paths: list[str], config: IngestConfig) -> dict:
    """Run the C++ parser on a worker thread (it releases the GIL) and draw a byte progress bar."""
    from claimsfm.native import native

    _native = native()
    progress = _native.Progress()
    result: dict = {}

    def work():
        try:
            result["raw"] = _native.parse_uke(paths, config.link_by, config.on_error == "raise",
                                              config.n_threads(), progress)
        except BaseException as exc:  # re-raised on the caller's thread
            result["error"] = exc

    total = sum(os.path.getsize(p) for p in paths)
    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    from tqdm import tqdm

    with tqdm(total=total, unit="B", unit_scale=True, desc="parse UKE", disable=not config.progress,
              leave=False) as bar:
        while worker.is_alive():
            worker.join(0.2)
            bar.update(progress.value - bar.n)
        bar.update(progress.value - bar.n)
    if "error" in result:
        raise result["error"]
    return result["raw"]


def _read_meds(folders: list[Path], time_range: str):
    tables = [meds.read_data(f, time_range) for f in folders]
    if len(tables) > 1:
        import pyarrow as pa

        table = meds.from_arrow(pa.concat_tables([meds.to_arrow(t) for t in tables]))
    else:
        table = tables[0]
    return table.sorted(), [], {"files": len(folders)}


TOP_K = 10  # the summary names this many codes and code kinds; the rest are totals


def _summary(table, stats, rejects, counts, split_counts, rekeyed, parse_s, total_s) -> dict:
    """Totals plus the TOP_K most frequent codes and code kinds (never one entry per code)."""
    names = np.asarray(table.code_names, dtype=object)
    per_code = np.bincount(table.code, minlength=len(names)) if len(names) else np.zeros(0, int)
    by_kind: dict[str, int] = {}
    for name, c in zip(names, per_code, strict=True):
        kind = name.split("//")[0] if "//" in name else name
        by_kind[kind] = by_kind.get(kind, 0) + int(c)
    mb = stats.get("bytes", 0) / 1e6
    order = np.argsort(-per_code, kind="stable")[:TOP_K]
    return {**{k: int(v) for k, v in stats.items()}, "subjects": counts["subjects"], "events": len(table),
            "codes": len(names), "events_by_kind": _top(by_kind),
            "top_codes": {names[i]: int(per_code[i]) for i in order},
            "events_by_split": split_counts, "rejects": len(rejects), "truth_files": rekeyed,
            "parse_seconds": round(parse_s, 3), "seconds": round(total_s, 3), "mb": round(mb, 3),
            "mb_per_s": round(mb / max(parse_s, 1e-9), 1)}


def _top(counts: dict[str, int]) -> dict[str, int]:
    """The TOP_K largest entries by count (ties by name), the rest summed under "(other N)"."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    out = dict(sorted(ranked[:TOP_K]))
    if len(ranked) > TOP_K:
        out[f"(other {len(ranked) - TOP_K})"] = sum(c for _, c in ranked[TOP_K:])
    return out
