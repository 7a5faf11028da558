"""A small seeded writer of UKE receipt files, for tests and the benchmark (not a simulator:
`claimsfm synth` is the realistic generator). It exercises every rule the parsers implement:
CP932 and UTF-8, CRLF and LF, era-coded and Gregorian dates, chronic diagnoses repeated every
month, suspected codes, deaths, per-day counts, unknown and ignored records.
"""
from __future__ import annotations

import random
from pathlib import Path

_FAMILY = ["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤"]
_GIVEN = ["太郎", "花子", "一郎", "陽子", "健", "美咲", "翔", "愛", "誠", "恵"]
_KANA = ["サトウ", "スズキ", "タカハシ", "タナカ", "イトウ", "ワタナベ", "ヤマモト", "ナカムラ", "コバヤシ", "カトウ"]
_TYPES = ["1112", "1112", "1116", "1310", "1318", "1111", "1317", "1212", "1122"]
_ERA = [(2019, 5, 2019), (1989, 4, 1989), (1926, 3, 1926)]  # (from year, era code, start year)


def _era(y: int, m: int, d: int | None) -> str:
    for start, code, base in _ERA:
        if (y, m) >= ((start, 5) if code == 5 else (start, 1)):
            s = f"{code}{y - base + 1:02d}{m:02d}"
            return s + (f"{d:02d}" if d else "")
    raise ValueError("date before Showa")


def _date(y, m, d, era):
    return _era(y, m, d) if era else f"{y:04d}{m:02d}{d:02d}"


def _days(rng: random.Random, ndays: int, k: int) -> list[str]:
    fields = [""] * 31
    for d in rng.sample(range(ndays), k):
        fields[d] = str(rng.choice((1, 1, 1, 2, 7, 14)))
    return fields


def _patient(rng: random.Random, pid: int) -> dict:
    i, j = rng.randrange(10), rng.randrange(10)
    return {"name": f"{_FAMILY[i]}　{_GIVEN[j]}", "kana": _KANA[i], "sex": rng.choice("12"),
            "birth": (rng.randint(1930, 2015), rng.randint(1, 12), rng.randint(1, 28)),
            "chart": f"K{pid:06d}" if rng.random() > 0.1 else "",
            "insurer": f"{rng.randint(1, 99999999):>8d}", "card": f"{rng.randint(1, 9999)}",
            "dx": [f"{rng.randint(8800000, 8800400):07d}" for _ in range(rng.randint(1, 4))]}


def _receipt(rng, n, p, y, mo, ndays, era) -> list[str]:
    ym = _era(y, mo, None) if era else f"{y:04d}{mo:02d}"
    lines = [f"RE,{n},{rng.choice(_TYPES)},{ym},{p['name']},{p['sex']},{_date(*p['birth'], era)},,,,,,,"
             f"{p['chart']},,,,,,,,01,,,,,,,,,,,,,,,{p['kana']},"]
    if rng.random() < 0.9:
        lines.append(f"HO,{p['insurer']},{p['card']},{rng.randint(1, 999)},2,500,,,,,,,,,")
    if rng.random() < 0.2:
        lines.append("SN,1,01,,,,01,,")
    for code in p["dx"]:
        sy, sm = max(1990, y - rng.randint(0, 3)), rng.randint(1, 12)
        start = _date(sy, sm, 1, era) if (sy, sm) <= (y, mo) else _date(y, mo, 1, era)
        mod = "8002" if rng.random() < 0.1 else ("2056" if rng.random() < 0.05 else "")
        out = "3" if rng.random() < 0.002 else "1"
        lines.append(f"SY,{code},{start},{out},{mod},,,")
    for _ in range(rng.randint(2, 12)):
        kind = rng.random()
        days = _days(rng, ndays, rng.randint(1, 3))
        if kind < 0.5:
            act = rng.choice(['12', '60', '13', '40'])
            lines.append(f"SI,{act},1,1{rng.randint(10000000, 10000300)},,{rng.randint(1, 500)},1,,,,,,,"
                         + ",".join(days))
        elif kind < 0.9:
            lines.append(f"IY,21,1,6{rng.randint(20000000, 20000500)},1,{rng.randint(1, 90)},7,,,,,,," + ",".join(days))
        else:
            lines.append(f"TO,40,1,7{rng.randint(10000000, 10000050)},1,10,1,006,120,,,,,,,,," + ",".join(days))
        if rng.random() < 0.05:
            lines.append("CO,,1,810000001,")
    return lines


def write_corpus(out: Path, seed: int = 0, facilities: int = 3, months: int = 4, patients: int = 40,
                 target_bytes: int | None = None, start: tuple[int, int] = (2018, 1)) -> list[Path]:
    """Write <out>/<facility>/<YYYYMM>.UKE files; with `target_bytes`, keep adding months until
    the corpus is at least that large. Returns the files in write order."""
    import calendar

    rng = random.Random(seed)
    out = Path(out)
    pop = [[_patient(rng, f * 100000 + i) for i in range(patients)] for f in range(facilities)]
    files, total, k = [], 0, 0
    while k < months or (target_bytes and total < target_bytes):
        y, mo = start[0] + (start[1] - 1 + k) // 12, (start[1] - 1 + k) % 12 + 1
        ndays = calendar.monthrange(y, mo)[1]
        for f in range(facilities):
            utf8 = f % 4 == 3                 # some facilities write UTF-8 with LF
            era = (y, mo) < (2020, 5) and f % 2 == 0
            lines = [f"IR,1,13,1,{1300001 + f:07d},,病院{f},{y:04d}{mo:02d},00,03-0000-0000"]
            n = 0
            for p in pop[f]:
                if rng.random() < 0.6:
                    n += 1
                    lines += _receipt(rng, n, p, y, mo, ndays, era)
            if rng.random() < 0.1:
                lines.append("XX,unknown")
            lines.append(f"GO,{n},0,99")
            eol = "\n" if utf8 else "\r\n"
            data = "".join(x + eol for x in lines).encode("utf-8" if utf8 else "cp932")
            data += b"" if utf8 else b"\x1a"
            path = out / f"{1300001 + f:07d}" / f"{y:04d}{mo:02d}.UKE"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            files.append(path)
            total += len(data)
        k += 1
    return files
