"""The Rao-Blackwellised rows of the rollout oracle (rollout._Naive, rollout._Dependent).

A row whose label needs an indication (or a parent stage) coded inside the window is scored by an
analytic chain instead of by its forks' own coding: it must have the plain forks' expectation
(checked against many plain forks on rows where that probability is large) and never be 0 where
the hidden state makes the event possible.
"""
import numpy as np
import pytest

from claimsfm.synth.diseases import INDEX
from claimsfm.synth.hospitals import draw_hospitals
from claimsfm.synth.population import draw_population
from claimsfm.synth.rollout import Target, rollout, rollout_keys
from claimsfm.synth.simulate import Simulation
from claimsfm.synth.streams import patient_keys
from claimsfm.synth.truth import task_drugs, task_regimens
from claimsfm.tasks.spec import load_task, month_index

START = month_index(2015, 1)
T = START + 18


@pytest.fixture(scope="module")
def sim():
    keys = patient_keys(8, 6000)
    hosp = draw_hospitals(8, 4)
    s = Simulation(keys, draw_population(keys, "hospital", START, np.array([h.weight for h in hosp])), hosp, START)
    for m in range(START, T + 1):
        s.step(m)
    return s


def _medication(name):
    drugs = task_drugs(load_task(name))
    return drugs, tuple(task_regimens(drugs))


def _simulated_labels(sim, patients, tg, reps) -> np.ndarray:
    """Per patient, the share of `reps` plain runs of the generator's step whose window shows the label."""
    f = sim.fork(np.repeat(patients, reps), rollout_keys(sim.keys[patients], T, reps, 7))
    hit = np.zeros(f.n, bool)
    for m in range(T + 1, T + tg.window + 1):
        out = f.step(m)
        if tg.d is None:
            hit |= np.isin(out["dispensed"], np.array(tg.drugs)).any(axis=1)
    if tg.d is not None:
        hit = (f.dx[:, tg.d] > T) & (f.dx[:, tg.d] <= T + tg.window)
    return hit.reshape(-1, reps).mean(axis=1)


@pytest.mark.parametrize("task, module", [("anticoagulant_new_user", "af"), ("dpp4i_new_user", "t2d"),
                                          ("dialysis", "ckd45")])
def test_integrated_rows_match_the_generator(sim, task, module):
    """Rows with the indication (parent) onset but undiagnosed at t: p = the label rate of 300 plain runs."""
    d = INDEX[module]
    cand = sim.alive & (sim.dx[:, d] < 0) & (sim.age(T) >= 50)
    if task == "dialysis":
        cand &= (sim.dx[:, INDEX["dialysis"]] < 0) & (sim.dx[:, INDEX["ckd"]] >= 0)
        tg = Target(task, 12, None, d=INDEX["dialysis"])
    else:
        drugs, regs = _medication(task)
        tg = Target(task, 3, None, drugs=drugs, regs=regs)
    rows = np.flatnonzero(cand)[:150]
    assert len(rows) >= 40
    # the same patients with an onset of `module` last month, still undiagnosed (a latent state)
    hidden = sim.fork(rows, sim.keys[rows])
    hidden.onset[:, d] = T - 1
    patients = np.arange(len(rows))
    tg.rows = patients
    p, se = rollout(hidden, patients, T, [tg], 4)[task]
    rate = _simulated_labels(hidden, patients, tg, 300)
    assert (p > 0).all() and p.mean() > 0.02                  # a real probability, not a corner case
    err = np.sqrt((rate * (1 - rate) / 300).sum() + (se ** 2).sum()) / len(patients)
    assert abs(p.mean() - rate.mean()) <= 3 * err, (p.mean(), rate.mean(), err)
    # the chain's Monte-Carlo error is far below the plain forks' (that is the point)
    _, plain_se = rollout(hidden, patients, T, [tg], 4, integrate=False)[task]
    assert se.mean() < 0.5 * plain_se.mean()


def test_no_zero_probability_where_the_indication_can_be_coded(sim):
    """Every row not on the target, with no indication coded, gets p > 0 when its indication can begin."""
    drugs, regs = _medication("anticoagulant_new_user")
    af = INDEX["af"]
    rows = np.flatnonzero(sim.alive & (sim.dx[:, af] < 0))[:800]
    tg = Target("x", 3, np.arange(len(rows)), drugs=drugs, regs=regs)
    p, _ = rollout(sim, rows, T, [tg], 2)["x"]
    live = sim.cur_h[rows, af] > 0
    assert live.sum() > 100 and (p[live] > 0).all()
    plain, _ = rollout(sim, rows, T, [tg], 2, integrate=False)["x"]
    assert (plain[live] == 0).mean() > 0.5       # what the plain forks gave: mostly exactly 0
