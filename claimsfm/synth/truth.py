"""Ground truth helpers: which module or drugs a task targets, who is eligible, and the filters.

IncidenceFilter keeps, per patient and module, the exact posterior over (frailty class Z,
onset-but-undiagnosed) given the claims (a forward filter fed by the same hazards and visits as
the generator). The oracle itself is computed by rollouts of the simulator (rollout.py); the
observable one draws its starting hidden state from these filters.
"""
from __future__ import annotations

import numpy as np

from claimsfm.synth.diseases import INDEX, MODULES, Z_PRIOR, Z_VALUES, cum_hazard
from claimsfm.synth.masters import DISEASES, DRUGS, PROCEDURES
from claimsfm.synth.prescribing import NAMES, REGIMENS, RI, option_has
from claimsfm.synth.simulate import CODED_AT_ONSET, PARENT, PRODROME, Q
from claimsfm.tasks.cohort import age_years, month_end_day


def _match(prefixes, codes) -> bool:
    return any(c.startswith(p) for p in prefixes for c in codes)


def task_module(spec) -> int | None:
    """The root disease module whose first confirmed code is the task's label (None if unknown)."""
    hits = set()
    for _, _, icd, module in DISEASES:
        if module != "-" and _match(spec.target, (f"ICD10//{icd}", f"ICD10//{icd[:3]}")):
            hits.add(INDEX[module])
    for _, _, kubun, _, _, _ in PROCEDURES:
        if kubun == "J038" and _match(spec.target, (f"KUBUN//{kubun}", f"KUBUN//{kubun[0]}")):
            hits.add(INDEX["dialysis"])
    roots = {d for d in hits if PARENT[d] not in hits}
    return roots.pop() if len(roots) == 1 else None


def task_drugs(spec) -> tuple:
    """Drug indices (masters.DRUGS order) the medication task's target matches."""
    return tuple(i for i, (_, yj, _, _) in enumerate(DRUGS) if _match(spec.target, (f"YJ//{yj}", f"YJ//{yj[:4]}")))


class IncidenceFilter:
    """Posterior over (Z class, onset-undiagnosed) for one module, given the claims so far.  f: (N, K, 2)"""

    def __init__(self, sim, d: int):
        self.d = d
        mod = MODULES[d]
        n = sim.n
        f = np.zeros((n, len(Z_VALUES), 2))
        if mod.kind == "dependent":
            f[:, :, 0] = Z_PRIOR
        else:
            h0 = cum_hazard(d, sim.pop.sex, sim.age(sim.start))[:, None]
            healthy = np.exp(-Z_VALUES[None, :] * h0)
            undiag = 0.0 if CODED_AT_ONSET[d] else mod.undiag0
            f[:, :, 0] = Z_PRIOR * healthy
            f[:, :, 1] = Z_PRIOR * (1 - healthy) * undiag
        self.f = f / f.sum(axis=(1, 2), keepdims=True)

    def update(self, sim):
        """After Simulation.step: this month's hazard, visit, and 'not diagnosed' observation."""
        e = np.exp(-Z_VALUES[None, :] * np.maximum(sim.cur_h[:, self.d, None], 0.0))   # (N, K); h < 0 never fires
        f0, f1 = self.f[:, :, 0] * e, self.f[:, :, 1]
        if not CODED_AT_ONSET[self.d]:
            f1 = (f1 + self.f[:, :, 0] * (1 - e)) * np.where(sim.cur_visit, 1 - Q[self.d], 1.0)[:, None]
            # 疑い codes: rule-out (rate b, either state) or prodrome (rate a, undiagnosed cases only)
            a, b, seen = PRODROME[self.d], sim.cur_b[:, self.d], sim.cur_suspect[:, self.d]
            visit = sim.cur_visit
            l1 = np.where(visit, np.where(seen, 1 - (1 - a) * (1 - b), (1 - a) * (1 - b)), 1.0)
            l0 = np.where(visit, np.where(seen, b, 1 - b), 1.0)
            f0, f1 = f0 * l0[:, None], f1 * l1[:, None]
        f = np.stack([f0, f1], axis=2)
        total = f.sum(axis=(1, 2), keepdims=True)
        self.f = np.where(total > 0, f / np.maximum(total, 1e-300), self.f)


def task_regimens(drugs: tuple) -> list[int]:
    """Regimens with an option that dispenses one of the task's drugs (first-line before add-ons)."""
    keys = tuple(DRUGS[i][0] for i in drugs)
    return [RI[n] for n in NAMES if option_has(REGIMENS[n], keys).any()]


def average_precision(y: np.ndarray, p: np.ndarray) -> float:
    """AUPRC as average precision (sklearn's definition; ties broken by a stable sort)."""
    y = np.asarray(y, bool)
    if not y.any():
        return float("nan")
    order = np.argsort(-np.asarray(p), kind="stable")
    hits = np.cumsum(y[order])
    prec = hits / np.arange(1, len(y) + 1)
    return float((prec * y[order]).sum() / y.sum())


def eligible(sim, spec, t, drug_hist=None) -> np.ndarray:
    """Patients the task engine would keep at prediction month t (cohort rules, as the claims show)."""
    t_day = int(month_end_day(t))
    keep = (sim.first_claim >= 0) & (sim.first_claim <= t - spec.min_history_months)
    if spec.active_months > 0:
        keep &= sim.last_claim > t - spec.active_months
    keep &= ~((sim.death_month >= 0) & (sim.death_month <= t))
    if spec.min_age > 0:
        keep &= age_years(sim.pop.birth_day, np.full(sim.n, t_day)) >= spec.min_age
    if spec.kind == "incidence" and spec.washout == "ever":
        d = task_module(spec)
        keep &= (sim.dx[:, d] < 0) | (sim.dx[:, d] > t)
    elif spec.washout == "new_user":
        keep &= ~drug_hist.any_in(t - spec.washout_months + 1, t)
    return np.flatnonzero(keep)
