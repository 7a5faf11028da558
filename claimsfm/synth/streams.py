"""Per-patient random streams, vectorised over patients.

Each patient gets a 64-bit key from `SeedSequence([seed, patient])`, so a patient's history does
not depend on how many other patients are simulated. A draw is a counter-based hash
(splitmix64) of (key, month, slot): any month's uniforms for all patients come from one numpy
expression, with no per-patient Python loop and no shared generator state to keep in order.
"""
from __future__ import annotations

import numpy as np

from claimsfm.splits import splitmix64

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def patient_keys(seed: int, n: int) -> np.ndarray:
    """(n,) uint64 keys, one per patient, from SeedSequence([seed, patient])."""
    keys = np.empty(n, dtype=np.uint64)
    for i in range(n):
        keys[i] = np.random.SeedSequence([seed, i]).generate_state(1, np.uint64)[0]
    return keys


def uniform(keys: np.ndarray, month: int, slot: int) -> np.ndarray:
    """(n,) float64 in [0, 1): the patient's draw number `slot` in month `month`."""
    counter = np.uint64((month & 0xFFFFFFFF) << 20 | (slot & 0xFFFFF))
    with np.errstate(over="ignore"):
        x = splitmix64(keys + _GOLDEN * counter)  # splitmix64 adds the first golden step itself
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def choice(u: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Inverse-CDF choice per row: u (n,), weights (n, k) non-negative -> (n,) int64."""
    w = np.asarray(weights, dtype=np.float64)
    cdf = np.cumsum(w, axis=1)
    total = cdf[:, -1:]
    idx = (cdf <= u[:, None] * total).sum(axis=1)
    return np.minimum(idx, w.shape[1] - 1)
