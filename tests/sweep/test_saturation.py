"""The non-inferiority saturation rule on hand-made results: each outcome, ties, margin, bad inputs."""
import pytest

from claimsfm.errors import ClaimsfmError
from claimsfm.sweep.saturation import analyze_task, best_scale, compare

PARAMS = {"2.2M": 2_200_000, "11M": 11_000_000, "32M": 32_000_000, "101M": 101_000_000}
COMPUTE = {
    "2.2M": {"hours": 1.0, "flops": 1e15},
    "11M": {"hours": 4.0, "flops": 5e15},
    "32M": {"hours": 10.0, "flops": 1.5e16},
    "101M": {"hours": 25.0, "flops": 4.5e16},
}


def _pairs(auprc: dict, best: str, half_width: float) -> dict:
    """(scale - best) with a symmetric CI of the given half width around the AUPRC gap."""
    top = auprc[best]
    return {s: {"diff": v - top, "ci": (v - top - half_width, v - top + half_width)}
            for s, v in auprc.items() if s != best}


def test_compare_gives_the_three_verdicts():
    assert compare((-0.015, 0.01), 0.02) == "non_inferior"
    assert compare((-0.08, -0.01), 0.02) == "inferior"
    assert compare((-0.08, 0.03), 0.02) == "inconclusive"
    assert compare(None, 0.02) == "inconclusive"
    assert compare((-0.015, 0.01), 0.01) == "inconclusive"  # the same CI is not enough for a tighter margin


def test_smaller_scale_shown_non_inferior_saves_compute():
    auprc = {"2.2M": 0.20, "11M": 0.295, "32M": 0.30, "101M": 0.298}
    vs = _pairs(auprc, "32M", 0.01)   # 2.2M: [-0.11, -0.09] inferior; 11M: [-0.015, 0.005] non-inferior
    out = analyze_task(auprc, PARAMS, vs, COMPUTE, {"diff": 0.01, "ci": (-0.01, 0.03)}, margin=0.02)
    assert out["best"] == "32M" and out["status"] == "non_inferior" and out["saturation"] == "11M"
    assert out["scales"]["2.2M"]["verdict"] == "inferior" and out["scales"]["11M"]["verdict"] == "non_inferior"
    assert out["saved"]["hours"] == pytest.approx(6.0) and out["saved"]["flops"] == pytest.approx(1e16)
    assert out["saved"]["share_of_sweep"] == pytest.approx(6.0 / 40.0)
    assert out["saved"]["share_of_best"] == pytest.approx(0.6)
    assert out["beats_lightgbm"] is False and not out["largest_wins"]


def test_best_scale_needed_when_every_smaller_scale_is_shown_worse():
    auprc = {"2.2M": 0.20, "11M": 0.24, "32M": 0.27, "101M": 0.30}
    vs = _pairs(auprc, "101M", 0.02)
    out = analyze_task(auprc, PARAMS, vs, COMPUTE, {"diff": 0.05, "ci": (0.02, 0.08)})
    assert out["status"] == "best_needed" and out["saturation"] == "101M" and out["largest_wins"]
    assert out["saved"]["hours"] == 0.0 and out["saved"]["flops"] == 0.0
    assert out["beats_lightgbm"] is True


def test_wide_cis_leave_the_task_unresolved_with_no_saving():
    # The seed-7 case: the small scale trails by 0.10 with a CI that reaches 0; not a claim.
    auprc = {"2.2M": 0.659, "11M": 0.70, "32M": 0.763}
    vs = {"2.2M": {"diff": -0.104, "ci": (-0.21, 0.004)}, "11M": {"diff": -0.063, "ci": (-0.15, 0.02)}}
    out = analyze_task(auprc, PARAMS, vs, COMPUTE, margin=0.02)
    assert out["status"] == "unresolved" and out["saturation"] is None and out["saturation_auprc"] is None
    assert out["saved"] is None
    assert {v["verdict"] for s, v in out["scales"].items() if s != "32M"} == {"inconclusive"}


def test_a_wider_margin_turns_inconclusive_into_non_inferior():
    auprc = {"2.2M": 0.29, "11M": 0.295, "32M": 0.30}
    vs = {"2.2M": {"diff": -0.01, "ci": (-0.04, 0.02)}, "11M": {"diff": -0.005, "ci": (-0.03, 0.02)}}
    assert analyze_task(auprc, PARAMS, vs, COMPUTE, margin=0.02)["status"] == "unresolved"
    out = analyze_task(auprc, PARAMS, vs, COMPUTE, margin=0.035)
    assert out["status"] == "non_inferior" and out["saturation"] == "11M"
    out = analyze_task(auprc, PARAMS, vs, COMPUTE, margin=0.05)
    assert out["saturation"] == "2.2M" and out["saved"]["hours"] == pytest.approx(9.0)


def test_inconclusive_smallest_does_not_block_a_non_inferior_middle_scale():
    auprc = {"2.2M": 0.25, "11M": 0.298, "32M": 0.30}
    vs = {"2.2M": {"diff": -0.05, "ci": (-0.12, 0.02)}, "11M": {"diff": -0.002, "ci": (-0.01, 0.006)}}
    out = analyze_task(auprc, PARAMS, vs, COMPUTE)
    assert out["status"] == "non_inferior" and out["saturation"] == "11M"


def test_smallest_scale_best_and_exact_tie_picks_the_smaller_model():
    auprc = {"2.2M": 0.31, "11M": 0.30, "32M": 0.29}
    out = analyze_task(auprc, PARAMS, _pairs(auprc, "2.2M", 0.05), COMPUTE)
    assert out["status"] == "best_needed" and out["saturation"] == "2.2M" and out["saved"]["hours"] == 0.0
    auprc = {"2.2M": 0.1, "11M": 0.25, "32M": 0.25, "101M": 0.2}
    assert best_scale(auprc, PARAMS) == "11M"
    out = analyze_task(auprc, PARAMS, _pairs(auprc, "11M", 0.01), COMPUTE)
    assert out["best"] == "11M" and out["saturation"] == "11M" and out["status"] == "best_needed"
    assert out["scales"]["32M"]["verdict"] == "non_inferior"  # larger than the best: reported, not chosen


def test_missing_pair_is_inconclusive_and_bad_inputs_raise():
    auprc = {"2.2M": 0.29, "32M": 0.30}
    out = analyze_task(auprc, PARAMS, {}, COMPUTE)
    assert out["status"] == "unresolved" and out["scales"]["2.2M"]["verdict"] == "inconclusive"
    with pytest.raises(ClaimsfmError, match="--margin"):
        analyze_task(auprc, PARAMS, {}, COMPUTE, margin=-0.01)
    with pytest.raises(ClaimsfmError, match="57M"):
        analyze_task({"57M": 0.3}, PARAMS, {}, COMPUTE)
    with pytest.raises(ClaimsfmError):
        best_scale({}, PARAMS)
