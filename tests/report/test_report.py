"""The report from a hand-made results.json: figures, report.md, self-contained report.html."""
import base64
import re
import shutil
import subprocess

import pytest

from claimsfm.errors import ClaimsfmError
from claimsfm.io import write_json
from claimsfm.report import ReportConfig, run
from claimsfm.sweep.powerlaw import loss_law

from helpers.reportkit import make_results


def test_report_writes_figures_markdown_and_self_contained_html(tmp_path):
    write_json(tmp_path / "results.json", make_results())
    out = run(ReportConfig(results=tmp_path))
    for name in ("loss_vs_params", "auprc_vs_params", "auprc_vs_hours", "saturation_table"):
        png = (tmp_path / "figures" / f"{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    md = out["report_md"].read_text()
    assert "| t2dm | incidence | demo-L (0.270) | best scale needed | demo-L (0.270) | 0 s |" in md
    assert "| statin_new_user | medication | demo-M (0.335) | smaller scale non-inferior | demo-S (0.330) |" in md
    assert ("| dementia | incidence | demo-L (0.160) | unresolved: more data or more resamples needed | – | "
            "none claimed |") in md
    assert "margin δ = 0.02" in md and "non-inferior on 2, the best scale is needed on 1, unresolved on 1 of 4" in md
    assert "CPU-hours" in md and "L(N) = " in md and "a, b and c free on 4 scales" in md
    page = out["report_html"].read_text()
    assert "src=\"figures" not in page and "http" not in page.replace("<!DOCTYPE html>", "")
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 4
    assert base64.b64decode(images[0])[:4] == b"\x89PNG"


def test_gpu_results_say_gpu_hours_and_unscored_tasks_are_listed_not_drawn(tmp_path):
    results = make_results("gpu")
    results["tasks"]["dialysis"] = {"kind": "incidence", "scales": {}, "lightgbm": None, "oracle": {},
                                    "saturation": None}
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
    write_json(tmp_path / "results.json", {"schema": 2, "scales": {}})
    with pytest.raises(ClaimsfmError, match="tasks"):
        run(ReportConfig(results=tmp_path))
    write_json(tmp_path / "results.json", {**make_results(), "schema": 1})
    with pytest.raises(ClaimsfmError, match="rerun `claimsfm sweep`"):
        run(ReportConfig(results=tmp_path))


def test_three_scales_report_the_loss_law_with_c_fixed_and_two_say_not_identifiable(tmp_path):
    results = make_results()
    names = list(results["scales"])
    for keep, text in ((names[:3], "c is fixed at 0"), (names[:2], "not reported (not identifiable")):
        scales = {s: results["scales"][s] for s in keep}
        law = loss_law([v["params"] for v in scales.values()], [v["eval_loss"] for v in scales.values()])
        write_json(tmp_path / "results.json", {**results, "scales": scales, "tasks": {}, "fit": law["fit"],
                                               "fit_note": law["note"]})
        md = run(ReportConfig(results=tmp_path))["report_md"].read_text()
        assert text in md, md[:800]


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
