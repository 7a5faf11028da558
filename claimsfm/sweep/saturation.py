"""The saturation rule of design.md §3.7 as a non-inferiority test: per task, the smallest scale shown
to be as good as the best, within a stated margin.

Inputs are plain dicts so the rule can be tested on hand-made numbers:
- `auprc`: scale name -> AUPRC of that scale's model on the held-out split;
- `params`: scale name -> total trainable parameters (orders the scales);
- `versus_best`: scale name -> paired bootstrap of (scale - best) as `{"diff", "ci"}`
  (`claimsfm.eval.metrics.paired_bootstrap`), for every scale other than the best;
- `compute`: scale name -> `{"hours", "flops"}` spent pretraining that scale;
- `versus_lightgbm`: paired bootstrap of (best - lightgbm), or None when no baseline ran.

The best is the highest AUPRC; on an exact tie the smaller model wins. Each scale smaller than the
best gets one of three verdicts from the 95% CI [lo, hi] of (scale - best) and the margin δ:
- `non_inferior`: lo > -δ (shown to lose less than δ);
- `inferior`: hi < 0 (shown to be worse);
- `inconclusive`: neither (the CI is too wide to tell), or no paired comparison could be made.
Outcomes per task (`status`):
- `non_inferior`: the smallest non-inferior scale is the saturation scale; the compute saved is the
  best scale's minus its own;
- `best_needed`: every smaller scale is shown inferior (or none is smaller): the best scale is the
  saturation scale and nothing is saved;
- `unresolved`: no smaller scale is non-inferior and at least one is inconclusive: "more data or more
  resamples needed"; no saturation scale and no compute saving is claimed.
A CI that merely reaches 0 is an absence of evidence, not a claim: with wide CIs it would always pick the
smallest scale.
"""
from __future__ import annotations

from claimsfm.errors import ClaimsfmError, check_number

DEFAULT_MARGIN = 0.02  # AUPRC, absolute
UNRESOLVED = "unresolved: more data or more resamples needed"
MARGIN_HELP = ("Non-inferiority margin δ (AUPRC): the saturation scale is the smallest whose paired-bootstrap 95% "
               "CI of (scale − best) has its lower bound above −δ; when every smaller scale is shown worse the "
               "best is needed, otherwise the task is reported unresolved, with no compute saving.")


def order_by_params(params: dict[str, int]) -> list[str]:
    """Scale names from the smallest to the largest model."""
    return sorted(params, key=lambda s: (params[s], s))


def best_scale(auprc: dict[str, float], params: dict[str, int]) -> str:
    """The scale with the highest AUPRC; the smallest of those tied at the top."""
    if not auprc:
        raise ClaimsfmError("saturation: no scale has a result")
    top = max(auprc.values())
    return next(s for s in order_by_params({s: params[s] for s in auprc}) if auprc[s] == top)


def check_margin(margin: float) -> float:
    """The margin δ, or a one-line error naming the flag."""
    check_number("--margin", margin, 0, 1)  # an AUPRC difference: finite, in [0, 1]
    return margin


def compare(ci: tuple[float, float] | list[float] | None, margin: float) -> str:
    """Verdict of one scale against the best from the CI of (scale - best): non_inferior | inferior | inconclusive."""
    if ci is None:
        return "inconclusive"
    if ci[0] > -margin:
        return "non_inferior"
    if ci[1] < 0.0:
        return "inferior"
    return "inconclusive"


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


def _verdicts(auprc, params, versus_best, best, margin) -> dict:
    out = {}
    for scale in order_by_params({s: params[s] for s in auprc}):
        if scale == best:
            out[scale] = {"gap": 0.0, "ci": None, "verdict": "best"}
            continue
        pair = versus_best.get(scale)
        ci = tuple(pair["ci"]) if pair is not None else None
        out[scale] = {"gap": auprc[best] - auprc[scale], "ci": ci, "verdict": compare(ci, margin)}
    return out


def analyze_task(
    auprc: dict[str, float],
    params: dict[str, int],
    versus_best: dict[str, dict],
    compute: dict[str, dict],
    versus_lightgbm: dict | None = None,
    margin: float = DEFAULT_MARGIN,
) -> dict:
    """Best scale, saturation verdict, compute saved and the LightGBM comparison of one task."""
    check_margin(margin)
    missing = [s for s in auprc if s not in params or s not in compute]
    if missing:
        raise ClaimsfmError(f"saturation: no parameter count or compute for scale(s) {', '.join(missing)}")
    best = best_scale(auprc, params)
    verdicts = _verdicts(auprc, params, versus_best, best, margin)
    smaller = [s for s in verdicts if params[s] < params[best] or (params[s] == params[best] and s < best)]
    non_inferior = [s for s in smaller if verdicts[s]["verdict"] == "non_inferior"]
    if non_inferior:
        status, saturation = "non_inferior", non_inferior[0]
    elif all(verdicts[s]["verdict"] == "inferior" for s in smaller):
        status, saturation = "best_needed", best
    else:
        status, saturation = "unresolved", None
    out = {
        "best": best,
        "best_auprc": auprc[best],
        "status": status,
        "saturation": saturation,
        "saturation_auprc": auprc[saturation] if saturation else None,
        "largest_wins": best == order_by_params(params)[-1],
        "margin": margin,
        "scales": verdicts,
        "saved": _saved(compute, best, saturation) if saturation else None,
        "versus_lightgbm": None,
        "beats_lightgbm": None,
    }
    if versus_lightgbm is not None:
        out["versus_lightgbm"] = {"diff": versus_lightgbm["diff"], "ci": tuple(versus_lightgbm["ci"])}
        out["beats_lightgbm"] = bool(versus_lightgbm["ci"][0] > 0.0)
    return out
