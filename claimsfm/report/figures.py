"""The report's figures, drawn with matplotlib's Agg backend from a sweep's results.json.

Each function takes the parsed results dict and a PNG path, draws one figure and closes it, so a
long report never keeps figures alive. Scales are placed by their real parameter count (log axis).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from claimsfm.io import atomic_path

_FM = "#1f5fa8"
_LGBM = "#d9822b"
_ORACLE = "#2e8b57"
_PREV = "#888888"


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _ticker():
    import matplotlib.ticker

    return matplotlib.ticker


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)


def _scale_order(results: dict) -> list[str]:
    scales = results["scales"]
    return sorted(scales, key=lambda s: scales[s]["params"])


def scored_tasks(results: dict) -> list[str]:
    """Tasks with at least one scored scale (a cohort without positives in a split has none)."""
    return sorted(t for t, v in results["tasks"].items() if v.get("scales"))


def hours_label(results: dict) -> str:
    return "GPU-hours" if results.get("hours_kind") == "gpu" else "CPU-hours (no GPU: wall-clock on CPU)"


def loss_vs_params(results: dict, path: Path) -> None:
    """Pretraining loss against parameters, log-log, with the power-law fit of the eval loss."""
    plt = _plt()
    order = _scale_order(results)
    n = np.array([results["scales"][s]["params"] for s in order], dtype=float)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for key, style, label in (("eval_loss", "o-", "eval (tuning split)"), ("train_loss", "s--", "train")):
        y = np.array([results["scales"][s].get(key) or np.nan for s in order], dtype=float)
        if np.isfinite(y).any():
            ax.plot(n, y, style, label=f"MLM loss, {label}", color=_FM if key == "eval_loss" else _PREV)
    fit = results.get("fit")
    if fit:
        grid = np.geomspace(n.min() / 1.5, n.max() * 1.5, 100)
        ax.plot(grid, fit["a"] * grid ** -fit["b"] + fit["c"], ":", color="black",
                label="fit: " + fit["formula"].replace("L(N) = ", ""))
    ey = [results["scales"][s].get("eval_loss") for s in order]
    for s, x, y in zip(order, n, ey, strict=True):
        if y is not None:
            ax.annotate(s, (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain = _ticker().FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.set_xticks(n, [f"{v / 1e6:.3g}M" for v in n])
    ax.xaxis.set_minor_formatter(_ticker().NullFormatter())
    ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.set_xlabel("parameters (total, trainable)")
    ax.set_ylabel("MLM loss (nats/token)")
    ax.set_title("Pretraining loss vs model size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def _task_grid(n_tasks: int):
    plt = _plt()
    cols = min(4, max(1, n_tasks))
    rows = math.ceil(n_tasks / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.9 * rows), squeeze=False)
    for ax in axes.flat[n_tasks:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


def _hline(ax, summary: dict | None, color: str, label: str, style: str) -> None:
    """A reference model as a line; its CI is in the table (a band would hide the FM band on small data)."""
    if not summary or summary.get("auprc") is None:
        return
    ax.axhline(summary["auprc"], color=color, ls=style, lw=1.2, label=label)


def _task_panel(ax, results: dict, task: str, xs: dict[str, float], ticks: dict[str, str]) -> None:
    t = results["tasks"][task]
    order = [s for s in _scale_order(results) if s in t["scales"]]
    x = np.array([xs[s] for s in order], dtype=float)
    y = np.array([t["scales"][s]["auprc"] for s in order], dtype=float)
    lo = np.array([t["scales"][s]["auprc_ci"][0] for s in order], dtype=float)
    hi = np.array([t["scales"][s]["auprc_ci"][1] for s in order], dtype=float)
    ax.fill_between(x, lo, hi, color=_FM, alpha=0.2, lw=0)
    ax.plot(x, y, "o-", color=_FM, ms=4, label="FM (95% CI)")
    _hline(ax, t.get("lightgbm"), _LGBM, "LightGBM", "--")
    for name, summary in sorted((t.get("oracle") or {}).items()):
        _hline(ax, summary, _ORACLE, name.replace("_", " "), ":" if "latent" in name else "-.")
    prev = next((m.get("prevalence") for m in t["scales"].values() if m.get("prevalence") is not None), None)
    if prev is not None:
        ax.axhline(prev, color=_PREV, lw=0.8, ls=(0, (1, 3)), label="prevalence")
    sat = t.get("saturation")
    if sat and sat["saturation"] in xs:
        ax.plot([xs[sat["saturation"]]], [t["scales"][sat["saturation"]]["auprc"]], marker="*", ms=13,
                color="crimson", ls="none", label=f"saturation ({sat['saturation']})", zorder=5)
    ax.set_xscale("log")
    ax.set_xticks(x, [ticks[s] for s in order], rotation=30, fontsize=7)
    ax.xaxis.set_minor_formatter(_ticker().NullFormatter())
    ax.set_title(task, fontsize=9)
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(True, which="both", alpha=0.3)


def _auprc_grid(results: dict, path: Path, xs: dict[str, float], ticks: dict[str, str], xlabel: str,
                title: str) -> None:
    tasks = scored_tasks(results)
    fig, axes = _task_grid(len(tasks))
    for ax, task in zip(axes, tasks, strict=False):  # the grid may have spare panels
        _task_panel(ax, results, task, xs, ticks)
        ax.set_xlabel(xlabel, fontsize=7)
        ax.set_ylabel("AUPRC", fontsize=7)
    handles, labels = {}, {}
    for ax in axes[: len(tasks)]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            key = "saturation" if lab.startswith("saturation") else lab
            handles.setdefault(key, h)
            labels.setdefault(key, "saturation scale" if key == "saturation" else lab)
    fig.legend(list(handles.values()), list(labels.values()), loc="lower center", ncol=min(6, len(handles)),
               fontsize=8, bbox_to_anchor=(0.5, -0.02), frameon=False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    _save(fig, path)


def _short_hours(h: float) -> str:
    return f"{h * 3600:.0f}s" if h < 0.1 else f"{h:.3g}h"


def auprc_vs_params(results: dict, path: Path) -> None:
    """One panel per task: FM AUPRC with CI band against parameters, LightGBM and oracle lines."""
    xs = {s: float(v["params"]) for s, v in results["scales"].items()}
    _auprc_grid(results, path, xs, {s: s for s in xs}, "parameters", "Held-out AUPRC vs model size")


def auprc_vs_hours(results: dict, path: Path) -> None:
    """The same panels against the compute spent pretraining each scale."""
    xs = {s: max(float(v["hours"]), 1e-6) for s, v in results["scales"].items()}
    unit = "GPU-hours" if results.get("hours_kind") == "gpu" else "CPU-hours"
    ticks = {s: f"{s}\n{_short_hours(h)}" for s, h in xs.items()}
    _auprc_grid(results, path, xs, ticks, f"pretraining {unit}",
                f"Held-out AUPRC vs pretraining {hours_label(results)}")


def saturation_table(results: dict, rows: list[list[str]], header: list[str], path: Path) -> None:
    """The saturation table as an image (the same rows as report.md)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(14, 0.32 * (len(rows) + 1) + 0.5))
    ax.axis("off")
    table = ax.table(cellText=rows, colLabels=header, loc="center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.auto_set_column_width(list(range(len(header))))
    table.scale(1, 1.35)
    for (r, _), cell in table.get_celld().items():
        if r == 0:
            cell.set_facecolor("#dde6f2")
            cell.set_text_props(weight="bold")
    ax.set_title(f"Saturation per task ({hours_label(results)})", fontsize=10)
    _save(fig, path)
