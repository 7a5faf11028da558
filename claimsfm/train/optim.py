"""AdamW with decoupled weight decay on every matrix (embedding tables included), linear warmup then cosine
decay to 10%."""
from __future__ import annotations

import math

import torch

MIN_LR_RATIO = 0.1


def make_optimizer(model, lr: float, weight_decay: float, device_type: str) -> torch.optim.AdamW:
    # Every 2-D parameter decays, as in nanoGPT: the linear weights and every embedding table (the code
    # table is also the tied MLM head). Biases and LayerNorm gains and shifts (1-D) keep their scale.
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), eps=1e-8, fused=device_type == "cuda")


def lr_at(step: int, total_steps: int, warmup_steps: int, peak: float) -> float:
    """Learning rate for optimizer step `step` (0-based): a pure function, so resume needs only the step."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return peak * (MIN_LR_RATIO + (1 - MIN_LR_RATIO) * 0.5 * (1 + math.cos(math.pi * progress)))


def default_warmup(total_steps: int) -> int:
    """5% of the run, at least 1 and at most 1000 steps."""
    return max(1, min(1000, total_steps // 20))
