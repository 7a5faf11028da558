"""The oracle by Monte-Carlo rollouts of the simulator itself (design.md §3.8, internals.md).

At a prediction month t, every patient eligible for some task is forked `reps` times
(`Simulation.fork`), each fork on its own random streams (`rollout_keys`, disjoint from the
generator's), and the unchanged `Simulation.step` runs months t+1..t+w: deaths, onsets of every
module, visits, detection, starts, stops, switches and dispensing all happen as in the data.

Per fork the label probability is estimated by its compensator, sum over months of
P(first label event in month m | the fork's history before m's deciding draws) while no event has
happened in the fork yet. Its mean is exactly P(label) (a counting process minus its compensator
is a martingale) and its variance is far below the 0/1 label's:
- incidence of module d: a filter over d's own hidden (frailty class, onset-undiagnosed) state,
  fed by the fork's realised hazards and visits (before its coding, d's hidden state feeds back
  into nothing else), times P(visit) integrated over the month's visit draw;
- medication: P(visit) x P(a target drug is on after the month's stops and starts), the stop and
  start draws integrated (the start rule is prescribing.start_probability / option_weights);
  for patients on a target drug at t, whose label is near-certain, the on/off state and the visits
  are integrated along the fork's path instead (_Users).
Rows whose label needs something coded inside the window first are Rao-Blackwellised: a
medication row with none of the target regimens' indications coded at t (_Naive), and a dependent
module's row (dialysis) whose parent stage is not coded (_Dependent). For them the hidden state of
the indication (parent), its coding, and the start (the dependent onset) are integrated
analytically along the fork's path, visits included, so such a row gets its smooth probability
instead of 0 in every fork that happens not to code the indication.
The small approximations (a start does not see an indication coded at the same month's
counterfactual visit; an add-on's readiness when its base regimen may stop; _Users, _Naive and
_Dependent ignore the feedback of what they integrate on the rest of the fork's path) are noted
where made.

latent: forks start from the true state. observable: the hidden part is drawn from what the claims
show: each filtered module's (frailty class, undiagnosed onset) from its forward filter, and each
regimen's survival since the last claim from the stop hazard, weighted by the likelihood of the
observed months without a visit (self-normalised importance weights).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from claimsfm.splits import splitmix64
from claimsfm.synth import links
from claimsfm.synth.diseases import INDEX, Z_VALUES, base_hazard
from claimsfm.synth.masters import DRUGS
from claimsfm.synth.prescribing import NAMES, REGIMENS, RI, option_has, option_weights, start_probability
from claimsfm.synth.simulate import CODED_AT_ONSET, PARENT, Q, visit_probability
from claimsfm.synth.streams import choice, uniform

K = len(Z_VALUES)
SLOT_Z = 900      # per fork: + module, draw of the (frailty, undiagnosed) state from the filter
SLOT_STOP = 960   # per fork and past month: + regimen, stop draw since the last claim


def rollout_keys(keys: np.ndarray, t: int, reps: int, mode: int) -> np.ndarray:
    """(len(keys) * reps,) stream keys of the forks, patient-major: hashes apart from the patients' own keys."""
    tag = splitmix64(np.array([(t << 8) | mode], np.uint64))
    rep = splitmix64(np.arange(reps, dtype=np.uint64) + np.uint64(0xA5A5A5A5))
    return splitmix64(np.repeat(keys, reps) ^ tag ^ np.tile(rep, len(keys)))


@dataclass
class Target:
    """One task at this prediction month: rows are positions into the forked patients."""
    name: str
    window: int
    rows: np.ndarray
    d: int | None = None             # incidence module
    drugs: tuple = ()                # medication: drug indices
    regs: tuple = ()                 # medication: regimens that can dispense a target drug


def _pref(sim, name):
    return np.stack([h.option_pref[name] for h in sim.hosp])[sim.pop.home]


def _intensity(sim, name):
    return np.array([h.intensity[name] for h in sim.hosp])[sim.pop.home]


def _target_share(sim, r, m, tmask, exclude=None, dx=None):
    """P(the option chosen at a start of regimen r is a target option) (dx: sim.dx unless given).  (n,)"""
    reg = REGIMENS[NAMES[r]]
    avoid = np.array([h.avoid_metformin for h in sim.hosp], bool)[sim.pop.home]
    w = option_weights(reg, sim.dx if dx is None else dx, m, _pref(sim, reg.name), avoid, exclude)
    tot = w.sum(axis=1)
    return np.where(tot > 0, (w * tmask).sum(axis=1) / np.maximum(tot, 1e-300), 0.0)


