"""A fast bulk UKE corpus for ingest benchmarks at paper scale (benchmarks/ingest_scale.py).

Not a simulator (`claimsfm synth` is): it is shaped like a claims extract so that the ingest does the
work a real one does. Facilities x 12 claim months (one file each); a fixed population per facility
whose patients come back month after month (a visit probability per patient); chronic diagnoses
repeated on every monthly receipt (the once-only rule has work to do), some suspected; a regimen of
recurring procedures and drugs per patient plus acute ones; about 10,000 distinct codes drawn with
Zipf-like frequencies. Lines are the formats of ukewriter.py, which both parsers accept.
Speed comes from formatting each patient's fixed text once and drawing codes and day patterns
from pre-sampled pools: about 30 MB/s on one core (a 2 GB corpus in 70-150 s, depending on the load).
"""
from __future__ import annotations

import calendar
import random
from pathlib import Path

import numpy as np

N_DX, N_PROC, N_DRUG, N_DEVICE = 3000, 4000, 2800, 200  # 10,000 distinct codes
BYTES_PER_PATIENT_MONTH = 330   # measured: the average receipt size times the visit probability
VISIT_P = 0.55
_NAMES = ["佐藤　太郎", "鈴木　花子", "高橋　一郎", "田中　陽子", "伊藤　健", "渡辺　美咲", "山本　翔", "中村　愛"]
_KANA = ["サトウ", "スズキ", "タカハシ", "タナカ", "イトウ", "ワタナベ", "ヤマモト", "ナカムラ"]
_TYPES = ["1112", "1112", "1112", "1116", "1111", "1122", "1212"]


def _zipf_pool(rng: np.random.Generator, n_codes: int, size: int) -> list[int]:
    weights = 1.0 / np.arange(1, n_codes + 1) ** 0.9
    return rng.choice(n_codes, size=size, p=weights / weights.sum()).tolist()


class _Pools:
    """Pre-sampled codes and day-field patterns, consumed round-robin from random offsets."""

    def __init__(self, seed: int):
        rng = np.random.default_rng(seed)
        self.proc = [f"1{10000000 + i}" for i in _zipf_pool(rng, N_PROC, 1 << 16)]
        self.drug = [f"6{20000000 + i}" for i in _zipf_pool(rng, N_DRUG, 1 << 16)]
        self.device = [f"7{10000000 + i}" for i in _zipf_pool(rng, N_DEVICE, 1 << 12)]
        self.dx = [f"{8800000 + i:07d}" for i in _zipf_pool(rng, N_DX, 1 << 16)]
        self.days = {}
        for ndays in (28, 29, 30, 31):
            pats = []
            for _ in range(256):
                fields = [""] * 31
                for d in rng.choice(ndays, size=int(rng.integers(1, 4)), replace=False):
                    fields[int(d)] = str(int(rng.choice([1, 1, 1, 2, 7, 14])))
                pats.append(",".join(fields))
            self.days[ndays] = pats


def _patient(rng: random.Random, pools: _Pools, fac: int, pid: int) -> dict:
    y, m, d = rng.randint(1930, 2015), rng.randint(1, 12), rng.randint(1, 28)
    i = rng.randrange(len(_NAMES))
    sex = rng.choice("12")
    re_tail = f",{_NAMES[i]},{sex},{y:04d}{m:02d}{d:02d},,,,,,,K{fac:03d}{pid:07d},,,,,,,,01,,,,,,,,,,,,,,,{_KANA[i]},"
    ho = f"HO,{rng.randint(1, 99999999):>8d},{rng.randint(1, 9999)},{rng.randint(1, 999)},2,500,,,,,,,,,"
    dx = []
    for _ in range(rng.randint(1, 5)):
        code = pools.dx[rng.randrange(len(pools.dx))]
        mod = "8002" if rng.random() < 0.1 else ""
        dx.append((code, f"{rng.randint(2005, 2017):04d}{rng.randint(1, 12):02d}01", mod))
    regimen = []
    for _ in range(rng.randint(1, 6)):
        if rng.random() < 0.5:
            code = pools.proc[rng.randrange(len(pools.proc))]
            regimen.append(f"SI,{rng.choice(['12', '60', '13', '40'])},1,{code},,{rng.randint(1, 500)},1,,,,,,,")
        else:
            code = pools.drug[rng.randrange(len(pools.drug))]
            regimen.append(f"IY,21,1,{code},1,{rng.randint(1, 90)},7,,,,,,,")
    return {"re": re_tail, "ho": ho, "dx": dx, "regimen": regimen, "type": rng.choice(_TYPES)}


def _receipt(r, pools: _Pools, p: dict, n: int, ym: str, ndays: int) -> list[str]:
    """One receipt; `r` is the generator's random() (the hot loop avoids randrange/randint)."""
    days = pools.days[ndays]
    proc, drug = pools.proc, pools.drug
    lines = [f"RE,{n},{p['type']},{ym}{p['re']}", p["ho"]]
    for code, start, mod in p["dx"]:
        lines.append(f"SY,{code},{start},1,{mod},,,")
    if r() < 0.3:  # a new acute diagnosis, this month only
        lines.append(f"SY,{pools.dx[int(r() * len(pools.dx))]},{ym}01,1,,,,")
    for line in p["regimen"]:
        if r() < 0.85:
            lines.append(line + days[int(r() * 256)])
    for _ in range(int(r() * 7)):
        x = r()
        if x < 0.5:
            lines.append(f"SI,40,1,{proc[int(r() * len(proc))]},,{1 + int(r() * 500)},1,,,,,,," + days[int(r() * 256)])
        elif x < 0.95:
            lines.append(f"IY,21,1,{drug[int(r() * len(drug))]},1,{1 + int(r() * 90)},7,,,,,,," + days[int(r() * 256)])
        else:
            code = pools.device[int(r() * len(pools.device))]
            lines.append(f"TO,40,1,{code},1,10,1,006,120,,,,,,,,," + days[int(r() * 256)])
    return lines


def write_bulk(out: Path, mb: float, seed: int = 0, facilities: int = 32, months: int = 12,
               start: tuple[int, int] = (2018, 1)) -> list[Path]:
    """Write about `mb` MB of UKE as <out>/<facility code>/<YYYYMM>.UKE (CP932, CRLF); returns the files."""
    out = Path(out)
    rng = random.Random(seed)
    pools = _Pools(seed)
    per_fac = max(1, int(mb * 1e6 / (facilities * months * BYTES_PER_PATIENT_MONTH)))
    files = []
    for f in range(facilities):
        fac_code = f"{1300001 + f:07d}"
        pop = [_patient(rng, pools, f, i) for i in range(per_fac)]
        (out / fac_code).mkdir(parents=True, exist_ok=True)
        for k in range(months):
            y, mo = start[0] + (start[1] - 1 + k) // 12, (start[1] - 1 + k) % 12 + 1
            ym, ndays = f"{y:04d}{mo:02d}", calendar.monthrange(y, mo)[1]
            lines = [f"IR,1,13,1,{fac_code},,病院{f},{ym},00,03-0000-0000"]
            n = 0
            r = rng.random
            for p in pop:
                if r() < VISIT_P:
                    n += 1
                    lines += _receipt(r, pools, p, n, ym, ndays)
            lines.append(f"GO,{n},0,99")
            path = out / fac_code / f"{ym}.UKE"
            path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp932") + b"\x1a")
            files.append(path)
    return files
