"""T2: hospitals and their habits (size, 疑い and レセプト病名 rates, coding dialect and drift,
prescribing preferences, avoid-metformin flag). Each hospital draws from its own
`default_rng([seed, 1_000_000 + h])`, independent of the patients' streams.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from claimsfm.synth.masters import DRUGS, module_codes
from claimsfm.synth.prescribing import REGIMENS

SIZES = ("clinic", "hospital", "university")
SIZE_WEIGHT = np.array([1.0, 2.5, 4.0])     # share of patients, relative
SIZE_P = np.array([0.5, 0.35, 0.15])
DRIFT_WINDOW = (2012 * 12, 2022 * 12)      # months in which E14 -> E11 switches happen


@dataclass
class Hospital:
    index: int
    code: str            # 7-digit 医療機関コード
    name: str
    prefecture: str
    size: int
    weight: float
    suspect_rate: float  # P(a rule-out 疑い code on a visit)
    receipt_dx_rate: float
    dialect: dict        # module -> receipt code used by this hospital
    drift_month: int     # before it, this hospital codes T2D as 糖尿病 (E14)
    e14_before: bool
    option_pref: dict    # regimen -> (k,) multipliers over its options
    intensity: dict      # regimen -> multiplier on the odds of starting it
    drug_pref: np.ndarray  # (n_drugs,) multipliers over ingredients inside a class
    avoid_metformin: bool


def facility_code(h: int) -> str:
    return f"{13 + h % 30:02d}1{h:04d}"


def draw_hospitals(seed: int, n: int) -> list[Hospital]:
    out = []
    for h in range(n):
        rng = np.random.default_rng([seed, 1_000_000 + h])
        size = int(rng.choice(3, p=SIZE_P)) if h else 1
        dialect = {}
        for module in ("htn", "dyslip", "hf", "dementia", "t2d"):
            codes = module_codes(module)
            dialect[module] = codes[int(rng.integers(len(codes)))] if module != "t2d" else codes[int(rng.integers(2))]
        prefs = {name: np.exp(rng.normal(0.0, 0.2, len(reg.options))) for name, reg in REGIMENS.items()}
        # Small on purpose: a hospital's habit is invisible to models that see only codes, and medication
        # tasks should be learnable from the indication history alone (T5 -> early saturation).
        intensity = {name: float(np.exp(rng.normal(0.0, 0.1))) for name in REGIMENS}
        drug_pref = np.exp(rng.normal(0.0, 0.5, len(DRUGS)))
        out.append(Hospital(
            index=h, code=facility_code(h), name=f"{('合成診療所', '合成病院', '合成大学病院')[size]}{h + 1}",
            prefecture=facility_code(h)[:2], size=size,
            weight=float(SIZE_WEIGHT[size] * rng.uniform(0.6, 1.4)),
            suspect_rate=float(rng.uniform(0.05, 0.15)), receipt_dx_rate=float(rng.uniform(0.2, 0.6)),
            dialect=dialect, drift_month=int(rng.integers(*DRIFT_WINDOW)), e14_before=bool(rng.random() < 0.4),
            option_pref=prefs, intensity=intensity, drug_pref=drug_pref, avoid_metformin=bool(rng.random() < 0.35),
        ))
    return out


def t2d_code(hosp: Hospital, month: int) -> str:
    """Coding drift: some hospitals code 糖尿病 (E14) until their switch month, then E11."""
    if hosp.e14_before and month < hosp.drift_month:
        return module_codes("t2d")[2]
    return hosp.dialect["t2d"]
