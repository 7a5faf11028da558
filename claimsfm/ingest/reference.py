"""Pure-Python UKE parser: the slow twin of csrc/uke_parser.cpp and the test oracle.

It returns exactly what `claimsfm._native.parse_uke` returns (the same columns, tables, rejects
and counts), so the suite can compare the two event for event. Keep both in step: every check
here mirrors one in csrc/uke_text.cpp or csrc/uke_parser.cpp, in the same order.
"""
from __future__ import annotations

import calendar
import datetime as dt
import re

import numpy as np

from claimsfm.native import native

NO_DAY = np.iinfo(np.int32).min
_EPOCH = dt.date(1970, 1, 1).toordinal()
_ERA_START = {1: 1868, 2: 1912, 3: 1926, 4: 1989, 5: 2019}
_CP932 = re.compile(rb"(?:[\x00-\x7f\xa1-\xdf]|[\x81-\x9f\xe0-\xfc][\x40-\x7e\x80-\xfc])*")
_DIGITS = re.compile(rb"[0-9]+")
_SEP = b"\x1f"
SPECS = {b"IR": (5, 10), b"RE": (7, 38), b"HO": (4, 15), b"KO": (3, 12), b"SY": (4, 8),
         b"SI": (7, 44), b"IY": (7, 44), b"TO": (7, 48), b"CO": (4, 5), b"GO": (2, 4)}
IGNORED = {b"SN", b"JD", b"MF", b"GR", b"SJ", b"TI", b"TR", b"TS"}
_KIND = {b"SI": ("JPPROC//", 13), b"IY": ("JPDRUG//", 13), b"TO": ("JPDEVICE//", 17)}
STAT_KEYS = native().UKE_STAT_KEYS  # the counters of csrc/uke_parser.hpp CLAIMSFM_UKE_STATS, in order


def _digits(s: bytes, width: int) -> bool:
    return len(s) == width and _DIGITS.fullmatch(s) is not None


def _count(s: bytes):
    if not s:
        return 0
    return int(s) if len(s) <= 12 and _DIGITS.fullmatch(s) else None


def _year_month(s: bytes, era: bool):
    if era:
        g, yy = s[0] - 48, int(s[1:3])
        if g < 1 or g > 5 or yy < 1:
            return None
        y, m = _ERA_START[g] + yy - 1, int(s[3:5])
    else:
        y, m = int(s[:4]), int(s[4:6])
    return (y, m) if 1850 <= y <= 2199 and 1 <= m <= 12 else None


def parse_month(s: bytes):
    """YYYYMM or era GYYMM -> (year, month), or None."""
    if _digits(s, 6):
        return _year_month(s, False)
    return _year_month(s, True) if _digits(s, 5) else None


def parse_date(s: bytes):
    """YYYYMMDD or era GYYMMDD -> days since 1970-01-01, or None."""
    if _digits(s, 8):
        ym, d = _year_month(s, False), int(s[6:8])
    elif _digits(s, 7):
        ym, d = _year_month(s, True), int(s[5:7])
    else:
        return None
    if ym is None or d < 1 or d > calendar.monthrange(*ym)[1]:
        return None
    return dt.date(ym[0], ym[1], d).toordinal() - _EPOCH


# Reject excerpts (csrc/uke_parser.cpp last_shown/shown): besides the record ID, only code and count
# fields that come before the record's first free-text or identifying field, so a stray comma inside a
# name, card number or comment cannot shift a value into a shown position.
_LAST_SHOWN = {b"IR": 5, b"RE": 3, b"SY": 5, b"SI": 7, b"IY": 7, b"TO": 9, b"CO": 4, b"GO": 4}
EXCERPT_MAX_VALUE = 12
_RECORD_ID = re.compile(rb"[A-Z]{2}")


def _shown(rid: bytes, pos: int) -> bool:
    return 2 <= pos <= _LAST_SHOWN.get(rid, 0) and not (rid == b"SY" and pos == 3)


