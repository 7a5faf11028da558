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
import warnings
from dataclasses import asdict
from pathlib import Path

import torch

from claimsfm.errors import ClaimsfmError
from claimsfm.io import atomic_path, environment, read_json, write_json
from claimsfm.model.model import Encoder, ModelConfig

_STEP_DIR = re.compile(r"step_(\d+)")
# Version of what a checkpoint means: 2 = models that embed the time inputs (days before the reference,
# visit gaps) and read the batch keys age_months / days_before / gap_days; 3 = models that may carry the
# future-codes head (ModelConfig.future_months). A folder without the key is 1.
CHECKPOINT_FORMAT = 3


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
    write_json(folder / "config.json", {"checkpoint_format": CHECKPOINT_FORMAT,
                                        "settings": {**(settings or {}), "model": asdict(model.config)},
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
        data = read_json(path)
        found = data.get("checkpoint_format", 1)
        model = data["settings"]["model"]
    except (OSError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ClaimsfmError(f"{path}: not a claimsfm model config ({exc})") from None
    if found != CHECKPOINT_FORMAT:
        raise ClaimsfmError(f"{path}: checkpoint format {found}, but this claimsfm reads format {CHECKPOINT_FORMAT} "
                            "(models with time inputs and the future-codes head); pretrain the model again")
    try:
        return ModelConfig(**model)
    except (TypeError, ValueError) as exc:
        raise ClaimsfmError(f"{path}: not a claimsfm model config ({exc})") from None


def load_checkpoint(run_dir, device="cpu", attention: str = "auto") -> tuple[Encoder, ModelConfig]:
    """(model in eval mode, its config) from a run folder or one checkpoint folder."""
    check_device(device)
    folder = weights_folder(run_dir)
    cfg = read_model_config(folder)
    model = Encoder(cfg, attention=attention)
    load_weights(model, folder / "model.safetensors", device)
    return model.to(device).eval(), cfg


def check_device(device) -> None:
    """A usable torch device, or a one-line error that says why (before any file is read)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ClaimsfmError(f"--device: {device!r} is not a torch device ({exc})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ClaimsfmError(f"--device {device}: no CUDA GPU is available to torch here; use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ClaimsfmError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here")


def load_weights(model: Encoder, path, device="cpu") -> None:
    """Load `path` into `model`; a one-line error for a file that is not safetensors (a pickle, truncated) or
    whose tensors do not fit the model its config.json describes. Never unpickles anything."""
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path), device=str(device))
    except FileNotFoundError:
        raise ClaimsfmError(f"{path}: no such file (the run folder is incomplete)") from None
    except Exception as exc:  # SafetensorError and others, for truncated, foreign or pickled files
        raise ClaimsfmError(f"{path}: cannot read weights: not a safetensors file ({exc})") from None
    _check_shapes(path, {k: tuple(v.shape) for k, v in model.state_dict().items()},
                  {k: tuple(v.shape) for k, v in tensors.items()})
    model.load_state_dict(tensors)


def _check_shapes(path, expected: dict, found: dict) -> None:
    problem = next((f"missing tensor '{k}'" for k in expected if k not in found), None) or \
        next((f"unexpected tensor '{k}'" for k in found if k not in expected), None) or \
        next((f"'{k}' has shape {found[k]}, the model needs {shape}" for k, shape in expected.items()
              if found[k] != shape), None)
    if problem:
        raise ClaimsfmError(f"{path}: the weights do not fit the model of config.json ({problem}); "
                            "the folder mixes files of different runs")


def check_checkpoint(run_dir) -> ModelConfig:
    """The model config of a run folder, after reading its weights' header (names and shapes, no tensor data):
    a damaged folder fails in one line before any work starts. Never unpickles anything."""
    from safetensors import safe_open

    folder = weights_folder(run_dir)
    cfg = read_model_config(folder)
    path = folder / "model.safetensors"
    try:
        with safe_open(str(path), framework="pt") as f:
            found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as exc:  # SafetensorError and others, for truncated, foreign or pickled files
        raise ClaimsfmError(f"{path}: cannot read weights: not a safetensors file ({exc})") from None
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in Encoder(cfg).state_dict().items()}
    _check_shapes(path, expected, found)
    return cfg


def load_state(folder, device="cpu") -> dict:
    path = Path(folder) / "state.pt"
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol warning would be a second stderr line
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # unpickling errors come in many types; all mean the same to the user
        raise ClaimsfmError(f"{path}: cannot read training state ({exc})") from None
