"""Encoder, scale ladder and checkpoints (docs/internals.md §5).

`claimsfm.model.scale` is pure Python; everything else here needs torch, so it is loaded on first use
and `from claimsfm.model import resolve_scale` alone does not import torch.
"""
from __future__ import annotations

from claimsfm.model.scale import count_params, ladder_names, parse_size


def resolve_scale(params: str, vocab_size: int, max_len: int = 512):
    """ModelConfig for a ladder row ('11M', 'demo-S') or any size ('50M') on this vocabulary."""
    from claimsfm.model.model import config_for
    from claimsfm.model.scale import resolve

    return config_for(resolve(params, vocab_size, max_len), vocab_size, max_len)


_LAZY = {
    "ModelConfig": "claimsfm.model.model",
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