def _is_target(opt, tmask):
    return (opt >= 0) & tmask[np.maximum(opt, 0)]


def _no_target_after(fork, m, tg, tmasks, was_on, reg_start0):
    """P(no target regimen on after month m's stops and starts | a visit, the fork before m).  (n,)"""
    pno = np.ones(fork.n)
    for r in tg.regs:
        reg = REGIMENS[NAMES[r]]
        on = was_on[:, r] >= 0
        pno *= np.where(_is_target(was_on[:, r], tmasks[r]), reg.stop, 1.0)
        p = start_probability(reg, fork.dx, m, fork.cur_age, _intensity(fork, reg.name))
        if not reg.requires:
            pno *= np.where(on, 1.0, 1 - p * _target_share(fork, r, m, tmasks[r]))
            continue
        # add-on: ready only if the base regimen survives this month's stop draw (approximation:
        # that draw is integrated here, not taken from the fork)
        r0 = RI[reg.requires]
        on0 = was_on[:, r0] >= 0
        ready = ~on & on0 & (m - reg_start0[:, r0] >= 6)
        q = p * _target_share(fork, r, m, tmasks[r], was_on[:, r0].astype(np.int64))
        s0 = REGIMENS[NAMES[r0]].stop
        base_target = _is_target(was_on[:, r0], tmasks[r0]) if r0 in tmasks else np.zeros(fork.n, bool)
        pno *= np.where(ready & ~base_target, s0 + (1 - s0) * (1 - q), 1.0)
    return pno


class _Users:
    """Rows on a target drug at t: P(on, nothing dispensed yet) and P(off, nothing dispensed yet).

    Their label is near-certain, so a fork's own visit and stop draws would make most of the noise:
    instead the target's on/off state and each month's visit are integrated along the fork's path
    (that path's feedback from the integrated visits, extra detections of other modules within the
    window, is ignored).
    """

    def __init__(self, on_at_t):
        self.on_regs = on_at_t                            # (n, len(regs)) target regimens on at t
        self.rows = on_at_t.any(axis=1)
        self.a_on, self.a_off = self.rows.astype(np.float64), np.zeros(len(self.rows))

    def step(self, fork, m, tg, tmasks, was_on, reg_start0, dx0, alive0, forced) -> np.ndarray:
        """P(first target dispensing in month m), 0 outside these rows.  (n,)"""
        stop = np.ones(fork.n)                            # every target regimen stops this month
        off = was_on.copy()
        for k, r in enumerate(tg.regs):
            stop *= np.where(self.on_regs[:, k], REGIMENS[NAMES[r]].stop, 1.0)
            off[self.on_regs[:, k], r] = -1
        v_on = np.where(alive0, np.where(forced, 1.0, np.maximum(fork.cur_visit_p, 0.85)), 0.0)
        v_off = np.where(alive0, np.where(forced, 1.0, visit_probability(dx0, off, fork.cur_age)), 0.0)
        start = 1 - _no_target_after(fork, m, tg, tmasks, off, reg_start0)
        event = self.a_on * (1 - stop) * v_on + self.a_off * v_off * start
        self.a_on, self.a_off = self.a_on * (1 - stop) * (1 - v_on), self.a_on * stop + self.a_off * (1 - v_off * start)
        return np.where(self.rows, event, 0.0)


