"""T4: the planted temporal links, as hazard multipliers read from *observable* history.

Every input here is visible in the claims: diagnosis months (a diagnosis is dated by the receipt
that first shows it, or by its 診療開始日 for cases diagnosed before the data start) and the
months in which drug groups were dispensed. Only Z and undiagnosed onset are hidden, which is
what lets truth.py compute the observable oracle exactly.
"""
from __future__ import annotations

import numpy as np

from claimsfm.synth.diseases import INDEX, MODULES, D

NEVER = 10**6
# Divides each linked module's multiplier so the population average stays near the calibrated base.
NORM = {"ckd": 2.5, "ckd45": 1.5, "dialysis": 1.5, "stroke": 5.2, "tia": 2.0, "ami": 2.0, "hf": 2.0, "af": 1.5,
        "dementia": 1.5, "angina": 1.6, "pad": 1.3, "t2d": 1.3, "retinopathy": 2.0}
GROUPS = ("statin", "dpp4i", "anticoag", "antihtn", "sglt2i")
G = {g: i for i, g in enumerate(GROUPS)}


def _since(dx, m, name):
    d = dx[:, INDEX[name]]
    return np.where(d >= 0, m - d, NEVER)


def _has(dx, name):
    return dx[:, INDEX[name]] >= 0


def covered(last_disp, m, group, months):
    """Group dispensed within the last `months` months (the current one included)."""
    return last_disp[:, G[group]] > m - months


def continuous(last_disp, run_start, m, group, months=6):
    """On the group for at least `months` months without a gap of 3 or more."""
    return covered(last_disp, m, group, 3) & (m - run_start[:, G[group]] >= months)


def link_multipliers(dx, last_disp, run_start, birth_year, age, m) -> np.ndarray:
    """(N, D) hazard multipliers at the start of month m (diagnoses of earlier months only)."""
    n = len(age)
    out = np.ones((n, D))
    t2d, htn, dys, af, hf = (_has(dx, k) for k in ("t2d", "htn", "dyslip", "af", "hf"))
    yrs_t2d = np.minimum(_since(dx, m, "t2d") / 12.0, 15.0)
    statin = continuous(last_disp, run_start, m, "statin")
    # CKD: diabetes duration, and the order in which HTN and T2D came (only the order differs)
    order = np.where(htn & t2d, np.where(dx[:, INDEX["htn"]] < dx[:, INDEX["t2d"]], 1.6, 2.4), 1.0)
    sglt2 = np.where(continuous(last_disp, run_start, m, "sglt2i"), 0.7, 1.0)
    out[:, INDEX["ckd"]] = np.where(t2d, 1 + 0.15 * yrs_t2d, 1.0) * order * sglt2
    untreated = htn & ~covered(last_disp, m, "antihtn", 6)
    out[:, INDEX["ckd45"]] = np.where(untreated, 1.8, 1.0) * np.where(t2d, 1.5, 1.0)
    gap = dx[:, INDEX["ckd45"]] - dx[:, INDEX["ckd"]]
    out[:, INDEX["dialysis"]] = np.where(_has(dx, "ckd45") & (gap < 24), 3.0, 1.0) * np.where(t2d, 1.3, 1.0)
    out[:, INDEX["retinopathy"]] = 1 + 0.2 * yrs_t2d
    # AF -> stroke: anticoagulant coverage in the last 3 months; CHADS2 parts
    anticoag = covered(last_disp, m, "anticoag", 3)
    chads = (age >= 75).astype(int) + hf + t2d + htn
    athero = htn.astype(int) + t2d + _has(dx, "ckd") + _has(dx, "angina") + _has(dx, "pad") + _has(dx, "ami")
    tia = _since(dx, m, "tia")   # recency: a TIA in the last 3 months matters far more than an old one
    out[:, INDEX["stroke"]] = (np.where(af, np.where(anticoag, 1.3, 6.0), 1.0) * 1.5 ** chads * 1.4 ** athero
                               * np.where(statin, 0.75, 1.0) * np.where(untreated, 1.8, 1.0)
                               * np.where(tia <= 3, 300.0, np.where(tia <= 12, 20.0, np.where(tia < NEVER, 1.5, 1.0))))
    out[:, INDEX["tia"]] = 1.4 ** athero * np.where(af, 2.0, 1.0)
    out[:, INDEX["ami"]] = (np.where(statin, 0.7, 1.0) * np.where(t2d, 1.8, 1.0) * np.where(htn, 1.4, 1.0)
                            * np.where(dys, 1.4, 1.0))
    # AMI -> HF: recent matters more than remote
    ami_since = _since(dx, m, "ami")
    out[:, INDEX["hf"]] = (np.where(ami_since < NEVER, 2 + 6 * np.exp(-ami_since / 12.0), 1.0) * np.where(af, 3.0, 1.0)
                           * np.where(htn, 1.5, 1.0) * np.where(_has(dx, "ckd"), 1.5, 1.0)
                           * np.where(_has(dx, "angina"), 1.5, 1.0))
    # AF: HTN duration, a recent HF diagnosis (more than a remote one), obesity
    yrs_htn = np.minimum(_since(dx, m, "htn") / 12.0, 20.0)
    hf_since = _since(dx, m, "hf")
    out[:, INDEX["af"]] = (np.where(hf, 1.5 + 4 * np.exp(-hf_since / 12.0), 1.0)
                           * np.where(htn, 1 + 0.08 * yrs_htn, 1.0) * np.where(_has(dx, "obesity"), 1.6, 1.0))
    # Dementia: midlife onset of T2D / HTN, stroke ever, prodrome of new insomnia or depression
    dx_age = lambda k: (dx[:, INDEX[k]] // 12) - birth_year  # noqa: E731
    midlife = lambda k: _has(dx, k) & (dx_age(k) < 65)  # noqa: E731
    prodrome = (_since(dx, m, "insomnia") <= 24) | (_since(dx, m, "depression") <= 24)
    out[:, INDEX["dementia"]] = (np.where(midlife("t2d"), 1.5, 1.0) * np.where(midlife("htn"), 1.5, 1.0)
                                 * np.where(_has(dx, "stroke"), 2.0, 1.0) * np.where(prodrome, 1.8, 1.0))
    out[:, INDEX["angina"]] = 1.4 ** (htn.astype(int) + dys + t2d)
    out[:, INDEX["pad"]] = np.where(t2d, 2.0, 1.0)
    out[:, INDEX["t2d"]] = np.where(_has(dx, "obesity"), 2.0, 1.0) * np.where(htn, 1.3, 1.0)
    for name, norm in NORM.items():
        out[:, INDEX[name]] /= norm
    return out


DEATH_HR = np.array([m.death_hr for m in MODULES])


def death_hazard(dx, age) -> np.ndarray:
    """Monthly death probability: Gompertz baseline times the HRs of diagnosed modules."""
    hr = np.minimum(np.exp((dx >= 0) @ np.log(DEATH_HR)), 4.0)
    return np.minimum(0.004 * np.exp(0.095 * (age - 60)) / 12.0 * hr, 0.5)
