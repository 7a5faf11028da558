"""Metrics against scikit-learn on fixed arrays; CIs contain their point; the paired bootstrap is paired."""
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from claimsfm.eval import metrics


def _data(n=400, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.2
    p = np.clip(0.2 + 0.3 * y + rng.normal(0, 0.25, n), 0, 1)
    if ties:
        p = np.round(p, 1)
    groups = rng.integers(0, n // 3, n)
    return y, p, groups


@pytest.mark.parametrize("ties", [False, True])
def test_weighted_metrics_equal_sklearn_with_unit_and_integer_weights(ties):
    y, p, _ = _data(ties=ties)
    order, last = metrics._sorted_blocks(y, p)
    w = np.random.default_rng(1).integers(0, 3, size=(3, len(y))).astype(float)
    w[0] = 1.0
    got = metrics._weighted_metrics(y, p, w, order, last)
    for b in range(3):
        sw = w[b]
        assert got["auprc"][b] == pytest.approx(average_precision_score(y, p, sample_weight=sw), abs=1e-12)
        assert got["auroc"][b] == pytest.approx(roc_auc_score(y, p, sample_weight=sw), abs=1e-12)
        assert got["brier"][b] == pytest.approx(brier_score_loss(y, p, sample_weight=sw), abs=1e-12)


def test_summarize_matches_sklearn_and_cis_contain_point():
    y, p, g = _data()
    s = metrics.summarize(y, p, g, n_boot=1000, seed=0)
    assert s["auprc"] == pytest.approx(average_precision_score(y, p))
    assert s["auroc"] == pytest.approx(roc_auc_score(y, p))
    assert s["brier"] == pytest.approx(brier_score_loss(y, p))
    assert s["n"] == len(y) and s["n_pos"] == int(y.sum()) and s["prevalence"] == pytest.approx(y.mean())
    for m in ("auprc", "auroc", "brier"):
        lo, hi = s[f"{m}_ci"]
        assert lo < s[m] < hi
    assert s == metrics.summarize(y, p, g, n_boot=1000, seed=0)  # seeded


def test_bootstrap_resamples_patients_as_blocks():
    # Every row of a patient carries the same weight in a resample.
    g = np.array([5, 5, 7, 9, 9, 9])
    for w in metrics._resample_weights(g, 50, seed=3):
        assert np.all(w[:, 0] == w[:, 1]) and np.all(w[:, 3] == w[:, 5])
        assert np.all(w.sum(axis=1) > 0)


def test_paired_bootstrap_detects_a_better_model_and_not_an_identical_one():
    y, p, g = _data(n=600)
    noisy = np.clip(p + np.random.default_rng(2).normal(0, 0.4, len(p)), 0, 1)
    better = metrics.paired_bootstrap(y, p, noisy, g, n_boot=1000, seed=0)
    assert better["diff"] == pytest.approx(average_precision_score(y, p) - average_precision_score(y, noisy))
    assert better["ci"][0] > 0 and better["p_value"] < 0.05
    same = metrics.paired_bootstrap(y, p, p, g, n_boot=200, seed=0)
    assert same["diff"] == 0 and same["ci"] == [0.0, 0.0]
