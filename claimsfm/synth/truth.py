"""Ground truth: labels by the task engine's rule, the latent and observable oracles, hazards.

Incidence: the observable oracle keeps, per patient and target module, the exact posterior over
(frailty class Z, onset-but-undiagnosed) given the claims (a forward filter fed by the same hazards
and visits as the generator); the latent oracle uses the true (Z, state). Both then project the
window with the covariates frozen at t (age advancing): p = P(first confirmed code in (t, t+w]).
Medication: the on-treatment state is inferred exactly from the last dispensing and the last visit
(a patient on a regimen is dispensed at every visit); starts follow prescribing.start_probability.
Events that would change the covariates inside the window (a new indication, a new link) are not
rolled out: the oracle is first-order there, which the report states.
"""
from __future__ import annotations

import numpy as np

from claimsfm.synth import links
from claimsfm.synth.diseases import INDEX, MODULES, Z_PRIOR, Z_VALUES, base_hazard, cum_hazard
from claimsfm.synth.masters import DISEASES, DRUGS, PROCEDURES
from claimsfm.synth.prescribing import NAMES, REGIMENS, RI, option_has, option_weights, start_probability
from claimsfm.synth.simulate import CODED_AT_ONSET, PARENT, PRODROME, Q, visit_probability
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
        e = np.exp(-Z_VALUES[None, :] * sim.cur_h[:, self.d, None])   # (N, K)
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


def project_incidence(sim, d, idx, t, window) -> np.ndarray:
    """P(first confirmed code of module d in months t+1..t+window) per (patient, Z class, state).  (n, K, 2)"""
    age = sim.age(t + 1)[idx]
    sex = sim.pop.sex[idx]
    link = links.link_multipliers(sim.dx[idx], sim.last_disp[idx], sim.run_start[idx], sim.birth_year[idx], age, t + 1)[:, d]
    if PARENT[d] >= 0:
        link = link * (sim.dx[idx, PARENT[d]] >= 0)
    v = visit_probability(sim.dx[idx], sim.reg_opt[idx], age)
    mu = links.death_hazard(sim.dx[idx], age)
    out = np.zeros((len(idx), len(Z_VALUES), 2))
    for s in (0, 1):
        s0 = np.full((len(idx), len(Z_VALUES)), 1.0 - s)
        s1 = np.full((len(idx), len(Z_VALUES)), float(s))
        cum = np.zeros_like(s0)
        for j in range(window):
            h = base_hazard(d, sex, age + j / 12.0) * link
            onset = s0 * (1 - np.exp(-Z_VALUES[None, :] * h[:, None]))
            s0 = s0 - onset
            if CODED_AT_ONSET[d]:
                cum += onset
            else:
                s1 = s1 + onset
                det = s1 * (v * Q[d])[:, None]
                cum += det
                s1 = s1 - det
            s0, s1 = s0 * (1 - mu)[:, None], s1 * (1 - mu)[:, None]
        out[:, :, s] = cum
    return out


def task_regimens(drugs: tuple) -> list[int]:
    """Regimens with an option that dispenses one of the task's drugs (first-line before add-ons)."""
    keys = tuple(DRUGS[i][0] for i in drugs)
    return [RI[n] for n in NAMES if option_has(REGIMENS[n], keys).any()]


def _target_share(sim, r, idx, m, target, exclude=None):
    reg = REGIMENS[NAMES[r]]
    home = sim.pop.home[idx]
    pref = np.stack([sim.hosp[h].option_pref[reg.name] for h in home]) if len(idx) else np.zeros((0, len(reg.options)))
    avoid = np.array([sim.hosp[h].avoid_metformin for h in home], dtype=bool)
    w = option_weights(reg, sim.dx[idx], m, pref, avoid, exclude)
    tot = w.sum(axis=1)
    return np.where(tot > 0, (w * target).sum(axis=1) / np.maximum(tot, 1e-300), 0.0)


def project_medication(sim, regs, drugs, idx, t, window, latent: bool) -> np.ndarray:
    """P(a target drug is dispensed in months t+1..t+window).  (n,)"""
    keys = tuple(DRUGS[i][0] for i in drugs)
    r0 = regs[0]
    reg0 = REGIMENS[NAMES[r0]]
    tmask = {r: option_has(REGIMENS[NAMES[r]], keys) for r in regs}
    if latent:
        opt = sim.reg_opt[idx]
        pi = {r: (opt[:, r] >= 0).astype(float) for r in regs}
        cur = {r: opt[:, r] for r in regs}
    else:
        lc = sim.last_claim[idx]
        pi = {r: np.where(sim.reg_last_disp[idx, r] == lc, (1 - REGIMENS[NAMES[r]].stop) ** (t - lc), 0.0) for r in regs}
        cur = {r: sim.reg_last_opt[idx, r] for r in regs}
    is_t = {r: np.where(cur[r] >= 0, tmask[r][np.maximum(cur[r], 0)], False) for r in regs}
    T = 1 - np.prod([1 - pi[r] * is_t[r] for r in regs], axis=0)
    O = pi[r0] * ~is_t[r0] * (1 - T)
    F = np.clip(1 - T - O, 0, 1)
    age = sim.age(t + 1)[idx]
    v = visit_probability(sim.dx[idx], sim.reg_opt[idx], age)
    intensity = np.array([h.intensity[reg0.name] for h in sim.hosp])[sim.pop.home[idx]]
    share0 = _target_share(sim, r0, idx, t + 1, tmask[r0])
    addon = [r for r in regs if REGIMENS[NAMES[r]].requires]
    for j in range(1, window + 1):
        m = t + j
        s_off = start_probability(reg0, sim.dx[idx], m, age, intensity) * share0
        s_o = np.zeros(len(idx))
        for r in addon:
            reg = REGIMENS[NAMES[r]]
            ia = np.array([h.intensity[reg.name] for h in sim.hosp])[sim.pop.home[idx]]
            ready = (m - sim.reg_start[idx, r0] >= 6) & (cur[r0] >= 0)
            excl = np.where(cur[r0] >= 0, cur[r0], -1).astype(np.int64)
            s_o = s_o + start_probability(reg, sim.dx[idx], m, age, ia) * ready * _target_share(sim, r, idx, m, tmask[r], excl)
        T = T * (1 - reg0.stop) * (1 - np.maximum(v, 0.85))
        o_stop = O * reg0.stop
        O = O * (1 - reg0.stop)
        O = O - O * v * s_o
        F = F - F * v * s_off + o_stop
    return np.clip(1 - (T + O + F), 0, 1)


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
