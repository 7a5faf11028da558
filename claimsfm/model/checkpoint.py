"""Checkpoints: weights in safetensors, settings in config.json, training state via torch.save.

A folder holds `model.safetensors`, `config.json` ({"settings": {"model": ModelConfig, ...},
"environment": ...}) and, for a resumable checkpoint, `state.pt` (optimizer, schedule step, RNG,
data position). Loading never runs code from a file: safetensors for weights and
`torch.load(weights_only=True)` for the state. Step folders under `checkpoints/` are built under a
temporary name and renamed into place, so a folder that is visible is complete.
"""
from __future__ import annotations

import functools
import re
from dataclasses import asdict
from pathlib import Path

import torch

from claimsfm.errors import ClaimsfmError
from claimsfm.io import atomic_path, environment, read_json, write_json
from claimsfm.model.model import Encoder, ModelConfig

_STEP_DIR = re.compile(r"step_(\d+)")


def save_checkpoint(folder, model: Encoder, settings: dict | None = None, state: dict | None = None) -> None:
    """Write weights + config.json (+ state.pt) into `folder`, each file atomically."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = getattr(model, "module", model)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(folder / "model.safetensors") as tmp:
        save_file(tensors, str(tmp))
    # The same layout as claimsfm.io.write_run_config, with the environment (a git call) looked up once.
    write_json(folder / "config.json", {"settings": {**(settings or {}), "model": asdict(model.config)},
                                        "environment": _environment()})
    if state is not None:
        with atomic_path(folder / "state.pt") as tmp:
            torch.save(state, tmp)


@functools.lru_cache(maxsize=1)
def _environment() -> dict:
    return environment()


def step_folders(run_dir) -> list[tuple[int, Path]]:
    """Complete checkpoint folders under run_dir/checkpoints, oldest first (temp folders start with '.')."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.fullmatch(p.name))]
    return sorted(found)


def weights_folder(run_dir) -> Path:
    """The run's final weights if present, else its latest checkpoint, else the folder itself."""
    run_dir = Path(run_dir)
    if (run_dir / "model.safetensors").is_file():
        return run_dir
    steps = step_folders(run_dir)
    if steps:
        return steps[-1][1]
    raise ClaimsfmError(f"{run_dir}: no model.safetensors and no checkpoint (is this a pretrain run folder?)")


def read_model_config(folder) -> ModelConfig:
    path = Path(folder) / "config.json"
    try:
        return ModelConfig(**read_json(path)["settings"]["model"])
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise ClaimsfmError(f"{path}: not a claimsfm model config ({exc})") from None


def load_checkpoint(run_dir, device="cpu", attention: str = "auto") -> tuple[Encoder, ModelConfig]:
    """(model in eval mode, its config) from a run folder or one checkpoint folder."""
    from safetensors.torch import load_file

    folder = weights_folder(run_dir)
    cfg = read_model_config(folder)
    model = Encoder(cfg, attention=attention)
    path = folder / "model.safetensors"
    try:
        tensors = load_file(str(path), device=str(device))
    except Exception as exc:  # safetensors raises its own error types for truncated or foreign files
        raise ClaimsfmError(f"{path}: cannot read weights ({exc})") from None
    model.load_state_dict(tensors)
    return model.to(device).eval(), cfg


def load_state(folder, device="cpu") -> dict:
    path = Path(folder) / "state.pt"
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # unpickling errors come in many types; all mean the same to the user
        raise ClaimsfmError(f"{path}: cannot read training state ({exc})") from None
