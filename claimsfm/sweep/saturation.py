"""The saturation rule of design.md §3.7: per task, the smallest scale that is as good as the best.

Inputs are plain dicts so the rule can be tested on hand-made numbers:
- `auprc`: scale name -> AUPRC of that scale's model on the held-out split;
- `params`: scale name -> total trainable parameters (orders the scales);
- `versus_best`: scale name -> paired bootstrap of (scale - best) as `{"diff", "ci"}`
  (`claimsfm.eval.metrics.paired_bootstrap`), for every scale other than the best;
- `compute`: scale name -> `{"hours", "flops"}` spent pretraining that scale;
- `versus_lightgbm`: paired bootstrap of (best - lightgbm), or None when no baseline ran.

A scale is "not worse" than the best when the upper end of the CI of (scale - best) reaches 0 (the
CI includes 0, or lies above it through bootstrap noise), or when the AUPRC gap is under
`tolerance`. The best is the highest AUPRC; on an exact tie the smaller model wins, because the
question is how little compute a task needs.
"""
from __future__ import annotations

from claimsfm.errors import ClaimsfmError


def order_by_params(params: dict[str, int]) -> list[str]:
    """Scale names from the smallest to the largest model."""
    return sorted(params, key=lambda s: (params[s], s))


def best_scale(auprc: dict[str, float], params: dict[str, int]) -> str:
    """The scale with the highest AUPRC; the smallest of those tied at the top."""
    if not auprc:
        raise ClaimsfmError("saturation: no scale has a result")
    top = max(auprc.values())
    return next(s for s in order_by_params({s: params[s] for s in auprc}) if auprc[s] == top)


def not_worse(gap: float, ci: tuple[float, float] | list[float] | None, tolerance: float) -> bool:
    """Whether a scale whose AUPRC is `gap` below the best's counts as equally good."""
    if gap < tolerance:
        return True
    return ci is not None and ci[1] >= 0.0


def _saved(compute: dict[str, dict], best: str, sat: str) -> dict:
    total_hours = sum(c["hours"] for c in compute.values())
    total_flops = sum(c["flops"] for c in compute.values())
    hours = compute[best]["hours"] - compute[sat]["hours"]
    flops = compute[best]["flops"] - compute[sat]["flops"]
    return {
        "hours": hours,
        "flops": flops,
        "share_of_sweep": hours / total_hours if total_hours > 0 else 0.0,
        "share_of_best": hours / compute[best]["hours"] if compute[best]["hours"] > 0 else 0.0,
        "flops_share_of_sweep": flops / total_flops if total_flops > 0 else 0.0,
    }


def analyze_task(
    auprc: dict[str, float],
    params: dict[str, int],
    versus_best: dict[str, dict],
    compute: dict[str, dict],
    versus_lightgbm: dict | None = None,
    tolerance: float = 0.0,
) -> dict:
    """Best scale, saturation scale, compute saved and the LightGBM comparison of one task."""
    if tolerance < 0:
        raise ClaimsfmError(f"--tolerance must be >= 0, got {tolerance}")
    missing = [s for s in auprc if s not in params or s not in compute]
    if missing:
        raise ClaimsfmError(f"saturation: no parameter count or compute for scale(s) {', '.join(missing)}")
    best = best_scale(auprc, params)
    verdicts = {}
    for scale in order_by_params({s: params[s] for s in auprc}):
        if scale == best:
            verdicts[scale] = {"gap": 0.0, "ci": None, "not_worse": True}
            continue
        pair = versus_best.get(scale)
        ci = tuple(pair["ci"]) if pair is not None else None
        gap = auprc[best] - auprc[scale]
        verdicts[scale] = {"gap": gap, "ci": ci, "not_worse": not_worse(gap, ci, tolerance)}
    saturation = next(s for s, v in verdicts.items() if v["not_worse"])
    out = {
        "best": best,
        "best_auprc": auprc[best],
        "saturation": saturation,
        "saturation_auprc": auprc[saturation],
        "largest_wins": best == order_by_params(params)[-1],
        "tolerance": tolerance,
        "scales": verdicts,
        "saved": _saved(compute, best, saturation),
        "versus_lightgbm": None,
        "beats_lightgbm": None,
    }
    if versus_lightgbm is not None:
        out["versus_lightgbm"] = {"diff": versus_lightgbm["diff"], "ci": tuple(versus_lightgbm["ci"])}
        out["beats_lightgbm"] = bool(versus_lightgbm["ci"][0] > 0.0)
    return out
