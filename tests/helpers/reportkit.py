"""A hand-made sweep results.json (the schema claimsfm.report reads), for the report and sweep CLI tests."""
from claimsfm.sweep.powerlaw import loss_law
from claimsfm.sweep.saturation import analyze_task

SCALES = {"demo-XS": 0.3e6, "demo-S": 1.1e6, "demo-M": 3.2e6, "demo-L": 8.0e6}
AUPRC = {  # task -> per scale, half width of the paired CIs
    "t2dm": ([0.18, 0.22, 0.25, 0.27], 0.01),
    "statin_new_user": ([0.30, 0.33, 0.335, 0.333], 0.01),
    "ckd": ([0.12, 0.121, 0.119, 0.12], 0.01),
    "dementia": ([0.10, 0.14, 0.13, 0.16], 0.06),
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
    for task, (values, width) in AUPRC.items():
        auprc = dict(zip(SCALES, values))
        best = max(auprc, key=auprc.get)
        gap = {s: auprc[s] - auprc[best] for s in auprc if s != best}
        vs = {s: {"diff": g, "ci": [g - width, g + width]} for s, g in gap.items()}
        vs_lightgbm = {"diff": auprc[best] - 0.2, "ci": [auprc[best] - 0.23, auprc[best] - 0.17]}
        sat = analyze_task(auprc, params, vs, compute, vs_lightgbm)
        tasks[task] = {"kind": "medication" if "statin" in task else "incidence",
                       "scales": {s: _summary(a) for s, a in auprc.items()}, "lightgbm": _summary(0.2),
                       "oracle": {"oracle_observable": _summary(0.4), "oracle_latent": _summary(0.45)},
                       "saturation": sat}
    law = loss_law([v["params"] for v in scales.values()], [v["eval_loss"] for v in scales.values()])
    return {"schema": 2, "hours_kind": hours_kind, "margin": 0.02, "scales": scales, "tasks": tasks,
            "fit": law["fit"], "fit_note": law["note"]}
