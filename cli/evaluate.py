"""`claimsfm evaluate`: prediction tasks on a token store, FM vs LightGBM, metrics with bootstrap CIs."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from claimsfm.errors import ClaimsfmError


def _baselines(value: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in value.split(",") if p.strip())
    if parts in ((), ("none",)):
        return ()
    for p in parts:
        if p != "lightgbm":
            raise ClaimsfmError(f"--baselines: unknown baseline '{p}' (known: lightgbm, none)")
    return parts


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate(
        data: Path = typer.Option(..., "--data", help="Folder written by `claimsfm ingest` (holds store/, and truth/ for synthetic data)."),
        task: str = typer.Option("medication", "--task", help="medication | disease | all | <name>[,<name>...] of the built-in tasks."),
        task_file: list[Path] = typer.Option([], "--task-file", help="Extra task file (TOML, design.md §3.5); repeatable."),
        model: Optional[Path] = typer.Option(None, "--model", help="Pretraining run folder (runs/pretrain/<size>) to evaluate."),
        params: Optional[str] = typer.Option(None, "--params", help="Size of the pretraining run to evaluate: finds <runs>/pretrain/<params>."),
        runs: Path = typer.Option(Path("runs"), "--runs", help="Runs folder (pretraining runs are read from <runs>/pretrain/)."),
        baselines: str = typer.Option("lightgbm", "--baselines", help="lightgbm or none."),
        mode: str = typer.Option("finetune", "--mode", help="finetune (full fine-tuning, one encoder per task group) or probe (frozen encoder + logistic regression)."),
        features: str = typer.Option("cls+mean+last", "--features", help="Pooled vector the FM head reads, from one forward pass: cls | cls+mean (+ mean over code tokens) | cls+mean+last (+ mean over the last visit's codes)."),
        out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: <runs>/eval/<task>)."),
        max_len: Optional[int] = typer.Option(None, "--max-len", help="Tokens per input sequence (default: the checkpoint's max_len)."),
        max_train: Optional[int] = typer.Option(None, "--max-train", help="Cap on train-split prediction samples per task (seeded subsample)."),
        max_eval: Optional[int] = typer.Option(None, "--max-eval", help="Cap on tuning and held-out samples per task (seeded subsample)."),
        epochs: int = typer.Option(3, "--epochs", help="Fine-tuning epochs (early stopping on tuning AUPRC)."),
        batch_tokens: int = typer.Option(8192, "--batch-tokens", help="Tokens per packed batch."),
        n_boot: int = typer.Option(1000, "--n-boot", help="Bootstrap resamples over patients for the 95% CIs."),
        seed: int = typer.Option(0, "--seed", help="Seed for subsampling, fine-tuning, LightGBM and the bootstrap."),
        device: str = typer.Option("cpu", "--device", help="Torch device for the foundation model (cpu, cuda)."),
    ) -> None:
        """Build task cohorts, fit the FM head and LightGBM, report held-out AUPRC/AUROC/Brier with CIs.

        Writes metrics.json, predictions/<task>/<model>.parquet (MEDS-evaluation columns) and
        config.json, and prints cohort sizes and a results table. On synthetic data the oracle
        AUPRCs from <data>/truth/ are reported beside the models.
        """
        from claimsfm.eval.run import EvalConfig, run

        if n_boot < 100:
            raise ClaimsfmError(f"--n-boot must be at least 100, got {n_boot}")
        if epochs < 1 or batch_tokens < 1:
            raise ClaimsfmError("--epochs and --batch-tokens must be positive")
        cfg = EvalConfig(
            data=str(data), task=task, task_files=tuple(str(p) for p in task_file),
            model=str(model) if model else None, params=params, runs=str(runs),
            baselines=_baselines(baselines), mode=mode, features=features, out=str(out) if out else None, max_len=max_len,
            max_train=max_train, max_eval=max_eval, epochs=epochs, batch_tokens=batch_tokens,
            n_boot=n_boot, seed=seed, device=device,
        )
        run(cfg)
