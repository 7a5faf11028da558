"""`claimsfm report`: redraw the saturation report of a finished sweep from its results.json."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        results: Path = typer.Argument(...,
                                       help="A sweep folder holding results.json (e.g. runs/sweep), or the "
                                            "results.json file."),
        out: Optional[Path] = typer.Option(None, "--out",
                                           help="Where to write report.md, report.html and figures/ (default: beside "
                                                "results.json)."),
        title: str = typer.Option("claimsfm scale sweep", "--title", help="Title of the report."),
    ) -> None:
        """Draw the figures (loss vs parameters with the power-law fit, AUPRC vs parameters and vs pretraining
        hours per task) and write report.md and a self-contained report.html."""
        from claimsfm.report import ReportConfig, run

        paths = run(ReportConfig(results=results, out=out, title=title))
        typer.echo(f"report: {paths['report_html']}")
        typer.echo(f"markdown: {paths['report_md']}")
