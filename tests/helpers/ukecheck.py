"""An independent structural validator for UKE files, written from docs/uke-format.md.

It shares no code with claimsfm.synth: it re-derives encodings, field counts, dates, billing
units and totals from the format description, and returns a list of problems (empty = valid).
"""
from __future__ import annotations

import calendar
import re

FIELDS = {"IR": 10, "RE": 38, "HO": 15, "KO": 12, "SY": 8, "SI": 44, "IY": 44, "TO": 48, "CO": 5, "GO": 4}
DAY_OFFSET = {"SI": 13, "IY": 13, "TO": 17}   # 0-based index of day 1
ERA_START = {1: 1868, 2: 1912, 3: 1926, 4: 1989, 5: 2019}
HALF_WIDTH = re.compile(r"[\x20-\x7e]")


def parse_date(text: str):
    """(year, month, day or None) from YYYYMM[DD] or GYYMM[DD]; None when malformed."""
    if not text.isdigit():
        return None
    if len(text) in (5, 7):
        era, rest = int(text[0]), text[1:]
        if era not in ERA_START:
            return None
        year = ERA_START[era] + int(rest[:2]) - 1
        rest = rest[2:]
    elif len(text) in (6, 8):
        year, rest = int(text[:4]), text[4:]
    else:
        return None
    month = int(rest[:2])
    if not 1 <= month <= 12:
        return None
    day = None
    if len(rest) == 4:
        day = int(rest[2:])
        if not 1 <= day <= calendar.monthrange(year, month)[1]:
            return None
    return year, month, day


def _valid_type(t: str) -> bool:
    if not re.fullmatch(r"1[1-4][1-5]\d", t):
        return False
    d2, d4 = t[1], int(t[3])
    if d2 == "2":
        return d4 in (1, 2)
    if d2 == "3":
        return d4 in (7, 8, 9, 0)
    if d2 == "4":
        return 1 <= d4 <= 6
    return True


def check_file(data: bytes) -> list[str]:
    problems = []
    if not data.endswith(b"\r\n\x1a") or data.count(b"\x1a") != 1:
        return ["file must end with CRLF then one 0x1A"]
    try:
        text = data[:-1].decode("cp932")
    except UnicodeDecodeError as exc:
        return [f"not CP932: {exc}"]
    lines = text.split("\r\n")[:-1]
    if any("\n" in ln or "\r" in ln for ln in lines):
        problems.append("bare CR or LF inside a record")
    recs = [ln.split(",") for ln in lines]
    for n, r in enumerate(recs, start=1):
        if r[0] not in FIELDS:
            problems.append(f"line {n}: unknown record {r[0]}")
        elif len(r) != FIELDS[r[0]]:
            problems.append(f"line {n}: {r[0]} has {len(r)} fields, expected {FIELDS[r[0]]}")
    if problems:
        return problems
    if recs[0][0] != "IR" or recs[-1][0] != "GO" or sum(r[0] in ("IR", "GO") for r in recs) != 2:
        return ["file must start with one IR and end with one GO"]
    problems += _check_ir(recs[0])
    claim = parse_date(recs[0][7])
    receipts, current = [], None
    for n, r in enumerate(recs[1:-1], start=2):
        if r[0] == "RE":
            current = [(n, r)]
            receipts.append(current)
        elif current is None:
            problems.append(f"line {n}: {r[0]} before the first RE")
        else:
            current.append((n, r))
    totals, n_payer = 0, 0
    for k, rec in enumerate(receipts, start=1):
        p, total, payers = _check_receipt(rec, k, claim)
        problems += p
        totals += total
        n_payer += payers
    go = recs[-1]
    if go[1] != str(n_payer) or go[2] != str(totals) or go[3] != "99":
        problems.append(f"GO {go[1:]} != count {n_payer}, total {totals}, volume 99")
    return problems


def _check_ir(r) -> list[str]:
    p = []
    if r[1] not in ("1", "2") or not re.fullmatch(r"\d{2}", r[2]) or not 1 <= int(r[2]) <= 47 or r[3] != "1":
        p.append(f"IR header fields {r[1:4]}")
    if not re.fullmatch(r"\d{7}", r[4]):
        p.append(f"IR facility code {r[4]!r}")
    if parse_date(r[7]) is None or parse_date(r[7])[2] is not None or r[8] != "00":
        p.append(f"IR claim month / volume {r[7]!r} {r[8]!r}")
    return p


