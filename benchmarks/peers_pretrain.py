"""Pretraining side by side with Hugging Face BERT: real tokens/s, seconds per step, peak memory, MLM loss.

Same data, same shapes, same steps. For each size, two worker processes train in lockstep, one step each in
turn (the order flips every step), so load from other processes on a shared machine hits both alike, and
each worker's peak memory is its own:
- claimsfm: `Encoder` (MLM only, future_months=0) on the PretrainLoader's packed varlen batches (C++ builder
  and masking), the library's loss (`train.loop.loss_sums`), optimizer and schedule (`train.optim`);
  attention = Triton on CUDA, SDPA over packed rows on the CPU (`--attention auto`).
- Hugging Face: `BertForMaskedLM` from a `BertConfig` with the same n_layer, d_model, heads, d_ff and
  vocabulary (dropout 0 like ours, attn_implementation="sdpa"), on a pre-tokenized dataset of the same
  sequences, batched by `DataCollatorForLanguageModeling` (dynamic padding to the longest sequence, 15%
  masking, 80/10/10) over a WordLevel tokenizer of the store's vocabulary. Batches (`--hf-batches`):
  `random` (default; what a Trainer's shuffled sampler gives): the train sequences in a seeded random order,
  cut whenever the next one would pass the same real-token budget as claimsfm's step; `same`: exactly the
  sequences of claimsfm's step (its first-fit-decreasing batches group similar lengths, the kindest case for
  padding, like `group_by_length`). Same AdamW groups, lr schedule, clipping and seed.
What differs by design: BERT sees codes + position + segment (token_type), ours also age, visit and the
time inputs; BERT is post-LN with an MLM transform layer and scores every position (T x V logits), ours
pre-LN, scoring only the masked ones. Loss check: both models score the same fixed tuning batches with the
same masks (claimsfm's) at steps 0, N/2 and N; the paired difference per target, with a bootstrap over
sequences, says whether claimsfm's loss is worse.

Timed: batch building (data_s) + forward/backward/optimizer (compute_s) per step, after --warmup steps.
Peak memory: the worker's RSS (CPU) or torch.cuda.max_memory_allocated (GPU).

    nice -n 5 python benchmarks/peers_pretrain.py --work /tmp/peers --out benchmarks/results/peers_pretrain.json
Prints one JSON object; --out also writes it.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

NAME = "peers_pretrain"
SIDES = ("claimsfm", "hf_bert")


# ------------------------------------------------------------------------------------------------
# The two models


def bert_config(cfg):
    """The `transformers.BertConfig` of a claimsfm `ModelConfig`: same n_layer, d_model, heads, d_ff, vocab."""
    from transformers import BertConfig

    from claimsfm.data.format import PAD

    return BertConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, num_hidden_layers=cfg.n_layer,
                      num_attention_heads=cfg.n_head, intermediate_size=cfg.d_ff, hidden_act="gelu",
                      hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, max_position_embeddings=cfg.max_len,
                      type_vocab_size=2, layer_norm_eps=1e-5, pad_token_id=PAD, tie_word_embeddings=True,
                      attn_implementation="sdpa")


def claimsfm_config(size: str, vocab_size: int, max_len: int):
    """Our model at a ladder size, MLM only (the objective BERT has)."""
    import dataclasses

    from claimsfm.model import resolve_scale

    cfg = resolve_scale(size, vocab_size, max_len)
    return dataclasses.replace(cfg, future_months=0) if hasattr(cfg, "future_months") else cfg


def word_level_tokenizer(vocab: dict):
    """A fast tokenizer over the store's vocabulary: what DataCollatorForLanguageModeling pads and masks with."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    from claimsfm.data.format import CLS, MASK, PAD, SEP, SPECIALS, UNK

    tok = Tokenizer(WordLevel(vocab=dict(vocab), unk_token=SPECIALS[UNK]))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=SPECIALS[PAD], mask_token=SPECIALS[MASK],
                                   cls_token=SPECIALS[CLS], sep_token=SPECIALS[SEP], unk_token=SPECIALS[UNK])


# ------------------------------------------------------------------------------------------------
# One worker process per side