def mask(text: bytes) -> bytes:
    """The short excerpt of a rejected line for rejects.txt: record ID, shown code/count fields, *** for
    any other non-empty field up to the last shown position, then the field count."""
    if not text:
        return b""
    parts = text.split(b",")
    rid = parts[0] if _RECORD_ID.fullmatch(parts[0]) else b"?"
    last = _LAST_SHOWN.get(rid, 0)
    out = [rid]
    for i, p in enumerate(parts[1:last], start=2):
        ok = _shown(rid, i) and len(p) <= EXCERPT_MAX_VALUE and (not p or _DIGITS.fullmatch(p) is not None)
        out.append(p if ok else b"***" if p else b"")
    if len(parts) > last and len(parts) > 1:
        out.append(b"...(%d fields)" % len(parts))
    return b",".join(out)


def valid_receipt_type(s: bytes) -> bool:
    """レセプト種別 (uke-format.md §4): 医科, insurance kind 1-4, payer count, class digit in its limits."""
    if not _digits(s, 4) or s[:1] != b"1" or not b"1" <= s[1:2] <= b"4":
        return False
    payers, cls = s[2:3], s[3:4]
    if s[1:2] == b"2":
        return b"1" <= payers <= b"4" and cls in (b"1", b"2")
    if not b"1" <= payers <= b"5":
        return False
    if s[1:2] == b"3":
        return cls in (b"7", b"8", b"9", b"0")
    return b"1" <= cls <= b"6" if s[1:2] == b"4" else True


class _Receipt:
    def __init__(self, first_event: int):
        self.bad = False
        self.first_event = first_event
        self.first_service = None
        self.has_ho = False
        self.chart_key = self.insurer_key = b""


