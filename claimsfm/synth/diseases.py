"""T3/T4: disease modules, their calibrated base hazards and the planted temporal links.

A module's monthly onset probability is 1 - exp(-Z * base(age, sex) * link(history)), with Z a
per-patient, per-module frailty class (the only latent term besides undiagnosed disease). The base
hazard comes from an age/sex prevalence curve (synthetic-data.md §3): the cumulative hazard H*
solves E_Z[1 - exp(-Z H*(a))] = prevalence(a), so a population drawn from it matches the table,
and the monthly hazard is dH*/da / 12. Links (T4) read only *diagnosed* history and dispensed
drugs, so everything a hazard depends on is visible in the claims except Z and undiagnosed onset.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Z_VALUES = np.array([0.4, 1.0, 2.2])
Z_PRIOR = np.array([0.3, 0.5, 0.2])
KNOTS = np.array([15.0, 20, 30, 40, 50, 60, 70, 80, 90, 110])


@dataclass(frozen=True)
class Module:
    name: str
    kind: str            # chronic | acute (coded at onset, admitted) | episodic | dependent
    prev_m: tuple = ()   # prevalence at KNOTS[1:-1] (20..90), men
    prev_f: tuple = ()
    q: float = 0.5       # P(detected at a visit month) while onset but undiagnosed
    undiag0: float = 0.2  # share of prevalent cases still undiagnosed at the start
    parent: str = ""     # dependent: hazard is zero until the parent is diagnosed
    rate: float = 0.0    # dependent / episodic: base monthly hazard
    death_hr: float = 1.0
    inpatient_days: int = 0  # acute / episodic: length of the admission (0 = outpatient)


M = Module
MODULES = [
    M("htn", "chronic", (.05, .12, .25, .45, .66, .77, .79, .80), (.02, .05, .12, .28, .42, .62, .76, .78), q=.5,
      undiag0=.25),
    M("dyslip", "chronic", (.05, .15, .28, .38, .42, .42, .38, .35), (.03, .06, .12, .30, .45, .48, .45, .40), q=.35,
      undiag0=.3),
    M("t2d", "chronic", (.002, .006, .03, .08, .16, .23, .235, .235), (.001, .003, .015, .045, .09, .14, .17, .17),
      q=.12, undiag0=.45),
    M("hyperuric", "chronic", (.03, .06, .10, .13, .15, .15, .15, .15), (.002, .003, .005, .01, .02, .03, .04, .04),
      q=.3),
    M("obesity", "chronic", (.01, .02, .03, .035, .04, .04, .03, .03), (.01, .015, .02, .025, .03, .03, .02, .02), q=.1,
      undiag0=.5),
    M("ckd", "chronic", (.005, .007, .012, .025, .07, .12, .20, .28), (.004, .006, .01, .02, .05, .10, .18, .26),
      q=.008, undiag0=.8, death_hr=1.3),
    M("ckd45", "dependent", parent="ckd", rate=.012, q=.5, death_hr=1.6),
    M("dialysis", "dependent", parent="ckd45", rate=.019, death_hr=3.0),
    M("retinopathy", "dependent", parent="t2d", rate=.0012, q=.3),
    M("af", "chronic", (0, .0005, .002, .008, .025, .06, .11, .15), (0, .0002, .001, .004, .012, .035, .08, .12), q=.15,
      undiag0=.3, death_hr=1.3),
    M("hf", "chronic", (0, .0005, .002, .006, .015, .035, .08, .15), (0, .0003, .001, .004, .01, .03, .08, .16), q=.2,
      undiag0=.3, death_hr=2.5),
    M("angina", "chronic", (0, .001, .006, .02, .04, .06, .08, .09), (0, .0005, .003, .01, .02, .04, .06, .07), q=.5),
    M("ami", "acute", (0, .0005, .003, .008, .015, .025, .04, .05), (0, .0001, .0008, .002, .005, .01, .02, .03),
      death_hr=1.5, inpatient_days=14),
    M("stroke", "acute", (0, .0008, .004, .012, .035, .07, .12, .16), (0, .0005, .002, .008, .025, .05, .09, .13),
      death_hr=1.5, inpatient_days=21),
    M("tia", "acute", (0, .0006, .003, .009, .024, .045, .066, .084), (0, .0003, .002, .006, .018, .036, .054, .072),
      inpatient_days=4),
    M("ich", "acute", (0, .0005, .002, .004, .008, .012, .015, .02), (0, .0003, .001, .002, .005, .008, .012, .015),
      death_hr=2.0, inpatient_days=24),
    M("pad", "chronic", (0, 0, .001, .004, .01, .02, .03, .04), (0, 0, .0005, .002, .005, .01, .02, .03), q=.3),
    M("dementia", "chronic", (0, 0, 0, .001, .008, .035, .15, .35), (0, 0, 0, .001, .008, .045, .20, .45), q=.2,
      undiag0=.4, death_hr=2.0),
    M("depression", "chronic", (.02, .03, .04, .045, .045, .05, .06, .06), (.03, .045, .055, .06, .06, .065, .07, .07),
      q=.4),
    M("insomnia", "chronic", (.02, .03, .05, .07, .09, .12, .16, .18), (.03, .04, .06, .09, .11, .15, .19, .22), q=.5),
    M("parkinson", "chronic", (0, 0, 0, .0005, .002, .006, .012, .015), (0, 0, 0, .0005, .002, .006, .012, .015), q=.4,
      death_hr=1.5),
    M("copd", "chronic", (0, 0, .002, .008, .02, .04, .07, .08), (0, 0, .001, .003, .007, .015, .025, .03), q=.3,
      death_hr=1.8),
    M("asthma", "chronic", (.04, .04, .04, .045, .05, .055, .06, .06), (.04, .045, .05, .05, .055, .06, .065, .065),
      q=.6),
    M("gerd", "chronic", (.02, .04, .06, .08, .10, .12, .14, .15), (.02, .04, .06, .08, .10, .12, .15, .17), q=.4),
    M("osteoporosis", "chronic", (0, 0, .002, .006, .02, .05, .08, .10), (0, .002, .01, .05, .15, .28, .38, .45), q=.3),
    M("knee_oa", "chronic", (0, .005, .02, .05, .10, .16, .22, .25), (0, .008, .03, .08, .18, .30, .40, .45), q=.4),
    M("gastric_ca", "chronic", (0, 0, .0005, .002, .007, .014, .02, .02), (0, 0, .0003, .001, .003, .006, .009, .01),
      q=.4, death_hr=4.0),
    M("fracture", "episodic", rate=.00015, death_hr=1.2, inpatient_days=28),
    M("pneumonia", "episodic", rate=.0004, death_hr=1.3, inpatient_days=10),
    M("uti", "episodic", rate=.0006),
]
INDEX = {m.name: i for i, m in enumerate(MODULES)}
D = len(MODULES)


def _solve_h(p: np.ndarray) -> np.ndarray:
    """Cumulative hazard H* with E_Z[1 - exp(-Z H*)] = p, by bisection (vectorised)."""
    lo, hi = np.zeros_like(p), np.full_like(p, 50.0)
    for _ in range(60):
        mid = (lo + hi) / 2
        got = (Z_PRIOR * (1 - np.exp(-np.outer(mid, Z_VALUES)))).sum(axis=1)
        lo, hi = np.where(got < p, mid, lo), np.where(got < p, hi, mid)
    return (lo + hi) / 2


def _cum_table(prev: tuple) -> np.ndarray:
    p = np.concatenate([[0.0], np.maximum.accumulate(np.asarray(prev, dtype=np.float64)), [prev[-1]]])
    p = np.minimum(p + np.arange(len(p)) * 1e-7, 0.98)  # strictly increasing, so H* can be inverted
    return _solve_h(p)


# CUM[d, sex-1, k]: H* at KNOTS; zero rows for dependent / episodic modules
CUM = np.zeros((D, 2, len(KNOTS)))
for _d, _m in enumerate(MODULES):
    if _m.prev_m:
        CUM[_d, 0], CUM[_d, 1] = _cum_table(_m.prev_m), _cum_table(_m.prev_f)


def cum_hazard(d: int, sex: np.ndarray, age: np.ndarray) -> np.ndarray:
    """H*(age) of module d per patient.  (n,), (n,) -> (n,)"""
    out = np.interp(age, KNOTS, CUM[d, 0])
    f = sex == 2
    out[f] = np.interp(age[f], KNOTS, CUM[d, 1])
    return out


# SLOPE[d, sex-1, k]: base hazard per month between knots k and k+1 (base_hazard's arithmetic, tabulated)
SLOPE = (CUM[:, :, 1:] - CUM[:, :, :-1]) / (KNOTS[1:] - KNOTS[:-1]) / 12.0
PLAIN = np.array([m.kind not in ("dependent", "episodic") for m in MODULES])


def base_hazards(sex: np.ndarray, age: np.ndarray) -> np.ndarray:
    """Every module's base_hazard at once, the same values.  (n,), (n,) -> (n, D)"""
    k = np.clip(np.searchsorted(KNOTS, age, side="right") - 1, 0, len(KNOTS) - 2)
    out = np.ascontiguousarray(SLOPE[:, (sex == 2).astype(np.int64), k].T)   # (n, D)
    for d in np.flatnonzero(~PLAIN):
        out[:, d] = base_hazard(d, sex, age)
    return out


def base_hazard(d: int, sex: np.ndarray, age: np.ndarray) -> np.ndarray:
    """Monthly base hazard of module d (slope of H* per year / 12).  (n,) -> (n,)"""
    m = MODULES[d]
    if m.kind in ("dependent", "episodic"):
        return np.full(len(age), m.rate) * (np.exp(0.05 * (age - 60)) if m.kind == "episodic" else 1.0)
    k = np.clip(np.searchsorted(KNOTS, age, side="right") - 1, 0, len(KNOTS) - 2)
    cum = CUM[d, (sex == 2).astype(np.int64)]
    slope = (cum[np.arange(len(age)), k + 1] - cum[np.arange(len(age)), k]) / (KNOTS[k + 1] - KNOTS[k])
    return slope / 12.0


def onset_age(d: int, sex: np.ndarray, age: np.ndarray, z: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Age at onset of a prevalent case, by inverting the conditional onset CDF."""
    h0 = cum_hazard(d, sex, age)
    target = -np.log1p(-u * (1 - np.exp(-z * h0))) / z
    out = np.interp(target, CUM[d, 0], KNOTS)
    f = sex == 2
    out[f] = np.interp(target[f], CUM[d, 1], KNOTS)
    return np.minimum(out, age)
