"""The event-table helpers: the fast sort equals a plain 7-key lexsort, and the once-only rules."""
import numpy as np

from claimsfm.ingest.events import NO_TIME, EventTable, first_observations


def random_table(n=20000, seed=0):
    rng = np.random.default_rng(seed)
    return EventTable(
        rng.integers(0, 50, n), np.where(rng.random(n) < 0.1, NO_TIME, rng.integers(0, 5, n) * 10),
        rng.integers(0, 7, n).astype(np.int32), ["c3", "c1", "c2", "c0", "c6", "c5", "c4"],
        np.where(rng.random(n) < 0.3, np.nan, rng.integers(0, 3, n)).astype(np.float32),
        rng.integers(-1, 3, n).astype(np.int32), ["b", "a", "c"], rng.random(n) < 0.5, rng.integers(0, 3, n))


def test_sorted_equals_full_lexsort():
    t = random_table()

    def rank(names):
        return np.argsort(np.argsort(np.asarray(names, dtype=object)))

    fac = np.where(t.facility >= 0, rank(t.facility_names)[np.maximum(t.facility, 0)], -1)
    value = np.where(np.isnan(t.value), -np.inf, t.value)
    ref = t.take(np.lexsort((t.dx_start_us, value, t.suspected, fac, rank(t.code_names)[t.code], t.time_us, t.subject)))
    got = t.sorted()
    for k in ("subject", "time_us", "code", "facility", "suspected", "dx_start_us"):
        assert np.array_equal(getattr(got, k), getattr(ref, k)), k
    assert np.array_equal(got.value, ref.value, equal_nan=True)
    assert got.time_us[got.subject == got.subject[0]][0] == NO_TIME  # static rows first


def test_first_observations():
    names = ["JPDX//1", "SEX//F", "JPPROC//2"]
    t = EventTable(np.array([1, 1, 1, 1, 1, 1, 2]), np.array([30, 10, 20, 5, 5, 7, 9]),
                   np.array([0, 0, 0, 1, 1, 2, 2], np.int32), names, np.full(7, np.nan, np.float32),
                   np.zeros(7, np.int32), ["f"], np.array([0, 1, 0, 0, 0, 0, 0], bool), np.zeros(7, np.int64))
    kept = first_observations(t)
    rows = sorted(zip(kept.subject.tolist(), kept.code.tolist(), kept.time_us.tolist(), kept.suspected.tolist()))
    # dx: first confirmed (t=20) and first suspected (t=10); one sex row; procedures all kept
    assert rows == [(1, 0, 10, True), (1, 0, 20, False), (1, 1, 5, False), (1, 2, 7, False), (2, 2, 9, False)]
