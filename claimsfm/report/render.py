"""report.md and a self-contained report.html (figures embedded as base64 PNGs) from results.json."""
from __future__ import annotations

import base64
import html
from pathlib import Path

from claimsfm.report.figures import hours_label

SATURATION_HEADER = ["task", "kind", "best scale (AUPRC)", "saturation scale (AUPRC)", "hours saved",
                     "FLOPs saved", "share of sweep", "best − LightGBM [95% CI]", "beats LightGBM"]
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
            rows.append([task, t.get("kind", ""), "–", "–", "–", "–", "–", "–", "–"])
            continue
        vs = sat.get("versus_lightgbm")
        vs_txt = "–" if vs is None else f"{vs['diff']:+.3f} [{vs['ci'][0]:+.3f}, {vs['ci'][1]:+.3f}]"
        beats = {True: "yes", False: "no", None: "–"}[sat.get("beats_lightgbm")]
        rows.append([
            task, t.get("kind", ""), f"{sat['best']} ({sat['best_auprc']:.3f})",
            f"{sat['saturation']} ({sat['saturation_auprc']:.3f})", _hours(sat["saved"]["hours"]),
            _num(sat["saved"]["flops"], ".2e"), f"{sat['saved']['share_of_sweep']:.0%}", vs_txt, beats,
        ])
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
    lines = [f"- Compute is counted in {hours_label(results)}.",
             f"- Saturation rule: the smallest scale whose AUPRC is not worse than the best scale's "
             f"(paired bootstrap 95% CI of the difference reaches 0, or the gap is under "
             f"{results.get('tolerance', 0.0):g})."]
    fit = results.get("fit")
    lines.append(f"- Eval-loss power law: `{fit['formula']}` (RMSE {fit['rmse']:.4f}, {fit['n_points']} scales)."
                 if fit else "- Eval-loss power law: not fitted (needs at least 3 scales with an eval loss).")
    tasks = results["tasks"].values()
    sats = [t["saturation"] for t in tasks if t.get("saturation")]
    if sats:
        beats = sum(1 for s in sats if s.get("beats_lightgbm"))
        lines.append(f"- The best FM beats LightGBM (CI of the difference above 0) on {beats} of {len(sats)} tasks.")
        lines.append(f"- The largest scale is needed on {sum(1 for s in sats if s['saturation'] == s['best'] and s['largest_wins'])}"
                     f" of {len(sats)} tasks.")
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
