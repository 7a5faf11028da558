"""`claimsfm sweep --dry-run`: the paper-scale plan (2.3M patients, every scale of the ladder).

Model shapes come from the ladder's shape rule on the vocabulary of `--data` when it has a token
store (else an assumed 20,000-code vocabulary); tokens per patient from the same store (else an
assumption); throughput from a GPU benchmark JSON under benchmarks/results/ (else an assumed MFU).
Every assumption is printed as one.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from claimsfm.sweep import compute

ASSUMED_VOCAB = 20_000
MLM_FRACTION = 0.15  # only masked positions need the tied head's logits


def _store_stats(data: Path | None, max_len: int) -> tuple[int | None, float | None]:
    """(vocab size, mean tokens per patient after truncation) of the store in `data`, if any."""
    if data is None or not any((Path(data) / sub / "format.json").is_file() for sub in ("store", ".")):
        return None, None
    from claimsfm.data import open_store

    store = open_store(data)
    events = np.diff(np.asarray(store.offsets))
    visits = np.zeros(store.n_subjects, dtype=np.int64)
    has = events > 0
    last = np.asarray(store.offsets)[1:][has] - 1
    visits[has] = np.asarray(store.visit)[last] + 1
    lengths = np.minimum(1 + events + np.maximum(visits - 1, 0), max_len)  # [CLS] + events + [SEP]s
    return int(store.vocab_size), float(lengths.mean()) if len(lengths) else None


def scale_shapes(names: list[str], vocab_size: int, max_len: int) -> list[dict]:
    """Exact parameter counts and shapes of ladder rows (pure Python: no torch)."""
    from claimsfm.model.scale import count_params, resolve

    rows = []
    for name in names:
        s = resolve(name, vocab_size, max_len)
        counts = count_params(vocab_size, max_len, s.n_layer, s.d_model, s.d_ff)
        rows.append({"name": name, "params": counts["total_params"],
                     "non_embedding_params": counts["non_embedding_params"], "n_layer": s.n_layer,
                     "d_model": s.d_model, "head_params": int(MLM_FRACTION * vocab_size * s.d_model)})
    return rows


def dry_run(names: list[str], data: Path | None, tokens: int | None, max_len: int,
            benchmarks_dir: Path) -> dict:
    """The plan as a dict (also written to plan.json by the sweep)."""
    vocab, per_patient = _store_stats(data, max_len)
    notes = []
    if vocab is None:
        vocab = ASSUMED_VOCAB
        notes.append(f"vocabulary: ASSUMED {ASSUMED_VOCAB:,} codes (pass --data with a token store to measure)")
    else:
        notes.append(f"vocabulary: {vocab:,} tokens, measured on {data}")
    if per_patient is None:
        per_patient = float(compute.ASSUMED_TOKENS_PER_PATIENT)
        notes.append(f"tokens per patient: ASSUMED {per_patient:.0f} (pass --data to measure)")
    else:
        notes.append(f"tokens per patient: {per_patient:.1f} (mean sequence length at max_len {max_len}, "
                     f"measured on {data})")
    plan = compute.paper_plan(scale_shapes(names, vocab, max_len), per_patient, tokens,
                              compute.measured_throughput(benchmarks_dir))
    plan["notes"] = notes + plan["notes"] + [
        "FLOPs: 6 x (non-embedding params) per token, + attention 12 x n_layer x d_model x (tokens/patient), "
        f"+ the tied MLM head on the {MLM_FRACTION:.0%} masked tokens"]
    plan["vocab_size"] = vocab
    plan["max_len"] = max_len
    return plan


def plan_table(plan: dict) -> list[list[str]]:
    rows = [[r["name"], f"{r['params'] / 1e6:.1f}M", f"{r['tokens']:.3g}", f"{r['flops']:.3g}",
             f"{r['gpu_hours']:.3g}"] for r in plan["scales"]]
    rows.append(["total", "", "", f"{plan['total_flops']:.3g}", f"{plan['total_gpu_hours']:.3g}"])
    return rows


PLAN_HEADER = ["scale", "params", "tokens", "FLOPs", "H200 GPU-hours"]
