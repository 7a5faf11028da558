"""The monthly simulation: latent world (onsets), observation (visits, coding), prescribing and
death, vectorised over patients. `Simulation.step(m)` advances one month and returns what the
month's claims show; run.py writes them and truth.py reads the state for the oracle.
`Simulation.fork(rows, keys)` copies some patients onto other random streams: the oracle's
rollouts (rollout.py) run the same `step` on forks, so the parent's draws and claims never change.
"""
from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np

from claimsfm.synth import links
from claimsfm.synth.diseases import INDEX, MODULES, Z_PRIOR, Z_VALUES, D, base_hazards, cum_hazard, onset_age
from claimsfm.synth.masters import DRUG_INDEX
from claimsfm.synth.prescribing import (
    GROUP_DRUGS,
    NAMES,
    REGIMENS,
    RI,
    ingredient_weights,
    option_weights,
    start_probability,
)
from claimsfm.synth.streams import choice, uniform

EPOCH = dt.date(1970, 1, 1)
CODED_AT_ONSET = np.array([m.kind in ("acute", "episodic") or m.name == "dialysis" for m in MODULES])
EPISODIC = np.array([m.kind == "episodic" for m in MODULES])
Q = np.array([m.q for m in MODULES])
# Prodrome: an undiagnosed case shows up as a 疑い code at a visit with this probability
PRODROME = np.zeros(len(MODULES))
for _k, _a in {"t2d": 0.2, "ckd": 0.04, "af": 0.35, "hf": 0.3, "dementia": 0.2}.items():
    PRODROME[INDEX[_k]] = _a
RULE_OUT = np.array([INDEX[k] for k in ("af", "hf", "dementia", "stroke", "t2d", "ckd", "angina", "gastric_ca")])
PARENT = np.array([INDEX[m.parent] if m.parent else -1 for m in MODULES])
R = len(NAMES)
DRUG_GROUP = {DRUG_INDEX[k]: links.G[g] for g, ks in GROUP_DRUGS.items() for k in ks}
GROUP_OF = np.full(len(DRUG_INDEX) + 1, -1, np.int64)   # drug index -> links group, -1 for none
for _i, _g in DRUG_GROUP.items():
    GROUP_OF[_i] = _g
NEVER = -10**6
# Per-patient state that `step` reads or writes; a fork copies exactly these rows
STATE = ("birth_year", "zk", "z", "onset", "dx", "dx_day", "reg_opt", "reg_drugs", "reg_start", "reg_last_disp",
         "reg_last_opt", "last_disp", "run_start", "alive", "death_month", "first_claim", "last_claim")


def visit_probability(dx, reg_opt, age) -> np.ndarray:
    """Monthly P(visit): rises with age and diagnosed chronic disease; 0.85 while on a regimen."""
    v = np.clip(0.04 + 0.003 * np.maximum(age - 20, 0) + 0.07 * (dx >= 0).sum(axis=1), 0, 0.9)
    return np.where((reg_opt >= 0).any(axis=1), np.maximum(v, 0.85), v)


def month_first_day(m: int) -> int:
    y, m0 = divmod(m, 12)
    return (dt.date(y, m0 + 1, 1) - EPOCH).days


def days_in_month(m: int) -> int:
    return month_first_day(m + 1) - month_first_day(m)


