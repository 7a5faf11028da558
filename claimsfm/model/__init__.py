"""Encoder, scale ladder and checkpoints (docs/internals.md §5).

`claimsfm.model.scale` (ModelConfig, the ladder, the shape rule) is pure Python; everything else here
needs torch, so it is loaded on first use and `from claimsfm.model import resolve_scale` alone does not
import torch (tests/model/test_scale.py proves it with torch blocked).
"""
from __future__ import annotations

from claimsfm.model.scale import ModelConfig, count_params, ladder_names, parse_size, resolve_scale

_LAZY = {
    "Encoder": "claimsfm.model.model",
    "load_checkpoint": "claimsfm.model.checkpoint",
    "save_checkpoint": "claimsfm.model.checkpoint",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        from claimsfm.optional import torch

        torch()  # a clear error when torch is missing
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'claimsfm.model' has no attribute {name!r}")


__all__ = ["ModelConfig", "Encoder", "resolve_scale", "load_checkpoint", "save_checkpoint",
           "ladder_names", "count_params", "parse_size"]
