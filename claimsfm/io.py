"""Atomic file output and run metadata.

Everything claimsfm writes goes through a temporary name in the same folder and an `os.replace`,
so an interrupted or failed command never leaves a half-written file behind.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, is_dataclass
from pathlib import Path

from claimsfm.errors import ClaimsfmError, os_error


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; on success rename it over `path`, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes(path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def write_text(path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def _jsonable(obj):
    if is_dataclass(obj):
        return asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=_jsonable) + "\n")


def read_json(path, kind: type | None = dict):
    """The parsed JSON file; a ClaimsfmError naming `path` when it cannot be read, is not UTF-8 JSON, or its
    top-level value is not a `kind` (None: any)."""
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except OSError as exc:
        raise os_error(exc, "cannot read") from None
    except UnicodeDecodeError:
        raise ClaimsfmError(f"{path}: not UTF-8 text (a damaged or foreign file?)") from None
    except json.JSONDecodeError as exc:
        raise ClaimsfmError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if kind is not None and not isinstance(obj, kind):
        raise ClaimsfmError(f"{path}: expected a JSON {_JSON_NAMES.get(kind, kind.__name__)}, "
                            f"found {_JSON_NAMES.get(type(obj), type(obj).__name__)}")
    return obj


def read_parquet(path, columns=None, required=()):
    """A parquet file as a pyarrow Table; a ClaimsfmError naming `path` when it cannot be read, is not parquet
    (truncated, another format) or lacks a `required` column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:  # a single file through ParquetFile: read_table goes through pyarrow.dataset, whose import pulls in pandas
        table = (pq.ParquetFile(path).read(columns=columns) if Path(path).is_file()
                 else pq.read_table(path, columns=columns))
    except OSError as exc:  # pyarrow's own IO errors are OSErrors without a filename
        raise ClaimsfmError(f"{path}: cannot read ({exc.strerror or ' '.join(str(exc).split())})") from None
    except pa.ArrowException as exc:
        raise ClaimsfmError(f"{path}: not a readable parquet file ({' '.join(str(exc).split())})") from None
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise ClaimsfmError(f"{path}: missing column '{missing[0]}'")
    return table


_JSON_NAMES = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean",
               type(None): "null"}


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False):
    """Build a folder under a temporary name and move it into place at the end.

    If `path` exists it is replaced only when `overwrite` is true; the old folder is removed only
    after the new one is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            if not overwrite:
                raise FileExistsError(path)
            # A fresh, uniquely named empty folder of our own takes the old one (rename over an empty
            # folder), so nothing that was there before -- e.g. a user's `.<name>.old` -- is ever removed.
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_creatable(path, flag: str = "--out") -> None:
    """Fail before a long computation when `path` could never be written: the nearest part of it that exists
    is a regular file, or a folder this process may not write into (`--out` under a file or a read-only folder)."""
    path = Path(path).absolute()
    existing = next(p for p in (path, *path.parents) if os.path.lexists(p))
    if not existing.is_dir():
        raise ClaimsfmError(f"{flag}: cannot create {path}: {existing} is a file, not a folder")
    if existing != path and not os.access(existing, os.W_OK | os.X_OK):
        raise ClaimsfmError(f"{flag}: cannot create {path}: the folder {existing} is not writable")


def git_commit() -> str | None:
    """The commit of the claimsfm source tree, when it runs from a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment() -> dict:
    """Versions that decide whether a run can be reproduced (no heavy imports)."""
    from importlib import metadata

    versions = {}
    for pkg in ("claimsfm", "numpy", "pyarrow", "torch", "triton", "lightgbm", "scikit-learn"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": versions,
        "git_commit": git_commit(),
        "argv": sys.argv,
    }


def write_run_config(folder, settings) -> None:
    """`config.json` in an output folder: the exact settings plus versions and git commit."""
    write_json(Path(folder) / "config.json", {"settings": settings, "environment": environment()})


# Arrow arrays from their buffers. pa.array() asks pandas whether its input is a Series, and that imports pandas
# (0.25 s of every ingest, on the critical path) although claimsfm never passes one.
def arrow_array(values, type_, null=None):
    """A pyarrow array of `type_` over a numpy array of the same width (no copy); `null` (bool, optional) marks
    the nulls: the same array as pa.array(values, type_, mask=null), without the pandas import."""
    import numpy as np
    import pyarrow as pa

    values = np.ascontiguousarray(values)
    if values.dtype.itemsize * 8 != type_.bit_width:
        raise ValueError(f"arrow_array: {values.dtype} values for {type_}")
    validity, nulls = _validity(null)
    return pa.Array.from_buffers(type_, len(values), [validity, pa.py_buffer(values)], null_count=nulls)


def arrow_strings(items):
    """A pyarrow string array of `items` (str, or None for a null): pa.array(items, pa.string()), without pandas."""
    import numpy as np
    import pyarrow as pa

    data = [b"" if x is None else str(x).encode() for x in items]
    validity, nulls = _validity(np.fromiter((x is None for x in items), bool, len(data)))
    buffers = [validity, pa.py_buffer(_offsets(data)), pa.py_buffer(b"".join(data))]
    return pa.Array.from_buffers(pa.string(), len(data), buffers, null_count=nulls)


def arrow_string_lists(lists):
    """A pyarrow list<string> array of `lists` (lists of str): pa.array(lists, pa.list_(pa.string())), without
    pandas."""
    import pyarrow as pa

    return pa.ListArray.from_arrays(arrow_array(_offsets(lists), pa.int32()),
                                    arrow_strings([x for xs in lists for x in xs]))


def _offsets(items):
    """(len(items) + 1,) int32 start of each item's values: Arrow's offsets for strings and lists."""
    import numpy as np

    offsets = np.zeros(len(items) + 1, np.int32)
    np.cumsum(np.fromiter(map(len, items), np.int64, len(items)), out=offsets[1:])
    return offsets


def _validity(null):
    """(validity bitmap buffer or None, null count) for a bool null mask."""
    import numpy as np
    import pyarrow as pa

    if null is None:
        return None, 0
    null = np.asarray(null, bool)
    nulls = int(np.count_nonzero(null))
    return (pa.py_buffer(np.packbits(~null, bitorder="little")) if nulls else None), nulls

