"""`claimsfm pretrain`: MLM pretraining of one ladder size (or any size) on a token store."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from claimsfm.model.scale import BACKENDS, FUTURE_MONTHS, ladder_names

_HELP = (
    "Pretrain the claims encoder at one scale with masked-code modelling.\n"
    "\n"
    f"--params takes a ladder row ({', '.join(ladder_names('default'))}; {', '.join(ladder_names('demo'))}) "
    "or any size such as 50M; the count is total trainable parameters for the store's vocabulary (within 5%). "
    "Learning rate, tokens per step and the token budget default to the ladder row's.\n"
    "\n"
    "The run folder (default RUNS/pretrain/PARAMS) gets config.json, metrics.jsonl, checkpoints/, "
    "model.safetensors and summary.json. Running again with the same settings returns the finished run, "
    "or resumes an unfinished one from its latest checkpoint.\n"
    "\n"
    "Several processes: torchrun --nproc-per-node N -m claimsfm.cli.main pretrain ... "
    "(gloo on CPU, NCCL on GPUs; each rank reads a disjoint shard, rank 0 writes).\n"
)


def register(app: typer.Typer) -> None:
    @app.command("pretrain", help=_HELP)
    def pretrain(
        data: Path = typer.Option(..., "--data", help="Ingest output folder (holding store/) or the store folder."),
        params: str = typer.Option(
            "2.2M", "--params", help="Ladder row (2.2M ... 101M, demo-S/M/L) or a size like 50M."),
        out: Optional[Path] = typer.Option(None, "--out", help="Run folder. Default: RUNS/pretrain/PARAMS."),
        runs: Path = typer.Option(Path("runs"), "--runs", help="Root folder of all runs."),
        tokens: Optional[int] = typer.Option(
            None, "--tokens", help="Token budget (batch slots). Default: the ladder row's."),
        steps: Optional[int] = typer.Option(None, "--steps", help="Optimizer steps; overrides --tokens."),
        batch_tokens: Optional[int] = typer.Option(
            None, "--batch-tokens", help="Tokens per optimizer step over all ranks."),
        micro_batch_tokens: int = typer.Option(
            16_384, "--micro-batch-tokens",
            help="Tokens per forward pass and rank; larger steps accumulate gradients."),
        lr: Optional[float] = typer.Option(
            None, "--lr", help="Peak learning rate (AdamW, warmup, cosine decay to 10%)."),
        max_len: int = typer.Option(512, "--max-len", help="Longest patient sequence in tokens (most recent kept)."),
        resume: bool = typer.Option(
            False, "--resume",
            help="Require a checkpoint to continue from (resuming also happens without this flag)."),
        seed: int = typer.Option(0, "--seed", help="Seed of initialisation, data order and masking."),
        attention: str = typer.Option(BACKENDS[0], "--attention",
                                      help=" | ".join(BACKENDS) + " (auto: Triton on CUDA when available)."),
        checkpoint_every: Optional[int] = typer.Option(
            None, "--checkpoint-every", help="Steps between checkpoints (default: a tenth of the run)."),
        eval_every: Optional[int] = typer.Option(
            None, "--eval-every", help="Steps between tuning-split evaluations (default: a tenth of the run)."),
        num_workers: int = typer.Option(0, "--num-workers", help="Data loader worker processes."),
        time_inputs: bool = typer.Option(
            True, "--time-inputs/--no-time-inputs",
            help="Embed each token's time before the reference (prediction) time and the gaps between visits; "
                 "--no-time-inputs is the ablation."),
        future_months: int = typer.Option(
            FUTURE_MONTHS, "--future-months", min=0,
            help="Second objective: from [CLS], predict the codes of the next N months after a sampled cutoff "
                 "(CLMBR/MOTOR-style, self-supervised; no task labels). 0 = MLM only on whole histories."),
        dry_run: bool = typer.Option(
            False, "--dry-run", help="Print the model shape and counts, train nothing (meta device)."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
    ) -> None:
        from claimsfm.train.pretrain import PretrainConfig, run
        from claimsfm.train.pretrain import dry_run as plan_only

        config = PretrainConfig(
            data=data, params=params, out=out, runs=runs, tokens=tokens, steps=steps, batch_tokens=batch_tokens,
            micro_batch_tokens=micro_batch_tokens, lr=lr, max_len=max_len, seed=seed, resume=resume,
            attention=attention, eval_every=eval_every, checkpoint_every=checkpoint_every,
            num_workers=num_workers, progress=not as_json, time_inputs=time_inputs,
            future_months=future_months,
        )
        result = plan_only(config) if dry_run else run(config)
        if result is None:  # a DDP rank other than 0: rank 0 reports
            return
        if as_json:
            typer.echo(json.dumps(result, default=str))
        else:
            _print(result, dry_run)


def _print(result: dict, dry_run: bool) -> None:
    shape = (f"{result['params']}: {result['total_params']:,} parameters "
             f"({result['non_embedding_params']:,} non-embedding), n_layer {result['n_layer']}, "
             f"d_model {result['d_model']}, n_head {result['n_head']}, d_ff {result['d_ff']}, "
             f"vocab {result['vocab_size']}")
    typer.echo(shape)
    if dry_run:
        typer.echo(f"{result['total_steps']} steps x {result['batch_tokens']} tokens, lr {result['lr']:.2g} "
                   f"-> {result['out']}")
        return
    eval_loss = result["eval_loss"]
    typer.echo(
        f"steps {result['steps']}, tokens {result['tokens_seen']:,}, train loss {result['train_loss']:.4f}, "
        f"eval loss {'n/a' if eval_loss is None else f'{eval_loss:.4f}'}, wall {result['wall_time_s']:.1f} s, "
        f"{result['flops']:.3g} FLOPs on {result['device']}"
    )
