"""Find the input files of an ingest and decide whether the output folder may be written."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from claimsfm.errors import ClaimsfmError


@dataclass
class Inputs:
    files: list[Path]
    masters: Path | None = None       # masters/ of a synth folder (unless --masters)
    truth: Path | None = None         # truth/ of a synth folder
    synth: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (path, why) left out under --on-error skip
    duplicates: int = 0               # paths given (or found) more than once, read once


def _is_synth(folder: Path) -> bool:
    return (folder / "uke").is_dir() and (folder / "synth.json").is_file()


def find_inputs(paths: list[Path], fmt: str, skip_unreadable: bool = False) -> Inputs:
    """Files to read, in a stable order. Folders are searched recursively (.UKE / .csv), or
    taken whole for MEDS; a `claimsfm synth` folder also brings its masters and truth.

    Every file is read once however often it is named (real paths decide). A folder or file that cannot
    be read is an error, or with `skip_unreadable` (--on-error skip) listed in `skipped`."""
    if not paths:
        raise ClaimsfmError("INPUT: give at least one file or folder")
    found = Inputs(files=[])
    seen: set[str] = set()

    def add(f: Path) -> None:
        key = os.path.realpath(f)
        if key in seen:
            found.duplicates += 1
        else:
            seen.add(key)
            found.files.append(f)

    for p in map(Path, paths):
        if not p.exists():
            raise ClaimsfmError(f"{p}: no such file or folder")
        if fmt == "meds":
            if not p.is_dir():
                raise ClaimsfmError(f"{p}: --format meds takes a MEDS dataset folder")
            add(p)
            continue
        if p.is_file():
            add(p)
            continue
        root = _synth_root(p, fmt, found)
        suffix = ".uke" if fmt == "uke" else ".csv"
        files, problems = _walk(root, suffix)
        for path, why in problems:
            if not skip_unreadable:
                raise ClaimsfmError(f"{path}: {why}; fix it, or pass --on-error skip to leave it out")
            found.skipped.append((path, why))
        if not files and not problems:
            raise ClaimsfmError(f"{p}: no {suffix.upper()[1:]} files in this folder")
        for f in files:
            add(f)
    if not found.files:
        raise ClaimsfmError(f"{paths[0]}: no input file could be read")
    return found


def _synth_root(p: Path, fmt: str, found: Inputs) -> Path:
    """The folder to search: a synth folder, or its uke/ subfolder, also brings masters/ and truth/."""
    synth = None
    if fmt == "uke" and _is_synth(p):
        synth = p
    elif fmt == "uke" and p.name == "uke" and _is_synth(p.parent):
        synth = p.parent
    if synth is None:
        return p
    found.synth.append(synth)
    found.masters = found.masters or ((synth / "masters") if (synth / "masters").is_dir() else None)
    found.truth = found.truth or ((synth / "truth") if (synth / "truth").is_dir() else None)
    return synth / "uke"


def _walk(root: Path, suffix: str) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(input files under `root`, sorted; [(path, why)] for folders and files that cannot be read)."""
    files, problems = [], []

    def onerror(exc: OSError) -> None:
        problems.append((Path(exc.filename or root), f"cannot read folder ({exc.strerror or exc})"))

    visited = {os.path.realpath(root)}
    for folder, dirs, names in os.walk(root, onerror=onerror, followlinks=True):
        # Linked folders are followed, each real folder once (no cycles, no double counting).
        keep = []
        for d in sorted(dirs):
            target = os.path.realpath(os.path.join(folder, d))
            if target not in visited:
                visited.add(target)
                keep.append(d)
        dirs[:] = keep
        for name in names:
            if Path(name).suffix.lower() != suffix:
                continue
            f = Path(folder) / name
            if not f.is_file():
                problems.append((f, "cannot read file (a broken link or not a regular file)"))
            elif not os.access(f, os.R_OK):
                problems.append((f, "cannot read file (permission denied)"))
            else:
                files.append(f)
    return sorted(files), sorted(problems)


def fingerprint(files: list[Path], settings: dict) -> str:
    """Identity of an ingest: its settings and the name, size and mtime of every input file."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for f in files:
        paths = [f] if f.is_file() else sorted(x for x in f.rglob("*") if x.is_file())
        for x in paths:
            st = x.stat()
            h.update(f"{x.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def same_dataset(out: Path, fp: str) -> bool:
    """Whether `out` holds an ingest of the same inputs and settings (a rerun may rebuild it)."""
    try:
        with open(Path(out) / "metadata" / "dataset.json", encoding="utf-8") as f:
            return json.load(f).get("claimsfm", {}).get("input_fingerprint") == fp
    except (OSError, ValueError, AttributeError):
        return False
