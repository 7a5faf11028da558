"""Fine-tuning speed: packed fine-tuning vs pretraining tokens/s, and `evaluate --task medication` wall time.

1. synth (--patients, default 1,200) -> ingest -> `claimsfm pretrain --params 2.2M --steps 40`, all through
   the command line as a user runs them.
2. Throughput at the same size and batch tokens, on the pretrained model: a pretraining step (packed MLM
   batch from PretrainLoader, forward + loss + backward + AdamW) against a fine-tuning step
   (claimsfm.eval.finetune.train_step on packed batches of medication samples, as `evaluate` builds
   them). Steps alternate between the two so that load from other processes hits both alike; the
   median of each is reported. Target (issue 18): fine-tuning >= 70% of pretraining tokens/s.
3. `claimsfm evaluate --task medication --model RUN` in its default mode (`claimsfm.eval.MODES[0]`), timed. Target:
   <= 300 s on the 2-core machine. The load average before and after is recorded: the machine is shared.

    nice -n 5 python benchmarks/finetune_speed.py [--patients 1200] [--steps 6] [--skip-evaluate]
Prints one JSON object and writes it to benchmarks/results/finetune_speed.json (--out to change).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def _cli(*args) -> float:
    """Run `claimsfm ARGS`, fail loudly, return wall seconds."""
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "claimsfm.cli.main", *map(str, args)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"claimsfm {' '.join(map(str, args))} failed:\n{out.stderr[-3000:]}")
    return time.perf_counter() - t


def prepare(work: Path, patients: int, seed: int, steps: int) -> dict:
    data, run = work / "data", work / "runs" / "pretrain" / "2.2M"
    walls = {}
    if not (data / "store").is_dir():
        walls["synth_s"] = _cli("synth", "--out", work / "synth", "--patients", patients, "--seed", seed, "--quiet",
                                "--overwrite")
        walls["ingest_s"] = _cli("ingest", work / "synth" / "uke", "--masters", work / "synth" / "masters",
                                 "--link-by", "insurer", "--out", data, "--overwrite")
    if not (run / "summary.json").is_file():
        walls["pretrain_s"] = _cli("pretrain", "--data", data, "--params", "2.2M", "--steps", steps,
                                   "--runs", work / "runs", "--json")
    return {"data": data, "run": run, "walls": walls}


def _medication_samples(store, max_len: int):
    """Sequences, labels and mask of the medication pool, exactly as `evaluate` builds them."""
    from claimsfm.data import build_sequences
    from claimsfm.eval.run import EvalConfig, build_cohorts
    from claimsfm.eval.samples import Pool
    from claimsfm.tasks.spec import select_tasks

    specs, cohorts, _ = build_cohorts(store, select_tasks("medication", []), EvalConfig(data="."))
    pool = Pool.of(cohorts)
    seqs = build_sequences(store, pool.subject_idx, cutoff_day=pool.t_day, max_len=max_len)
    y = np.zeros((len(pool), len(cohorts)), dtype=bool)
    mask = np.zeros_like(y)
    for j, c in enumerate(cohorts):
        y[pool.rows(c), j], mask[pool.rows(c), j] = c.label, True
    return seqs, y, mask, pool.split


def throughput(data: Path, run: Path, batch_tokens: int, steps: int, seed: int) -> dict:
    import torch

    from claimsfm.data import PretrainLoader, open_store
    from claimsfm.eval import finetune as ft
    from claimsfm.model import load_checkpoint
    from claimsfm.splits import TRAIN
    from claimsfm.train.loop import loss_sums

    store = open_store(data)
    torch.manual_seed(seed)
    pre_model, mcfg = load_checkpoint(run)
    pre_model.train()
    pre_opt = torch.optim.AdamW(pre_model.parameters(), lr=1e-4)
    loader = iter(PretrainLoader(store, max_len=mcfg.max_len, batch_tokens=batch_tokens, seed=seed))

    seqs, y, mask, split = _medication_samples(store, mcfg.max_len)
    ft_model, _ = load_checkpoint(run)
    ft_model.train()
    cfg = ft.HeadConfig(batch_tokens=batch_tokens, seed=seed)
    head = torch.nn.Linear(mcfg.d_model * ft.n_parts(cfg.features), y.shape[1])
    opt, loss_fn = ft.make_optimizer(ft_model, head, np.ones(y.shape[1]), cfg, "cpu")
    train = np.random.default_rng(seed).permutation(np.flatnonzero(split == TRAIN))
    batches = ft.token_batches(seqs.lengths, batch_tokens, train)

    def pretrain_step():
        batch = next(loader)
        t = time.perf_counter()
        loss = loss_sums(pre_model, batch)[0] / (batch["labels"] != -100).sum()
        loss.backward()
        pre_opt.step()
        pre_opt.zero_grad(set_to_none=True)
        return int(batch["cu_seqlens"][-1]), time.perf_counter() - t

    def finetune_step(idx):
        t = time.perf_counter()
        ft.train_step(ft_model, head, opt, loss_fn, seqs, y, mask, idx, cfg, "cpu")
        return int(seqs.lengths[idx].sum()), time.perf_counter() - t

    pre, fine = [], []
    for i in range(steps + 1):  # step 0 of each warms up and is dropped
        p, f = pretrain_step(), finetune_step(batches[i])
        if i:
            pre.append(p[0] / p[1])
            fine.append(f[0] / f[1])
    rows_per_batch = int(np.mean([len(b) for b in batches[:steps + 1]]))
    return {"batch_tokens": batch_tokens, "steps": steps, "pretrain_tokens_per_s": round(float(np.median(pre)), 1),
            "finetune_tokens_per_s": round(float(np.median(fine)), 1),
            "ratio": round(float(np.median(fine) / np.median(pre)), 3), "target_ratio": 0.7,
            "finetune_sequences_per_batch": rows_per_batch, "pretrain_all": [round(x) for x in pre],
            "finetune_all": [round(x) for x in fine]}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--patients", type=int, default=1200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pretrain-steps", type=int, default=40)
    p.add_argument("--steps", type=int, default=6, help="timed steps of each kind (after one warm-up)")
    p.add_argument("--batch-tokens", type=int, default=8192)
    p.add_argument("--work", default="/tmp/claimsfm-finetune-speed")
    p.add_argument("--skip-evaluate", action="store_true")
    p.add_argument("--out", default=str(RESULTS / "finetune_speed.json"))
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": "finetune_speed", "settings": vars(args), "cpu_count": os.cpu_count(),
              "loadavg_start": os.getloadavg()}
    prep = prepare(work, args.patients, args.seed, args.pretrain_steps)
    result["prepare_wall_s"] = {k: round(v, 1) for k, v in prep["walls"].items()}
    result["throughput"] = throughput(prep["data"], prep["run"], args.batch_tokens, args.steps, args.seed)
    if not args.skip_evaluate:
        load = os.getloadavg()
        out = work / f"eval-{int(time.time())}"  # a fresh folder: evaluate refuses to overwrite
        wall = _cli("evaluate", "--data", prep["data"], "--task", "medication", "--model", prep["run"], "--out", out)
        metrics = json.loads((out / "metrics.json").read_text())
        from claimsfm.eval import MODES

        result["evaluate"] = {"command": f"claimsfm evaluate --task medication --model RUN (default mode: {MODES[0]})",
                              "wall_s": round(wall, 1), "target_s": 300, "loadavg_before": load,
                              "loadavg_after": os.getloadavg(),
                              "auprc": {t: {m: round(v["auprc"], 3) for m, v in e["models"].items()}
                                        for t, e in metrics["tasks"].items()}}
    result["loadavg_end"] = os.getloadavg()
    text = json.dumps(result, indent=2, default=str)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(text + "\n")
    tmp.replace(out)


if __name__ == "__main__":
    main()
