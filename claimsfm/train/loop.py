"""The training loop behind `claimsfm.train.pretrain.run`: steps, evaluation, checkpoints, summary."""
from __future__ import annotations

import contextlib
import math
import sys
from time import perf_counter as now

import torch
import torch.nn.functional as F

from claimsfm.errors import ClaimsfmError
from claimsfm.io import atomic_dir, write_json, write_run_config
from claimsfm.model.checkpoint import load_state, load_weights, save_checkpoint
from claimsfm.model.model import Encoder, cls_states
from claimsfm.splits import TRAIN_NAME, TUNING_NAME
from claimsfm.train import accounting
from claimsfm.train.dist import all_sum, barrier
from claimsfm.train.optim import lr_at, make_optimizer
from claimsfm.train.runfolder import MetricsLog, checkpoint_dir, prune_checkpoints


def loss_sums(model, batch):
    """(summed MLM cross-entropy, summed future-codes loss) of one micro-batch; the second is 0 when the
    batch has no future targets. MLM logits only where labels != -100 (saves T x V)."""
    h = model(batch)
    labels = batch["labels"]
    keep = labels != -100
    raw = getattr(model, "module", model)  # also inside a DDP wrapper
    mlm = F.cross_entropy(raw.mlm_logits(h[keep]).float(), labels[keep], reduction="sum")
    if "future_known" not in batch:
        return mlm, h.new_zeros(())
    return mlm, future_loss_sum(raw.future_logits(cls_states(h, batch)).float(), batch)


def future_loss_sum(logits, batch):
    """Future-codes loss summed over the sequences whose window is known: per sequence, the binary
    cross-entropy summed over the vocabulary and divided by its number of future codes (at least 1),
    so a busy patient weighs as much as a quiet one and the scale is that of a per-token loss."""
    known = batch["future_known"]
    target = torch.zeros_like(logits)
    target[batch["future_seq"], batch["future_ids"]] = 1.0
    per_seq = F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(dim=1)
    return (per_seq / target.sum(dim=1).clamp(min=1.0))[known].sum()


