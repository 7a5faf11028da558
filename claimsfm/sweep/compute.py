"""Compute accounting: FLOPs and hours per scale, and the paper-scale plan of `sweep --dry-run`.

Training FLOPs follow the usual 6·N·T for the non-embedding weights (forward 2, backward 4 per
weight per token) plus attention scores and values, 12·n_layer·d_model·s per token for an average
attended length s (design: performance.md). Embedding lookups cost no matmul, but the tied MLM head
does, so it is counted via `head_params`. Hours are GPU-hours when a run used a GPU, otherwise
CPU wall-clock hours, and every output says which.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from claimsfm.errors import ClaimsfmError

H200_PEAK_FLOPS = 989e12  # dense bf16, spec sheet (performance.md)
ASSUMED_MFU = 0.40  # performance.md target P9; used only when no benchmark measured throughput
PAPER_PATIENTS = 2_300_000
ASSUMED_TOKENS_PER_PATIENT = 256
ASSUMED_EPOCHS = 10


def training_flops(non_embedding_params: int, tokens: int, n_layer: int = 0, d_model: int = 0,
                   attended_len: float = 0.0, head_params: int = 0) -> float:
    """FLOPs of pretraining on `tokens` tokens (forward + backward)."""
    per_token = 6.0 * (non_embedding_params + head_params) + 12.0 * n_layer * d_model * attended_len
    return per_token * float(tokens)


def hours_of(summary: dict) -> tuple[float, str]:
    """(hours, "gpu" | "cpu") spent pretraining one scale, from its summary.json."""
    gpu = float(summary.get("gpu_hours") or 0.0)
    if gpu > 0:
        return gpu, "gpu"
    return float(summary.get("wall_time_s") or 0.0) / 3600.0, "cpu"


def nominal_params(name: str) -> int:
    """Parameters a ladder name stands for: '101M' -> 101_000_000, '2.2M' -> 2_200_000."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMB])", name.strip(), flags=re.IGNORECASE)
    if not m:
        raise ClaimsfmError(f"--scales: cannot read a parameter count from '{name}' (write e.g. 11M)")
    return int(round(float(m.group(1)) * {"K": 1e3, "M": 1e6, "B": 1e9}[m.group(2).upper()]))


def _train_benchmark_rows(path: Path, obj: dict) -> list[dict]:
    """Packed-layout rows of a GPU `benchmarks/train.py` result (see that script's JSON)."""
    device = str(obj.get("device", ""))
    if obj.get("benchmark") != "train" or not device or device.lower().startswith("cpu"):
        return []
    rows = []
    for case in obj.get("cases", []):
        tps, mfu = case.get("packed_tokens_per_s"), case.get("packed_mfu_989")
        if isinstance(tps, (int, float)) and isinstance(mfu, (int, float)):
            rows.append({"tokens_per_s": float(tps), "params": int(nominal_params(str(case["params"]))),
                         "flops_per_s": float(mfu) * H200_PEAK_FLOPS, "dist": case.get("dist"),
                         "device": device, "source": str(path)})
    return rows


def measured_throughput(results_dir: str | Path) -> dict | None:
    """The largest model's packed GPU throughput in benchmarks/results/*.json (claims-like lengths
    preferred), or None when no GPU benchmark is there."""
    found = []
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(obj, dict):
            found += _train_benchmark_rows(path, obj)
    if not found:
        return None
    return max(found, key=lambda r: (r["params"], r["dist"] == "claims"))


def achieved_flops_per_s(throughput: dict | None) -> tuple[float, str]:
    """Sustained training FLOP/s and a sentence saying where the number comes from."""
    if throughput is None:
        rate = ASSUMED_MFU * H200_PEAK_FLOPS
        return rate, (f"ASSUMPTION (no GPU benchmark under benchmarks/results/): {ASSUMED_MFU:.0%} MFU of "
                      f"{H200_PEAK_FLOPS / 1e12:.0f} TFLOP/s bf16 = {rate / 1e12:.0f} TFLOP/s per GPU for every scale")
    rate = throughput["flops_per_s"]
    return rate, (f"measured: {throughput['tokens_per_s']:.4g} real tokens/s, packed, on a "
                  f"{throughput['params'] / 1e6:.3g}M-parameter model ({throughput['device']}, "
                  f"{throughput['source']}) = "
                  f"{rate / 1e12:.1f} TFLOP/s, {rate / H200_PEAK_FLOPS:.0%} MFU; assumed the same for every scale "
                  f"(smaller models usually reach less, so their hours are lower bounds)")


def paper_plan(scales: list[dict], tokens_per_patient: float, tokens: int | None,
               throughput: dict | None, patients: int = PAPER_PATIENTS) -> dict:
    """Tokens, FLOPs and GPU-hours per scale for a full sweep at paper size.

    `scales`: dicts with `name`, `params`, `non_embedding_params`, `n_layer`, `d_model`, `head_params`.
    """
    rate, source = achieved_flops_per_s(throughput)
    budget = int(tokens) if tokens else int(patients * tokens_per_patient * ASSUMED_EPOCHS)
    rows = []
    for s in scales:
        flops = training_flops(s["non_embedding_params"], budget, s.get("n_layer", 0), s.get("d_model", 0),
                               tokens_per_patient, s.get("head_params", 0))
        rows.append({"name": s["name"], "params": s["params"], "tokens": budget, "flops": flops,
                     "gpu_hours": flops / rate / 3600.0})
    notes = [f"throughput: {source}"]
    if not tokens:
        notes.append(f"token budget: {patients:,} patients x {tokens_per_patient:.0f} tokens/patient x "
                     f"{ASSUMED_EPOCHS} epochs (epochs ASSUMED; pass --tokens to set the budget)")
    return {"patients": patients, "tokens_per_patient": tokens_per_patient, "flops_per_s": rate,
            "scales": rows, "total_gpu_hours": sum(r["gpu_hours"] for r in rows),
            "total_flops": sum(r["flops"] for r in rows), "notes": notes}
