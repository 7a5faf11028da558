"""The rollout oracle: calibrated against the labels, and forks never touch the generator's draws."""
import numpy as np
import pytest

from claimsfm.synth.hospitals import draw_hospitals
from claimsfm.synth.oracle import TruthCollector
from claimsfm.synth.population import draw_population
from claimsfm.synth.rollout import rollout_keys
from claimsfm.synth.simulate import STATE, Simulation
from claimsfm.synth.streams import patient_keys
from claimsfm.tasks.spec import builtin_task_names, load_task, month_index

START = month_index(2015, 1)


def _sim(n, seed):
    keys = patient_keys(seed, n)
    hosp = draw_hospitals(seed, 4)
    pop = draw_population(keys, "hospital", START, np.array([h.weight for h in hosp]))
    return Simulation(keys, pop, hosp, START)


@pytest.fixture(scope="module")
def truth():
    """3,000 patients, 40 months, 4 forks per oracle: (collector, per-task stats)."""
    sim = _sim(3000, 21)
    specs = [load_task(n) for n in builtin_task_names()]
    tc = TruthCollector(sim, specs, START, START + 39, rollouts=4)
    for m in range(START, START + 40):
        tc.after_step(m, sim.step(m))
    return tc


def _columns(tc, name):
    spec, _, d, drugs = next(t for t in tc.tasks if t[0].name == name)
    parts = tc.rows[name]
    label = np.concatenate([tc.labels(spec, d, drugs, p[0], p[1]) for p in parts])
    p_obs, se_obs, p_lat, se_lat = (np.concatenate([p[k] for p in parts]) for k in range(2, 6))
    return label, p_obs, p_lat, se_obs, se_lat


@pytest.mark.parametrize("name", builtin_task_names())
def test_labels_are_consistent_with_both_oracles(truth, name):
    label, p_obs, p_lat, se_obs, se_lat = _columns(truth, name)
    assert len(label) > 500 and label.sum() >= 5
    for p in (p_lat, p_obs):
        assert ((p >= 0) & (p <= 1)).all()
        z = (label.sum() - p.sum()) / np.sqrt((p * (1 - p)).sum())
        assert abs(z) <= 3.0, (name, label.sum(), p.sum())
    # the Monte-Carlo error is small beside the spread of p (ranking is not noise)
    assert se_lat.mean() < 0.25 * p_lat.std() and se_obs.mean() < 0.25 * p_obs.std()


def test_latent_ranks_current_users_by_what_happens_next(truth):
    """The old frozen-covariate oracle gave every current statin user the same p; rollouts do not."""
    label, _, p_lat, _, _ = _columns(truth, "statin_any_use")
    high = p_lat > 0.5
    assert len(np.unique(p_lat[high])) > 100 and p_lat[high].min() < 0.9
    assert label[high].mean() == pytest.approx(p_lat[high].mean(), abs=0.02)


def test_rollouts_leave_the_generator_untouched():
    """Same seed with and without the oracle: identical state after every month (so identical claims)."""
    plain, observed = _sim(400, 5), _sim(400, 5)
    specs = [load_task(n) for n in builtin_task_names()]
    tc = TruthCollector(observed, specs, START, START + 29, rollouts=2)
    for m in range(START, START + 30):
        a, b = plain.step(m), observed.step(m)
        tc.after_step(m, b)
        assert all(np.array_equal(a[k], b[k]) for k in a)
    for name in STATE:
        assert np.array_equal(getattr(plain, name), getattr(observed, name)), name


def test_fork_streams_are_not_the_patients():
    keys = patient_keys(0, 50)
    forks = rollout_keys(keys, 700, 3, 0)
    assert len(forks) == 150 and len(np.unique(forks)) == 150
    assert not np.isin(forks, keys).any()
    assert not np.array_equal(forks, rollout_keys(keys, 700, 3, 1))


@pytest.mark.parametrize("link_by, left_out", [("chart", True), ("insurer", False)])
def test_evaluate_leaves_the_oracle_out_on_chart_linked_data(tmp_path, link_by, left_out):
    from claimsfm.eval.samples import oracle_unit_note
    from claimsfm.io import write_json

    write_json(tmp_path / "metadata" / "dataset.json", {"link_by": link_by})
    note = oracle_unit_note(tmp_path)
    assert (note is not None) == left_out
    if left_out:
        assert "approximate" in note and "--link-by insurer" in note
