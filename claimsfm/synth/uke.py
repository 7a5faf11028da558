"""UKE writer (uke-format.md): one file per hospital per claim month, CP932, CRLF, trailing 0x1A.

A receipt comes in as plain data (see observation.Receipt); this module only formats records
and keeps the totals: HO 合計点数 = sum over billing units of 点数 x 回数, GO 総件数 = HO records,
GO 総合計点数 = sum of HO totals. Dates are Gregorian, or era-coded (GYYMM / GYYMMDD) on request.
"""
from __future__ import annotations

import datetime as dt
import functools

ERAS = ((dt.date(2019, 5, 1), 5, 2019), (dt.date(1989, 1, 8), 4, 1989), (dt.date(1926, 12, 25), 3, 1926),
        (dt.date(1912, 7, 30), 2, 1912), (dt.date(1868, 1, 1), 1, 1868))
EPOCH = dt.date(1970, 1, 1)
EMPTY31 = [""] * 31


@functools.lru_cache(maxsize=1 << 16)
def fmt_day(day: int, era: bool) -> str:
    d = EPOCH + dt.timedelta(days=int(day))
    if not era:
        return f"{d.year:04d}{d.month:02d}{d.day:02d}"
    for start, code, year0 in ERAS:
        if d >= start:
            return f"{code}{d.year - year0 + 1:02d}{d.month:02d}{d.day:02d}"
    raise ValueError(d)


def fmt_month(month: int, era: bool) -> str:
    y, m0 = divmod(month, 12)
    if not era:
        return f"{y:04d}{m0 + 1:02d}"
    return fmt_day((dt.date(y, m0 + 1, 1) - EPOCH).days, True)[:5]


def _item_line(item, counts_field) -> str:
    """SI / IY record: item = (kind, category, code, amount, points or None, ((day, count), ...))."""
    kind, cat, code, amount, points, days = item
    fields = list(EMPTY31)
    for d, c in days:
        fields[d - 1] = str(c)
    pts = "" if points is None else str(points)
    return f"{kind},{cat},1,{code},{amount},{pts},{counts_field},,,,,,," + ",".join(fields)


TOKEN_PREFIX = {"SI": "JPPROC//", "IY": "JPDRUG//", "TO": "JPDEVICE//"}


@functools.lru_cache(maxsize=1 << 18)
def unit_lines(unit: tuple) -> tuple[str, int, frozenset, tuple]:
    """One billing unit (records up to the one with points): its lines, 点数 x 回数, its days, and the
    MEDS events ingest makes of it as ((code, days with a count), ...) for the cohort statistics.

    Cached: the same drug combination on the same day recurs across thousands of receipts.
    """
    last = unit[-1]
    if last[4] is None or any(item[4] is not None for item in unit[:-1]):
        raise ValueError("a billing unit must end at, and only at, the record with points")
    count = sum(c for _, c in last[5])
    lines = "\r\n".join(_item_line(item, count) for item in unit)
    tokens = tuple((TOKEN_PREFIX[item[0]] + item[2], sum(1 for _, c in item[5] if c)) for item in unit)
    return lines, last[4] * count, frozenset(d for item in unit for d, _ in item[5]), tokens


@functools.lru_cache(maxsize=1 << 18)
def sy_line(code: str, start: int, outcome: int, mod: str, main: str, era: bool) -> str:
    return f"SY,{code},{fmt_day(start, era)},{outcome},{mod},,{main},"


def receipt_lines(r, number: int, era: bool) -> tuple[list[str], int]:
    """Records of one receipt and its total points; r.items are units from `unit_lines`.

    Background lines (r.bg_sy, r.bg_items: pre-formatted, CRLF-joined; all on days the receipt already
    has) follow the planted SY and SI/IY records, so removing them leaves the planted receipt as it was
    except for the HO/GO point totals."""
    total, days = r.bg_points, set()
    for u in r.items:
        total += u[1]
        days |= u[2]
    adm = fmt_day(r.admission_day, era) if r.admission_day is not None else ""
    re = (f"RE,{number},{r.rtype},{fmt_month(r.month, era)},{r.name},{r.sex},{fmt_day(r.birth_day, era)},"
          f"{r.benefit},{adm},,,,,{r.chart_no},,,,,,,,01{',' * 14},{r.kana},")
    ho = f"HO,{r.insurer_no:>8},{r.card_symbol},{r.card_number},{len(days)},{total},,,,,,,,,"
    out = [re, ho] + [sy_line(*x, era) for x in r.sy]
    if r.bg_sy:
        out.append(r.bg_sy)
    out += [u[0] for u in r.items]
    if r.bg_items:
        out.append(r.bg_items)
    return out, total


def write_file(path, hospital, claim_month: int, receipts, era: bool) -> tuple[int, int]:
    """Write one UKE file; returns (receipts, lines)."""
    lines = [",".join(["IR", "1", hospital.prefecture, "1", hospital.code, "", hospital.name,
                       fmt_month(claim_month, era), "00", "03-0000-0000"])]
    total = 0
    for n, r in enumerate(receipts, start=1):
        rec, pts = receipt_lines(r, n, era)
        lines += rec
        total += pts
    lines.append(f"GO,{len(receipts)},{total},99")
    text = "\r\n".join(lines) + "\r\n"
    # The whole output folder is renamed into place at the end (io.atomic_dir), so a plain write is safe here.
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(text.encode("cp932") + b"\x1a")
    return len(receipts), text.count("\r\n")
