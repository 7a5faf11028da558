"""Checkpoints and resume: N steps + resume N steps == 2N steps straight; a run killed with SIGKILL
after its first checkpoint resumes and finishes; no checkpoint on disk is ever unreadable."""
import shutil
import signal
import time

import torch
from safetensors.torch import load_file

from claimsfm.model.checkpoint import load_checkpoint, load_state, step_folders
from claimsfm.outdir import MARKER
from claimsfm.train.pretrain import PretrainConfig, run


def tiny(store_dir, out, **kw):
    base = dict(data=str(store_dir), params="0.05M", out=str(out), steps=12, batch_tokens=1024, max_len=64,
                lr=3e-3, eval_every=4, eval_batches=1, checkpoint_every=6, progress=False, attention="sdpa")
    return PretrainConfig(**{**base, **kw})


def test_resume_from_midway_checkpoint_is_exact(store_dir, tmp_path):
    straight = tmp_path / "straight"
    a = run(tiny(store_dir, straight))
    # A second folder that holds only what a run interrupted after step 6 leaves behind.
    resumed = tmp_path / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copytree(straight / "checkpoints" / "step_00000006", resumed / "checkpoints" / "step_00000006")
    shutil.copy(straight / "config.json", resumed / "config.json")
    shutil.copy(straight / MARKER, resumed / MARKER)  # the folder is claimsfm's (claimsfm.outdir)
    shutil.copy(straight / "metrics.jsonl", resumed / "metrics.jsonl")  # holds steps 7-12 too: cut on resume
    b = run(tiny(store_dir, resumed))
    wa, wb = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    for key in ("steps", "tokens_seen", "train_loss", "eval_loss", "flops"):
        assert a[key] == b[key], key
    assert (resumed / "metrics.jsonl").read_text().count("\n") == 12


_CHILD = """
from claimsfm.train.pretrain import PretrainConfig, run
run(PretrainConfig(data={data!r}, params="0.05M", out={out!r}, steps=30, batch_tokens=1024, max_len=64,
                   lr=3e-3, eval_every=10, eval_batches=1, checkpoint_every=2, progress=False, attention="sdpa"))
"""


def _check_readable(out):
    """Every visible checkpoint folder loads; one pruned while we read it is fine."""
    for _, folder in step_folders(out):
        try:
            load_checkpoint(folder)
            load_state(folder)
        except Exception:
            if folder.exists():
                raise


def test_sigkill_after_first_checkpoint_then_resume(store_dir, tmp_path, run_python):
    out = tmp_path / "killed"
    child = run_python(_CHILD.format(data=str(store_dir), out=str(out)), cwd=tmp_path, wait=False)
    deadline = time.monotonic() + 240
    try:
        while not step_folders(out):
            assert child.poll() is None, child.stderr.read()
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert not (out / "summary.json").exists()
    _check_readable(out)
    killed_at = step_folders(out)[-1][0]
    assert killed_at < 30
    summary = run(PretrainConfig(data=str(store_dir), params="0.05M", out=str(out), steps=30, batch_tokens=1024,
                                 max_len=64, lr=3e-3, eval_every=10, eval_batches=1, checkpoint_every=2,
                                 progress=False, attention="sdpa", resume=True))
    assert summary["finished"] and summary["steps"] == 30
    _check_readable(out)
    assert [s for s, _ in step_folders(out)] == [28, 30]
    steps = [int(line.split('"step": ')[1].split(",")[0]) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 31))


def test_only_the_owner_rank_claims_the_run_folder(tmp_path):
    """Rank 0 claims and records the folder; another rank only reads it (both claiming at once raced on the marker)."""
    from claimsfm.outdir import MARKER, read_marker
    from claimsfm.train.runfolder import inspect

    settings = {"data": str(tmp_path / "data")}
    other = tmp_path / "other"
    assert inspect(other, settings, resume=False, owner=False).kind == "fresh"
    assert not other.exists()                              # a non-owner writes nothing, not even the folder
    run = tmp_path / "run"
    assert inspect(run, settings, resume=False).kind == "fresh"
    marker = read_marker(run)
    assert marker["command"] == "pretrain" and "config.json" in marker["files"]
    before = (run / MARKER).read_bytes()
    assert inspect(run, settings, resume=False, owner=False).kind == "fresh"
    assert (run / MARKER).read_bytes() == before
