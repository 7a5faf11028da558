"""What `evaluate` prints and writes: cohort sizes, the metrics table, metrics.json and predictions."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from claimsfm.io import write_json, write_run_config
from claimsfm.outdir import build
from claimsfm.splits import HELD_OUT, SPLITS

# predictions/*.parquet follow MEDS-evaluation's PredictionSchema: the probability as float32, and
# predicted_boolean_value = probability >= DECISION_THRESHOLD (the Bayes decision for a calibrated
# probability when a false positive and a false negative cost the same; AUPRC does not use it).
DECISION_THRESHOLD = 0.5


def as_written(p) -> np.ndarray:
    """The probabilities as the predictions file stores them (float32), back in float64: metrics.json
    scores these, so a tool that reads the file gets the same AUPRC."""
    return np.asarray(p, dtype=np.float32).astype(np.float64)


def _console():
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        console.width = max(console.width, 140)  # logs and pipes: do not squeeze the table to 80 columns
    return console


def print_cohorts(cohorts, skipped: dict, quiet: bool = False) -> None:
    """Rows and prevalence per split for each task; tasks skipped and why."""
    if quiet:
        return
    from rich.table import Table

    table = Table(title="cohorts (rows, prevalence)")
    table.add_column("task")
    for name in SPLITS:
        table.add_column(name, justify="right")
    for c in cohorts:
        cells = []
        for code in range(len(SPLITS)):
            rows = c.split == code
            n = int(rows.sum())
            cells.append(f"{n:,}  {c.label[rows].mean():.3f}" if n else "0")
        table.add_row(c.task, *cells)
    console = _console()
    console.print(table)
    for task, entry in skipped.items():
        console.print(f"[yellow]skipped {task}[/yellow]: {entry['skipped']}")


def _fmt(m: dict | None) -> str:
    if not m or m.get("auprc") is None:
        return "–"
    lo, hi = m["auprc_ci"]
    return f"{m['auprc']:.3f}\n({lo:.2f}–{hi:.2f})"


def print_table(metrics: dict, quiet: bool = False) -> None:
    """Held-out AUPRC (95% CI) per task and model, prevalence, the oracles, and FM - LightGBM."""
    if quiet:
        return
    from rich.table import Table

    tasks = metrics["tasks"]
    models = sorted({m for t in tasks.values() for m in t["models"]})
    oracles = sorted({m for t in tasks.values() for m in t["oracle"]}, key=lambda o: "latent" in o)
    paired = sorted({k for t in tasks.values() for k in t["paired"]})
    table = Table(title="held-out AUPRC (95% CI)")
    table.add_column("task", no_wrap=True)
    table.add_column("n\nprevalence", justify="right")
    for col in [*models, *[o.replace("oracle_", "oracle ") for o in oracles], *paired]:
        table.add_column(col, justify="right")
    for name, t in tasks.items():
        held = t["cohort"][SPLITS[HELD_OUT]]
        diffs = [t["paired"].get(k) for k in paired]
        table.add_row(name, f"{held['n']:,}\n{held['prevalence']:.3f}",
                      *[_fmt(t["models"].get(m)) for m in models], *[_fmt(t["oracle"].get(o)) for o in oracles],
                      *[f"{d['diff']:+.3f}\n({d['ci'][0]:+.2f}, {d['ci'][1]:+.2f})" if d else "–" for d in diffs])
    _console().print(table)
    for note in sorted({t["cohort"].get("oracle_note") for t in tasks.values()} - {None}):
        _console().print(f"oracle: {note}")


def _predictions_table(cohort, p: np.ndarray):
    import pyarrow as pa

    held = cohort.split == HELD_OUT
    return pa.table({
        "subject_id": pa.array(cohort.subject_id[held], pa.int64()),
        "prediction_time": pa.array(cohort.prediction_time[held], pa.timestamp("us")),
        "boolean_value": pa.array(cohort.label[held], pa.bool_()),
        "predicted_boolean_value": pa.array(np.asarray(p)[held] >= DECISION_THRESHOLD, pa.bool_()),
        "predicted_boolean_probability": pa.array(np.asarray(p, dtype=np.float32)[held], pa.float32()),
    })


def _safe(name: str) -> str:
    return name.replace("/", "_")  # model names keep their ":" (fm:2.2M.parquet, docs/internals.md §6)


def write_outputs(out: Path, metrics: dict, cohorts, preds: dict, settings: dict) -> None:
    """metrics.json, predictions/<task>/<model>.parquet (held_out) and config.json, as one atomic folder."""
    import pyarrow.parquet as pq

    with build(out, "evaluate", replace=True) as tmp:  # replaces only an earlier evaluate's files
        write_json(tmp / "metrics.json", metrics)
        for c in cohorts:
            folder = tmp / "predictions" / c.task
            folder.mkdir(parents=True, exist_ok=True)
            for model, p in preds[c.task].items():
                pq.write_table(_predictions_table(c, p), folder / f"{_safe(model)}.parquet")
        write_run_config(tmp, settings)