class Side:
    """What both sides share: the store, the step plan, the optimizer, the lr schedule, timing."""

    def __init__(self, opts: dict, size: str):
        import torch

        from claimsfm.data import PretrainLoader, open_store
        from claimsfm.model.scale import resolve

        self.torch, self.opts = torch, opts
        self.device = torch.device(opts["device"])
        self.store = open_store(opts["data"])
        common = dict(max_len=opts["max_len"], batch_tokens=opts["batch_tokens"], seed=opts["seed"])
        self.loader = PretrainLoader(self.store, split="train", **common)
        self.eval_loader = PretrainLoader(self.store, split="tuning", **common)
        self.cfg = claimsfm_config(size, self.store.vocab_size, opts["max_len"])
        self.lr = opts["lr"] or resolve(size, self.store.vocab_size, opts["max_len"]).lr
        self.total = opts["steps"] + opts["warmup"]

    def plan_of(self, step: int):
        epoch, s = divmod(step, len(self.loader))
        return epoch, s

    def optimizer(self, model):
        from claimsfm.train.optim import make_optimizer

        return make_optimizer(model, self.lr, 0.01, self.device.type)

    def sync(self):
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def autocast(self):
        from claimsfm.train.loop import autocast

        return autocast(self.device)

    def update(self, model, opt, step: int, loss) -> float:
        from claimsfm.train.optim import lr_at

        loss.backward()
        self.torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, self.total, self.opts["warmup_steps"], self.lr)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    def memory(self) -> dict:
        from peers_data import self_peak_rss

        out = {"peak_rss_bytes": self_peak_rss(), "rss_before_first_step_bytes": self.rss_ready}
        if self.device.type == "cuda":
            out["max_memory_allocated_bytes"] = int(self.torch.cuda.max_memory_allocated(self.device))
        return out

    def ready(self):
        from peers_data import self_peak_rss

        self.rss_ready = self_peak_rss()
        if self.device.type == "cuda":
            self.torch.cuda.reset_peak_memory_stats(self.device)

    def timed(self, step: int) -> dict:
        self.sync()
        t0 = time.perf_counter()
        batch, real, slots = self.batch(step)
        t1 = time.perf_counter()
        loss = self.train_step(batch, step)
        self.sync()
        t2 = time.perf_counter()
        return {"data_s": t1 - t0, "compute_s": t2 - t1, "real_tokens": real, "slots": slots, "loss": loss}


class ClaimsfmSide(Side):
    def __init__(self, opts, size):
        super().__init__(opts, size)
        from claimsfm.model import Encoder

        self.torch.manual_seed(opts["seed"])
        self.model = Encoder(self.cfg, attention="auto").to(self.device)
        self.opt = self.optimizer(self.model)
        self.backend = self.model.resolve_backend(self.device)

    def info(self) -> dict:
        return {"backend": self.backend, **self.model.num_params(), "lr": self.lr,
                "shape": {k: getattr(self.cfg, k) for k in ("n_layer", "d_model", "n_head", "d_ff", "vocab_size")}}

    def batch(self, step):
        from claimsfm.train.loop import to_device

        batch = to_device(self.loader.batch(*self.plan_of(step)), self.device)
        real = int(batch["cu_seqlens"][-1])
        return batch, real, real

    def mlm_sum(self, batch):
        from claimsfm.train import loop

        return loop.loss_sums(self.model, batch)[0]   # the MLM sum (these batches carry no future targets)

    def train_step(self, batch, step):
        with self.autocast():
            loss = self.mlm_sum(batch) / max(int((batch["labels"] != -100).sum()), 1)
        return self.update(self.model, self.opt, step, loss)

    def eval_losses(self, n_batches: int) -> np.ndarray:
        import torch.nn.functional as F

        from claimsfm.train.loop import to_device

        out = []
        with self.torch.no_grad(), self.autocast():
            for k in range(n_batches):
                batch = to_device(self.eval_loader.batch(0, k), self.device)
                keep = batch["labels"] != -100
                logits = self.model.mlm_logits(self.model(batch)[keep]).float()
                out.append(F.cross_entropy(logits, batch["labels"][keep], reduction="none").cpu().numpy())
        return np.concatenate(out)