def _check_receipt(rec, number, claim):
    (n0, re_), rest = rec[0], rec[1:]
    p = []
    where = f"receipt {number} (line {n0})"
    if re_[1] != str(number) or not _valid_type(re_[2]):
        p.append(f"{where}: number {re_[1]} / type {re_[2]}")
    month = parse_date(re_[3])
    if month is None or month[2] is not None:
        return [f"{where}: bad 診療年月 {re_[3]!r}"], 0, 0
    if claim and (claim[0] * 12 + claim[1]) - (month[0] * 12 + month[1]) != 1:
        p.append(f"{where}: 診療年月 is not the month before the claim month")
    birth = parse_date(re_[6])
    if re_[5] not in ("1", "2") or birth is None or birth[2] is None or birth[:2] > month[:2]:
        p.append(f"{where}: sex/birth {re_[5]!r} {re_[6]!r}")
    if not re_[4] or HALF_WIDTH.search(re_[4]) or not re.fullmatch(r"[ァ-ヶー]+", re_[36]):
        p.append(f"{where}: name must be full-width, kana full-width katakana")
    inpatient = int(re_[2][3]) % 2 == 1
    if inpatient != bool(re_[8]) or (re_[8] and parse_date(re_[8]) is None):
        p.append(f"{where}: admission date {re_[8]!r} for type {re_[2]}")
    kinds = [r[0] for _, r in rest]
    if not kinds or kinds[0] != "HO" or "SY" not in kinds or not any(k in ("SI", "IY", "TO") for k in kinds):
        return p + [f"{where}: needs HO, SY and at least one SI/IY/TO ({kinds[:4]})"], 0, 0
    first_item = min(i for i, k in enumerate(kinds) if k in ("SI", "IY", "TO", "CO"))
    if any(k == "SY" for k in kinds[first_item:]) or any(k not in ("HO", "KO", "SY") for k in kinds[:first_item]):
        p.append(f"{where}: record order")
    dim = calendar.monthrange(month[0], month[1])[1]
    for n, r in rest:
        if r[0] == "SY":
            p += _check_sy(r, n, month)
    total, days, q = _billing(rest, dim, where)
    p += q
    ho = rest[0][1]
    if not re.fullmatch(r" *\d+", ho[1]) or len(ho[1]) != 8:
        p.append(f"{where}: HO insurer number {ho[1]!r} is not X8 right-aligned")
    if ho[5] != str(total) or ho[4] != str(len(days)):
        p.append(f"{where}: HO days/total {ho[4]}/{ho[5]} != {len(days)}/{total}")
    return p, total, sum(k in ("HO", "KO") for k in kinds)


def _check_sy(r, n, month) -> list[str]:
    p = []
    start = parse_date(r[2])
    if not re.fullmatch(r"\d{7}", r[1]) or start is None or start[2] is None or start[:2] > month[:2]:
        p.append(f"line {n}: SY code/start {r[1]!r} {r[2]!r}")
    if r[3] not in ("1", "2", "3", "4") or len(r[4]) % 4 or (r[4] and not r[4].isdigit()) or r[6] not in ("", "01"):
        p.append(f"line {n}: SY outcome/modifier/main {r[3]!r} {r[4]!r} {r[6]!r}")
    return p


def _billing(rest, dim, where):
    """Billing units: records up to the first with points; 回数 = sum of day fields on each."""
    p, total, unit, days = [], 0, [], set()
    items = [(n, r) for n, r in rest if r[0] in DAY_OFFSET]
    for k, (n, r) in enumerate(items):
        off = DAY_OFFSET[r[0]]
        fields = r[off:off + 31]
        if any(f and not f.isdigit() for f in fields) or any(f for f in fields[dim:]):
            p.append(f"line {n}: day fields")
            continue
        counts = [int(f) if f else 0 for f in fields]
        days |= {d for d, c in enumerate(counts) if c}
        bad_shinryo = (k == 0 and not r[1]) or (r[1] and not re.fullmatch(r"\d{2}", r[1]))
        if not re.fullmatch(r"\d{9}", r[3]) or r[2] != "1" or bad_shinryo:
            p.append(f"line {n}: code/負担区分/診療識別")
        if str(sum(counts)) != r[6] or sum(counts) == 0:
            p.append(f"line {n}: 回数 {r[6]} != sum of day fields {sum(counts)}")
        unit.append(r)
        if r[5]:
            if not r[5].isdigit() or len({u[6] for u in unit}) != 1:
                p.append(f"line {n}: billing unit points/count")
            else:
                total += int(r[5]) * int(r[6])
            unit = []
    if unit:
        p.append(f"{where}: last billing unit has no points")
    return total, days, p
