"""MLM pretraining of one ladder size: `PretrainConfig` -> `run(config)` -> summary dict.

One optimizer step = `batch_tokens` token slots across all ranks, split into micro-batches of
`micro_batch_tokens` (gradient accumulation). The loss is normalised by the number of MLM targets
in the whole step, so accumulation and DDP give the gradient one big batch would. The schedule is a
pure function of the step, and the loader's position, optimizer and RNG are in every checkpoint,
so a resumed run takes the same steps as an uninterrupted one.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from claimsfm.errors import ClaimsfmError, check_number, check_seed
from claimsfm.model.scale import FUTURE_MONTHS, ModelConfig


@dataclass(frozen=True)
class PretrainConfig:
    data: Path
    params: str = "2.2M"
    out: Path | None = None  # default <runs>/pretrain/<params>
    runs: Path = Path("runs")
    tokens: int | None = None  # token budget (slots); default from the ladder row
    steps: int | None = None  # overrides tokens
    batch_tokens: int | None = None  # per optimizer step, all ranks; default from the ladder row
    micro_batch_tokens: int = 16_384  # per forward pass and rank (capped at batch_tokens)
    lr: float | None = None  # peak; default from the ladder row
    warmup_steps: int | None = None
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    max_len: int = 512
    seed: int = 0
    resume: bool = False
    attention: str = "auto"
    eval_every: int | None = None  # default: 10 evaluations per run
    eval_batches: int = 4
    checkpoint_every: int | None = None  # default: 10 checkpoints per run
    keep_checkpoints: int = 2
    num_workers: int = 0
    device: str = "auto"
    progress: bool = True
    time_inputs: bool = True  # embed days before the reference and visit gaps (off only for the ablation)
    future_months: int = FUTURE_MONTHS  # horizon of the future-codes objective; 0 = MLM only (the ablation)

    def check(self) -> None:
        """Every option rule, before the store is opened."""
        from claimsfm.model.scale import BACKENDS

        for name in ("tokens", "steps", "batch_tokens", "micro_batch_tokens", "lr", "max_len", "eval_batches",
                     "eval_every", "checkpoint_every", "grad_clip"):  # finite and > 0 (`--lr nan` included)
            check_number(f"--{name.replace('_', '-')}", getattr(self, name), 0, above=True)
        for name in ("warmup_steps", "weight_decay", "num_workers", "keep_checkpoints", "future_months"):
            check_number(f"--{name.replace('_', '-')}", getattr(self, name), 0)
        check_seed(self.seed)
        if self.attention not in BACKENDS:
            raise ClaimsfmError(f"--attention must be one of {', '.join(BACKENDS)}, not '{self.attention}'")


@dataclass(frozen=True)
class Plan:
    """Everything derived from the config and the store before training starts."""

    out: Path
    model: ModelConfig
    lr: float
    batch_tokens: int
    micro_batch_tokens: int
    accum: int
    total_steps: int
    warmup_steps: int
    eval_every: int
    checkpoint_every: int

    def settings(self, config: PretrainConfig, data: Path, store, world_size: int) -> dict:
        """What must match for a run folder to be continued or reused (no paths to the folder itself)."""
        return {
            "data": str(data), "store": {"n_subjects": int(store.n_subjects), "n_events": int(store.n_events)},
            "params": config.params, "seed": config.seed, "max_len": config.max_len,
            "lr": self.lr, "batch_tokens": self.batch_tokens, "micro_batch_tokens": self.micro_batch_tokens,
            "accum": self.accum, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
            "weight_decay": config.weight_decay, "grad_clip": config.grad_clip,
            "eval_batches": config.eval_batches, "eval_every": self.eval_every, "world_size": world_size,
            "model": asdict(self.model),
        }


def make_plan(config: PretrainConfig, vocab_size: int, world_size: int = 1) -> Plan:
    from claimsfm.model.scale import resolve
    from claimsfm.train.optim import default_warmup

    config.check()
    scale = resolve(config.params, vocab_size, config.max_len)
    batch = config.batch_tokens or scale.batch_tokens
    micro = min(config.micro_batch_tokens, max(config.max_len, batch // world_size))
    if micro < config.max_len:
        raise ClaimsfmError(f"--micro-batch-tokens {micro} is smaller than one sequence (max_len {config.max_len})")
    accum = max(1, round(batch / (micro * world_size)))
    batch = accum * micro * world_size  # what a step really holds
    total = config.steps or max(1, math.ceil((config.tokens or scale.tokens) / batch))
    warmup = config.warmup_steps if config.warmup_steps is not None else default_warmup(total)
    out = Path(config.out) if config.out else Path(config.runs) / "pretrain" / config.params
    return Plan(
        out=out, model=scale.config(vocab_size, config.max_len, config.time_inputs, config.future_months),
        lr=config.lr or scale.lr,
        batch_tokens=batch, micro_batch_tokens=micro, accum=accum, total_steps=total, warmup_steps=warmup,
        eval_every=config.eval_every or max(1, total // 10),
        checkpoint_every=config.checkpoint_every or max(1, total // 10),
    )


def dry_run(config: PretrainConfig) -> dict:
    """Shape and counts of the model this config would train, built on the meta device."""
    import torch

    from claimsfm.data import open_store
    from claimsfm.model.model import Encoder

    store = open_store(config.data)
    plan = make_plan(config, store.vocab_size)
    with torch.device("meta"):
        counts = Encoder(plan.model).num_params()
    m = plan.model
    return {
        "params": config.params, **counts, "n_layer": m.n_layer, "d_model": m.d_model, "n_head": m.n_head,
        "d_ff": m.d_ff, "vocab_size": m.vocab_size, "max_len": m.max_len, "lr": plan.lr,
        "batch_tokens": plan.batch_tokens, "micro_batch_tokens": plan.micro_batch_tokens,
        "total_steps": plan.total_steps, "tokens": plan.total_steps * plan.batch_tokens, "out": str(plan.out),
    }


def run(config: PretrainConfig) -> dict:
    """Pretrain (or resume, or return the finished run's summary) and return summary.json's content."""
    return train(config)[1]


def train(config: PretrainConfig):
    """(model, summary): `run` for callers that also want the trained module (tests, DDP checks)."""
    import torch

    from claimsfm.data import open_store
    from claimsfm.train import dist as distributed
    from claimsfm.train.loop import Trainer
    from claimsfm.train.runfolder import inspect

    data = Path(config.data).resolve()
    store = open_store(data)
    d = distributed.setup(config.device)
    try:
        plan = make_plan(config, store.vocab_size, d.world_size)
        settings = plan.settings(config, data, store, d.world_size)
        status = inspect(plan.out, settings, config.resume, owner=d.main)
        if status.kind == "finished":
            return None, status.summary
        torch.manual_seed(config.seed)
        trainer = Trainer(replace(config, data=str(data)), plan, store, d, settings)
        return trainer.fit(status)
    finally:
        distributed.teardown(d)