class HFSide(Side):
    def __init__(self, opts, size):
        super().__init__(opts, size)
        from transformers import BertForMaskedLM, DataCollatorForLanguageModeling

        from claimsfm.data import build_sequences
        from claimsfm.data.format import N_SPECIAL

        self.torch.manual_seed(opts["seed"])
        self.model = BertForMaskedLM(bert_config(self.cfg)).to(self.device)
        self.model.train()
        self.opt = self.optimizer(self.model)
        self.tokenizer = word_level_tokenizer(self.store.vocab)
        # Masks drawn from torch's global RNG, seeded above (the collator's own `seed` refuses a non-main process).
        self.collator = DataCollatorForLanguageModeling(self.tokenizer, mlm_probability=0.15)
        self.epochs = {}  # epoch -> its random token-budget batches
        # The pre-tokenized dataset (what `datasets.map` would hold): the same sequences, not timed.
        rows = self.loader.rows
        seqs = build_sequences(self.store, rows, None, opts["max_len"])
        self.features = {}
        for i, r in enumerate(rows):
            lo, hi = int(seqs.offsets[i]), int(seqs.offsets[i + 1])
            ids = seqs.input_ids[lo:hi].tolist()
            self.features[int(r)] = {"input_ids": ids, "token_type_ids": seqs.segment[lo:hi].tolist(),
                                     "special_tokens_mask": [int(t < N_SPECIAL) for t in ids]}

    def info(self) -> dict:
        n = sum(p.numel() for p in self.model.parameters())
        return {"backend": self.model.config._attn_implementation, "total_params": n, "lr": self.lr}

    def rows_of(self, step: int) -> np.ndarray:
        """Store rows of the sequences of one HF step (see --hf-batches)."""
        if self.opts["hf_batches"] == "same":
            epoch, s = self.plan_of(step)
            return self.loader.plan(epoch)[s]
        epoch = 0
        while True:
            if epoch not in self.epochs:
                rng = np.random.default_rng([self.opts["seed"], epoch])
                self.epochs[epoch] = budget_batches(self.loader.lengths, self.opts["batch_tokens"], rng)
            if step < len(self.epochs[epoch]):
                return self.loader.rows[self.epochs[epoch][step]]
            step, epoch = step - len(self.epochs[epoch]), epoch + 1

    def batch(self, step):
        feats = [self.features[int(r)] for r in self.rows_of(step)]
        batch = {k: v.to(self.device) for k, v in self.collator(feats).items()}
        return batch, int(batch["attention_mask"].sum()), int(batch["attention_mask"].numel())

    def train_step(self, batch, step):
        with self.autocast():
            loss = self.model(**batch).loss
        return self.update(self.model, self.opt, step, loss)

    def eval_losses(self, n_batches: int) -> np.ndarray:
        import torch.nn.functional as F

        from claimsfm.data import PretrainLoader

        padded = PretrainLoader(self.store, split="tuning", max_len=self.opts["max_len"],
                                batch_tokens=self.opts["batch_tokens"], seed=self.opts["seed"], layout="padded")
        out = []
        self.model.eval()
        with self.torch.no_grad(), self.autocast():
            for k in range(n_batches):
                b = {key: v.to(self.device) for key, v in padded.batch(0, k).items() if self.torch.is_tensor(v)}
                logits = self.model(input_ids=b["input_ids"], attention_mask=b["attention_mask"].long(),
                                    token_type_ids=b["segment"]).logits
                keep = b["labels"] != -100  # row-major (B, L) = the varlen order of the same targets
                out.append(F.cross_entropy(logits[keep].float(), b["labels"][keep], reduction="none").cpu().numpy())
        self.model.train()
        return np.concatenate(out)


def worker(conn, side: str, size: str, opts: dict) -> None:
    """Serve one side: ('step', i) -> timing dict, ('eval', n) -> per-target losses, ('done', _) -> memory."""
    import torch

    if opts["threads"]:
        torch.set_num_threads(opts["threads"])
    runner = (ClaimsfmSide if side == "claimsfm" else HFSide)(opts, size)
    runner.ready()
    conn.send(runner.info())
    while True:
        cmd, arg = conn.recv()
        if cmd == "step":
            conn.send(runner.timed(arg))
        elif cmd == "eval":
            conn.send(runner.eval_losses(arg))
        else:
            conn.send(runner.memory())
            return


# ------------------------------------------------------------------------------------------------
# The parent: lockstep, then the summary


def eval_sequence_ids(data, opts: dict) -> np.ndarray:
    """Sequence (cluster) index of every target of the eval batches, in the order the workers return them."""
    from claimsfm.data import PretrainLoader

    loader = PretrainLoader(data, split="tuning", max_len=opts["max_len"], batch_tokens=opts["batch_tokens"],
                            seed=opts["seed"])
    ids, base = [], 0
    for k in range(opts["eval_batches"]):
        b = loader.batch(0, k)
        cu = b["cu_seqlens"].numpy().astype(np.int64)
        seq = np.repeat(np.arange(len(cu) - 1), np.diff(cu)) + base
        ids.append(seq[b["labels"].numpy() != -100])
        base += len(cu) - 1
    return np.concatenate(ids)


