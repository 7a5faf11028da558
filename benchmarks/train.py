"""Training throughput: packed (varlen) vs padded layout on the same sequences, and MFU.

For each model size and each length distribution, the same sequences are collated twice: flat with
cu_seqlens (packed; linear layers see only real tokens) and as (B, L) with a key-padding mask
(padded; the baseline). A timed step is forward + MLM loss + backward + AdamW. Reported per case:
real tokens/s of both layouts, their ratio, the padding fraction p of the padded batch, and MFU
(real-token FLOPs as in claimsfm.train.accounting) against 989 TFLOP/s (H200 bf16) and against a
GEMM peak measured here. Targets (docs/performance.md): P8 packed/padded >= 2x at p >= 50% and
>= 0.95x at p = 0 on the 101M model; P9 101M MFU >= 40% (both on the GPU).

    python benchmarks/train.py                       # CPU: small sizes, few steps
    python benchmarks/train.py --sizes 2.2M,11M,32M,101M --tokens 65536 --steps 10   # GPU
Prints one JSON object; --out also writes it to a file.
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from claimsfm.io import write_json
from claimsfm.model import Encoder, resolve_scale
from claimsfm.train.accounting import H200_BF16_PEAK, step_flops
from claimsfm.train.loop import autocast, loss_sums


def claims_lengths(rng, n, max_len):
    # Claims-like: most patients short, a long tail truncated at max_len (p ~ 0.8 when padded).
    return np.clip(np.rint(rng.lognormal(mean=3.6, sigma=1.0, size=n)), 2, max_len).astype(np.int64)


def make_sequences(dist: str, tokens: int, max_len: int, vocab: int, seed: int):
    rng = np.random.default_rng(seed)
    if dist == "equal":  # p = 0: every sequence has the same length
        lengths = np.full(max(1, tokens // max_len), max_len)
    else:
        lengths = claims_lengths(rng, 4 * tokens // 40, max_len)
        lengths = lengths[: np.searchsorted(np.cumsum(lengths), tokens, side="right")]
    seqs = []
    for n in lengths:
        ids = rng.integers(5, vocab, n)
        ids[0] = 1
        labels = np.where(rng.random(n) < 0.15, ids, -100)
        labels[0] = -100
        seqs.append({"input_ids": ids, "age_months": rng.integers(0, 1200, n), "visit": np.sort(rng.integers(0, 30, n)),
                     "days_before": np.sort(rng.integers(0, 3000, n))[::-1].copy(),
                     "gap_days": rng.integers(-1, 120, n), "labels": labels})
    return seqs


def varlen_batch(seqs, device):
    cat = {k: torch.from_numpy(np.concatenate([s[k] for s in seqs])).long() for k in seqs[0]}
    lengths = torch.tensor([len(s["input_ids"]) for s in seqs])
    cat["segment"] = cat["visit"] % 2
    cat["cu_seqlens"] = torch.nn.functional.pad(torch.cumsum(lengths, 0), (1, 0)).to(torch.int32)
    cat["max_seqlen"] = int(lengths.max())
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in cat.items()}


def padded_batch(seqs, device):
    B, L = len(seqs), max(len(s["input_ids"]) for s in seqs)
    out = {}
    for key, fill in (("input_ids", 0), ("age_months", 0), ("visit", 0), ("days_before", 0), ("gap_days", 0),
                      ("labels", -100)):
        t = torch.full((B, L), fill, dtype=torch.long)
        for i, s in enumerate(seqs):
            t[i, : len(s[key])] = torch.from_numpy(s[key])
        out[key] = t
    out["segment"] = out["visit"] % 2
    out["attention_mask"] = torch.arange(L)[None, :] < torch.tensor([len(s["input_ids"]) for s in seqs])[:, None]
    return {k: v.to(device) for k, v in out.items()}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def one_step(model, opt, batch, device) -> float:
    sync(device)
    t = time.perf_counter()
    with autocast(device):
        loss = loss_sums(model, batch)[0]  # MLM (these batches carry no future-codes targets)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    sync(device)
    return time.perf_counter() - t


def time_layouts(cfg, batches: dict, args, device) -> dict:
    """Median seconds per training step of each layout; steps alternate between layouts so that
    load from other processes on a shared machine hits both alike (one warm-up step each)."""
    setups = {}
    for layout in batches:
        torch.manual_seed(0)
        model = Encoder(cfg, attention=args.attention).to(device)
        setups[layout] = (model, torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda"))
    times = {layout: [] for layout in batches}
    for i in range(args.steps + 1):
        for layout, (model, opt) in setups.items():
            seconds = one_step(model, opt, batches[layout], device)
            if i:
                times[layout].append(seconds)
    backend = setups["packed"][0].backend
    return {layout: float(np.median(t)) for layout, t in times.items()} | {"backend": backend}


def gemm_peak(device) -> float:
    """FLOP/s of a large square matmul in the training dtype (bf16 on CUDA, fp32 on CPU)."""
    n, dtype = (8192, torch.bfloat16) if device.type == "cuda" else (1024, torch.float32)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    reps, best = 10 if device.type == "cuda" else 3, float("inf")
    for _ in range(reps):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def bench_case(size, dist, args, device, peak):
    seqs = make_sequences(dist, args.tokens, args.max_len, args.vocab, args.seed)
    cfg = resolve_scale(size, args.vocab, args.max_len)
    real = sum(len(s["input_ids"]) for s in seqs)
    masked = int(sum((s["labels"] != -100).sum() for s in seqs))
    flops = step_flops(cfg, real, masked, sum(len(s["input_ids"]) ** 2 for s in seqs))["flops"]
    row = {"params": size, "dist": dist, "sequences": len(seqs), "real_tokens": real}
    batches = {"packed": varlen_batch(seqs, device), "padded": padded_batch(seqs, device)}
    timing = time_layouts(cfg, batches, args, device)
    row["packed_backend"] = timing.pop("backend")
    row["padding_fraction"] = 1 - real / batches["padded"]["attention_mask"].numel()
    for layout, seconds in timing.items():
        row[f"{layout}_tokens_per_s"] = real / seconds
        row[f"{layout}_mfu_989"] = flops / seconds / H200_BF16_PEAK
        row[f"{layout}_mfu_measured_peak"] = flops / seconds / peak
    row["speedup_packed_vs_padded"] = row["packed_tokens_per_s"] / row["padded_tokens_per_s"]
    return row


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="2.2M,11M", help="comma-separated ladder rows or sizes")
    p.add_argument("--dists", default="claims,equal", help="claims (p ~ 0.8) and/or equal (p = 0)")
    p.add_argument("--tokens", type=int, default=4096, help="real tokens per batch")
    p.add_argument("--steps", type=int, default=3, help="timed steps per case")
    p.add_argument("--max-len", type=int, default=512)
    p.add_argument("--vocab", type=int, default=20_000)
    p.add_argument("--attention", default="auto")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="also write the JSON here")
    args = p.parse_args()
    device = torch.device(args.device)
    peak = gemm_peak(device)
    rows = [bench_case(size, dist, args, device, peak)
            for size in args.sizes.split(",") for dist in args.dists.split(",")]
    result = {
        "benchmark": "train", "device": torch.cuda.get_device_name(device) if device.type == "cuda" else
        f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__, "measured_gemm_peak_flops": peak, "spec_peak_flops": H200_BF16_PEAK,
        "settings": vars(args), "cases": rows,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
