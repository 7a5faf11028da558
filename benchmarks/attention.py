"""Varlen attention side by side: the Triton kernel vs SDPA (padded, per sequence) vs varlen libraries.

Prints one JSON object (and writes it with --out). On a GPU: forward and forward+backward time and
TFLOP/s over real tokens, the ratios P6 (vs SDPA on the padded batch with a key-padding mask, target
>= 3x) and P7 (vs the best varlen reference, target >= 0.8x), and the kernel's share of the memory
roofline at s = 128 (performance.md). On a CPU, --quick runs tiny shapes in Triton's interpreter
to prove the script works; its timings say nothing about performance.

    python benchmarks/attention.py --out benchmarks/results/attention_h200.json       # GPU
    python benchmarks/attention.py --quick                                              # CPU
"""
import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
H200 = {"bf16_dense_tflops": 989.0, "bf16_gemm_measured_tflops": 790.0, "hbm_tbps": 4.8}
TARGETS = {"P6": 3.0, "P7": 0.8}
VARLEN_REFERENCES = ("torch_varlen_attn", "flash_attn2_varlen")  # P7 compares with the faster one


def _parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny shapes; on a CPU runs Triton's interpreter")
    p.add_argument("--store", help="take sequence lengths from this token store (claimsfm.data.open_store)")
    p.add_argument("--tokens", type=int, default=65536, help="real tokens per batch")
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], default="bf16")
    p.add_argument("--max-len", type=int, default=512, help="longest sequence (lengths are clipped to it)")
    p.add_argument("--roofline-len", type=int, default=128, help="uniform length for the roofline point")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="also write the JSON here (atomically)")
    args = p.parse_args(argv)
    if args.quick:
        args.tokens, args.heads, args.head_dim, args.max_len = min(args.tokens, 256), 2, 16, 96
        args.roofline_len = min(args.roofline_len, 64)
    return args