class _Naive:
    """Rows with no indication of the target's first-line regimens coded at t (Rao-Blackwellised).

    Their label needs an indication coded inside the window and then a start; a fork that happens
    to code it would carry the whole probability and the others none (p = 0 exactly for most such
    rows). Instead the indications' hidden state (each module's frailty class and undiagnosed onset,
    from the true state or the filter), their coding and the start are integrated analytically along
    the fork's path, visits included: the fork supplies only the exogenous part (the indications'
    hazards, other modules' forced visits, death, other diagnoses, age). The fork's own coding and
    start of the indication feed back into that path (one more diagnosis's visit rate, a link
    multiplier) and are ignored, as is a second indication coded after the first within the window.
    """

    def __init__(self, fork, tg, filters, mode):
        self.regs = tuple(r for r in tg.regs if not REGIMENS[NAMES[r]].requires)   # add-ons need >= 6 months on
        self.inds = sorted({INDEX[k] for r in self.regs for k in REGIMENS[NAMES[r]].indications})
        self.rows = (fork.dx[:, self.inds] < 0).all(axis=1) if self.inds else np.zeros(fork.n, bool)
        self.g = {d: _start_filter(fork, d, filters, mode) for d in self.inds}   # each given "d not coded yet"
        self.u = self.rows.astype(np.float64)             # P(no indication coded yet, hence no event)
        self.coded = []                                   # (month coded, P(coded then, no target start yet))

    def step(self, fork, m, tg, tmasks, was_on, dx0, alive0, forced_other) -> np.ndarray:
        """P(first target dispensing in month m), 0 outside these rows.  (n,)"""
        dx_u = dx0.copy()
        dx_u[:, self.inds] = -1
        off = was_on.copy()
        off[:, list(tg.regs)] = -1
        dx_c = dx_u.copy()
        dx_c[:, self.inds[0]] = m                         # one more diagnosis for the visit rate
        v_u = np.where(forced_other, 1.0, visit_probability(dx_u, off, fork.cur_age))
        v_c = np.where(forced_other, 1.0, visit_probability(dx_c, off, fork.cur_age))
        none = np.ones(fork.n)                            # P(no indication coded this month | none before)
        for d, g in self.g.items():
            e = np.exp(-Z_VALUES[None, :] * np.maximum(fork.cur_h[:, d, None], 0.0))   # h < 0 never fires
            onset = g[:, :, 0] * (1 - e)
            g[:, :, 0] *= e
            if CODED_AT_ONSET[d]:                         # acute: coded at onset, the admission is the visit
                c = onset.sum(axis=1)
            else:
                g[:, :, 1] += onset
                c = g[:, :, 1].sum(axis=1) * v_u * Q[d]
                g[:, :, 1] *= (1 - v_u * Q[d])[:, None]
            total = g.sum(axis=(1, 2), keepdims=True)
            g /= np.where(total > 0, total, 1.0)
            none *= 1 - c
        event = np.zeros(fork.n)
        for k, (c, a) in enumerate(self.coded):           # coded earlier, not started yet: visit x start
            target, any_start = self._start(fork, m, c, dx_u, tmasks)
            event += a * v_c * target
            self.coded[k] = (c, a * (1 - v_c * any_start))  # a non-target start leaves the pool too
        target, any_start = self._start(fork, m, m, dx_u, tmasks)   # coded at this month's visit, started there
        new = self.u * (1 - none)
        event += new * target
        self.coded.append((m, new * (1 - any_start)))
        self.u = self.u * none
        return np.where(self.rows & alive0, event, 0.0)

    def _start(self, fork, m, c, dx_u, tmasks) -> tuple:
        """P(a target option starts), P(any option starts) at a visit in month m | indications coded at c."""
        dx = dx_u.copy()
        dx[:, self.inds] = c
        no_target, no_start = np.ones(fork.n), np.ones(fork.n)
        for r in self.regs:
            reg = REGIMENS[NAMES[r]]
            p = start_probability(reg, dx, m, fork.cur_age, _intensity(fork, reg.name))
            no_target *= 1 - p * _target_share(fork, r, m, tmasks[r], dx=dx)
            no_start *= 1 - p
        return 1 - no_target, 1 - no_start


class _Dependent:
    """Incidence of a dependent module d (dialysis) on rows whose parent (CKD G4-5) is not coded at t.

    d's hazard is zero until the parent is coded, so a fork that does not code the parent scores 0;
    the parent's hidden state (frailty class, undiagnosed onset) and coding, and d's onset after it,
    are integrated analytically along the fork's path instead (as in _Naive; the fork's own coding of
    the parent or of d feeds back into that path through visits and is ignored there).
    """

    def __init__(self, fork, d, filters, mode):
        self.d, self.par = d, int(PARENT[d])
        self.rows = (fork.dx[:, self.par] < 0) & (fork.dx[:, d] < 0)
        self.sub = np.flatnonzero(self.rows)
        self.g = _start_filter(fork, self.par, filters, mode)[self.sub]
        zd = _start_filter(fork, d, filters, mode)[self.sub].sum(axis=2)      # (s, K) d's frailty class
        self.zd = zd / np.maximum(zd.sum(axis=1, keepdims=True), 1e-300)
        self.u = np.ones(len(self.sub))                       # P(parent not coded yet)
        self.coded = []                                       # (P(parent coded then, d not yet) (s, K), d's hazard)

    def step(self, fork, m, dx0, was_on, alive0, forced_other) -> np.ndarray:
        """P(d first coded in month m), 0 outside these rows.  (n,)"""
        s = self.sub
        event = np.zeros(len(s))
        for a, h in self.coded:                               # parent coded in an earlier month: d's onset
            e = np.exp(-Z_VALUES[None, :] * h[:, None])
            event += (a * (1 - e)).sum(axis=1)
            a *= e
        dx_u = dx0[s].copy()
        dx_u[:, [self.par, self.d]] = -1
        age = fork.cur_age[s]
        v = np.where(forced_other[s], 1.0, visit_probability(dx_u, was_on[s], age))
        g, par = self.g, self.par
        e = np.exp(-Z_VALUES[None, :] * np.maximum(fork.cur_h[s, par, None], 0.0))
        onset = g[:, :, 0] * (1 - e)
        g[:, :, 0] *= e
        if CODED_AT_ONSET[par]:
            c = onset.sum(axis=1)
        else:
            g[:, :, 1] += onset
            c = g[:, :, 1].sum(axis=1) * v * Q[par]
            g[:, :, 1] *= (1 - v * Q[par])[:, None]
        total = g.sum(axis=(1, 2), keepdims=True)
        g /= np.where(total > 0, total, 1.0)
        dx_u[:, par] = m                                      # d's hazard from the next month on
        mult = links.link_multipliers(dx_u, fork.last_disp[s], fork.run_start[s], fork.birth_year[s], age, m + 1)
        h = np.maximum(base_hazard(self.d, fork.pop.sex[s], age) * mult[:, self.d], 0.0)
        self.coded.append(((self.u * c)[:, None] * self.zd, h))
        self.u = self.u * (1 - c)
        out = np.zeros(fork.n)
        out[s] = np.where(alive0[s], event, 0.0)
        return out