def paired_loss(a: np.ndarray, b: np.ndarray, seq: np.ndarray, n_boot: int, seed: int) -> dict:
    """Mean of (a - b) per target, with a 95% bootstrap CI over sequences (targets of one patient move together)."""
    uniq, inv = np.unique(seq, return_inverse=True)
    d_sum = np.bincount(inv, weights=a - b, minlength=len(uniq))
    n = np.bincount(inv, minlength=len(uniq)).astype(float)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        w = np.bincount(rng.integers(0, len(uniq), len(uniq)), minlength=len(uniq))
        boots.append(float(w @ d_sum / (w @ n)))
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return {"claimsfm": float(a.mean()), "hf_bert": float(b.mean()), "diff": float((a - b).mean()),
            "ci": [float(lo), float(hi)], "targets": int(len(a)), "sequences": int(len(uniq))}


def budget_batches(lengths: np.ndarray, budget: int, rng) -> list[np.ndarray]:
    """Shuffled sequences cut into batches whenever the next one would pass `budget` real tokens.
    -> index arrays into `lengths`, in step order"""
    order = rng.permutation(len(lengths))
    ends = np.cumsum(lengths[order])
    batches, start, base = [], 0, 0
    while start < len(order):
        stop = max(start + 1, int(np.searchsorted(ends, base + budget, side="right")))
        batches.append(order[start:stop])
        base, start = ends[stop - 1], stop
    return batches


def random_batch_padding(data, opts: dict) -> float:
    """Padding fraction of one epoch of `budget_batches` padded to their longest sequence."""
    from claimsfm.data import PretrainLoader

    lengths = PretrainLoader(data, split="train", max_len=opts["max_len"], batch_tokens=opts["batch_tokens"],
                             seed=opts["seed"]).lengths
    batches = budget_batches(lengths, opts["batch_tokens"], np.random.default_rng([opts["seed"], 0]))
    return 1 - lengths.sum() / sum(len(b) * lengths[b].max() for b in batches)


def summarize_side(rows: list[dict], memory: dict, info: dict) -> dict:
    secs = np.array([r["data_s"] + r["compute_s"] for r in rows])
    comp = np.array([r["compute_s"] for r in rows])
    real = sum(r["real_tokens"] for r in rows)
    return {**info, "tokens_per_s": real / secs.sum(), "compute_tokens_per_s": real / comp.sum(),
            "s_per_step": float(secs.mean()), "s_per_step_median": float(np.median(secs)),
            "data_s_per_step": float(np.mean([r["data_s"] for r in rows])),
            "real_tokens_per_step": real / len(rows),
            "padding_fraction": 1 - real / sum(r["slots"] for r in rows), **memory}


def _recv(conn, proc):
    """The worker's answer; a worker that died (its traceback is on stderr) stops the benchmark."""
    while not conn.poll(1.0):
        if not proc.is_alive():
            raise SystemExit(f"{NAME}: a worker exited with code {proc.exitcode} (see its traceback above)")
    return conn.recv()