def _kernels():
    # The installed package when present; else the source tree (kernels/ imports only torch, triton).
    try:
        import claimsfm.kernels as k
    except ImportError:
        import importlib.util

        init = ROOT / "kernels" / "__init__.py"
        spec = importlib.util.spec_from_file_location("kernels", init, submodule_search_locations=[str(init.parent)])
        k = sys.modules["kernels"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(k)
    return k


def claims_lengths(n_tokens, max_len, seed):
    """Lognormal lengths (median 100, sigma 0.9) clipped to [1, max_len], summing to n_tokens."""
    rng = np.random.default_rng(seed)
    out, total = [], 0
    while total < n_tokens:
        n = int(np.clip(round(rng.lognormal(math.log(100), 0.9)), 1, max_len))
        n = min(n, n_tokens - total)
        out.append(n)
        total += n
    return out


def store_lengths(path, n_tokens, max_len, seed):
    """Lengths of real sequences ([CLS] + events + [SEP]s) of random subjects of a token store."""
    from claimsfm.data import build_sequences, open_store

    store = open_store(path)
    order = np.random.default_rng(seed).permutation(store.n_subjects).astype(np.int64)
    out, total = [], 0
    for chunk in np.array_split(order, max(1, len(order) // 4096)):
        seqs = build_sequences(store, chunk, max_len=max_len)
        for n in np.diff(np.asarray(seqs.offsets)).tolist():
            if total >= n_tokens:
                return out
            out.append(int(min(n, n_tokens - total)))
            total += out[-1]
    return out


def _timer(device):
    if device == "cuda":
        import triton.testing

        return lambda fn: triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")

    def cpu(fn, reps=1):
        fn()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    return cpu


def _methods(k, lengths, device):
    """name -> (prepare(q, k, v) -> inputs tuple, run(*inputs) -> out (T, H, D)); all see the same tokens."""
    cu = _cu(lengths, device)
    max_len = max(lengths)
    n_seq = len(lengths)
    seq = torch.repeat_interleave(torch.arange(n_seq, device=device), torch.tensor(lengths, device=device))
    pos = torch.arange(cu[-1].item(), device=device) - cu[:-1].long()[seq]
    mask = torch.zeros(n_seq, max_len, dtype=torch.bool, device=device)
    mask[seq, pos] = True
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def pad(x):  # (T, H, D) -> (B, H, L, D), built once outside the timed region
        out = x.new_zeros(n_seq, max_len, *x.shape[1:])
        out[seq, pos] = x.detach()
        return out.transpose(1, 2).contiguous().requires_grad_(x.requires_grad)

    methods = {
        "triton_varlen": (lambda *t: t, lambda q, k_, v: k.varlen_attention(q, k_, v, cu, max_len)),
        "sdpa_padded_mask": (lambda *t: tuple(pad(x) for x in t),
                             lambda q, k_, v: sdpa(q, k_, v, attn_mask=mask[:, None, None, :])),
        "sdpa_per_sequence": (lambda *t: t, lambda q, k_, v: torch.cat(
            [sdpa(*(x[s:e].transpose(0, 1)[None] for x in (q, k_, v)))[0].transpose(0, 1)
             for s, e in zip(cu[:-1].tolist(), cu[1:].tolist())])),
    }
    try:
        from torch.nn.attention.varlen import varlen_attn

        methods["torch_varlen_attn"] = (lambda *t: t, lambda q, k_, v: varlen_attn(q, k_, v, cu, cu, max_len, max_len))
    except ImportError:
        pass
    try:
        from flash_attn import flash_attn_varlen_func

        methods["flash_attn2_varlen"] = (lambda *t: t, lambda q, k_, v: flash_attn_varlen_func(
            q, k_, v, cu, cu, max_len, max_len))
    except ImportError:
        pass
    unpad = lambda out: out.transpose(1, 2)[seq, pos] if out.dim() == 4 else out  # noqa: E731
    return methods, unpad


def _measure(prepare, run, unpad, qkv, do, flops, timer, reference):
    """Forward and forward+backward milliseconds, TFLOP/s over real tokens, and the output's error."""
    inputs = prepare(*qkv)
    grad_out = prepare(do)[0].detach() if inputs[0].dim() == 4 else do

    def fwd():
        with torch.no_grad():
            run(*inputs)

    def fwd_bwd():
        torch.autograd.grad(run(*inputs), inputs, grad_out)

    try:
        out = unpad(run(*inputs))
        res = {"fwd_ms": timer(fwd), "fwdbwd_ms": timer(fwd_bwd)}
    except Exception as exc:  # a library may not support this device, dtype or backward; record why
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}
    res["fwd_tflops"] = flops / (res["fwd_ms"] * 1e9)
    res["fwdbwd_tflops"] = 3.5 * flops / (res["fwdbwd_ms"] * 1e9)  # backward = 2.5x the forward's matmuls
    if reference is not None:
        res["max_abs_diff_vs_reference"] = (out.float() - reference.float()).abs().max().item()
    return res


def _length_stats(lengths, max_len):
    a = np.asarray(lengths)
    return {"n_seq": len(a), "tokens": int(a.sum()), "mean": float(a.mean()), "median": float(np.median(a)),
            "p90": float(np.percentile(a, 90)), "max": int(a.max()), "clip": max_len,
            "padding_fraction": float(1 - a.sum() / (len(a) * a.max()))}


def _qkv(T, args, dtype, device, seed):
    g = torch.Generator().manual_seed(seed)
    shape = (T, args.heads, args.head_dim)
    qkv = [torch.randn(shape, generator=g).to(device, dtype).requires_grad_(True) for _ in range(3)]
    return qkv, torch.randn(shape, generator=g).to(device, dtype)


def compare_methods(k, lengths, args, dtype, device, timer):
    from tqdm import tqdm

    qkv, do = _qkv(sum(lengths), args, dtype, device, args.seed)
    flops = 4.0 * args.heads * args.head_dim * float(sum(n * n for n in lengths))
    methods, unpad = _methods(k, lengths, device)
    with torch.no_grad():
        reference = k.varlen_attention_ref(*qkv, _cu(lengths, device), max(lengths))
    out = {}
    for name in tqdm(methods, desc="attention methods", file=sys.stderr):
        prepare, run = methods[name]
        out[name] = _measure(prepare, run, unpad, qkv, do, flops, timer, reference)
    return out


def _cu(lengths, device):  # (n_seq + 1,) int32
    return torch.tensor([0] + np.cumsum(lengths).tolist(), dtype=torch.int32, device=device)


def ratios(methods):
    """P6 and P7 as speedups of the Triton kernel (baseline time / kernel time); None when missing."""
    mine = methods.get("triton_varlen", {})
    res = {"targets": TARGETS}
    for phase in ("fwd", "fwdbwd"):
        key = f"{phase}_ms"
        if key not in mine:
            continue
        padded = methods.get("sdpa_padded_mask", {}).get(key)
        res[f"P6_{phase}_vs_sdpa_padded"] = padded / mine[key] if padded else None
        varlen = {n: m[key] for n, m in methods.items() if n in VARLEN_REFERENCES and key in m}
        best = min(varlen, key=varlen.get) if varlen else None
        res[f"P7_{phase}_vs_best_varlen"] = varlen[best] / mine[key] if best else None
        res[f"P7_{phase}_best_varlen"] = best
    return res


def roofline(k, args, dtype, device, timer):
    """Forward of the kernel on uniform length s: achieved TFLOP/s and bandwidth vs the H200 ceilings."""
    s = args.roofline_len
    lengths = [s] * max(1, args.tokens // s)
    (q, k_, v), _ = _qkv(sum(lengths), args, dtype, device, args.seed + 1)
    cu = _cu(lengths, device)
    with torch.no_grad():
        ms = timer(lambda: k.varlen_attention(q, k_, v, cu, s))
    T, H, D = q.shape
    flops = 4.0 * H * D * s * T
    bytes_moved = 4 * q.numel() * q.element_size() + 4 * T * H  # q, k, v read, out written, fp32 lse
    memory_bound = flops / bytes_moved * H200["hbm_tbps"]
    ceiling = min(H200["bf16_dense_tflops"], memory_bound)
    ceiling_measured = min(H200["bf16_gemm_measured_tflops"], memory_bound)
    tflops = flops / (ms * 1e9)
    return {"seq_len": s, "n_seq": len(lengths), "fwd_ms": ms, "tflops": tflops, "bytes": bytes_moved,
            "intensity_flop_per_byte": flops / bytes_moved, "anchors": H200,
            "ceiling_tflops": ceiling, "share_of_roofline": tflops / ceiling,
            "share_of_roofline_measured_gemm_peak": tflops / ceiling_measured,
            "hbm_tbps": bytes_moved / (ms * 1e9), "share_of_hbm": bytes_moved / (ms * 1e9) / H200["hbm_tbps"]}


def main(argv=None):
    args = _parse(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        if not args.quick:
            sys.exit("error: no CUDA GPU here; --quick runs tiny shapes in Triton's interpreter")
        os.environ["TRITON_INTERPRET"] = "1"  # must precede the kernel module's import
    k = _kernels()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    if args.store:
        lengths = store_lengths(args.store, args.tokens, args.max_len, args.seed)
    else:
        lengths = claims_lengths(args.tokens, args.max_len, args.seed)
    timer = _timer(device)
    import triton

    result = {
        "benchmark": "attention",
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu (Triton interpreter)",
        "torch": torch.__version__, "triton": triton.__version__,
        "config": {k_: v for k_, v in vars(args).items() if k_ != "out"},
        "lengths_source": args.store or "lognormal(median 100, sigma 0.9)",
        "lengths": _length_stats(lengths, args.max_len),
        "flop_convention": "4*H*D*sum(L^2) forward, 3.5x that for forward+backward; real tokens only",
    }
    result["methods"] = compare_methods(k, lengths, args, dtype, device, timer)
    result["ratios"] = ratios(result["methods"])
    result["roofline"] = roofline(k, args, dtype, device, timer)
    if device == "cpu":
        result["note"] = "interpreter timings: proves the script runs, says nothing about GPU performance"
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        _write(args.out, text)


def _write(path, text):
    # Atomic: write beside the target, then rename over it.
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + "\n")
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
