"""Compute accounting and the throughput a dry-run reads from a GPU benchmark JSON."""
import pytest

from claimsfm.errors import ClaimsfmError
from claimsfm.io import write_json
from claimsfm.sweep import compute


def test_hours_prefer_gpu_hours_and_fall_back_to_cpu_wall_clock():
    assert compute.hours_of({"gpu_hours": 2.5, "wall_time_s": 10}) == (2.5, "gpu")
    assert compute.hours_of({"gpu_hours": 0.0, "wall_time_s": 7200}) == (2.0, "cpu")


def test_nominal_params_and_training_flops():
    assert compute.nominal_params("2.2M") == 2_200_000 and compute.nominal_params("101M") == 101_000_000
    with pytest.raises(ClaimsfmError, match="--scales"):
        compute.nominal_params("huge")
    assert compute.training_flops(1_000_000, 1000) == 6e9
    assert compute.training_flops(0, 10, n_layer=2, d_model=64, attended_len=100) == 12 * 2 * 64 * 100 * 10


def test_throughput_comes_from_a_gpu_train_benchmark_and_not_from_a_cpu_one(tmp_path):
    case = {"params": "11M", "dist": "claims", "packed_tokens_per_s": 1e6, "packed_mfu_989": 0.3}
    write_json(tmp_path / "train_cpu.json",
               {"benchmark": "train", "device": "cpu (x86_64, 2 threads)", "cases": [case]})
    assert compute.measured_throughput(tmp_path) is None
    rate, note = compute.achieved_flops_per_s(None)
    assert rate == pytest.approx(0.4 * 989e12) and note.startswith("ASSUMPTION")
    big = dict(case, params="101M", packed_tokens_per_s=4e5, packed_mfu_989=0.45)
    write_json(tmp_path / "train_h200.json", {"benchmark": "train", "device": "NVIDIA H200", "cases": [case, big]})
    got = compute.measured_throughput(tmp_path)
    assert got["params"] == 101_000_000 and got["tokens_per_s"] == 4e5
    rate, note = compute.achieved_flops_per_s(got)
    assert rate == pytest.approx(0.45 * 989e12) and note.startswith("measured")
    plan = compute.paper_plan([{"name": "101M", "params": 101_000_000, "non_embedding_params": 85_000_000}],
                              200.0, 10**10, got)
    assert plan["scales"][0]["gpu_hours"] == pytest.approx(6 * 85e6 * 1e10 / rate / 3600)