def run_size(size: str, opts: dict, ctx) -> dict:
    from peers_data import log

    conns, procs = {}, {}
    for side in SIDES:
        parent, child = ctx.Pipe()
        procs[side] = ctx.Process(target=worker, args=(child, side, size, opts), daemon=True)
        procs[side].start()
        conns[side] = parent
    info = {side: _recv(conns[side], procs[side]) for side in SIDES}
    total = opts["steps"] + opts["warmup"]
    evals = {side: {} for side in SIDES}
    rows = {side: [] for side in SIDES}
    losses = {side: [] for side in SIDES}
    eval_at = sorted({0, total // 2, total})
    for step in range(total + 1):
        if step in eval_at:
            for side in SIDES:
                conns[side].send(("eval", opts["eval_batches"]))
                evals[side][step] = _recv(conns[side], procs[side])
        if step == total:
            break
        for side in (SIDES if step % 2 == 0 else SIDES[::-1]):
            conns[side].send(("step", step))
            r = _recv(conns[side], procs[side])
            losses[side].append(r["loss"])
            if step >= opts["warmup"]:
                rows[side].append(r)
        if step % 5 == 0:
            speed = {s: r[-1]["real_tokens"] / (r[-1]["data_s"] + r[-1]["compute_s"]) for s, r in rows.items() if r}
            log(NAME, f"{size} step {step + 1}/{total}: " + ", ".join(
                f"{s} loss {losses[s][-1]:.3f} {v:.0f} tok/s" for s, v in speed.items()))
    memory = {}
    for side in SIDES:
        conns[side].send(("done", None))
        memory[side] = _recv(conns[side], procs[side])
        procs[side].join(timeout=60)
    seq = eval_sequence_ids(opts["data"], opts)
    out = {"params": size, "sides": {s: summarize_side(rows[s], memory[s], info[s]) for s in SIDES},
           "train_loss_per_step": losses,
           "eval_loss": {str(k): paired_loss(evals["claimsfm"][k], evals["hf_bert"][k], seq, opts["n_boot"],
                                             opts["seed"]) for k in eval_at}}
    cf, hf = out["sides"]["claimsfm"], out["sides"]["hf_bert"]
    final = out["eval_loss"][str(total)]
    out["speedup_tokens_per_s"] = cf["tokens_per_s"] / hf["tokens_per_s"]
    out["speedup_compute_only"] = cf["compute_tokens_per_s"] / hf["compute_tokens_per_s"]
    out["loss_no_worse"] = final["ci"][0] <= 0.0  # CI of (claimsfm - HF) reaches 0 or below
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=None, help="an ingested folder (default: make a synth cohort under --work)")
    p.add_argument("--work", default="/tmp/claimsfm-peers", help="where the synth cohort is made and reused")
    p.add_argument("--patients", type=int, default=3000)
    p.add_argument("--months", type=int, default=96)
    p.add_argument("--sizes", default="2.2M,11M")
    p.add_argument("--steps", type=int, default=20, help="timed optimizer steps per side (after --warmup)")
    p.add_argument("--warmup", type=int, default=2, help="untimed first steps (they still train)")
    p.add_argument("--warmup-steps", type=int, default=2, help="lr warm-up steps of the schedule")
    p.add_argument("--batch-tokens", type=int, default=8192, help="real-token budget per optimizer step")
    p.add_argument("--hf-batches", default="random", choices=("random", "same"),
                   help="HF batches: shuffled token-budget batches, or exactly claimsfm's step sequences")
    p.add_argument("--max-len", type=int, default=512)
    p.add_argument("--lr", type=float, default=None, help="peak lr (default: the ladder row's)")
    p.add_argument("--eval-batches", type=int, default=4)
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--threads", type=int, default=0, help="torch threads per worker (0 = torch's default)")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="also write the JSON here")
    args = p.parse_args()
    run(args)


def run(args) -> dict:
    import multiprocessing as mp

    import torch
    import transformers
    from peers_data import cohort, log, machine

    from claimsfm.io import write_json

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    data = Path(args.data) if args.data else cohort(Path(args.work), args.patients, args.months, args.seed)
    opts = {"data": str(data), "device": device, "seed": args.seed, "max_len": args.max_len,
            "batch_tokens": args.batch_tokens, "steps": args.steps, "warmup": args.warmup,
            "warmup_steps": args.warmup_steps, "lr": args.lr, "eval_batches": args.eval_batches,
            "n_boot": args.n_boot, "threads": args.threads, "hf_batches": args.hf_batches}
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # the waiting worker must not spin on the shared cores
    ctx = mp.get_context("spawn")
    start = machine()
    t0 = time.perf_counter()
    cases = []
    result = {
        "benchmark": NAME, "settings": {**vars(args), **opts},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "claimsfm": _claimsfm_version()},
        "device": torch.cuda.get_device_name() if device == "cuda" else f"cpu ({os.cpu_count()} cores)",
        "padding_fraction_random_batches": random_batch_padding(str(data), opts), "cases": cases,
    }
    for size in args.sizes.split(","):
        log(NAME, f"{size}: {args.steps} timed steps per side, {args.batch_tokens} real tokens per step")
        cases.append(run_size(size, opts, ctx))
        result["machine"] = {**start, "loadavg_end": list(os.getloadavg())}
        result["wall_s"] = time.perf_counter() - t0
        if args.out:  # after each size, so a run cut short keeps what it measured
            write_json(args.out, result)
    print(json.dumps(result, indent=2))
    return result


def _claimsfm_version() -> str:
    from importlib.metadata import version

    return version("claimsfm")


if __name__ == "__main__":
    main()
