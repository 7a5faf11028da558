"""The report from a hand-made results.json: figures, report.md, self-contained report.html."""
import base64
import re
import shutil
import subprocess

import pytest

from claimsfm.errors import ClaimsfmError
from claimsfm.io import write_json
from claimsfm.report import ReportConfig, run
from claimsfm.sweep.powerlaw import fit_power_law
from claimsfm.sweep.saturation import analyze_task

SCALES = {"demo-XS": 0.3e6, "demo-S": 1.1e6, "demo-M": 3.2e6, "demo-L": 8.0e6}
AUPRC = {  # task -> per scale
    "t2dm": [0.18, 0.22, 0.25, 0.27],
    "statin_new_user": [0.30, 0.33, 0.335, 0.333],
    "ckd": [0.12, 0.121, 0.119, 0.12],
}


def _summary(a):
    return {"auprc": a, "auprc_ci": [a - 0.02, a + 0.02], "auroc": 0.7, "auroc_ci": [0.68, 0.72],
            "brier": 0.05, "brier_ci": [0.04, 0.06], "prevalence": 0.06, "n": 2000, "n_pos": 120}


def make_results(hours_kind="cpu"):
    scales = {}
    for i, (name, n) in enumerate(SCALES.items()):
        loss = 40 * n ** -0.25 + 1.5
        scales[name] = {"params": int(n), "non_embedding_params": int(n * 0.6), "train_loss": loss * 0.98,
                        "eval_loss": loss, "tokens_seen": 200_000, "wall_time_s": 30.0 * (i + 1),
                        "hours": 30.0 * (i + 1) / 3600, "gpu_hours": 0.0, "flops": 6 * n * 200_000}
    params = {s: v["params"] for s, v in scales.items()}
    compute = {s: {"hours": v["hours"], "flops": v["flops"]} for s, v in scales.items()}
    tasks = {}
    for task, values in AUPRC.items():
        auprc = dict(zip(SCALES, values))
        best = max(auprc, key=auprc.get)
        vs = {s: {"diff": auprc[s] - auprc[best], "ci": [auprc[s] - auprc[best] - 0.01, auprc[s] - auprc[best] + 0.01]}
              for s in auprc if s != best}
        sat = analyze_task(auprc, params, vs, compute, {"diff": auprc[best] - 0.2, "ci": [auprc[best] - 0.23, auprc[best] - 0.17]})
        tasks[task] = {"kind": "medication" if "statin" in task else "incidence",
                       "scales": {s: _summary(a) for s, a in auprc.items()}, "lightgbm": _summary(0.2),
                       "oracle": {"oracle_observable": _summary(0.4), "oracle_latent": _summary(0.45)},
                       "saturation": sat}
    fit = fit_power_law([v["params"] for v in scales.values()], [v["eval_loss"] for v in scales.values()])
    return {"schema": 1, "hours_kind": hours_kind, "tolerance": 0.0, "scales": scales, "tasks": tasks, "fit": fit}


def test_report_writes_figures_markdown_and_self_contained_html(tmp_path):
    write_json(tmp_path / "results.json", make_results())
    out = run(ReportConfig(results=tmp_path))
    for name in ("loss_vs_params", "auprc_vs_params", "auprc_vs_hours", "saturation_table"):
        png = (tmp_path / "figures" / f"{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    md = out["report_md"].read_text()
    assert "| t2dm | incidence | demo-L (0.270) | demo-L (0.270) |" in md
    assert "| statin_new_user | medication | demo-M (0.335) | demo-S (0.330) |" in md
    assert "CPU-hours" in md and "L(N) = " in md
    page = out["report_html"].read_text()
    assert "src=\"figures" not in page and "http" not in page.replace("<!DOCTYPE html>", "")
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 4
    assert base64.b64decode(images[0])[:4] == b"\x89PNG"


def test_gpu_results_say_gpu_hours_and_unscored_tasks_are_listed_not_drawn(tmp_path):
    results = make_results("gpu")
    results["tasks"]["dialysis"] = {"kind": "incidence", "scales": {}, "lightgbm": None, "oracle": {}, "saturation": None}
    write_json(tmp_path / "results.json", results)
    out = run(ReportConfig(results=tmp_path / "results.json", out=tmp_path / "r"))
    md = out["report_md"].read_text()
    assert "GPU-hours" in md and "| dialysis | incidence | – |" in md


def test_missing_or_malformed_results_give_a_clear_error(tmp_path):
    with pytest.raises(ClaimsfmError, match="results.json"):
        run(ReportConfig(results=tmp_path))
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(ClaimsfmError, match="not valid JSON"):
        run(ReportConfig(results=tmp_path))
    write_json(tmp_path / "results.json", {"scales": {}})
    with pytest.raises(ClaimsfmError, match="tasks"):
        run(ReportConfig(results=tmp_path))


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed")
def test_html_renders_in_headless_chromium(tmp_path):
    write_json(tmp_path / "results.json", make_results())
    out = run(ReportConfig(results=tmp_path))
    shot = tmp_path / "shot.png"
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--screenshot={shot}", "--window-size=1280,2400", out["report_html"].as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.is_file() and shot.stat().st_size > 20_000
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                          out["report_html"].as_uri()], capture_output=True, text=True, timeout=120)
    assert "Saturation per task" in dom.stdout and dom.stdout.count("data:image/png;base64") == 4