class _FileParser:
    """One file, one pass, the same state machine as csrc/uke_parser.cpp's Parser."""

    def __init__(self, index: int, link_by: str, stop_at_first: bool):
        self.index, self.link_by, self.stop_at_first = index, link_by, stop_at_first
        self.events: list[tuple] = []  # (key, day, code, value, facility, suspected, dx_start)
        self.codes: list[str] = []
        self.code_ids: dict[str, int] = {}
        self.keys: list[bytes] = []
        self.key_ids: dict[bytes, int] = {}
        self.facilities: list[bytes] = []
        self.facility = -1
        self.facility_code = b""
        self.rejects: list[tuple] = []
        self.stats = dict.fromkeys(STAT_KEYS, 0)
        self.utf8 = False
        self.rc: _Receipt | None = None

    def reject(self, text: bytes, lineno: int, reason: str) -> bool:
        self.rejects.append((self.index, lineno, reason, mask(text)))
        self.stats["lines_rejected"] += 1
        if self.rc is not None:
            self.rc.bad = True
        return not self.stop_at_first

    def intern(self, code: str) -> None:
        if code not in self.code_ids:
            self.code_ids[code] = len(self.codes)
            self.codes.append(code)

    def emit(self, code: str, day, value=float("nan"), suspected=False, start=NO_DAY):
        self.intern(code)
        self.events.append([-1, day, self.code_ids[code], value, self.facility, int(suspected), start])

    def close_receipt(self):
        rc, self.rc = self.rc, None
        if rc is None:
            return
        if rc.bad:
            del self.events[rc.first_event:]
            self.stats["receipts_rejected"] += 1
            return
        visit_day = rc.month_first if rc.first_service is None else rc.first_service
        self.emit("JPVISIT//INPATIENT" if rc.inpatient else "JPVISIT//OUTPATIENT", visit_day)
        key = rc.insurer_key if self.link_by == "insurer" and rc.has_ho else rc.chart_key
        if key not in self.key_ids:
            self.key_ids[key] = len(self.keys)
            self.keys.append(key)
        for ev in self.events[rc.first_event:]:
            ev[0] = self.key_ids[key]
        self.stats["receipts"] += 1

    def record_ir(self, f):
        if not _digits(f[4], 7):
            return "bad facility code in field 5 of IR"
        if len(f) > 7 and f[7] and parse_month(f[7]) is None:
            return "bad date in field 8 of IR"
        self.facility_code = f[4]
        if f[4] not in self.facilities:
            self.facilities.append(f[4])
        self.facility = self.facilities.index(f[4])
        return None

    def record_re(self, f):
        rc = self.rc
        if self.facility < 0:
            return "RE record before any IR"
        if not _digits(f[2], 4):
            return "bad receipt type in field 3 of RE"
        if not valid_receipt_type(f[2]):
            return "unknown receipt type in field 3 of RE"
        ym = parse_month(f[3])
        if ym is None:
            return "bad date in field 4 of RE"
        if f[5] not in (b"1", b"2"):
            return "bad sex in field 6 of RE"
        birth = parse_date(f[6])
        if birth is None:
            return "bad date in field 7 of RE"
        rc.month_first = dt.date(ym[0], ym[1], 1).toordinal() - _EPOCH
        rc.month_last = rc.month_first + calendar.monthrange(*ym)[1] - 1
        if birth > rc.month_last:
            return "birth date after the treatment month in field 7 of RE"
        rc.inpatient = (f[2][3] - 48) % 2 == 1
        rc.birth, rc.sex = birth, f[5]
        tail = _SEP + str(birth).encode() + _SEP + f[5]
        chart = f[13].strip(b" ") if len(f) > 13 else b""
        if chart:
            rc.chart_key = b"C" + _SEP + self.facility_code + _SEP + chart
        else:
            rc.chart_key = b"N" + _SEP + self.facility_code + _SEP + f[4].strip(b" ") + tail
        self.emit("SEX//M" if f[5] == b"1" else "SEX//F", NO_DAY)
        self.emit("MEDS_BIRTH", birth)
        return None

    def record_ho(self, f):
        rc = self.rc
        insurer = f[1].strip(b" ")
        if rc.has_ho or not insurer:
            return None
        rc.has_ho = True
        rc.insurer_key = _SEP.join([b"I", insurer, f[2].strip(b" "), f[3].strip(b" "),
                                    str(rc.birth).encode(), rc.sex])
        return None

    def record_sy(self, f):
        rc = self.rc
        if not _digits(f[1], 7):
            return "bad code in field 2 of SY"
        start = NO_DAY
        if f[2]:
            start = parse_date(f[2])
            if start is None:
                return "bad date in field 3 of SY"
        if not (f[3] == b"" or (len(f[3]) == 1 and b"1" <= f[3] <= b"4")):
            return "bad outcome in field 4 of SY"
        suspected = False
        if len(f) > 4:
            mods = f[4]
            if len(mods) % 4 or (mods and not _DIGITS.fullmatch(mods)):
                return "bad modifier codes in field 5 of SY"
            suspected = any(mods[i:i + 4] == b"8002" for i in range(0, len(mods), 4))
        inside = start != NO_DAY and rc.month_first <= start <= rc.month_last
        self.emit("JPDX//" + f[1].decode(), start if inside else rc.month_first, suspected=suspected, start=start)
        if f[3] == b"3":
            self.emit("MEDS_DEATH", rc.month_last)
        return None

    def record_detail(self, rid: bytes, f):
        rc, name = self.rc, rid.decode()
        if not _digits(f[3], 9):
            return f"bad code in field 4 of {name}"
        if _count(f[6]) is None:
            return f"non-numeric count in field 7 of {name}"
        prefix, first = _KIND[rid]
        self.intern(prefix + f[3].decode())  # before the day fields, as the C++ parser does
        for k in range(min(31, len(f) - first)):
            n = _count(f[first + k])
            if n is None:
                return f"non-numeric count in field {first + k + 1} of {name}"
            if n == 0:
                continue
            if k >= rc.month_last - rc.month_first + 1:
                return f"service day outside the treatment month in field {first + k + 1} of {name}"
            day = rc.month_first + k
            if rc.first_service is None or day < rc.first_service:
                rc.first_service = day
            self.emit(prefix + f[3].decode(), day, float(n))
        return None

    def line(self, text: bytes, lineno: int) -> bool:
        self.stats["records"] += 1
        rid = text.split(b",", 1)[0]
        if rid in (b"IR", b"GO", b"RE"):
            self.close_receipt()
        if rid == b"RE":
            self.rc = _Receipt(len(self.events))
        if not self.utf8 and not text.isascii() and _CP932.fullmatch(text) is None:
            return self.reject(text, lineno, "invalid CP932 bytes")
        f = text.split(b",")
        if rid not in SPECS:
            self.stats["records_ignored" if rid in IGNORED else "records_unknown"] += 1
            return True
        lo, hi = SPECS[rid]
        if not lo <= len(f) <= hi:
            return self.reject(text, lineno, f"wrong field count: {rid.decode()} has {len(f)} fields "
                                             f"(expected {lo} to {hi})")
        err = None
        if rid == b"IR":
            err = self.record_ir(f)
        elif rid == b"RE":
            err = self.record_re(f)
        elif rid == b"GO":
            pass
        elif self.rc is None:
            err = f"{rid.decode()} record before any RE"
        elif self.rc.bad:
            return True
        elif rid == b"HO":
            err = self.record_ho(f)
        elif rid == b"SY":
            err = self.record_sy(f)
        elif rid in _KIND:
            err = self.record_detail(rid, f)
        return self.reject(text, lineno, err) if err else True

    def parse(self, data: bytes):
        self.stats["files"] = 1
        self.stats["bytes"] = len(data)
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        data = data.rstrip(b"\x1a")
        eof_line = 0  # a mid-file end-of-file mark: lines from the one holding it on are not read
        at = data.find(b"\x1a")
        if at >= 0:
            start = data.rfind(b"\n", 0, at) + 1
            eof_line = data.count(b"\n", 0, start) + 1
            data = data[:start]
        if not data and not eof_line:
            self.rejects.append((self.index, 0, "empty file", b""))
            self.stats["files_rejected"] = 1
            return
        if not data.isascii():
            try:
                data.decode("utf-8")
                self.utf8 = True
            except UnicodeDecodeError:
                self.utf8 = False
        lines = data.split(b"\n")
        for lineno, text in enumerate(lines, start=1):
            if lineno == len(lines):
                if text:  # the last record lacks its line end
                    self.reject(b"", lineno, "truncated record (no line end)")
                break
            if text.endswith(b"\r"):
                text = text[:-1]
            if text and not self.line(text, lineno):
                eof_line = 0
                break
        if eof_line:
            self.reject(b"", eof_line, "data after the end-of-file mark 0x1A")
        self.close_receipt()


