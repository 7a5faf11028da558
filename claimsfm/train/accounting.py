"""Compute accounting: FLOPs per step, MFU, peak memory, device description.

FLOPs of one training step (forward + backward = 3x forward, multiply-add = 2 FLOPs):
  6 * (matmul weights) * real tokens                linear layers: 4 d^2 + 2 d d_ff weights per layer
  + 6 * vocab * d * masked tokens                   tied MLM head, evaluated only at MLM targets
  + 12 * n_layer * d * sum(len_i^2)                 attention scores and weighted sum, per sequence
This is the usual 6·N·tokens with N = non-embedding matmul weights, plus the head and attention;
embedding lookups, norms and softmax are left out as is customary.
"""
from __future__ import annotations

import resource

import torch

H200_BF16_PEAK = 989e12


def matmul_weights(cfg) -> int:
    """Weights every token multiplies (the blocks' linear layers). The future-codes head runs once per
    sequence, not per token (d^2 + d x vocab per [CLS], a few % of a step at the demo sizes): not counted."""
    return cfg.n_layer * (4 * cfg.d_model * cfg.d_model + 2 * cfg.d_model * cfg.d_ff)


def step_flops(cfg, real_tokens: int, masked_tokens: int, sum_len_sq: int) -> dict:
    linear = 6 * matmul_weights(cfg) * real_tokens
    head = 6 * cfg.vocab_size * cfg.d_model * masked_tokens
    attention = 12 * cfg.n_layer * cfg.d_model * sum_len_sq
    return {"flops": linear + head + attention, "flops_attention": attention}


def sequence_lengths(batch) -> torch.Tensor:
    """(B,) real lengths of a varlen or padded batch."""
    if "cu_seqlens" in batch:
        cu = batch["cu_seqlens"].long()
        return cu[1:] - cu[:-1]
    return batch["attention_mask"].long().sum(1)


def peak_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def mfu(flops: float, seconds: float, device: torch.device, world_size: int = 1) -> float | None:
    """Model FLOPs utilisation against the H200 bf16 peak; None off CUDA (no meaningful peak)."""
    if device.type != "cuda" or seconds <= 0:
        return None
    return flops / (seconds * H200_BF16_PEAK * world_size)
