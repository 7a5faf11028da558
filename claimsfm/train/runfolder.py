"""The pretraining run folder: what is already there, metrics.jsonl, checkpoint rotation.

`<run>/config.json` (settings + environment), `checkpoints/step_<n>/` (model.safetensors,
config.json, state.pt), `metrics.jsonl` (one JSON object per logged step), and at the end
`model.safetensors` + `summary.json` with `finished: true` (written last, so its presence means done).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from claimsfm.errors import ClaimsfmError
from claimsfm.io import read_json, write_text
from claimsfm.outdir import claim, record, remove_owned


@dataclass(frozen=True)
class Status:
    kind: str  # "fresh" | "finished" | "resume"
    summary: dict | None = None
    checkpoint: Path | None = None
    step: int = 0


def _normal(obj):
    return json.loads(json.dumps(obj, default=str))


def _differences(old: dict, new: dict) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def inspect(run_dir: Path, settings: dict, resume: bool, owner: bool = True) -> Status:
    """Decide between a fresh start, returning a finished run, and resuming an unfinished one.

    The owner (the only process that writes the folder: rank 0) claims it first (claimsfm.outdir): a folder
    claimsfm did not make is refused. Other ranks only read it: two processes claiming one folder at once race
    on its marker (one sees the other's half-written marker and refuses the folder as not claimsfm's).
    """
    from claimsfm.model.checkpoint import step_folders

    if owner:
        claim(run_dir, "pretrain", [settings.get("data")])
        record(run_dir, *(run_dir / name for name in RUN_FILES))
    config = run_dir / "config.json"
    if config.is_file():
        old = read_json(config).get("settings", {})
        if not isinstance(old, dict):
            raise ClaimsfmError(f"{config}: 'settings' is not an object; the run folder is damaged")
        diff = _differences(_normal(old), _normal(settings))
        if diff:
            raise ClaimsfmError(
                f"{run_dir}: holds a run with other settings ({'; '.join(diff)}); "
                "choose another --out or delete the folder"
            )
    summary_path = run_dir / "summary.json"
    if summary_path.is_file():
        summary = read_json(summary_path)
        if summary.get("finished"):
            return Status("finished", summary=summary)
    steps = step_folders(run_dir)
    if steps:
        return Status("resume", checkpoint=steps[-1][1], step=steps[-1][0])
    if resume:
        raise ClaimsfmError(f"--resume: {run_dir} has no checkpoint to resume from")
    return Status("fresh")


RUN_FILES = ("config.json", "metrics.jsonl", "model.safetensors", "summary.json")  # what a pretraining run writes
CHECKPOINT_FILES = ("model.safetensors", "config.json", "state.pt")  # what model.checkpoint.save_checkpoint writes


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    """The folder of one checkpoint; its files enter the run's manifest before they are written, so a
    checkpoint left by a killed run is still provably claimsfm's and pruned on resume."""
    path = run_dir / "checkpoints" / f"step_{step:08d}"
    record(run_dir, *(path / name for name in CHECKPOINT_FILES))
    return path


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Record the newest checkpoint's files in the folder's manifest, then delete all but the newest `keep`
    checkpoints; a checkpoint folder claimsfm did not record (copied in by hand) is never deleted."""
    from claimsfm.model.checkpoint import step_folders

    steps = step_folders(run_dir)
    if steps:
        newest = steps[-1][1]
        record(run_dir, *(p for p in newest.rglob("*") if p.is_file()))
    for _, path in steps[:-keep]:
        remove_owned(run_dir, path)


class MetricsLog:
    """metrics.jsonl, cut back to `step` on resume so a resumed run logs each step exactly once."""

    def __init__(self, path: Path, resume_step: int):
        self.path = path
        kept = [r for r in self.read() if r.get("step", 0) <= resume_step] if resume_step else []
        write_text(path, "".join(json.dumps(r) + "\n" for r in kept))

    def read(self) -> list[dict]:
        if not self.path.is_file():
            return []
        rows = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut by a kill; everything after it is from the same interrupted write
        return rows

    def append(self, row: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