def parse_files(paths, link_by: str = "chart", stop_at_first_error: bool = True) -> dict:
    """Same contract as `claimsfm._native.parse_uke` (single-threaded)."""
    events, codes, keys, key_utf8, facilities, rejects = [], [], [], [], [], []
    code_ids, key_ids, fac_ids = {}, {}, {}
    stats = dict.fromkeys(STAT_KEYS, 0)
    for i, path in enumerate(paths):
        p = _FileParser(i, link_by, stop_at_first_error)
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError:
            p.stats.update(files=1, files_rejected=1)
            p.rejects.append((i, 0, "cannot read file", b""))
        else:
            p.parse(data)
        code_map = [_intern(code_ids, codes, c, c) for c in p.codes]
        key_map = []
        for k in p.keys:
            if (p.utf8, k) not in key_ids:
                key_utf8.append(int(p.utf8))
            key_map.append(_intern(key_ids, keys, (p.utf8, k), k))
        fac_map = [_intern(fac_ids, facilities, fc, fc.decode()) for fc in p.facilities]
        for key, day, code, value, fac, susp, start in p.events:
            events.append((key_map[key], day, code_map[code], value, fac_map[fac], susp, start))
        rejects.extend(p.rejects)
        for k in STAT_KEYS:
            stats[k] += p.stats[k]
        if stop_at_first_error and p.rejects:
            break
    return _columns(events, codes, keys, key_utf8, facilities, rejects, stats)


def _intern(ids: dict, table: list, tag, item) -> int:
    if tag not in ids:
        ids[tag] = len(table)
        table.append(item)
    return ids[tag]


def _columns(events, codes, keys, key_utf8, facilities, rejects, stats) -> dict:
    cols = list(zip(*events, strict=True)) if events else [()] * 7
    dtypes = (np.int32, np.int32, np.int32, np.float32, np.int32, np.uint8, np.int32)
    names = ("key", "day", "code", "value", "facility", "suspected", "dx_start")
    out = {n: np.asarray(c, dtype=t) for n, c, t in zip(names, cols, dtypes, strict=True)}
    out.update(codes=codes, keys=keys, key_utf8=np.asarray(key_utf8, np.uint8),
               facilities=facilities, rejects=rejects, stats=stats)
    return out
