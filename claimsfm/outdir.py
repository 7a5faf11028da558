"""The output-folder policy: claimsfm deletes only what it provably created.

Every command that writes a folder goes through this module (docs/internals.md §8):

- `check_inputs(out, inputs)` refuses an `--out` that is, contains, or lies inside an input
  (real paths, so links and `..` do not hide an overlap).
- A folder claimsfm writes carries `MARKER` (`.claimsfm.json`): the command that made it and the
  manifest of the files it wrote there. A non-empty folder without the marker is the user's and is
  never written into, even with `--overwrite`.
- `build(...)` (ingest, synth, evaluate) makes a whole folder under a hidden temporary name beside
  `--out` and puts it in place at the end. Replacing an earlier build deletes only the files in the
  old manifest; files the user added inside `--out` stay, and a file of theirs in the way of a new
  one stops the run before anything changes.
- `claim(...)` (pretrain, sweep, report, demo) adds to a folder over several runs (resume);
  `remove_owned` deletes a path only when the manifest lists it.
- Temporary folders carry `TMP_TAG` (pid and host). The next run beside the same `--out` deletes
  those whose process is gone; ones it cannot prove stale are reported on stderr, not deleted.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
from pathlib import Path

from claimsfm.errors import ClaimsfmError
from claimsfm.io import check_creatable

MARKER = ".claimsfm.json"
TMP_TAG = ".claimsfm-tmp.json"
_TMP_INFIX = ".claimsfm-"
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def check_name(name: str, what: str) -> str:
    """A name read from data (task name, facility code) that is about to become a path component."""
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name) or name.startswith(".") or len(name) > 128:
        raise ClaimsfmError(f"{what}: {name!r} cannot be used as a file name "
                            "(allowed: A-Z a-z 0-9 _ . -, no leading dot, at most 128 characters)")
    return name


def real(path) -> Path:
    return Path(os.path.realpath(Path(path).expanduser()))


def check_inputs(out, inputs, flag: str = "--out", contains_ok: bool = False) -> None:
    """Refuse an output folder that is, contains or lies inside one of `inputs` (None entries skipped).

    `contains_ok` lets a command that only adds named files (report) write into the folder that holds
    its input file.
    """
    o = real(out)
    for item in inputs:
        if item is None:
            continue
        i = real(item)
        if o == i:
            raise ClaimsfmError(f"{flag}: {out} is the input {item}; choose another output folder")
        if i in o.parents:
            raise ClaimsfmError(f"{flag}: {out} lies inside the input {item}; choose a folder outside it")
        if o in i.parents and not contains_ok:
            raise ClaimsfmError(f"{flag}: {out} contains the input {item}; choose a folder that does not")


def read_marker(folder) -> dict | None:
    """The marker of a folder claimsfm wrote, or None (no marker, or one claimsfm could not have written)."""
    try:
        with open(Path(folder) / MARKER, encoding="utf-8") as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("tool") != "claimsfm" or not isinstance(marker.get("files"), list):
        return None
    return marker


def _write_marker(folder: Path, command: str, files, complete: bool = True) -> None:
    body = json.dumps({"tool": "claimsfm", "command": command, "complete": complete,
                       "files": sorted(set(files))}, indent=1) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f"{MARKER}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(body)
        os.replace(tmp, folder / MARKER)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _files(folder: Path) -> list[str]:
    """Every file and link under `folder`, relative, '/'-separated (the marker itself excluded)."""
    out = []
    for root, dirs, names in os.walk(folder):
        rel = Path(root).relative_to(folder)
        out += [(rel / n).as_posix() for n in names]
        out += [(rel / d).as_posix() for d in dirs if os.path.islink(os.path.join(root, d))]
    return [f for f in out if f != MARKER and not f.startswith(f"{MARKER}.")]


def _state(out: Path, command: str, accept: tuple = (), inputs=()) -> dict | None:
    """None for a missing or empty folder, the marker for ours; refuses anything else.

    A folder that holds nothing but some of `inputs` (report: a results.json alone) counts as empty.
    """
    if not os.path.lexists(out):
        return None
    if not out.is_dir() or out.is_symlink():
        raise ClaimsfmError(f"--out: {out} exists and is not a folder")
    try:
        ignore = {real(i) for i in inputs if i is not None}
        empty = all(real(e) in ignore for e in out.iterdir())
    except OSError as exc:
        raise ClaimsfmError(f"--out: cannot read {out} ({exc.strerror})") from None
    if empty:
        return None
    marker = read_marker(out)
    if marker is None:
        raise ClaimsfmError(f"--out: {out} holds files claimsfm did not write; it never writes into such a "
                            "folder, even with --overwrite: choose a new or empty folder")
    if marker.get("command") != command and marker.get("command") not in accept:
        raise ClaimsfmError(f"--out: {out} holds the output of `claimsfm {marker.get('command')}`, "
                            f"not of `claimsfm {command}`: choose another folder")
    return marker


# ---- temporary folders -----------------------------------------------------------------------

def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def _new_tmp(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    holder = Path(tempfile.mkdtemp(prefix=f".{out.name}{_TMP_INFIX}", suffix=".tmp", dir=out.parent))
    (holder / TMP_TAG).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}) + "\n")
    return holder


def _remove_manifest(folder: Path, files) -> None:
    """Delete the listed files under `folder`, then the folders they leave empty; nothing else."""
    parents = set()
    for rel in files:
        p = folder / rel
        if os.path.lexists(p) and (p.is_symlink() or not p.is_dir()):
            os.unlink(p)
        parents.update(q for q in Path(rel).parents if q != Path("."))
    for rel in sorted(parents, key=lambda q: len(q.parts), reverse=True):
        with contextlib.suppress(OSError):
            os.rmdir(folder / rel)  # only when empty


def _drop_holder(holder: Path) -> bool:
    """Delete one of our temporary folders: its build (all ours), an old folder by its manifest."""
    new, old = holder / "new", holder / "old"
    if new.is_dir() and not new.is_symlink():
        shutil.rmtree(new, ignore_errors=True)
    if old.is_dir():
        marker = read_marker(old)
        if marker is not None:
            _remove_manifest(old, marker["files"])
            with contextlib.suppress(OSError):
                os.unlink(old / MARKER)
        with contextlib.suppress(OSError):
            os.rmdir(old)
    with contextlib.suppress(OSError):
        os.unlink(holder / TMP_TAG)
    try:
        os.rmdir(holder)
        return True
    except OSError:
        return False


def clean_stale(out) -> list[Path]:
    """Delete the temporary folders of killed runs beside `out`; report (stderr) what cannot be proven stale.

    Returns the folders left in place.
    """
    out = Path(out)
    left = []
    if not out.parent.is_dir():
        return left
    ours = re.compile(re.escape(f".{out.name}{_TMP_INFIX}") + r"[a-z0-9_]+\.tmp")
    legacy = re.compile(re.escape(f".{out.name}.") + r"[a-z0-9_]{8}\.tmp")  # io.atomic_dir's, before this module
    for d in sorted(out.parent.glob(f".{glob_escape(out.name)}.*.tmp")):
        if not (ours.fullmatch(d.name) or legacy.fullmatch(d.name)) or not d.is_dir() or d.is_symlink():
            continue
        try:
            tag = json.loads((d / TMP_TAG).read_text(encoding="utf-8"))
            pid, host = int(tag["pid"]), str(tag["host"])
        except (OSError, ValueError, KeyError, TypeError):
            tag = None
        if tag is not None and host == socket.gethostname() and not _alive(pid):
            if _drop_holder(d):
                continue
        elif tag is not None and host == socket.gethostname():
            continue  # a run in progress
        left.append(d)
    for d in left:
        print(f"warning: {d} looks like the temporary folder of an interrupted claimsfm run that claimsfm "
              "cannot prove stale (other host, older version or foreign files); delete it by hand", file=sys.stderr)
    return left


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


# ---- whole-folder builds ---------------------------------------------------------------------

def preflight(out, command: str, inputs=(), replace: bool = False) -> None:
    """The checks of `build`, early: before a long computation whose result would be refused."""
    check_creatable(out)
    check_inputs(out, inputs)
    marker = _state(Path(out), command)
    if marker is not None and not replace:
        raise ClaimsfmError(f"--out: {out} already holds a claimsfm {command} output with other inputs or "
                            "settings; pass --overwrite to replace it")


@contextlib.contextmanager
def build(out, command: str, inputs=(), replace: bool = False):
    """Yield an empty temporary folder; on success it becomes `out` (see the module docstring).

    `replace`: an earlier build of the same command may be replaced (--overwrite, or a rerun the
    command recognises as the same). Without it an existing build of ours is refused too.
    """
    out = Path(out)
    preflight(out, command, inputs, replace)
    clean_stale(out)
    try:
        holder = _new_tmp(out)
    except OSError as exc:
        raise ClaimsfmError(f"--out: cannot create {out} ({exc.strerror or exc})") from None
    work = holder / "new"
    work.mkdir()
    try:
        yield work
        _finish(out, command, holder, work)
    finally:
        if holder.exists():
            _drop_holder(holder)


def _finish(out: Path, command: str, holder: Path, work: Path) -> None:
    new_files = _files(work)
    _write_marker(work, command, new_files)
    marker = _state(out, command)  # again: the folder may have changed while we worked
    if marker is None:
        if os.path.isdir(out):
            os.rmdir(out)  # empty: ours to replace by the rename
        os.replace(work, out)
        return
    old_files = set(marker["files"])
    foreign = set(_files(out)) - old_files
    clash = sorted(f for f in new_files if f in foreign or any(str(p) in foreign for p in Path(f).parents))
    if clash:
        raise ClaimsfmError(f"--out: {out / clash[0]} was not written by claimsfm and is in the way of its "
                            "output; move it away and run again")
    ours_dirs = {p.as_posix() for f in old_files for p in Path(f).parents if p != Path(".")}
    user_dirs = {(Path(r).relative_to(out) / d).as_posix() for r, ds, _ in os.walk(out) for d in ds} - ours_dirs
    if not foreign and not user_dirs:  # only our files: swap the folders, then delete the old one by its manifest
        os.replace(out, holder / "old")
        try:
            os.replace(work, out)
        except BaseException:
            os.replace(holder / "old", out)
            raise
        return
    # The user added files inside --out: replace ours one by one and leave theirs alone.
    _write_marker(out, command, old_files | set(new_files), complete=False)
    _remove_manifest(out, old_files - set(new_files))
    for rel in new_files:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(work / rel, out / rel)
    _write_marker(out, command, new_files)


# ---- folders filled over several runs ---------------------------------------------------------

def claim(out, command: str, inputs=(), accept: tuple = (), contains_ok: bool = False) -> Path:
    """Make (or reuse) an output folder that a command fills over one or more runs.

    A missing or empty folder gets a fresh marker; a folder with our marker from `command` (or a
    command in `accept`) is reused as it is; anything else is refused.
    """
    out = Path(out)
    check_inputs(out, inputs, contains_ok=contains_ok)
    clean_stale(out)
    marker = _state(out, command, accept, inputs if contains_ok else ())
    if marker is None:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ClaimsfmError(f"--out: cannot create {out} ({exc.strerror})") from None
        _write_marker(out, command, [])
    return out


def _rel(out, path) -> str:
    """`path` (given like `out`: absolute, or relative to the working folder) relative to `out`."""
    rel = Path(os.path.relpath(os.path.abspath(path), os.path.abspath(out))).as_posix()
    if rel == ".." or rel.startswith("../"):
        raise ValueError(f"{path} is not inside {out}")
    return rel


def record(out, *paths) -> None:
    """Add paths under a claimed folder `out` to its manifest (a no-op for a folder without our marker)."""
    marker = read_marker(out)
    if marker is None:
        return
    rel = {_rel(out, p) for p in paths}
    _write_marker(Path(out), marker["command"], set(marker["files"]) | rel, marker.get("complete", True))


def owns(out, path) -> bool:
    marker = read_marker(out)
    return marker is not None and _rel(out, path) in marker["files"]


def remove_owned(out, path) -> bool:
    """Delete `path` under `out` if the manifest lists it, or the listed files under it if it is a
    folder (then the folders they leave empty). Returns whether anything was listed."""
    out, path = Path(out), Path(path)
    marker = read_marker(out)
    if marker is None:
        return False
    rel = _rel(out, path)
    listed = {f for f in marker["files"] if f == rel or f.startswith(rel + "/")}
    if not listed:
        return False
    _remove_manifest(out, listed)
    with contextlib.suppress(OSError):
        os.rmdir(path)
    _write_marker(out, marker["command"], set(marker["files"]) - listed, marker.get("complete", True))
    return True
