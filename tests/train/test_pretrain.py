"""Pretraining end to end on a small structured store: losses fall, the run folder is complete,
a finished run is returned as is, other settings are refused, the CLI's dry run sizes models."""
import json

import pytest

from claimsfm.errors import ClaimsfmError
from claimsfm.io import read_json
from claimsfm.train.pretrain import PretrainConfig, run

SUMMARY_KEYS = {"params", "total_params", "non_embedding_params", "n_layer", "d_model", "n_head", "vocab_size",
                "train_loss", "eval_loss", "tokens_seen", "steps", "wall_time_s", "gpu_hours", "device", "flops",
                "peak_memory_bytes", "finished"}


def tiny(store_dir, out, **kw):
    base = dict(data=str(store_dir), params="0.05M", out=str(out), steps=40, batch_tokens=1024, max_len=64,
                lr=3e-3, eval_every=8, eval_batches=2, progress=False, attention="sdpa")
    return PretrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def finished_run(store_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "r"
    return out, run(tiny(store_dir, out))


def test_losses_fall_and_folder_is_complete(finished_run):
    out, summary = finished_run
    assert SUMMARY_KEYS <= set(summary)
    assert summary["finished"] and summary["steps"] == 40
    assert summary["gpu_hours"] == 0.0 and summary["flops"] > 0 and summary["tokens_seen"] > 0
    assert abs(summary["total_params"] - 50_000) <= 2_500
    for name in ("config.json", "model.safetensors", "metrics.jsonl", "summary.json"):
        assert (out / name).is_file(), name
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 41))
    # The objective: MLM + the future-codes loss (the tiny run keeps the default future_months).
    objective = [r["loss"] + r["future_loss"] for r in rows]
    first, last = sum(objective[:5]) / 5, sum(objective[-5:]) / 5
    evals = [r["eval_loss"] for r in rows if "eval_loss" in r]
    assert len(evals) == 5
    assert last < first - 0.1, (first, last)
    assert evals[-1] < evals[0], evals   # the MLM part falls too
    # Held-out objective: MLM + future-codes eval losses, at each evaluation.
    objective_eval = [r["eval_loss"] + r["eval_future_loss"] for r in rows if "eval_loss" in r]
    assert objective_eval[-1] < objective_eval[0] - 0.1, objective_eval
    assert summary["eval_loss"] == evals[-1]
    assert read_json(out / "config.json")["settings"]["model"]["n_layer"] == summary["n_layer"]


def test_finished_run_is_returned_unchanged(finished_run, store_dir):
    out, summary = finished_run
    before = (out / "model.safetensors").stat().st_mtime_ns
    assert run(tiny(store_dir, out)) == summary
    assert (out / "model.safetensors").stat().st_mtime_ns == before


def test_other_settings_are_refused(finished_run, store_dir):
    out, _ = finished_run
    with pytest.raises(ClaimsfmError, match="other settings"):
        run(tiny(store_dir, out, lr=1e-3))


def test_loaded_checkpoint_reproduces_hidden_states(finished_run, store_dir):
    import torch

    from claimsfm.data import PretrainLoader
    from claimsfm.model import load_checkpoint

    out, summary = finished_run
    model, cfg = load_checkpoint(out)
    assert cfg.d_model == summary["d_model"]
    batch = next(iter(PretrainLoader(str(store_dir), split="held_out", max_len=64, batch_tokens=1024)))
    with torch.no_grad():
        h = model(batch)
        cls = h[batch["cu_seqlens"][:-1].long()]
    assert cls.shape == (len(batch["cu_seqlens"]) - 1, cfg.d_model)
    assert torch.isfinite(h).all()


def test_resume_flag_without_checkpoint_fails(store_dir, tmp_path):
    with pytest.raises(ClaimsfmError, match="--resume"):
        run(tiny(store_dir, tmp_path / "none", resume=True))


def _cli(args, capsys):
    from claimsfm.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code or 0, captured.out, captured.err


def test_cli_dry_run_json_and_bad_flags(store_dir, capsys):
    code, stdout, _ = _cli(["pretrain", "--data", store_dir, "--params", "2.2M", "--dry-run", "--json"], capsys)
    assert code == 0
    info = json.loads(stdout)
    assert abs(info["total_params"] - 2.2e6) <= 0.05 * 2.2e6
    assert {"non_embedding_params", "n_layer", "d_model", "n_head", "vocab_size"} <= set(info)
    code, _, stderr = _cli(["pretrain", "--data", store_dir, "--params", "huge", "--dry-run"], capsys)
    assert code == 2 and "--params" in stderr and "Traceback" not in stderr
