"""Power-law fit L(N) = a N^-b + c recovers known parameters from synthetic points."""
import numpy as np
import pytest

from claimsfm.sweep.powerlaw import fit_fixed_c, fit_power_law, loss_law, predict

LADDER = np.array([2.2e6, 11e6, 32e6, 57e6, 101e6])


@pytest.mark.parametrize("a,b,c", [(40.0, 0.25, 1.5), (300.0, 0.4, 2.2), (8.0, 0.1, 0.5)])
def test_recovers_known_parameters_without_noise(a, b, c):
    loss = a * LADDER ** -b + c
    fit = fit_power_law(LADDER, loss)
    assert fit["b"] == pytest.approx(b, rel=1e-3)
    assert fit["c"] == pytest.approx(c, rel=1e-3, abs=1e-4)
    assert fit["a"] == pytest.approx(a, rel=1e-2)
    assert fit["rmse"] < 1e-6
    np.testing.assert_allclose(predict(fit, LADDER), loss, rtol=1e-6)


def test_recovers_parameters_with_small_noise_on_a_wider_range():
    rng = np.random.default_rng(0)
    n = np.geomspace(1e6, 1e9, 12)
    loss = 120.0 * n ** -0.3 + 1.8
    noisy = loss * (1 + rng.normal(0, 0.002, n.shape))
    fit = fit_power_law(n, noisy)
    assert fit["b"] == pytest.approx(0.3, abs=0.05)
    assert fit["c"] == pytest.approx(1.8, abs=0.1)
    assert fit["n_points"] == 12


def test_too_few_points_give_no_fit_and_stay_within_bounds():
    assert fit_power_law([1e6, 2e6], [3.0, 2.9]) is None
    assert fit_power_law([1e6, 1e6, 1e6], [3.0, 2.9, 2.8]) is None
    fit = fit_power_law([1e6, 1e7, 1e8], [3.0, 3.1, 2.9])  # not a power law: stays bounded
    assert fit is not None and 0 <= fit["b"] <= 3 and 0 <= fit["c"] <= 2.9


def test_fixed_c_recovers_a_pure_power_law_and_says_c_was_fixed():
    n = np.array([2e5, 5e5, 1.2e6])
    fit = fit_fixed_c(n, 30.0 * n ** -0.15)
    assert fit["c_fixed"] and fit["c"] == 0.0 and "(c fixed)" in fit["formula"]
    assert fit["b"] == pytest.approx(0.15, rel=1e-6) and fit["a"] == pytest.approx(30.0, rel=1e-6)
    assert fit_fixed_c(n, [3.0, 2.0, 1.0], c=2.5) is None  # a loss below c cannot be fitted


@pytest.mark.parametrize("sizes,identifiable,fixed", [(LADDER, True, False), (LADDER[:4], True, False),
                                                       (LADDER[:3], True, True), (LADDER[:2], False, None)])
def test_loss_law_reports_a_fit_only_when_identifiable(sizes, identifiable, fixed):
    law = loss_law(sizes, 40.0 * sizes ** -0.25 + 1.5)
    assert law["identifiable"] is identifiable
    if fixed is None:
        assert law["fit"] is None and "not identifiable" in law["note"]
    else:
        assert law["fit"]["c_fixed"] is fixed
        assert ("c is fixed at 0" in law["note"]) is fixed
        assert law["fit"]["rmse"] < (1e-6 if not fixed else 0.05)
