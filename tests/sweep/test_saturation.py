"""The saturation rule on hand-made results: ties, largest wins, smallest suffices, tolerance."""
import pytest

from claimsfm.errors import ClaimsfmError
from claimsfm.sweep.saturation import analyze_task, best_scale

PARAMS = {"2.2M": 2_200_000, "11M": 11_000_000, "32M": 32_000_000, "101M": 101_000_000}
COMPUTE = {
    "2.2M": {"hours": 1.0, "flops": 1e15},
    "11M": {"hours": 4.0, "flops": 5e15},
    "32M": {"hours": 10.0, "flops": 1.5e16},
    "101M": {"hours": 25.0, "flops": 4.5e16},
}


def test_largest_model_wins_when_every_smaller_ci_excludes_zero():
    auprc = {"2.2M": 0.20, "11M": 0.24, "32M": 0.27, "101M": 0.30}
    vs = {s: {"diff": auprc[s] - 0.30, "ci": (auprc[s] - 0.30 - 0.01, auprc[s] - 0.30 + 0.005)}
          for s in ("2.2M", "11M", "32M")}
    out = analyze_task(auprc, PARAMS, vs, COMPUTE, {"diff": 0.05, "ci": (0.02, 0.08)})
    assert out["best"] == "101M" and out["saturation"] == "101M" and out["largest_wins"]
    assert out["saved"]["hours"] == 0.0 and out["saved"]["flops"] == 0.0
    assert out["beats_lightgbm"] is True


def test_smallest_scale_suffices_when_its_ci_includes_zero():
    auprc = {"2.2M": 0.295, "11M": 0.297, "32M": 0.30, "101M": 0.299}
    vs = {"2.2M": {"diff": -0.005, "ci": (-0.02, 0.01)}, "11M": {"diff": -0.003, "ci": (-0.01, 0.004)},
          "101M": {"diff": -0.001, "ci": (-0.004, 0.002)}}
    out = analyze_task(auprc, PARAMS, vs, COMPUTE, {"diff": 0.01, "ci": (-0.01, 0.03)})
    assert out["best"] == "32M" and out["saturation"] == "2.2M" and not out["largest_wins"]
    assert out["saved"]["hours"] == pytest.approx(9.0)
    assert out["saved"]["flops"] == pytest.approx(1.4e16)
    assert out["saved"]["share_of_sweep"] == pytest.approx(9.0 / 40.0)
    assert out["saved"]["share_of_best"] == pytest.approx(0.9)
    assert out["beats_lightgbm"] is False


def test_middle_scale_saturates():
    # Medication-like: 11M is as good as the best; 2.2M is clearly worse.
    auprc = {"2.2M": 0.20, "11M": 0.29, "32M": 0.30, "101M": 0.295}
    vs = {"2.2M": {"diff": -0.1, "ci": (-0.12, -0.08)}, "11M": {"diff": -0.01, "ci": (-0.03, 0.01)},
          "101M": {"diff": -0.005, "ci": (-0.02, 0.01)}}
    out = analyze_task(auprc, PARAMS, vs, COMPUTE)
    assert out["saturation"] == "11M"
    assert out["scales"]["2.2M"]["not_worse"] is False and out["scales"]["11M"]["not_worse"] is True
    assert out["versus_lightgbm"] is None and out["beats_lightgbm"] is None


def test_exact_tie_at_the_top_picks_the_smaller_model():
    auprc = {"2.2M": 0.1, "11M": 0.25, "32M": 0.25, "101M": 0.2}
    assert best_scale(auprc, PARAMS) == "11M"
    vs = {"2.2M": {"diff": -0.15, "ci": (-0.2, -0.1)}, "32M": {"diff": 0.0, "ci": (-0.01, 0.01)},
          "101M": {"diff": -0.05, "ci": (-0.07, -0.03)}}
    out = analyze_task(auprc, PARAMS, vs, COMPUTE)
    assert out["best"] == "11M" and out["saturation"] == "11M"
    assert out["saved"]["hours"] == 0.0


def test_tolerance_lets_a_close_smaller_scale_count_as_equal():
    auprc = {"2.2M": 0.295, "11M": 0.28, "32M": 0.30, "101M": 0.29}
    vs = {s: {"diff": auprc[s] - 0.30, "ci": (auprc[s] - 0.31, auprc[s] - 0.301)} for s in ("2.2M", "11M", "101M")}
    assert analyze_task(auprc, PARAMS, vs, COMPUTE)["saturation"] == "32M"
    out = analyze_task(auprc, PARAMS, vs, COMPUTE, tolerance=0.01)
    assert out["saturation"] == "2.2M"
    assert out["scales"]["11M"]["not_worse"] is False  # gap 0.02 is over the tolerance


def test_missing_pair_counts_as_worse_and_bad_inputs_raise():
    auprc = {"2.2M": 0.29, "32M": 0.30}
    out = analyze_task(auprc, PARAMS, {}, COMPUTE)
    assert out["saturation"] == "32M"
    with pytest.raises(ClaimsfmError, match="tolerance"):
        analyze_task(auprc, PARAMS, {}, COMPUTE, tolerance=-1)
    with pytest.raises(ClaimsfmError, match="57M"):
        analyze_task({"57M": 0.3}, PARAMS, {}, COMPUTE)
    with pytest.raises(ClaimsfmError):
        best_scale({}, PARAMS)
