"""Long CSV input `subject_id,time,code[,numeric_value]`: the C++ path and its Python twin.

The accepted syntax is stated in csrc/csv_parser.hpp; `parse_reference` below accepts exactly the
same rows and is the oracle of the tests.
"""
from __future__ import annotations

import calendar
import datetime as dt
import re
from pathlib import Path

import numpy as np

from claimsfm.errors import ClaimsfmError, located
from claimsfm.ingest.events import NO_TIME, EventTable

_SUBJECT = re.compile(r"-?[0-9]+")
_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,6}))?)?)?")
_VALUE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_EPOCH = dt.date(1970, 1, 1).toordinal()
HEADERS = {"subject_id,time,code": False, "subject_id,time,code,numeric_value": True}


def _time(s: str):
    if not s:
        return NO_TIME
    m = _TIME.fullmatch(s)
    if not m:
        return None
    y, mo, d = int(m[1]), int(m[2]), int(m[3])
    h, mi, se = int(m[4] or 0), int(m[5] or 0), int(m[6] or 0)
    frac = int((m[7] or "0").ljust(6, "0"))
    if y < 1 or not 1 <= mo <= 12 or not 1 <= d <= calendar.monthrange(y, mo)[1] or h > 23 or mi > 59 or se > 59:
        return None
    day = dt.date(y, mo, d).toordinal() - _EPOCH
    return ((day * 24 + h) * 60 + mi) * 60 * 1_000_000 + se * 1_000_000 + frac


def _row(text: str, with_value: bool):
    """(subject, time_us, code, value) or an error reason."""
    if '"' in text:
        return "quoted fields are not supported"
    f = text.split(",")
    if len(f) != (4 if with_value else 3):
        return "wrong field count"
    if not _SUBJECT.fullmatch(f[0]) or not -2**63 <= int(f[0]) < 2**63:
        return "bad subject_id"
    t = _time(f[1])
    if t is None:
        return "bad time"
    if not f[2]:
        return "empty code"
    try:
        f[2].encode("utf-8")
    except UnicodeEncodeError:
        return "code is not UTF-8"
    value = float("nan")
    if with_value and f[3]:
        if len(f[3]) >= 64 or not _VALUE.fullmatch(f[3]):
            return "bad numeric_value"
        value = float(f[3])
        with np.errstate(over="ignore"):
            if np.isinf(np.float32(value)):
                return "numeric_value outside the float32 range"
    return int(f[0]), t, f[2], value


def parse_reference(path, skip_bad: bool = False) -> dict:
    """Pure-Python twin of `claimsfm._native.parse_csv` (same keys)."""
    data = Path(path).read_bytes()
    lines = data[3:].split(b"\n") if data.startswith(b"\xef\xbb\xbf") else data.split(b"\n")
    header = lines[0].rstrip(b"\r").decode("utf-8", "replace")
    out = {"subject_id": [], "time_us": [], "code": [], "value": [], "codes": [], "rejects": []}
    if header not in HEADERS:
        out["rejects"].append((1, "header must be subject_id,time,code[,numeric_value]"))
        return _arrays(out, len(data), False)
    ids: dict[str, int] = {}
    for lineno, raw in enumerate(lines[1:], start=2):
        raw = raw[:-1] if raw.endswith(b"\r") else raw
        if not raw:
            continue
        row = _row(raw.decode("utf-8", "surrogateescape"), HEADERS[header])
        if isinstance(row, str):
            out["rejects"].append((lineno, row))
            if not skip_bad:
                break
            continue
        out["subject_id"].append(row[0])
        out["time_us"].append(row[1])
        out["code"].append(ids.setdefault(row[2], len(ids)))
        out["value"].append(row[3])
    out["codes"] = list(ids)
    return _arrays(out, len(data), HEADERS[header])


def _arrays(out: dict, nbytes: int, has_value: bool) -> dict:
    out["subject_id"] = np.asarray(out["subject_id"], np.int64)
    out["time_us"] = np.asarray(out["time_us"], np.int64)
    out["code"] = np.asarray(out["code"], np.int32)
    out["value"] = np.asarray(out["value"], np.float32)
    out.update(rows=len(out["subject_id"]), bytes=nbytes, has_value_column=has_value)
    return out


def read_csv(paths: list[Path], threads: int, skip_bad: bool) -> tuple[EventTable, list[str], dict]:
    """C++ parse of every CSV -> (EventTable, reject lines, counts). Raises on the first bad line
    unless `skip_bad`."""
    from claimsfm.native import native

    _native = native()
    tables, rejects, stats = [], [], {"files": 0, "rows": 0, "bytes": 0, "lines_rejected": 0}
    for path in paths:
        r = _native.parse_csv(str(path), threads, skip_bad)
        if r["rejects"] and not skip_bad:
            line, reason = r["rejects"][0]
            raise located(path, line or None, reason)
        rejects += [f"{path}:{line}: {reason}" for line, reason in r["rejects"]]
        stats["files"] += 1
        stats["rows"] += r["rows"]
        stats["bytes"] += r["bytes"]
        stats["lines_rejected"] += len(r["rejects"])
        n = r["rows"]
        tables.append(EventTable(r["subject_id"], r["time_us"], r["code"], r["codes"], r["value"],
                                 np.full(n, -1, np.int32), [], np.zeros(n, bool), np.full(n, NO_TIME, np.int64)))
    if not tables:
        raise ClaimsfmError("no CSV input")
    return _merge(tables), rejects, stats


def _merge(tables: list[EventTable]) -> EventTable:
    if len(tables) == 1:
        return tables[0]
    codes: dict[str, int] = {}
    code_cols = []
    for t in tables:
        cmap = np.asarray([codes.setdefault(c, len(codes)) for c in t.code_names] or [0], np.int32)
        code_cols.append(cmap[t.code] if len(t) else t.code)

    def cat(name):
        return np.concatenate([getattr(t, name) for t in tables])

    return EventTable(cat("subject"), cat("time_us"), np.concatenate(code_cols), list(codes), cat("value"),
                      cat("facility"), [], cat("suspected"), cat("dx_start_us"))
