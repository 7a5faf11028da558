"""`claimsfm report`: figures, report.md and a self-contained report.html from a sweep's results.json.

The results.json schema is written by `claimsfm.sweep.run` (see its module docstring). The report
needs matplotlib only, never torch, so it can be redrawn anywhere from the JSON alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from claimsfm.errors import ClaimsfmError
from claimsfm.io import read_json, write_text


@dataclass(frozen=True)
class ReportConfig:
    results: Path           # a sweep folder holding results.json, or the results.json itself
    out: Path | None = None  # default: the folder of results.json
    title: str = "claimsfm scale sweep"


def load_results(path: Path) -> tuple[dict, Path]:
    """The parsed results.json and the path it came from; a clear error when it is not a sweep result."""
    path = Path(path)
    file = path / "results.json" if path.is_dir() else path
    if not file.is_file():
        raise ClaimsfmError(f"{file}: no results.json here (run `claimsfm sweep` first)")
    results = read_json(file)  # a one-line error for unreadable, non-JSON or non-object files
    schema = results.get("schema", 1)
    if not isinstance(schema, int) or schema < 2:
        raise ClaimsfmError(f"{file}: results schema {schema!r} predates the non-inferiority rule; "
                            "rerun `claimsfm sweep` (finished runs and evaluations are reused)")
    for key in ("scales", "tasks"):
        if not isinstance(results.get(key), dict):
            raise ClaimsfmError(f"{file}: missing '{key}' (not a claimsfm sweep results.json)")
    for name, scale in results["scales"].items():
        if not isinstance(scale, dict) or not all(_number(scale.get(k)) for k in ("params", "hours")):
            raise ClaimsfmError(f"{file}: scale '{name}' lacks a numeric 'params' or 'hours'")
    for name, task in results["tasks"].items():
        if not isinstance(task, dict):
            raise ClaimsfmError(f"{file}: task '{name}' is not an object")
    return results, file


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def run(config: ReportConfig) -> dict:
    """Draw the figures and write report.md / report.html; returns their paths."""
    from claimsfm.report import figures, render

    results, file = load_results(config.results)
    from claimsfm.outdir import claim, record

    # The report goes beside results.json by default: into the sweep's folder, whose other files it leaves alone.
    out = claim(Path(config.out) if config.out else file.parent, "report", [file], accept=("sweep",),
                contains_ok=True)
    fig_dir = out / "figures"
    record(out, out / "report.md", out / "report.html", *(fig_dir / f"{name}.png" for name in (
        "loss_vs_params", "auprc_vs_params", "auprc_vs_hours", "saturation_table")))
    fig_dir.mkdir(parents=True, exist_ok=True)
    figures.loss_vs_params(results, fig_dir / "loss_vs_params.png")
    if figures.scored_tasks(results):
        figures.auprc_vs_params(results, fig_dir / "auprc_vs_params.png")
        figures.auprc_vs_hours(results, fig_dir / "auprc_vs_hours.png")
        figures.saturation_table(results, render.saturation_rows(results), render.SATURATION_HEADER,
                                 fig_dir / "saturation_table.png")
    write_text(out / "report.md", render.markdown(results, config.title))
    write_text(out / "report.html", render.html_page(results, config.title, fig_dir))
    return {"report_md": out / "report.md", "report_html": out / "report.html", "figures": fig_dir,
            "saturation_rows": render.saturation_rows(results), "saturation_header": render.SATURATION_HEADER}
