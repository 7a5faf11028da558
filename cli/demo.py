"""`claimsfm demo`: the whole chain on a small built-in synthetic cohort (CPU, under 10 minutes)."""
from __future__ import annotations

from pathlib import Path

import typer

from claimsfm.eval import MODE_HELP
from claimsfm.sweep.demo import DEMO_MARGIN, DEMO_MODE, DEMO_PATIENTS, DEMO_TOKENS
from claimsfm.sweep.saturation import MARGIN_HELP


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        out: Path = typer.Option(
            Path("claimsfm-demo"), "--out",
            help="Folder for every stage: synth/, data/, runs/, sweep/ (report inside sweep/). A completed stage is "
                 "reused on a rerun."),
        patients: int = typer.Option(
            DEMO_PATIENTS, "--patients",
            help="Synthetic patients (the 10-minute budget is measured at the default)."),
        tokens: int = typer.Option(
            DEMO_TOKENS, "--tokens",
            help="Pretraining tokens per scale (the same budget for every scale)."),
        tasks: str = typer.Option(
            "all", "--tasks",
            help="all | disease | medication | comma list of built-in task names."),
        mode: str = typer.Option(
            DEMO_MODE, "--mode",
            help="How each scale is adapted to the tasks: " + MODE_HELP),
        margin: float = typer.Option(
            DEMO_MARGIN, "--margin",
            help=MARGIN_HELP),
        seed: int = typer.Option(0, "--seed", help="Seed of the cohort, pretraining and evaluation."),
    ) -> None:
        """Synthesize a cohort of Japanese claims (UKE), ingest it (--link-by insurer), sweep the `demo` ladder over
        the built-in tasks, and write the saturation report; prints the report path and the saturation table."""
        from claimsfm.sweep.demo import DemoConfig, run

        from .sweep import print_saturation

        results = run(DemoConfig(out=out, patients=patients, tokens=tokens, tasks=tasks, mode=mode, seed=seed,
                                 margin=margin))
        print_saturation(results)  # and the notes, among them the tasks dropped for lack of held-out positives
        t = results["timings"]
        typer.echo(f"time: synth {t['synth']:.0f}s, ingest {t['ingest']:.0f}s, sweep {t['sweep']:.0f}s, "
                   f"total {t['total']:.0f}s")
        typer.echo(f"report: {results['report']['report_html']}")