class Simulation:
    def __init__(self, keys, pop, hospitals, start: int):
        n = len(keys)
        self.keys, self.pop, self.hosp, self.start, self.n = keys, pop, hospitals, start, n
        self.birth_year = np.array([(EPOCH + dt.timedelta(days=int(b))).year for b in pop.birth_day])
        zk = np.stack([choice(uniform(keys, 0, 50 + d), np.tile(Z_PRIOR, (n, 1))) for d in range(D)], axis=1)
        self.zk = zk.astype(np.int8)                      # (N, D) frailty class
        self.z = Z_VALUES[zk]                             # (N, D)
        self.onset = np.full((n, D), -1, np.int32)
        self.dx = np.full((n, D), -1, np.int32)           # month first shown (backdated for prevalent cases)
        self.dx_day = np.full((n, D), -1, np.int32)       # 診療開始日
        self.reg_opt = np.full((n, R), -1, np.int8)
        self.reg_drugs = np.full((n, R, 3), -1, np.int16)
        self.reg_start = np.full((n, R), NEVER, np.int32)
        self.reg_last_disp = np.full((n, R), NEVER, np.int32)
        self.reg_last_opt = np.full((n, R), -1, np.int8)
        self.last_disp = np.full((n, len(links.GROUPS)), NEVER, np.int32)
        self.run_start = np.full((n, len(links.GROUPS)), NEVER, np.int32)
        self.alive = np.ones(n, bool)
        self.death_month = np.full(n, -1, np.int32)
        self.first_claim = np.full(n, -1, np.int32)
        self.last_claim = np.full(n, NEVER, np.int32)
        self.visited = np.zeros((n, len(hospitals)), bool)
        self.first_line = []                              # option index of every first-line T2D start
        self._initial_states()

    def fork(self, rows: np.ndarray, keys: np.ndarray) -> Simulation:
        """Patients `rows` (repeats allowed) as a new simulation drawing from `keys` (len(rows),).

        The copy shares hospitals and reads the same state; stepping it leaves this one untouched.
        No claims are written for a fork (identities and `visited` are not carried).
        """
        sim = object.__new__(Simulation)
        sim.keys, sim.hosp, sim.start, sim.n = keys, self.hosp, self.start, len(rows)
        sim.pop = dataclasses.replace(self.pop, **{f.name: getattr(self.pop, f.name)[rows] if isinstance(
            getattr(self.pop, f.name), np.ndarray) else [] for f in dataclasses.fields(self.pop)})
        for name in STATE:
            setattr(sim, name, getattr(self, name)[rows].copy())
        sim.visited, sim.first_line = None, []
        return sim

    def age(self, m: int) -> np.ndarray:
        return (month_first_day(m) + 14 - self.pop.birth_day) / 365.25

    def _initial_states(self):
        """Prevalent disease at the start, drawn from the calibrated curves (no burn-in needed)."""
        keys, sex, age = self.keys, self.pop.sex, self.age(self.start)
        for d, mod in enumerate(MODULES):
            if mod.kind == "episodic":
                continue
            if mod.kind == "dependent":
                p = np.where(self.dx[:, PARENT[d]] >= 0, 0.08, 0.0)
                z = np.ones(self.n)
            else:
                z = self.z[:, d]
                p = 1 - np.exp(-z * cum_hazard(d, sex, age))
            has = uniform(keys, 0, 100 + d) < p
            if mod.kind == "dependent":
                on_age = age - 12 * uniform(keys, 0, 150 + d) / 12.0
            else:
                on_age = onset_age(d, sex, age, z, uniform(keys, 0, 150 + d))
            onset_m = self.start - 1 - np.floor((age - on_age) * 12).astype(np.int64)
            undiag = (uniform(keys, 0, 200 + d) < mod.undiag0) & ~CODED_AT_ONSET[d] & (mod.kind != "dependent")
            delay = np.floor(-np.log1p(-uniform(keys, 0, 250 + d)) * 6).astype(np.int64)
            dx_m = np.minimum(onset_m + delay, self.start - 1)
            if mod.kind == "dependent":
                dx_m = np.maximum(dx_m, self.dx[:, PARENT[d]])
            self.onset[has, d] = onset_m[has]
            diag = has & ~undiag
            self.dx[diag, d] = dx_m[diag]
            self.dx_day[diag, d] = [month_first_day(int(x)) + 9 for x in dx_m[diag]]
        for r, name in enumerate(NAMES):   # on treatment at the start: a share of those diagnosed
            reg = REGIMENS[name]
            dx_any = np.max(self.dx[:, [INDEX[k] for k in reg.indications]], axis=1) >= 0
            req = self.reg_opt[:, RI[reg.requires]] >= 0 if reg.requires else True
            take = dx_any & req & (uniform(keys, 0, 300 + r) < (0.3 if reg.requires else 0.7))
            self._start(r, np.flatnonzero(take), self.start - 1, self.start - 7, record=False)

    def _start(self, r, idx, m, start_month, record=True):
        reg = REGIMENS[NAMES[r]]
        if len(idx) == 0:
            return
        home = self.pop.home[idx]
        pref = np.stack([self.hosp[h].option_pref[reg.name] for h in home])
        avoid = np.array([self.hosp[h].avoid_metformin for h in home])
        excl = self.reg_opt[idx, RI[reg.requires]].astype(np.int64) if reg.requires else None
        w = option_weights(reg, self.dx[idx], m, pref, avoid, excl)
        opt = choice(uniform(self.keys[idx], m, 400 + r), w)
        if record and reg.name == "t2d":
            self.first_line += opt.tolist()
        dpref = np.stack([self.hosp[h].drug_pref for h in home])
        self.reg_opt[idx, r] = opt
        self.reg_drugs[idx, r] = -1
        self.reg_start[idx, r] = start_month
        for o, (_, slots) in enumerate(reg.options):
            sel = opt == o
            for s, slot in enumerate(slots):
                k = choice(uniform(self.keys[idx[sel]], m, 450 + 5 * r + s),
                           ingredient_weights(slot, dpref[sel], self.dx[idx[sel]]))
                self.reg_drugs[idx[sel], r, s] = [DRUG_INDEX[slot[j]] for j in k]

    # ---- one month -------------------------------------------------------------------------
    def step(self, m: int):
        """Advance month m; returns the visitors' month data for the writer."""
        age = self.age(m)
        self.cur_age = age
        self.cur_link = links.link_multipliers(self.dx, self.last_disp, self.run_start, self.birth_year, age, m)
        base = base_hazards(self.pop.sex, age)                 # (N, D)
        dep = PARENT >= 0
        base[:, dep] *= self.dx[:, PARENT[dep]] >= 0
        self.cur_h = base * self.cur_link                      # (N, D) hazard without the frailty
        self.cur_mu = links.death_hazard(self.dx, age)
        episodes, forced, admit = self._onsets(m)
        self.cur_visit_p = visit_probability(self.dx, self.reg_opt, age)
        dying = self.alive & (uniform(self.keys, m, 20) < self.cur_mu)
        visit = self.alive & ((uniform(self.keys, m, 10) < self.cur_visit_p) | forced | dying
                              | (self.dx[:, INDEX["dialysis"]] >= 0))
        self.cur_visit = visit
        day1 = 1 + np.floor(uniform(self.keys, m, 11) * days_in_month(m)).astype(np.int64)
        self._detect(m, visit, day1)
        if self.visited is not None:   # only claims show 疑い codes; a fork writes none (its draws are its own)
            self._suspected(m, visit, (self.cur_at_onset.any(axis=1)) | dying)
        dispensed = self._prescribe(m, visit, age)
        self.death_month[dying] = m
        self.alive &= ~dying
        self.first_claim = np.where(visit & (self.first_claim < 0), m, self.first_claim)
        self.last_claim = np.where(visit, m, self.last_claim)
        return dict(visit=visit, day1=day1, episodes=episodes, admit=admit, dying=dying, dispensed=dispensed)

    def _onsets(self, m):
        u = np.stack([uniform(self.keys, m, 100 + d) for d in range(D)], axis=1)
        p = 1 - np.exp(-self.z * self.cur_h)
        hit = self.alive[:, None] & (u < p)
        new = hit & ~EPISODIC & (self.onset < 0)
        episodes = hit & EPISODIC
        self.onset[new] = m
        at_onset = (new | episodes) & CODED_AT_ONSET
        days = np.array([mod.inpatient_days for mod in MODULES])
        admit = np.max(np.where(at_onset, days, 0), axis=1)  # (N,) length of stay, 0 = none
        self.cur_at_onset = at_onset & ~EPISODIC
        return episodes, at_onset.any(axis=1), admit

    def _detect(self, m, visit, day1):
        u = np.stack([uniform(self.keys, m, 200 + d) for d in range(D)], axis=1)
        cand = visit[:, None] & (self.onset >= 0) & (self.dx < 0) & ~CODED_AT_ONSET & (u < Q)
        new = cand | self.cur_at_onset
        self.dx[new] = m
        self.dx_day[new] = np.broadcast_to((month_first_day(m) + day1 - 1)[:, None], new.shape)[new]

    def _suspected(self, m, visit, must_home):
        """Where the visit happens, the hospital's rule-out 疑い (uninformative) and prodrome 疑い.

        cur_b (N, D) is the rule-out probability of each module, which the observable filter needs.
        """
        at_home = must_home | (uniform(self.keys, m, 42) < 0.85)
        self.cur_hosp = np.where(at_home, self.pop.home, self.pop.second)
        rate = np.array([h.suspect_rate for h in self.hosp])[self.cur_hosp]
        cand = self.dx[:, RULE_OUT] < 0                                      # (N, 8)
        n_cand = cand.sum(axis=1)
        b = np.zeros((self.n, D))
        b[:, RULE_OUT] = np.where(visit[:, None] & cand, (rate / np.maximum(n_cand, 1))[:, None], 0.0)
        pick = np.floor(uniform(self.keys, m, 41) * n_cand).astype(np.int64)
        ruled = visit & (n_cand > 0) & (uniform(self.keys, m, 40) < rate)
        rank = np.cumsum(cand, axis=1) - 1
        sus = np.zeros((self.n, D), bool)
        sus[:, RULE_OUT] = ruled[:, None] & cand & (rank == pick[:, None])
        u = np.stack([uniform(self.keys, m, 500 + d) for d in range(D)], axis=1)
        s1 = (self.onset >= 0) & (self.dx < 0)
        sus |= visit[:, None] & s1 & (u < PRODROME)
        self.cur_suspect, self.cur_b = sus, b

    def _prescribe(self, m, visit, age):
        """Stops, then starts at visits (not for those who stopped this month), then dispensing."""
        was_on = self.reg_opt >= 0
        stop_h = np.array([REGIMENS[k].stop for k in NAMES])
        stops = was_on & (np.stack([uniform(self.keys, m, 300 + r) for r in range(R)], axis=1) < stop_h)
        self.reg_opt[stops] = -1
        for r, name in enumerate(NAMES):
            reg = REGIMENS[name]
            intensity = np.array([h.intensity[name] for h in self.hosp])[self.pop.home]
            p = start_probability(reg, self.dx, m, age, intensity)
            if reg.requires:
                p = p * self.addon_ready(m, reg)
            cand = visit & ~was_on[:, r] & (uniform(self.keys, m, 350 + r) < p)
            self._start(r, np.flatnonzero(cand), m, m)
        on = (self.reg_opt >= 0) & visit[:, None]
        self.reg_last_disp[on] = m
        self.reg_last_opt[on] = self.reg_opt[on]
        drugs = np.where(on[:, :, None], self.reg_drugs, -1).reshape(self.n, -1)
        group = GROUP_OF[drugs]                                  # -1 (no drug) reads the last entry, -1
        for g in range(len(links.GROUPS)):
            got = (group == g).any(axis=1)
            fresh = got & (self.last_disp[:, g] < m - 3)
            self.run_start[fresh, g] = m
            self.last_disp[got, g] = m
        return drugs

    def addon_ready(self, m, reg) -> np.ndarray:
        r0 = RI[reg.requires]
        return ((self.reg_opt[:, r0] >= 0) & (m - self.reg_start[:, r0] >= 6)).astype(np.float64)
