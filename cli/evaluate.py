"""`claimsfm evaluate`: prediction tasks on a token store, FM vs LightGBM, metrics with bootstrap CIs."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from claimsfm.eval import BASELINES, MODE_HELP, MODES


def _baselines(value: str) -> tuple[str, ...]:
    """The comma list of --baselines ("none": no baseline); EvalConfig.check() refuses unknown names."""
    parts = tuple(p.strip() for p in value.split(",") if p.strip())
    return () if parts in ((), ("none",)) else parts


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate(
        data: Path = typer.Option(
            ..., "--data",
            help="Folder written by `claimsfm ingest` (holds store/, and truth/ for synthetic data)."),
        task: Optional[str] = typer.Option(
            None, "--task",
            help="medication | disease | all | <name>[,<name>...] of the built-in tasks (default: medication, "
                 "or none with --labels)."),
        task_file: list[Path] = typer.Option(
            [], "--task-file", help="Extra task file (TOML, design.md §3.5); repeatable."),
        model: Optional[Path] = typer.Option(
            None, "--model", help="Pretraining run folder (runs/pretrain/<size>) to evaluate."),
        params: Optional[str] = typer.Option(
            None, "--params", help="Size of the pretraining run to evaluate: finds <runs>/pretrain/<params>."),
        runs: Path = typer.Option(
            Path("runs"), "--runs", help="Runs folder (pretraining runs are read from <runs>/pretrain/)."),
        baselines: str = typer.Option(BASELINES[0], "--baselines",
                                      help=f"{', '.join(BASELINES)} (comma list) or none."),
        mode: str = typer.Option(MODES[0], "--mode", help=MODE_HELP),
        features: str = typer.Option(
            "cls+mean+last", "--features",
            help="Pooled vector the FM head reads, from one forward pass: cls | cls+mean (+ mean over code tokens) | "
                 "cls+mean+last (+ mean over the last visit's codes) | "
                 "cls+mean+last+recent (+ means over the codes of the last 3 and 12 months); future+... puts the "
                 "future-codes head's vector first. Used by finetune and probe."),
        out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: <runs>/eval/<task>)."),
        max_len: Optional[int] = typer.Option(
            None, "--max-len", help="Tokens per input sequence (default: the checkpoint's max_len)."),
        max_train: Optional[int] = typer.Option(
            None, "--max-train", help="Cap on train-split prediction samples per task (seeded subsample)."),
        max_eval: Optional[int] = typer.Option(
            None, "--max-eval", help="Cap on tuning and held-out samples per task (seeded subsample)."),
        epochs: int = typer.Option(3, "--epochs", help="Fine-tuning epochs (early stopping on tuning AUPRC)."),
        batch_tokens: int = typer.Option(8192, "--batch-tokens", help="Tokens per packed batch."),
        n_boot: int = typer.Option(1000, "--n-boot", help="Bootstrap resamples over patients for the 95% CIs."),
        seed: int = typer.Option(0, "--seed", help="Seed for subsampling, fine-tuning, LightGBM and the bootstrap."),
        device: str = typer.Option("cpu", "--device", help="Torch device for the foundation model (cpu, cuda)."),
        labels: Optional[Path] = typer.Option(
            None, "--labels",
            help="A MEDS label table (parquet file or folder of them: subject_id, prediction_time, boolean_value; "
                 "e.g. ACES output) evaluated as a task: same splits, inputs at or before prediction_time."),
        labels_name: Optional[str] = typer.Option(
            None, "--labels-name", help="Task name of --labels (default: the file's stem)."),
    ) -> None:
        """Build task cohorts, fit the FM head and LightGBM, report held-out AUPRC/AUROC/Brier with CIs.

        Writes metrics.json, predictions/<task>/<model>.parquet (MEDS-evaluation columns) and
        config.json, and prints cohort sizes and a results table. On synthetic data the oracle
        AUPRCs from <data>/truth/ are reported beside the models.
        """
        from claimsfm.eval.run import EvalConfig, run

        cfg = EvalConfig(
            data=data, task=task if task is not None else "" if labels else "medication",
            task_files=tuple(str(p) for p in task_file), model=model, params=params, runs=runs,
            baselines=_baselines(baselines), mode=mode, features=features, out=out, max_len=max_len,
            max_train=max_train, max_eval=max_eval, epochs=epochs, batch_tokens=batch_tokens,
            n_boot=n_boot, seed=seed, device=device, labels=labels, labels_name=labels_name,
        )
        run(cfg)
