"""Find the input files of an ingest and decide whether the output folder may be written."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from claimsfm.errors import ClaimsfmError


@dataclass
class Inputs:
    files: list[Path]
    masters: Path | None = None       # masters/ of a synth folder (unless --masters)
    truth: Path | None = None         # truth/ of a synth folder
    synth: list[Path] = field(default_factory=list)


def _is_synth(folder: Path) -> bool:
    return (folder / "uke").is_dir() and (folder / "synth.json").is_file()


def find_inputs(paths: list[Path], fmt: str) -> Inputs:
    """Files to read, in a stable order. Folders are searched recursively (.UKE / .csv), or
    taken whole for MEDS; a `claimsfm synth` folder also brings its masters and truth."""
    if not paths:
        raise ClaimsfmError("INPUT: give at least one file or folder")
    found = Inputs(files=[])
    for p in map(Path, paths):
        if not p.exists():
            raise ClaimsfmError(f"{p}: no such file or folder")
        if fmt == "meds":
            if not p.is_dir():
                raise ClaimsfmError(f"{p}: --format meds takes a MEDS dataset folder")
            found.files.append(p)
            continue
        if p.is_file():
            found.files.append(p)
            continue
        # A synth folder, or its uke/ subfolder, also brings masters/ and truth/.
        synth = None
        if fmt == "uke" and _is_synth(p):
            synth = p
        elif fmt == "uke" and p.name == "uke" and _is_synth(p.parent):
            synth = p.parent
        root = p
        if synth is not None:
            root = synth / "uke"
            found.synth.append(synth)
            found.masters = found.masters or ((synth / "masters") if (synth / "masters").is_dir() else None)
            found.truth = found.truth or ((synth / "truth") if (synth / "truth").is_dir() else None)
        suffix = ".uke" if fmt == "uke" else ".csv"
        files = sorted(f for f in root.rglob("*") if f.is_file() and f.suffix.lower() == suffix)
        if not files:
            raise ClaimsfmError(f"{p}: no {suffix.upper()[1:]} files in this folder")
        found.files.extend(files)
    return found


def fingerprint(files: list[Path], settings: dict) -> str:
    """Identity of an ingest: its settings and the name, size and mtime of every input file."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for f in files:
        paths = [f] if f.is_file() else sorted(x for x in f.rglob("*") if x.is_file())
        for x in paths:
            st = x.stat()
            h.update(f"{x.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def check_out(out: Path, fp: str, overwrite: bool) -> None:
    """Refuse an output folder that holds something else, unless --overwrite."""
    out = Path(out)
    if not out.exists():
        return
    if not out.is_dir():
        raise ClaimsfmError(f"--out: {out} exists and is not a folder")
    if not any(out.iterdir()) or overwrite:
        return
    try:
        with open(out / "metadata" / "dataset.json", encoding="utf-8") as f:
            same = json.load(f).get("claimsfm", {}).get("input_fingerprint") == fp
    except (OSError, ValueError, AttributeError):
        same = False
    if not same:
        raise ClaimsfmError(f"--out: {out} already holds a different dataset; pass --overwrite to replace it")
