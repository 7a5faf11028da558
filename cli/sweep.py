"""`claimsfm sweep`: pretrain a ladder of scales, evaluate every task, report where each task saturates."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from claimsfm.eval import MODE_HELP, MODES
from claimsfm.model.scale import DEFAULT_SCALES
from claimsfm.sweep.saturation import DEFAULT_MARGIN, MARGIN_HELP


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    """A rich table that is never truncated: a pipe or a narrow terminal still gets whole cells."""
    from rich.console import Console
    from rich.table import Table

    table = Table(*header)
    for column in table.columns:
        column.no_wrap = True
    for row in rows:
        table.add_row(*row)
    console = Console()
    Console(width=max(console.width, int(table.__rich_measure__(console, console.options).maximum))).print(table)


def print_plan(plan: dict) -> None:
    from claimsfm.sweep.plan import PLAN_HEADER, plan_table

    typer.echo(f"Paper-scale plan: {plan['patients']:,} patients, vocabulary {plan['vocab_size']:,}, "
               f"max_len {plan['max_len']}")
    _print_table(PLAN_HEADER, plan_table(plan))
    for note in plan["notes"]:
        typer.echo(f"  - {note}")


def print_saturation(results: dict) -> None:
    from claimsfm.report.render import SATURATION_HEADER, saturation_rows

    _print_table(SATURATION_HEADER, saturation_rows(results))
    for note in results.get("notes", []):
        typer.echo(f"note: {note}")


def register(app: typer.Typer) -> None:
    @app.command("sweep")
    def sweep(
        data: Optional[Path] = typer.Option(
            None, "--data",
            help="Folder written by `claimsfm ingest` (MEDS + token store). Optional with --dry-run (measures "
                 "vocabulary and sequence length when given)."),
        scales: str = typer.Option(
            DEFAULT_SCALES, "--scales",
            help="Comma list of ladder rows or sizes (e.g. 2.2M,11M,50M), or a ladder name: 'demo' (CPU-sized) or "
                 "'default'."),
        tasks: str = typer.Option(
            "all", "--tasks",
            help="all | disease | medication | comma list of task names or task .toml files."),
        tokens: Optional[int] = typer.Option(
            None, "--tokens",
            help="Pretraining token budget, the same for every scale (default: the smallest default budget of the "
                 "chosen rows)."),
        margin: float = typer.Option(
            DEFAULT_MARGIN, "--margin",
            help=MARGIN_HELP),
        mode: str = typer.Option(
            MODES[0], "--mode", help="How the FM is adapted to each task: " + MODE_HELP),
        max_len: int = typer.Option(
            512, "--max-len",
            help="Maximum tokens per patient sequence (pretraining and evaluation)."),
        n_boot: int = typer.Option(1000, "--n-boot", help="Bootstrap resamples for CIs and paired differences."),
        seed: int = typer.Option(0, "--seed", help="Seed for pretraining, evaluation and bootstraps."),
        runs: Path = typer.Option(
            Path("runs"), "--runs",
            help="Runs folder: pretraining runs go to <runs>/pretrain/<scale>/ and are reused/resumed."),
        out: Optional[Path] = typer.Option(
            None, "--out",
            help="Sweep folder for results.json, evaluations and the report (default <runs>/sweep)."),
        dry_run: bool = typer.Option(
            False, "--dry-run",
            help="Print the paper-scale plan (2.3M patients: tokens, FLOPs, GPU-hours per scale) and write plan.json; "
                 "trains nothing."),
    ) -> None:
        """Pretrain every scale on the same data and token budget, evaluate every task for every scale and
        LightGBM on the same splits, and write results.json plus the saturation report (report.md, report.html)."""
        from claimsfm.sweep.run import SweepConfig, run

        config = SweepConfig(data=data, scales=scales, tasks=tasks, tokens=tokens, margin=margin, runs=runs,
                             out=out, dry_run=dry_run, max_len=max_len, mode=mode, n_boot=n_boot, seed=seed)
        result = run(config)
        if dry_run:
            print_plan(result)
            return
        print_saturation(result)
        if "report" in result:
            typer.echo(f"report: {result['report']['report_html']}")
