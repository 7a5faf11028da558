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
    """SI / IY record: item = (kind, category, code, amount, points or None, {day: count})."""
    kind, cat, code, amount, points, days = item
    fields = list(EMPTY31)
    for d, c in days.items():
        fields[d - 1] = str(c)
    pts = "" if points is None else str(points)
    return f"{kind},{cat},1,{code},{amount},{pts},{counts_field},,,,,,," + ",".join(fields)


def receipt_lines(r, number: int, era: bool) -> tuple[list[str], int]:
    """Records of one receipt and its total points."""
    items, total, lines, unit = r.items, 0, [], []
    for item in items:
        unit.append(item)
        if item[4] is not None:
            count = sum(item[5].values())
            total += item[4] * count
            lines += [_item_line(u, count) for u in unit]
            unit = []
    if unit:
        raise ValueError("a billing unit without points")
    days_seen = len({d for it in items for d in it[5]})
    re = ["RE", str(number), r.rtype, fmt_month(r.month, era), r.name, str(r.sex), fmt_day(r.birth_day, era),
          r.benefit, fmt_day(r.admission_day, era) if r.admission_day is not None else "", "", "", "", "",
          r.chart_no, "", "", "", "", "", "", "", "01"] + [""] * 14 + [r.kana, ""]
    ho = ["HO", f"{r.insurer_no:>8}", r.card_symbol, r.card_number, str(days_seen), str(total)] + [""] * 9
    sy = [",".join(["SY", code, fmt_day(start, era), str(outcome), mod, "", main, ""])
          for code, start, outcome, mod, main in r.sy]
    return [",".join(re), ",".join(ho)] + sy + lines, total


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
    # The whole output folder is renamed into place at the end (io.atomic_dir), so a plain write is safe here.
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(("\r\n".join(lines) + "\r\n").encode("cp932") + b"\x1a")
    return len(receipts), len(lines)
