"""Metrics with patient-level bootstrap CIs (design.md §3.6).

Point estimates come from scikit-learn. The bootstrap resamples *patients* (a patient with several
prediction times moves as a block), expressed as integer weights per row, so one sort of the scores
serves every resample: weighted cumulative sums over the sorted rows give AUPRC and AUROC for a whole
chunk of resamples at once. `_weighted_metrics` with unit weights equals scikit-learn (tested), so the
resamples and the point estimate use one definition (ties handled as scikit-learn does: one
threshold per distinct score).
"""
from __future__ import annotations

import numpy as np

METRICS = ("auprc", "auroc", "brier")
_CHUNK_CELLS = 4_000_000  # resamples x rows per chunk: bounds memory at ~100 MB


def point_metrics(y, p) -> dict:
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    y, p = np.asarray(y, dtype=bool), np.asarray(p, dtype=np.float64)
    both = y.any() and not y.all()
    return {
        "auprc": float(average_precision_score(y, p)) if y.any() else float("nan"),
        "auroc": float(roc_auc_score(y, p)) if both else float("nan"),
        "brier": float(brier_score_loss(y, p)),
    }


def _sorted_blocks(y, p):
    """Rows sorted by descending score and the last row of each block of tied scores."""
    order = np.argsort(-np.asarray(p, dtype=np.float64), kind="stable")
    ps = np.asarray(p, dtype=np.float64)[order]
    last = np.r_[np.flatnonzero(np.diff(ps) != 0), len(ps) - 1]
    return order, last


def _weighted_metrics(y, p, w, order, last) -> dict:
    """AUPRC, AUROC, Brier for each row of weights.  w (B, n) -> dict of (B,) arrays (NaN if undefined)."""
    y = np.asarray(y, dtype=bool)
    ws = w[:, order]                                   # (B, n)
    ys = y[order]
    tp = np.cumsum(ws * ys, axis=1)[:, last]           # (B, K) at each distinct threshold
    fp = np.cumsum(ws * ~ys, axis=1)[:, last]
    pos, neg = tp[:, -1:], fp[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / np.maximum(tp + fp, 1e-300)
        recall = tp / pos
        d_recall = np.diff(np.concatenate([np.zeros_like(recall[:, :1]), recall], axis=1), axis=1)
        auprc = np.sum(d_recall * precision, axis=1)
        tpr = np.concatenate([np.zeros_like(tp[:, :1]), tp / pos], axis=1)
        fpr = np.concatenate([np.zeros_like(fp[:, :1]), fp / neg], axis=1)
        auroc = np.sum(np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]) / 2, axis=1)
        brier = (w @ (np.asarray(p, dtype=np.float64) - y) ** 2) / w.sum(axis=1)
    auprc[pos[:, 0] == 0] = np.nan
    auroc[(pos[:, 0] == 0) | (neg[:, 0] == 0)] = np.nan
    return {"auprc": auprc, "auroc": auroc, "brier": brier}


def _resample_weights(groups, n_boot: int, seed: int):
    """Yield (b, n) row weights: each resample draws patients with replacement, rows follow them."""
    _, inverse = np.unique(np.asarray(groups), return_inverse=True)
    n_groups = int(inverse.max()) + 1 if len(inverse) else 0
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // max(len(inverse), 1))
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        draws = rng.integers(0, n_groups, size=(b, n_groups))
        flat = (draws + np.arange(b)[:, None] * n_groups).ravel()
        counts = np.bincount(flat, minlength=b * n_groups).reshape(b, n_groups)
        yield counts[:, inverse].astype(np.float64)


def bootstrap(y, scores: list, groups, n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """Resampled metrics of several score vectors on the *same* resamples: one dict of (n_boot,) per score."""
    blocks = [_sorted_blocks(y, p) for p in scores]
    out = [{m: [] for m in METRICS} for _ in scores]
    for w in _resample_weights(groups, n_boot, seed):
        for k, (p, (order, last)) in enumerate(zip(scores, blocks)):
            for m, v in _weighted_metrics(y, p, w, order, last).items():
                out[k][m].append(v)
    return [{m: np.concatenate(v) for m, v in d.items()} for d in out]


def _ci(values: np.ndarray) -> list[float]:
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return [float("nan"), float("nan")]
    lo, hi = np.percentile(finite, [2.5, 97.5])
    return [float(lo), float(hi)]


def summarize(y, p, groups, n_boot: int = 1000, seed: int = 0) -> dict:
    """AUPRC, AUROC, Brier with 95% patient-bootstrap CIs, prevalence, n, n_pos."""
    y = np.asarray(y, dtype=bool)
    point = point_metrics(y, p)
    boot = bootstrap(y, [p], groups, n_boot, seed)[0]
    out = {}
    for m in METRICS:
        out[m], out[f"{m}_ci"] = point[m], _ci(boot[m])
    out.update(prevalence=float(y.mean()) if len(y) else float("nan"), n=int(len(y)), n_pos=int(y.sum()))
    return out


def paired_bootstrap(y, p_a, p_b, groups, metric: str = "auprc", n_boot: int = 1000, seed: int = 0) -> dict:
    """metric(a) - metric(b) on the same patients, its 95% CI and a two-sided bootstrap p-value."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}")
    y = np.asarray(y, dtype=bool)
    diff = point_metrics(y, p_a)[metric] - point_metrics(y, p_b)[metric]
    a, b = bootstrap(y, [p_a, p_b], groups, n_boot, seed)
    d = a[metric] - b[metric]
    d = d[np.isfinite(d)]
    p_value = min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0))) if len(d) else float("nan")
    return {"diff": float(diff), "ci": _ci(d), "p_value": float(p_value)}
