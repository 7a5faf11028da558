"""Gather one task's metrics across scales, run the paired comparisons, apply the saturation rule.

Paired bootstraps need the per-patient predictions, so they are computed here from the
evaluation folders (`<eval>/<scale>/predictions/<task>/<model>.parquet`, MEDS-evaluation
columns), on the prediction rows every compared model scored, resampling patients.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from claimsfm.sweep.saturation import analyze_task, best_scale


def _fm_name(models: dict, scale: str) -> str | None:
    """The metrics.json model name of the FM evaluated at `scale` (`fm:<scale>`, else the only fm:*)."""
    if f"fm:{scale}" in models:
        return f"fm:{scale}"
    fms = [m for m in models if m.startswith("fm:")]
    return fms[0] if len(fms) == 1 else None


def load_predictions(path: Path) -> dict:
    """{(subject_id, prediction_time as int64 us): (label, probability)} of one predictions file."""
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["subject_id", "prediction_time", "boolean_value",
                                         "predicted_boolean_probability"])
    sid = table.column("subject_id").to_numpy()
    t = table.column("prediction_time").cast("int64").to_numpy()
    y = table.column("boolean_value").to_numpy(zero_copy_only=False).astype(bool)
    p = table.column("predicted_boolean_probability").to_numpy(zero_copy_only=False).astype(np.float64)
    return {"sid": sid, "t": t, "y": y, "p": p}


def _aligned(a: dict, b: dict):
    """Labels, both score vectors and patient groups on the rows both files contain."""
    ka = np.rec.fromarrays([a["sid"], a["t"]])
    kb = np.rec.fromarrays([b["sid"], b["t"]])
    _, ia, ib = np.intersect1d(ka, kb, return_indices=True)
    return a["y"][ia], a["p"][ia], b["p"][ib], a["sid"][ia]


def _prediction_file(eval_dir: Path, task: str, model: str) -> Path | None:
    path = eval_dir / "predictions" / task / f"{model}.parquet"
    return path if path.is_file() else None


def paired(eval_root: Path, task: str, a: tuple[str, str], b: tuple[str, str], n_boot: int, seed: int) -> dict | None:
    """paired_bootstrap of metric(a) - metric(b); a, b = (eval folder name, model name)."""
    from claimsfm.eval.metrics import paired_bootstrap

    fa = _prediction_file(eval_root / a[0], task, a[1])
    fb = _prediction_file(eval_root / b[0], task, b[1])
    if fa is None or fb is None:
        return None
    y, pa, pb, groups = _aligned(load_predictions(fa), load_predictions(fb))
    if len(y) == 0 or y.all() or not y.any():
        return None
    return paired_bootstrap(y, pa, pb, groups, metric="auprc", n_boot=n_boot, seed=seed)


def _oracles(task_metrics: dict) -> dict:
    found = {m: s for m, s in task_metrics.get("models", {}).items() if m.startswith("oracle")}
    for name, summary in (task_metrics.get("oracle") or {}).items():
        if isinstance(summary, dict) and "auprc" in summary:
            found.setdefault(name if name.startswith("oracle") else f"oracle_{name}", summary)
    return found


def collect_task(spec, scales: list[str], entries: dict, metrics: dict, baseline: dict, eval_root: Path,
                 margin: float, n_boot: int, seed: int) -> dict:
    """The results.json entry of one task (see claimsfm.sweep.run)."""
    out = {"kind": spec.kind, "group": spec.group, "cohort": None, "scales": {}, "lightgbm": None,
           "oracle": {}, "paired": {}, "saturation": None}
    names = {}
    for scale in scales:
        t = metrics[scale].get("tasks", {}).get(spec.name)
        name = _fm_name(t.get("models", {}), scale) if t else None
        if name is None or t["models"][name].get("auprc") is None or not np.isfinite(t["models"][name]["auprc"]):
            continue
        names[scale] = name
        out["scales"][scale] = t["models"][name]
        out["cohort"] = out["cohort"] or t.get("cohort")
        out["oracle"] = out["oracle"] or _oracles(t)
    lt = baseline.get("tasks", {}).get(spec.name)
    if lt and "lightgbm" in lt.get("models", {}):
        out["lightgbm"] = lt["models"]["lightgbm"]
        out["oracle"] = out["oracle"] or _oracles(lt)
        out["cohort"] = out["cohort"] or lt.get("cohort")
    if not out["scales"]:
        return out
    auprc = {s: m["auprc"] for s, m in out["scales"].items()}
    params = {s: entries[s]["params"] for s in entries}
    best = best_scale(auprc, params)
    versus_best = {}
    for scale in auprc:
        if scale != best:
            pair = paired(eval_root, spec.name, (scale, names[scale]), (best, names[best]), n_boot, seed)
            if pair is not None:
                versus_best[scale] = pair
                out["paired"][f"{scale} - {best}"] = pair
    versus_lgbm = None
    if out["lightgbm"] is not None:
        versus_lgbm = paired(eval_root, spec.name, (best, names[best]), ("lightgbm", "lightgbm"), n_boot, seed)
        if versus_lgbm is not None:
            out["paired"][f"{best} - lightgbm"] = versus_lgbm
    compute = {s: {"hours": entries[s]["hours"], "flops": entries[s]["flops"]} for s in entries}
    out["saturation"] = analyze_task(auprc, params, versus_best, compute, versus_lgbm, margin)
    return out


def encoder_unused(tasks: dict) -> list[str]:
    """Tasks on which every evaluated scale's attend head kept no deep part (metrics.json `head.deep_epochs` 0):
    there the FM's predictions are its wide bag-of-codes part at every scale, and a scale verdict says nothing
    about the encoder. Tasks without head records (other modes) are never listed."""
    return sorted(name for name, entry in tasks.items() if entry["scales"] and all(
        (m.get("head") or {}).get("deep_epochs") == 0 for m in entry["scales"].values()))
