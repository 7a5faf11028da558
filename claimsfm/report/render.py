"""report.md and a self-contained report.html (figures embedded as base64 PNGs) from results.json."""
from __future__ import annotations

import base64
import html
from pathlib import Path

from claimsfm.report.figures import hours_label
from claimsfm.sweep.saturation import UNRESOLVED

SATURATION_HEADER = ["task", "kind", "best scale (AUPRC)", "verdict", "saturation scale (AUPRC)", "hours saved",
                     "FLOPs saved", "share of sweep", "best − LightGBM [95% CI]", "beats LightGBM"]
VERDICTS = {"non_inferior": "smaller scale non-inferior", "best_needed": "best scale needed",
            "unresolved": UNRESOLVED}
SCALE_HEADER = ["scale", "params", "non-embedding", "train loss", "eval loss", "tokens", "hours", "FLOPs"]


def _num(x, fmt: str) -> str:
    return "–" if x is None else format(x, fmt)


def _hours(h) -> str:
    if h is None:
        return "–"
    return f"{h * 3600:.0f} s" if abs(h) < 0.1 else f"{h:.2f} h"


def saturation_rows(results: dict) -> list[list[str]]:
    rows = []
    for task in sorted(results["tasks"]):
        t = results["tasks"][task]
        sat = t.get("saturation")
        if not sat:
            rows.append([task, t.get("kind", ""), "–", "not scored", "–", "–", "–", "–", "–", "–"])
            continue
        vs = sat.get("versus_lightgbm")
        vs_txt = "–" if vs is None else f"{vs['diff']:+.3f} [{vs['ci'][0]:+.3f}, {vs['ci'][1]:+.3f}]"
        beats = {True: "yes", False: "no", None: "–"}[sat.get("beats_lightgbm")]
        saved = sat.get("saved")
        if saved is None:
            cost = ["–", "none claimed", "–", "–"]
        else:
            cost = [f"{sat['saturation']} ({sat['saturation_auprc']:.3f})", _hours(saved["hours"]),
                    _num(saved["flops"], ".2e"), f"{saved['share_of_sweep']:.0%}"]
        rows.append([task, t.get("kind", ""), f"{sat['best']} ({sat['best_auprc']:.3f})",
                     VERDICTS[sat["status"]], *cost, vs_txt, beats])
    return rows


def scale_rows(results: dict) -> list[list[str]]:
    rows = []
    for name, s in sorted(results["scales"].items(), key=lambda kv: kv[1]["params"]):
        rows.append([name, f"{s['params']:,}", _num(s.get("non_embedding_params"), ","),
                     _num(s.get("train_loss"), ".4f"), _num(s.get("eval_loss"), ".4f"),
                     _num(s.get("tokens_seen"), ","), _hours(s.get("hours")), _num(s.get("flops"), ".2e")])
    return rows


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _summary_lines(results: dict) -> list[str]:
    margin = results["margin"]
    lines = [f"- Compute is counted in {hours_label(results)}.",
             f"- Saturation rule (non-inferiority, margin δ = {margin:g} AUPRC): the saturation scale is the smallest "
             f"scale whose paired-bootstrap 95% CI of (scale − best) has its lower bound above −{margin:g}. When no "
             f"smaller scale is shown non-inferior and some is not shown worse either (CI upper bound not below 0), "
             f"the task is \"{UNRESOLVED}\" and no compute saving is claimed for it."]
    fit = results.get("fit")
    note = results.get("fit_note", "")
    lines.append(f"- Eval-loss power law: `{fit['formula']}` (RMSE {fit['rmse']:.4f}, {fit['n_points']} scales; "
                 f"{note})." if fit else f"- Eval-loss power law: not reported ({note}).")
    tasks = results["tasks"].values()
    sats = [t["saturation"] for t in tasks if t.get("saturation")]
    if sats:
        beats = sum(1 for s in sats if s.get("beats_lightgbm"))
        at_or_above = sum(1 for s in sats if s.get("versus_lightgbm") and s["versus_lightgbm"]["diff"] >= 0)
        lines.append(f"- The best FM is at or above LightGBM (point estimate) on {at_or_above} of {len(sats)} tasks, "
                     f"and beats it (CI of the difference above 0) on {beats}.")
        count = {k: sum(1 for s in sats if s["status"] == k) for k in VERDICTS}
        lines.append(f"- Verdicts: a smaller scale is non-inferior on {count['non_inferior']}, the best scale is "
                     f"needed on {count['best_needed']}, unresolved on {count['unresolved']} of {len(sats)} tasks.")
    for note in results.get("notes", []):
        lines.append(f"- {note}")
    return lines


FIGURES = [("loss_vs_params.png", "Pretraining loss vs parameters"),
           ("auprc_vs_params.png", "AUPRC vs parameters per task"),
           ("auprc_vs_hours.png", "AUPRC vs pretraining compute"),
           ("saturation_table.png", "Saturation table")]


def markdown(results: dict, title: str) -> str:
    parts = [f"# {title}", "", *_summary_lines(results), "", "## Saturation per task", "",
             _md_table(SATURATION_HEADER, saturation_rows(results)), "", "## Scales", "",
             _md_table(SCALE_HEADER, scale_rows(results)), "", "## Figures", ""]
    for name, caption in FIGURES:
        parts += [f"![{caption}](figures/{name})", ""]
    return "\n".join(parts)


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}th,td{border:1px solid #bbb;padding:4px 8px}
th{background:#dde6f2}tr:nth-child(even){background:#f6f8fb}img{max-width:100%;border:1px solid #eee}
code{background:#f3f3f3;padding:1px 4px}figure{margin:1.5em 0}figcaption{color:#555;font-size:13px}"""


def html_page(results: dict, title: str, figures_dir: Path) -> str:
    items = "".join(f"<li>{html.escape(line[2:]).replace('`', '')}</li>" for line in _summary_lines(results))
    figs = []
    for name, caption in FIGURES:
        path = figures_dir / name
        if path.is_file():
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            figs.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1><ul>{items}</ul>"
            f"<h2>Saturation per task</h2>{_html_table(SATURATION_HEADER, saturation_rows(results))}"
            f"<h2>Scales</h2>{_html_table(SCALE_HEADER, scale_rows(results))}"
            f"<h2>Figures</h2>{''.join(figs)}</body></html>\n")
