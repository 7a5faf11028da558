"""Batching benchmark (performance.md P4, P5, P10): prints one JSON object.

  python benchmarks/batching.py --data <ingest --out>      # the synthetic cohort's real lengths
  python benchmarks/batching.py                            # a generated MEDS dataset (labelled so)

Measures, side by side in one run:
- P4: padding left by first-fit-decreasing packing into rows of max_len vs dynamic padding of
  random batches (each padded to its longest sequence), on the store's sequence lengths;
- P5: time to pack 1M lengths (drawn from the same distribution) on one core, C++ vs the Python twin;
- sequences built per second, C++ vs the Python twin;
- collation (sequence building + gather + MLM masking) as a share of an 11M-model training step on
  this CPU (claimsfm.model, SDPA varlen attention, AdamW).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from claimsfm.data import PretrainLoader, build_sequences, build_store, open_store, pack_lengths, sequence_lengths
from claimsfm.data import reference as ref


def _timed(fn, repeat: int = 3, clock=time.perf_counter) -> float:
    """Median seconds of `repeat` calls (wall clock unless told otherwise)."""
    times = []
    for _ in range(repeat):
        t = clock()
        fn()
        times.append(clock() - t)
    return statistics.median(times)


def generated_store(root: Path, n: int, seed: int):
    """A MEDS dataset with claims-like skew: most patients have few monthly visits, some many."""
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    sid, time_, code, fac = [], [], [], []
    for i in range(n):
        n_visits = int(min(rng.lognormal(1.5, 1.1), 120))
        for _ in range(n_visits):
            month = int(rng.integers(0, 60))
            base = dt.datetime(2018 + month // 12, month % 12 + 1, 1)
            f = f"F{rng.integers(0, 3)}"
            for _ in range(int(rng.integers(2, 12))):
                sid.append(i + 1)
                time_.append(base + dt.timedelta(days=int(rng.integers(0, 28))))
                code.append(f"JPDRUG//{rng.zipf(1.6) % 5000:09d}")
                fac.append(f)
    table = pa.table({"subject_id": pa.array(sid, pa.int64()), "time": pa.array(time_, pa.timestamp("us")),
                      "code": pa.array(code), "numeric_value": pa.array([None] * len(sid), pa.float32()),
                      "facility": pa.array(fac)})
    (root / "data" / "train").mkdir(parents=True)
    pq.write_table(table, root / "data" / "train" / "0.parquet")
    return build_store(root, root / "store", min_count=1)


def padding(lengths: np.ndarray, max_len: int, batch_size: int, seed: int) -> dict:
    real = int(lengths.sum())
    perm = np.random.default_rng(seed).permutation(len(lengths))
    slots = sum(int(lengths[perm[i:i + batch_size]].max()) * len(perm[i:i + batch_size])
                for i in range(0, len(perm), batch_size))
    rows_global = int(pack_lengths(lengths, max_len).max()) + 1
    rows_chunked = 0
    for lo in range(0, len(perm), 65536):  # the loader packs chunks of 65536 subjects
        rows_chunked += int(pack_lengths(lengths[perm[lo:lo + 65536]], max_len).max()) + 1
    p_dyn = 1 - real / slots
    p_ffd = 1 - real / (rows_global * max_len)
    return {"sequences": len(lengths), "real_tokens": real, "mean_length": real / len(lengths),
            "dynamic_padding_fraction": p_dyn, "dynamic_batch_size": batch_size,
            "ffd_padding_fraction": p_ffd, "ffd_chunked_padding_fraction": 1 - real / (rows_chunked * max_len),
            "P4_padding_reduction": 1 - p_ffd / p_dyn, "P4_target": 0.95, "P4_pass": 1 - p_ffd / p_dyn >= 0.95}


def packing_speed(lengths: np.ndarray, max_len: int, n: int, n_python: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    big = rng.choice(lengths, n)
    t_cpp = _timed(lambda: pack_lengths(big, max_len))
    # The packer is single-threaded, so its process CPU time is its time on one core even when
    # this shared machine is oversubscribed (wall time then overstates it).
    t_cpu = _timed(lambda: pack_lengths(big, max_len), clock=time.process_time)
    small = rng.choice(lengths, n_python)
    t_small_cpp = _timed(lambda: pack_lengths(small, max_len), repeat=5)
    t_small_py = _timed(lambda: ref.pack_lengths(small, max_len), repeat=1)
    return {"P5_pack_seconds": t_cpp, "P5_pack_cpu_seconds": t_cpu, "P5_n": n, "P5_target_seconds": 1.0,
            "P5_pass": t_cpu < 1.0,
            "pack_twin_n": n_python, "pack_cpp_seconds_at_twin_n": t_small_cpp, "pack_python_seconds": t_small_py,
            "pack_cpp_vs_python": t_small_py / t_small_cpp}


def sequence_speed(store, max_len: int, n_python: int) -> dict:
    rows = np.arange(store.n_subjects)
    t_cpp = _timed(lambda: build_sequences(store, rows, None, max_len))
    sub = rows[:n_python]
    t_py = _timed(lambda: ref.build_sequences(store, sub, None, max_len), repeat=1)
    t_cpp_sub = _timed(lambda: build_sequences(store, sub, None, max_len), repeat=5)
    return {"sequences_per_s_cpp": len(rows) / t_cpp, "sequences_per_s_python": len(sub) / t_py,
            "sequences_cpp_vs_python": (len(sub) / t_cpp_sub) / (len(sub) / t_py)}


def collation_share(store, params: str, max_len: int, batch_tokens: int, steps: int) -> dict:
    import torch
    import torch.nn.functional as F

    from claimsfm.model import Encoder, resolve_scale

    torch.manual_seed(0)
    loader = PretrainLoader(store, max_len=max_len, batch_tokens=batch_tokens, seed=0)
    steps = min(steps, len(loader))
    t_collate = statistics.median(_timed(lambda k=k: loader.batch(0, k), repeat=1) for k in range(steps))
    model = Encoder(resolve_scale(params, store.vocab_size, max_len), attention="sdpa")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batches = [loader.batch(0, k) for k in range(steps)]

    def train_step(batch):
        h = model(batch)
        target = batch["labels"] != -100
        loss = F.cross_entropy(model.mlm_logits(h[target]), batch["labels"][target])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    train_step(batches[0])  # warm-up
    t_step = statistics.median(_timed(lambda b=b: train_step(b), repeat=1) for b in batches)
    tokens = statistics.median(int(b["cu_seqlens"][-1]) for b in batches)
    return {"model": params, "model_params": model.num_params()["total_params"], "batch_tokens": batch_tokens,
            "median_real_tokens": tokens, "collate_seconds": t_collate, "train_step_seconds": t_step,
            "P10_collate_share": t_collate / (t_collate + t_step), "P10_target": 0.05,
            "torch_threads": torch.get_num_threads(), "device": "cpu"}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="an ingest output folder (or its store/); default: generated data")
    ap.add_argument("--subjects", type=int, default=20000, help="generated subjects when --data is not given")
    ap.add_argument("--max-len", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=32, help="sequences per randomly drawn padded batch (P4)")
    ap.add_argument("--pack-n", type=int, default=1_000_000)
    ap.add_argument("--twin-n", type=int, default=3000, help="lengths / subjects given to the Python twins")
    ap.add_argument("--params", default="11M")
    ap.add_argument("--batch-tokens", type=int, default=4096, help="tokens per training batch (P10, CPU)")
    ap.add_argument("--steps", type=int, default=4, help="timed training steps (P10)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.data:
            store, source = open_store(args.data), f"store {args.data}"
        else:
            print(f"generating {args.subjects} subjects ...", file=sys.stderr)
            store, source = generated_store(Path(tmp), args.subjects, args.seed), "generated (no --data given)"
        lengths = sequence_lengths(store, np.arange(store.n_subjects), None, args.max_len)
        lengths = lengths[lengths > 1]
        out = {"length_source": source, "max_len": args.max_len, "n_subjects": store.n_subjects,
               "n_events": store.n_events}
        print("padding / packing ...", file=sys.stderr)
        out.update(padding(lengths, args.max_len, args.batch_size, args.seed))
        out.update(packing_speed(lengths, args.max_len, args.pack_n, args.twin_n, args.seed))
        print("sequences ...", file=sys.stderr)
        out.update(sequence_speed(store, args.max_len, min(args.twin_n, store.n_subjects)))
        print("collation vs training step ...", file=sys.stderr)
        out.update(collation_share(store, args.params, args.max_len, args.batch_tokens, args.steps))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
