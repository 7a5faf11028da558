"""T1: who the patients are (age, sex, birth date, insurer identity, hospitals they use).

Profiles (synthetic-data.md §3/§4): `census` follows the 2020 census age bands, `employer` a
JMDC-like insured population (ages 0–74, employees and families), `hospital` the older,
visit-driven population of a hospital database. Static draws use stream month 0.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from claimsfm.errors import ClaimsfmError
from claimsfm.synth.streams import choice, uniform

BANDS = np.array([[0, 15], [15, 25], [25, 35], [35, 45], [45, 55], [55, 65], [65, 75], [75, 85], [85, 100]])
PROFILES = {
    "census": [12, 9, 10, 12, 14, 13, 15, 10, 5],
    "employer": [16, 11, 14, 17, 19, 15, 8, 0, 0],
    "hospital": [4, 3, 5, 8, 12, 16, 22, 20, 10],
}
# P(male) by age band (census: fewer men among the old)
P_MALE = np.array([0.51, 0.51, 0.51, 0.505, 0.5, 0.495, 0.48, 0.43, 0.3])
FAMILY = ["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤", "吉田", "山田"]
FAMILY_KANA = ["サトウ", "スズキ", "タカハシ", "タナカ", "イトウ", "ワタナベ", "ヤマモト", "ナカムラ", "コバヤシ",
               "カトウ", "ヨシダ", "ヤマダ"]
GIVEN_M = [("太郎", "タロウ"), ("健一", "ケンイチ"), ("誠", "マコト"), ("浩", "ヒロシ"), ("大輔", "ダイスケ"),
           ("翔", "ショウ")]
GIVEN_F = [("花子", "ハナコ"), ("恵子", "ケイコ"), ("陽子", "ヨウコ"), ("美咲", "ミサキ"), ("裕子", "ユウコ"),
           ("愛", "アイ")]
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


@dataclass
class Population:
    birth_day: np.ndarray    # (N,) int32 days since 1970-01-01
    sex: np.ndarray          # (N,) int8 1 M, 2 F
    kind: np.ndarray         # (N,) int8 insurer kind: 0 社保, 1 国保, 2 後期高齢者
    dependant: np.ndarray    # (N,) bool family member (receipt type digit 4 = 5/6)
    insurer_no: list[str]
    card_symbol: list[str]
    card_number: list[str]
    name: list[str]
    kana: list[str]
    home: np.ndarray         # (N,) int32 home hospital
    second: np.ndarray       # (N,) int32 the other hospital the patient sometimes uses


def _days(d: dt.date) -> int:
    return (d - dt.date(1970, 1, 1)).days


def draw_population(keys: np.ndarray, profile: str, start_month: int, hospital_weight: np.ndarray) -> Population:
    if profile not in PROFILES:
        raise ClaimsfmError(f"--profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    n = len(keys)
    w = np.tile(np.asarray(PROFILES[profile], dtype=np.float64), (n, 1))
    band = choice(uniform(keys, 0, 1), w)
    lo, hi = BANDS[band, 0], BANDS[band, 1]
    age0 = lo + (hi - lo) * uniform(keys, 0, 2)  # years at the start month
    sex = np.where(uniform(keys, 0, 3) < P_MALE[band], 1, 2).astype(np.int8)
    y, m = divmod(start_month, 12)
    start_day = _days(dt.date(y, m + 1, 1))
    birth_day = (start_day - np.floor(age0 * 365.25)).astype(np.int32)
    kind = np.where(age0 >= 75, 2, np.where(uniform(keys, 0, 4) < 0.45, 1, 0)).astype(np.int8)
    dependant = (kind == 0) & ((age0 < 20) | (uniform(keys, 0, 5) < 0.3))
    hw = np.tile(hospital_weight, (n, 1))
    home = choice(uniform(keys, 0, 6), hw).astype(np.int32)
    hw[np.arange(n), home] = 0.0
    second = home.copy() if len(hospital_weight) == 1 else choice(uniform(keys, 0, 7), hw).astype(np.int32)
    ident = _identity(keys, kind, sex)
    return Population(birth_day, sex, kind, dependant, *ident, home, second)


def _identity(keys, kind, sex):
    """Insurer number, card symbol/number (full-width, as cards print them) and a synthetic name."""
    u = [uniform(keys, 0, s) for s in (10, 11, 12, 13, 14)]
    insurer, symbol, number, name, kana = [], [], [], [], []
    for i in range(len(keys)):
        k = kind[i]
        if k == 0:
            ins = f"06{130001 + int(u[0][i] * 40):06d}"           # 健保組合 (8 digits)
        elif k == 1:
            ins = f"{130001 + int(u[0][i] * 60):06d}"             # 国保 (6 digits, padded in HO)
        else:
            ins = f"3913{1001 + int(u[0][i] * 60):04d}"          # 後期高齢者広域連合
        insurer.append(ins)
        symbol.append(f"{1 + int(u[1][i] * 999)}".translate(FULLWIDTH))
        number.append(f"{int(keys[i] % np.uint64(10**7))}".translate(FULLWIDTH))
        f = int(u[2][i] * len(FAMILY))
        given = GIVEN_M if sex[i] == 1 else GIVEN_F
        g = int(u[3][i] * len(given))
        name.append(f"{FAMILY[f]}　{given[g][0]}")
        kana.append(FAMILY_KANA[f] + given[g][1])
    return insurer, symbol, number, name, kana


def chart_number(patient: int, hospital: int) -> str:
    """A hospital's chart number for a patient: a bijection of the patient index per hospital."""
    return f"{(patient * 2654435761 + hospital * 7919) % 10**9:09d}"
