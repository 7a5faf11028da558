"""Power-law fit of loss against model size: L(N) = a * N^(-b) + c.

Three parameters from a handful of points is fragile, so the fit works on N in millions (keeps `a`
near the loss scale), bounds every parameter (a > 0, 0 < b < 3, 0 <= c < min(L)), and starts
`curve_fit` from several irreducible-loss guesses, keeping the smallest squared error. Each start
takes `b` from a straight line through log(L - c) against log N, which is exact when c is right.
The reported `a` is for N in raw parameters.

Identifiability: three free parameters need at least four distinct sizes to leave a residual that can
test the law (three points are fitted exactly by many (a, b, c)). `loss_law` reports the free fit only
from MIN_FREE_SCALES sizes up; with fewer (but at least MIN_FIXED_SCALES) it fixes c (default 0, a pure
power law, a straight line in log-log) and says so; below that it reports no fit and why.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from claimsfm.errors import ClaimsfmError

_SCALE = 1e6  # N is fitted in millions of parameters
_B_MAX = 3.0
MIN_FREE_SCALES = 4   # a, b and c free
MIN_FIXED_SCALES = 3  # c fixed: a and b from a log-log line, one residual degree of freedom


def _model(x, a, b, c):
    return a * np.power(x, -b) + c


def _start(x: np.ndarray, y: np.ndarray, c0: float) -> tuple[float, float, float]:
    slope, intercept = np.polyfit(np.log(x), np.log(np.maximum(y - c0, 1e-12)), 1)
    b0 = float(np.clip(-slope, 1e-3, _B_MAX - 1e-3))
    return float(math.exp(intercept)), b0, c0


def fit_power_law(n_params, losses) -> dict | None:
    """Fit L(N) = a N^-b + c; None with fewer than 3 distinct sizes (a 3-parameter law needs 3).

    Returns `{"a", "b", "c", "rmse", "n_points", "formula"}`; `a` is for N in parameters.
    """
    from scipy.optimize import OptimizeWarning, curve_fit

    n = np.asarray(n_params, dtype=np.float64)
    y = np.asarray(losses, dtype=np.float64)
    if n.shape != y.shape:
        raise ClaimsfmError("power-law fit: parameter counts and losses differ in length")
    keep = np.isfinite(n) & np.isfinite(y) & (n > 0)
    n, y = n[keep], y[keep]
    if len(np.unique(n)) < 3:
        return None
    x = n / _SCALE
    y_min = float(y.min())
    best = None
    for frac in (0.0, 0.5, 0.8, 0.9, 0.95, 0.99):
        p0 = _start(x, y, frac * y_min)
        upper = (np.inf, _B_MAX, max(y_min * (1 - 1e-9), 1e-12))
        p0 = (max(p0[0], 1e-12), p0[1], min(p0[2], upper[2] * 0.999))
        try:
            with warnings.catch_warnings():  # an exact 3-point fit has no covariance; not an error
                warnings.simplefilter("ignore", OptimizeWarning)
                popt, _ = curve_fit(_model, x, y, p0=p0, bounds=((0.0, 0.0, 0.0), upper), maxfev=20000)
        except (RuntimeError, ValueError):
            continue
        sse = float(np.sum((_model(x, *popt) - y) ** 2))
        if best is None or sse < best[1]:
            best = (popt, sse)
    if best is None:
        return None
    (a, b, c), sse = best
    a_raw = float(a) * _SCALE ** float(b)
    return {
        "a": a_raw,
        "b": float(b),
        "c": float(c),
        "rmse": math.sqrt(sse / len(y)),
        "n_points": int(len(y)),
        "c_fixed": False,
        "formula": f"L(N) = {a_raw:.4g} * N^(-{float(b):.3f}) + {float(c):.4f}",
    }


def predict(fit: dict, n_params) -> np.ndarray:
    """Loss predicted by a fit for parameter counts `n_params`."""
    n = np.asarray(n_params, dtype=np.float64)
    return fit["a"] * np.power(n, -fit["b"]) + fit["c"]


def fit_fixed_c(n_params, losses, c: float = 0.0) -> dict | None:
    """Fit L(N) = a N^-b + c with c given: least squares of log(L - c) on log N. None when some L <= c
    or fewer than 2 distinct sizes. Same keys as `fit_power_law`, plus `c_fixed` True."""
    n = np.asarray(n_params, dtype=np.float64)
    y = np.asarray(losses, dtype=np.float64)
    keep = np.isfinite(n) & np.isfinite(y) & (n > 0)
    n, y = n[keep], y[keep]
    if len(np.unique(n)) < 2 or np.any(y <= c):
        return None
    slope, intercept = np.polyfit(np.log(n), np.log(y - c), 1)
    a, b = float(math.exp(intercept)), float(-slope)
    rmse = math.sqrt(float(np.mean((a * np.power(n, -b) + c - y) ** 2)))
    return {"a": a, "b": b, "c": float(c), "rmse": rmse, "n_points": int(len(y)), "c_fixed": True,
            "formula": f"L(N) = {a:.4g} * N^(-{b:.3f}) + {c:g} (c fixed)"}


def loss_law(n_params, losses, fixed_c: float = 0.0) -> dict:
    """The loss law a sweep reports: `{"fit": dict | None, "identifiable": bool, "note": str}`.

    >= MIN_FREE_SCALES distinct sizes: the free 3-parameter fit; MIN_FIXED_SCALES up to that: c fixed at
    `fixed_c`; fewer: no fit. The note says which, in words for the report.
    """
    n = np.asarray(n_params, dtype=np.float64)
    k = len(np.unique(n[np.isfinite(n) & (n > 0)]))
    if k >= MIN_FREE_SCALES:
        fit = fit_power_law(n_params, losses)
        note = (f"L(N) = a·N^-b + c fitted with a, b and c free on {k} scales" if fit else
                f"the 3-parameter fit failed on {k} scales")
        return {"fit": fit, "identifiable": fit is not None, "note": note}
    if k >= MIN_FIXED_SCALES:
        fit = fit_fixed_c(n_params, losses, fixed_c)
        note = (f"{k} scales cannot identify a, b and c of L(N) = a·N^-b + c, so c is fixed at {fixed_c:g} "
                f"(a pure power law) and only a and b are fitted" if fit else
                f"no fit: some loss is at or below the fixed c = {fixed_c:g}")
        return {"fit": fit, "identifiable": fit is not None, "note": note}
    return {"fit": None, "identifiable": False,
            "note": f"not identifiable: {k} scale(s) with an eval loss; L(N) = a·N^-b + c needs "
                    f"{MIN_FREE_SCALES} (or {MIN_FIXED_SCALES} with c fixed)"}
