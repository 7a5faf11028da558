"""collect_task on hand-written evaluation folders: metrics.json + prediction parquets per scale."""
import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from claimsfm.eval.metrics import point_metrics
from claimsfm.io import write_json
from claimsfm.sweep.collect import collect_task, encoder_unused, load_predictions
from claimsfm.tasks.spec import load_task

SCALES = ["demo-S", "demo-M", "demo-L"]
ENTRIES = {s: {"params": p, "hours": h, "flops": f}
           for s, p, h, f in zip(SCALES, (2e5, 5e5, 1.2e6), (0.01, 0.02, 0.05), (1e12, 3e12, 9e12), strict=True)}


def _write_predictions(path, sid, t, y, p):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"subject_id": pa.array(sid, pa.int64()),
                             "prediction_time": pa.array(t, pa.timestamp("us")),
                             "boolean_value": pa.array(y), "predicted_boolean_probability": pa.array(p)}), path)


def _fake_eval(root, task, signal_by_model, seed=0):
    """Eval folders whose models see the label through `signal` plus noise (higher = better)."""
    rng = np.random.default_rng(seed)
    n = 1500
    sid = np.arange(n) // 2 + 1000
    t = [dt.datetime(2020, 12 if i % 2 else 6, 30, 23, 59, 59) for i in range(n)]
    y = rng.random(n) < 0.15
    noise = rng.normal(size=n)
    order = rng.permutation(n)  # each file in its own row order: alignment must not rely on it
    metrics = {}
    for folder, (model, signal) in signal_by_model.items():
        p = 1 / (1 + np.exp(-(signal * y + noise + 0.05 * rng.normal(size=n))))
        _write_predictions(root / folder / "predictions" / task / f"{model}.parquet",
                           sid[order], [t[i] for i in order], y[order], p[order])
        auprc = point_metrics(y, p)["auprc"]
        metrics[folder] = {"tasks": {task: {"cohort": {"n": n}, "models": {model: {
            "auprc": auprc, "auprc_ci": [auprc - 0.02, auprc + 0.02], "prevalence": float(y.mean())}},
            "oracle": {}}}}
        write_json(root / folder / "metrics.json", metrics[folder])
    return metrics


def test_collect_task_pairs_predictions_and_finds_saturation(tmp_path):
    spec = load_task("t2dm")
    metrics = _fake_eval(tmp_path, "t2dm", {"demo-S": ("fm:demo-S", 0.5), "demo-M": ("fm:demo-M", 2.0),
                                            "demo-L": ("fm:demo-L", 2.0), "lightgbm": ("lightgbm", 1.0)})
    baseline = metrics.pop("lightgbm")
    out = collect_task(spec, SCALES, ENTRIES, metrics, baseline, tmp_path, margin=0.02, n_boot=200, seed=0)
    sat = out["saturation"]
    assert set(out["scales"]) == set(SCALES) and out["lightgbm"] is not None
    assert sat["scales"]["demo-S"]["verdict"] == "inferior"  # signal 0.5 vs 2.0: clearly worse
    assert sat["status"] in ("non_inferior", "best_needed", "unresolved")
    assert sat["saturation"] in ("demo-M", "demo-L", None) and (sat["saturation"] is None) == (sat["saved"] is None)
    assert f"{sat['best']} - lightgbm" in out["paired"] and sat["beats_lightgbm"] is True
    pair = out["paired"][f"demo-S - {sat['best']}"]
    assert pair["diff"] < 0 and pair["ci"][1] < 0


def test_collect_task_skips_a_task_no_scale_evaluated(tmp_path):
    spec = load_task("ckd")
    out = collect_task(spec, SCALES, ENTRIES, {s: {"tasks": {}} for s in SCALES}, {"tasks": {}}, tmp_path, 0.02, 100, 0)
    assert out["scales"] == {} and out["saturation"] is None


def test_load_predictions_reads_meds_evaluation_columns(tmp_path):
    path = tmp_path / "p.parquet"
    _write_predictions(path, [1, 2], [dt.datetime(2020, 1, 31), dt.datetime(2020, 2, 29)], [True, False], [0.9, 0.1])
    got = load_predictions(path)
    assert got["sid"].tolist() == [1, 2] and got["y"].tolist() == [True, False]
    assert got["p"] == pytest.approx([0.9, 0.1])


def test_encoder_unused_lists_only_tasks_where_no_scale_kept_a_deep_part():
    def entry(*deep):
        return {"scales": {f"s{i}": ({"auprc": 0.5, "head": {"deep_epochs": d}} if d is not None else {"auprc": 0.5})
                           for i, d in enumerate(deep)}}

    tasks = {"wide_only": entry(0, 0, 0), "one_kept": entry(0, 2, 0), "probe_mode": entry(None, None),
             "mixed_records": entry(0, None), "no_scales": {"scales": {}}}
    assert encoder_unused(tasks) == ["wide_only"]