def _observable_state(fork, t, filters) -> np.ndarray:
    """Redraw the hidden state from the claims up to t; returns importance weights.  (n,)"""
    for d, f in filters.items():
        post = f.f[fork.parent_rows].reshape(fork.n, K * 2)
        k = choice(uniform(fork.keys, t, SLOT_Z + d), post)
        z, s = k // 2, k % 2
        fork.zk[:, d] = z
        fork.z[:, d] = Z_VALUES[z]
        undiag = fork.dx[:, d] < 0
        fork.onset[:, d] = np.where(undiag, np.where(s == 1, t, -1), fork.onset[:, d])
    lc = fork.last_claim
    on_lc = fork.reg_last_disp == lc[:, None]                    # (n, R) on at the last claim
    fork.reg_opt = np.where(on_lc, fork.reg_last_opt, -1).astype(np.int8)
    weight = np.ones(fork.n)
    stop = np.array([REGIMENS[k].stop for k in NAMES])
    for k in range(1, int(np.max(t - lc, initial=0)) + 1):
        gap = (t - lc) >= k
        age = fork.age(t) - (t - lc - k) / 12.0                   # age in month lc+k
        v = visit_probability(fork.dx, fork.reg_opt, age)        # month lc+k, before its stops
        weight *= np.where(gap, 1 - v, 1.0)
        u = np.stack([uniform(fork.keys, t - k, SLOT_STOP + r) for r in range(len(NAMES))], axis=1)
        stops = gap[:, None] & (fork.reg_opt >= 0) & (u < stop)
        fork.reg_opt[stops] = -1
    return weight


