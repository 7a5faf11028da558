"""LightGBM features against a loop reference (nothing after t leaks in); the booster learns a signal."""
import datetime as dt
import subprocess
import sys

import numpy as np

from claimsfm.baseline.features import DENSE, build_features, feature_names
from claimsfm.baseline.gbm import GBMConfig, fit, predict
from claimsfm.data.format import month_end_day, month_of_day

from helpers.storekit import ListStore, day


def _store(seed=0, n=30):
    rng = np.random.default_rng(seed)
    codes = ["JPDX//1000001", "JPDX//1000002", "JPDRUG//600000001", "JPPROC//100000001"]
    recs = []
    for sid in range(n):
        ev = []
        for _ in range(int(rng.integers(1, 30))):
            d = dt.date(2015, 1, 1) + dt.timedelta(days=int(rng.integers(0, 5 * 365)))
            ev.append(((d.year, d.month, d.day), codes[int(rng.integers(4))], bool(rng.random() < .2)))
        recs.append({"subject_id": 500 + sid, "birth": (1940 + sid, 2, 3), "sex": 1 + sid % 2, "events": ev})
    return ListStore(recs)


def _reference_row(store, i, t_day):
    V = store.vocab_size
    x = np.zeros(4 * V + len(DENSE))
    tm = int(month_of_day(t_day))
    ev = [k for k in range(store.offsets[i], store.offsets[i + 1]) if store.day[k] <= t_day]
    for k in ev:
        v, ago = store.token[k], tm - int(month_of_day(store.day[k]))
        x[v] += 1
        x[V + v] += ago < 3
        x[2 * V + v] += ago < 12
        x[3 * V + v] = 1 / (1 + ago)  # events ascend in day, the last one wins
    b, t = dt.date(1970, 1, 1) + dt.timedelta(int(store.birth_day[i])), dt.date(1970, 1, 1) + dt.timedelta(int(t_day))
    age = t.year - b.year - ((t.month, t.day) < (b.month, b.day))
    first = tm - int(month_of_day(store.day[ev[0]])) if ev else 0
    x[4 * V:] = [age, store.sex[i] == 1, store.sex[i] == 2, len(ev),
                 max([store.visit[k] + 1 for k in ev], default=0), first]
    return x


def test_features_match_loop_reference_and_ignore_the_future():
    store = _store()
    subj = np.repeat(np.arange(store.n_subjects), 3)
    t_day = np.tile([int(month_end_day(m)) for m in (24200, 24210, 24225)], store.n_subjects)
    X = build_features(store, subj, t_day).toarray()
    assert X.shape[1] == len(feature_names(store))
    for r in range(len(subj)):
        np.testing.assert_allclose(X[r], _reference_row(store, subj[r], t_day[r]), rtol=1e-6)


def test_lightgbm_learns_a_planted_signal_deterministically():
    rng = np.random.default_rng(0)
    import scipy.sparse as sp
    X = sp.csr_matrix(rng.random((1200, 20)) * (rng.random((1200, 20)) < 0.3))
    y = (X[:, 3].toarray().ravel() + 0.3 * rng.random(1200)) > 0.5
    a, b = slice(0, 800), slice(800, 1000)
    booster = fit(X[a], y[a], X[b], y[b], GBMConfig(num_boost_round=100, num_threads=1))
    p = predict(booster, X[1000:])
    from sklearn.metrics import average_precision_score
    assert average_precision_score(y[1000:], p) > y[1000:].mean() + 0.3
    again = predict(fit(X[a], y[a], X[b], y[b], GBMConfig(num_boost_round=100, num_threads=1)), X[1000:])
    assert np.array_equal(p, again)


def test_baseline_modules_never_import_torch():
    code = "import sys, claimsfm.baseline.features, claimsfm.baseline.gbm; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def test_events_after_the_prediction_time_change_no_feature():
    base = {"subject_id": 9, "birth": (1950, 1, 1), "sex": 2,
            "events": [((2016, 3, 1), "JPDX//1000002", False), ((2016, 12, 31), "JPPROC//100000001", False)]}
    future = dict(base, events=base["events"] + [((2017, 1, 1), "JPDX//1000002", False),
                                                 ((2018, 5, 5), "JPDRUG//600000001", False)])
    t = np.array([day(2016, 12, 31)])
    a = build_features(ListStore([base, future]), np.array([0]), t).toarray()
    b = build_features(ListStore([base, future]), np.array([1]), t).toarray()
    np.testing.assert_array_equal(a, b)
    assert a[0, ListStore([base]).vocab["JPPROC//100000001"]] == 1  # an event on t's own day counts