def autocast(device):
    """bf16 autocast on CUDA; full precision elsewhere (CPU bf16 matmuls are slow and gain nothing)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(batch, device):
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def batch_counts(batch) -> list[float]:
    """[MLM targets, real tokens, sum of squared sequence lengths, future-codes sequences] of one micro-batch."""
    lengths = accounting.sequence_lengths(batch)
    n_future = float(batch["future_known"].sum()) if "future_known" in batch else 0.0
    return [float((batch["labels"] != -100).sum()), float(lengths.sum()), float((lengths * lengths).sum()), n_future]


def _check_finite(loss: float, grad_norm: float, step: int, lr: float) -> None:
    """Stop a diverged run before the optimizer writes NaN into the weights (it is never marked finished)."""
    if not (math.isfinite(loss) and math.isfinite(grad_norm)):
        raise ClaimsfmError(f"pretraining diverged at step {step}: loss {loss}, gradient norm {grad_norm} "
                            f"(lr {lr:.3g}); the run is not finished: lower --lr and start a new --out")


def _stream(loader):
    """Batches forever, epoch after epoch (the loader advances its own epoch and masking seed).

    One empty pass is normal: a checkpoint taken after an epoch's last batch resumes at its end.
    """
    empty_passes = 0
    while empty_passes < 2:
        empty_passes += 1
        for batch in loader:
            empty_passes = 0
            yield batch
    raise ClaimsfmError("the train split yields no batches: is the store empty or max_len too small?")


class Trainer:
    def __init__(self, config, plan, store, d, settings):
        from claimsfm.data import PretrainLoader

        self.config, self.plan, self.d, self.settings = config, plan, d, settings
        self.raw = Encoder(plan.model, attention=config.attention).to(d.device)
        self.raw.resolve_backend(d.device)  # an unusable --attention fails here, before anything is written
        self.model = self.raw
        if d.world_size > 1:
            ids = [d.local_rank] if d.device.type == "cuda" else None
            self.model = torch.nn.parallel.DistributedDataParallel(self.raw, device_ids=ids)
        self.opt = make_optimizer(self.raw, plan.lr, config.weight_decay, d.device.type)
        common = dict(max_len=config.max_len, batch_tokens=plan.micro_batch_tokens, seed=config.seed,
                      future_months=plan.model.future_months)
        self.loader = PretrainLoader(store, split=TRAIN_NAME, rank=d.rank, world_size=d.world_size,
                                     num_workers=config.num_workers, **common)
        self.eval_set = self._eval_set(PretrainLoader(store, split=TUNING_NAME, rank=0, world_size=1, **common))
        self.counters = {"step": 0, "tokens_seen": 0, "flops": 0, "flops_attention": 0,
                         "wall_time_s": 0.0, "eval_loss": None, "eval_future_loss": None}

    def _eval_set(self, loader) -> list[dict]:
        if not self.d.main:
            return []
        batches = []
        for batch in loader:
            batches.append(batch)
            if len(batches) == self.config.eval_batches:
                break
        return batches

    # ------------------------------------------------------------------------------------------

    def fit(self, status):
        out = self.plan.out
        if status.kind == "resume":
            self._restore(status.checkpoint)
            if self.d.main and self.config.progress:
                print(f"resuming {out} from step {status.step} of {self.plan.total_steps}", file=sys.stderr)
        if self.d.main:
            out.mkdir(parents=True, exist_ok=True)
            if status.kind == "fresh":
                write_run_config(out, self.settings)
            self.metrics = MetricsLog(out / "metrics.jsonl", self.counters["step"])
        barrier(self.d)
        self._loop()
        return self._finish()

    def _loop(self):
        from tqdm import tqdm

        plan, d, c = self.plan, self.d, self.counters
        stream = _stream(self.loader)
        log_every = max(1, plan.total_steps // 1000)
        self.t0, self.wall0 = now(), c["wall_time_s"]
        bar = tqdm(total=plan.total_steps, initial=c["step"], unit="step", desc=f"pretrain {self.config.params}",
                   disable=not (d.main and self.config.progress), dynamic_ncols=True)
        while c["step"] < plan.total_steps:
            t = now()
            micro = [next(stream) for _ in range(plan.accum)]
            stats = self._step([to_device(b, d.device) for b in micro], micro)
            c["step"] += 1
            step, seconds = c["step"], now() - t
            row = {"step": step, "loss": stats["loss"], **({"future_loss": stats["future_loss"]}
                                                          if "future_loss" in stats else {}),
                   "lr": stats["lr"], "grad_norm": stats["grad_norm"],
                   "tokens": c["tokens_seen"], "tokens_per_s": stats["tokens"] / seconds}
            mfu = accounting.mfu(stats["flops"], seconds, d.device, d.world_size)
            if mfu is not None:
                row["mfu"] = mfu
            if step % plan.eval_every == 0 or step == plan.total_steps:
                c["eval_loss"] = row["eval_loss"] = self.evaluate()
                if c.get("eval_future_loss") is not None:
                    row["eval_future_loss"] = c["eval_future_loss"]
            c["wall_time_s"] = self.wall0 + now() - self.t0
            if d.main and (step % log_every == 0 or "eval_loss" in row or step == plan.total_steps):
                self.metrics.append(row)
            bar.update(1)
            bar.set_postfix(loss=f"{stats['loss']:.3f}", refresh=False)
            if step % plan.checkpoint_every == 0 or step == plan.total_steps:
                self._checkpoint()
        bar.close()

    def _step(self, batches, cpu_batches) -> dict:
        plan, d, c = self.plan, self.d, self.counters
        lr = lr_at(c["step"], plan.total_steps, plan.warmup_steps, plan.lr)
        for group in self.opt.param_groups:
            group["lr"] = lr
        local = [sum(x) for x in zip(*(batch_counts(b) for b in cpu_batches))]
        n_masked, real, len_sq, n_future = all_sum(local, d)
        loss_total, future_total = 0.0, 0.0
        for i, batch in enumerate(batches):
            last = i == len(batches) - 1
            sync = contextlib.nullcontext() if last or d.world_size == 1 else self.model.no_sync()
            with sync:
                with autocast(d.device):
                    mlm_sum, future_sum = loss_sums(self.model, batch)
                # The objective: mean MLM loss + mean future-codes loss (each over the whole step).
                (d.world_size * (mlm_sum / max(n_masked, 1.0) + future_sum / max(n_future, 1.0))).backward()
            loss_total += mlm_sum.item()
            future_total += future_sum.item()
        loss_total, future_total = all_sum([loss_total, future_total], d)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.raw.parameters(), self.config.grad_clip)
        _check_finite(loss_total / max(n_masked, 1.0) + future_total / max(n_future, 1.0), float(grad_norm),
                      c["step"] + 1, lr)  # same on every rank
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        flops = accounting.step_flops(plan.model, int(real), int(n_masked), int(len_sq))
        c["tokens_seen"] += int(real)
        c["flops"] += flops["flops"]
        c["flops_attention"] += flops["flops_attention"]
        stats = {"loss": loss_total / max(n_masked, 1.0), "lr": lr, "grad_norm": float(grad_norm),
                 "tokens": real, "flops": flops["flops"]}
        if n_future:
            stats["future_loss"] = future_total / n_future
        return stats

    @torch.no_grad()
    def evaluate(self) -> float | None:
        """Mean MLM loss on a fixed set of tuning batches (rank 0; None when the split is empty); the mean
        future-codes loss on them goes to counters["eval_future_loss"] (None without that objective)."""
        if not self.eval_set:
            return None
        total, count, future, n_future = 0.0, 0.0, 0.0, 0.0
        for batch in self.eval_set:
            with autocast(self.d.device):
                mlm_sum, future_sum = loss_sums(self.raw, to_device(batch, self.d.device))
            total, future = total + float(mlm_sum), future + float(future_sum)
            counts = batch_counts(batch)
            count, n_future = count + counts[0], n_future + counts[3]
        self.counters["eval_future_loss"] = future / n_future if n_future else None
        return total / max(count, 1.0)

    # ------------------------------------------------------------------------------------------

    def _state(self) -> dict:
        state = {"optimizer": self.opt.state_dict(), "loader": self.loader.state_dict(),
                 "counters": dict(self.counters), "rng_cpu": torch.get_rng_state()}
        if self.d.device.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state(self.d.device)
        return state

    def _checkpoint(self) -> None:
        # The last step's update can overflow finite gradients (a huge --lr): never save or finish on such weights.
        if not all(bool(torch.isfinite(p).all()) for p in self.raw.parameters()):
            raise ClaimsfmError(f"pretraining diverged at step {self.counters['step']}: the weights are no longer "
                                f"finite (lr {self.plan.lr:.3g}); the run is not finished: lower --lr and start "
                                "a new --out")
        if self.d.main:
            path = checkpoint_dir(self.plan.out, self.counters["step"])
            with atomic_dir(path, overwrite=True) as tmp:
                save_checkpoint(tmp, self.raw, self.settings, self._state())
            prune_checkpoints(self.plan.out, self.config.keep_checkpoints)
        barrier(self.d)

    def _restore(self, folder) -> None:
        state = load_state(folder, self.d.device)
        load_weights(self.raw, folder / "model.safetensors", self.d.device)
        self.opt.load_state_dict(state["optimizer"])
        self.loader.load_state_dict(state["loader"])
        self.counters.update(state["counters"])
        torch.set_rng_state(state["rng_cpu"].cpu())
        if "rng_cuda" in state and self.d.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng_cuda"].cpu(), self.d.device)

    def _finish(self):
        c, d, m = self.counters, self.d, self.plan.model
        summary = None
        if d.main:
            losses = [r["loss"] for r in self.metrics.read()][-10:]
            counts = self.raw.num_params()
            summary = {
                "params": self.config.params, **counts, "n_layer": m.n_layer, "d_model": m.d_model,
                "n_head": m.n_head, "d_ff": m.d_ff, "vocab_size": m.vocab_size, "max_len": m.max_len,
                "train_loss": sum(losses) / len(losses) if losses else None, "eval_loss": c["eval_loss"],
                "eval_future_loss": c.get("eval_future_loss"), "future_months": m.future_months,
                "tokens_seen": c["tokens_seen"], "steps": c["step"], "batch_tokens": self.plan.batch_tokens,
                "lr": self.plan.lr, "wall_time_s": c["wall_time_s"],
                "gpu_hours": c["wall_time_s"] * d.world_size / 3600 if d.device.type == "cuda" else 0.0,
                "device": accounting.describe(d.device), "world_size": d.world_size,
                "flops": c["flops"], "flops_attention": c["flops_attention"],
                "mfu": accounting.mfu(c["flops"], c["wall_time_s"], d.device, d.world_size),
                "peak_memory_bytes": accounting.peak_memory_bytes(d.device),
                "attention_backend": self.raw.backend, "finished": True,
            }
            save_checkpoint(self.plan.out, self.raw, self.settings)
            write_json(self.plan.out / "summary.json", summary)
        barrier(d)
        return self.raw, summary