def rollout(sim, patients, t, targets, reps, filters=None, mode=0, integrate=True):
    """Mean and Monte-Carlo standard error of each target's label probability.

    patients (n,) are forked `reps` times; mode 0 = latent (true state), 1 = observable (hidden state
    drawn given the claims, `filters` = {module: IncidenceFilter}). integrate=False scores the rows
    of _Naive / _Dependent by the forks' own indication coding instead (the plain estimator, same
    expectation, for tests). Returns {name: (p, se)} over each target's rows.
    """
    rows = np.repeat(patients, reps)
    fork = sim.fork(rows, rollout_keys(sim.keys[patients], t, reps, mode))
    fork.parent_rows = rows
    weight = _observable_state(fork, t, filters) if mode == 1 else np.ones(fork.n)
    tmasks = {tg.name: {r: option_mask(r, tg.drugs) for r in tg.regs} for tg in targets}
    est = {tg.name: np.zeros(fork.n) for tg in targets}
    done = {tg.name: np.zeros(fork.n, bool) for tg in targets}
    filt = {tg.name: _start_filter(fork, tg.d, filters, mode) for tg in targets if tg.d is not None}
    on_at_t = {tg.name: np.stack([_is_target(fork.reg_opt[:, r], tmasks[tg.name][r]) for r in tg.regs], axis=1)
               for tg in targets if tg.regs}                                        # (n, len(regs))
    users = {k: _Users(v) for k, v in on_at_t.items()}
    shared = {}                                     # new-user and any-use variants share one _Naive
    naive = {tg.name: shared.setdefault((tg.regs, tg.drugs), _Naive(fork, tg, filters, mode))
             for tg in targets if tg.regs and integrate}
    deps = {tg.name: _Dependent(fork, tg.d, filters, mode) for tg in targets
            if tg.d is not None and PARENT[tg.d] >= 0 and integrate}
    no_rows = np.zeros(fork.n, bool)
    dialysis = INDEX["dialysis"]
    for j in range(1, max(tg.window for tg in targets) + 1):
        m = t + j
        alive0, was_on, reg_start0, dx0 = fork.alive.copy(), fork.reg_opt.copy(), fork.reg_start.copy(), fork.dx.copy()
        out = fork.step(m)
        forced_not_onset = out["episodes"].any(axis=1) | out["dying"] | (dx0[:, dialysis] >= 0)
        forced = fork.cur_at_onset.any(axis=1) | forced_not_onset
        p_visit = np.where(alive0, np.where(forced, 1.0, fork.cur_visit_p), 0.0)   # over the month's visit draw
        naive_event = {}
        for tg in targets:
            if j > tg.window:
                continue
            if tg.d is not None:
                h = _incidence_step(fork, tg.d, filt[tg.name], p_visit)
                dep = deps.get(tg.name)
                rb = dep.rows if dep is not None else no_rows
                est[tg.name] += np.where(alive0 & (dx0[:, tg.d] < 0) & ~rb, h, 0.0)
                if dep is not None:
                    other = np.delete(fork.cur_at_onset, [tg.d, dep.par], axis=1).any(axis=1) | out["dying"] \
                        | out["episodes"].any(axis=1)
                    est[tg.name] += dep.step(fork, m, dx0, was_on, alive0, other)
            else:
                tm, u = tmasks[tg.name], users[tg.name]
                pno = _no_target_after(fork, m, tg, tm, was_on, reg_start0)
                nv = naive.get(tg.name)
                rb = nv.rows if nv is not None else no_rows
                est[tg.name] += np.where(u.rows | rb | done[tg.name], 0.0, p_visit * (1 - pno))
                done[tg.name] |= np.isin(out["dispensed"], np.array(tg.drugs)).any(axis=1)
                est[tg.name] += u.step(fork, m, tg, tm, was_on, reg_start0, dx0, alive0, forced)
                if nv is not None and nv.inds and id(nv) not in naive_event:
                    other = np.delete(fork.cur_at_onset, nv.inds, axis=1).any(axis=1) | forced_not_onset
                    naive_event[id(nv)] = nv.step(fork, m, tg, tm, was_on, dx0, alive0, other)
                est[tg.name] += naive_event.get(id(nv), 0.0)
    w = weight.reshape(-1, reps)
    w = w / np.maximum(w.sum(axis=1, keepdims=True), 1e-300)
    res = {}
    for tg in targets:
        e = est[tg.name].reshape(-1, reps)[tg.rows]
        wr = w[tg.rows]
        p = (wr * e).sum(axis=1)
        se = np.sqrt((wr ** 2 * (e - p[:, None]) ** 2).sum(axis=1) * reps / max(reps - 1, 1))
        res[tg.name] = (np.clip(p, 0.0, 1.0), se)
    return res


def option_mask(r, drugs) -> np.ndarray:
    """(k,) bool: options of regimen r whose every alternative in some slot is a target drug."""
    return option_has(REGIMENS[NAMES[r]], tuple(DRUGS[i][0] for i in drugs))


def _start_filter(fork, d, filters, mode):
    """(n, K, 2) P(frailty class, undiagnosed onset) of module d at t: true state, or the filter's."""
    if mode == 1:
        return filters[d].f[fork.parent_rows].copy()
    g = np.zeros((fork.n, K, 2))
    state = ((fork.onset[:, d] >= 0) & (fork.dx[:, d] < 0)).astype(np.int64)
    g[np.arange(fork.n), fork.zk[:, d], state] = 1.0
    return g


def _incidence_step(fork, d, g, p_visit):
    """P(module d first coded this month | not coded before), then g conditioned on the fork's month."""
    e = np.exp(-Z_VALUES[None, :] * np.maximum(fork.cur_h[:, d, None], 0.0))   # (n, K); h < 0 never fires
    onset = g[:, :, 0] * (1 - e)
    g[:, :, 0] *= e
    if CODED_AT_ONSET[d]:
        coded = onset.sum(axis=1)
    else:
        g[:, :, 1] += onset
        coded = g[:, :, 1].sum(axis=1) * p_visit * Q[d]
        g[:, :, 1] *= np.where(fork.cur_visit, 1 - Q[d], 1.0)[:, None]
    total = g.sum(axis=(1, 2), keepdims=True)
    g /= np.where(total > 0, total, 1.0)
    return coded
