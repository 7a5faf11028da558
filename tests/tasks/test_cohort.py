"""Cohort engine on hand-built stores: window boundaries, washout, new-user, eligibility rules,
and a loop-per-row reference twin on random stores."""
import datetime as dt

import numpy as np
import pytest

from claimsfm.data.format import month_end_day
from claimsfm.errors import ClaimsfmError
from claimsfm.tasks.cohort import age_years, build_cohort, check_cohort
from claimsfm.tasks.spec import prediction_months

from helpers.cohortkit import incidence, medication, reference_cohort, rows
from helpers.storekit import ListStore, day, epoch_month

T2D, T2D_SUSP, STATIN, HTN = "JPDX//1000001", "JPDX//1000001", "JPDRUG//600000001", "JPDX//1000002"


def yearly(code=HTN, years=range(2015, 2021)):
    """An event every June 2015-2020 and one on 2020-12-30, so the data span 2015-06 .. 2020-12."""
    return [((y, 6, 1), code, False) for y in years] + [((2020, 12, 30), code, False)]


def person(sid, birth, events):
    return {"subject_id": sid, "birth": birth, "events": events}


def test_grid_boundaries_washout_death_age_history_activity():
    recs = [
        person(1, (1950, 1, 1), yearly() + [((2018, 3, 5), T2D, True), ((2019, 2, 10), T2D, False)]),
        person(2, (1990, 1, 1), yearly()),                                   # too young
        person(3, (1950, 1, 1), yearly() + [((2018, 12, 31), T2D, False)]),  # on t_day exactly
        person(4, (1950, 1, 1), yearly() + [((2018, 6, 15), "MEDS_DEATH", False)]),
        person(5, (1950, 1, 1), [((2017, 6, 1), HTN, False), ((2019, 11, 1), HTN, False)]),
        person(6, (1950, 1, 1), [((2015, 1, 2), HTN, False), ((2020, 12, 30), HTN, False)]),
    ]
    store = ListStore(recs)
    spec = incidence()
    grid = prediction_months(spec, store.first_month, store.last_month)
    assert grid == [epoch_month(y, 12) for y in (2016, 2017, 2018, 2019)]
    got = rows(build_cohort(store, spec))
    m = {y: epoch_month(y, 12) for y in range(2016, 2020)}
    assert got == {
        (1, m[2016]): False, (1, m[2017]): False, (1, m[2018]): True,           # suspected is no label
        (3, m[2016]): False, (3, m[2017]): True,                               # (t, t+12] includes t+12's last day
        (4, m[2016]): False, (4, m[2017]): False,                              # dead before 2018-12
        (5, m[2019]): False,                                                   # history from 2018-06, active 2018: none
    }


def test_prediction_time_split_and_ids():
    recs = [person(i, (1950, 1, 1), yearly()) for i in range(1, 40)]
    store = ListStore(recs)
    c = build_cohort(store, incidence())
    assert np.all(c.t_day == month_end_day(c.t_month))
    assert c.prediction_time[0].astype(dt.datetime) == dt.datetime(2016, 12, 31, 23, 59, 59)
    assert np.array_equal(c.split, store.split[c.subject_idx])
    assert np.array_equal(c.subject_id, store.subject_ids[c.subject_idx])


def test_new_user_and_any_use():
    drug = [((2017, 5, 1), STATIN, False), ((2018, 11, 15), STATIN, False)]
    store = ListStore([person(7, (1950, 1, 1), yearly() + drug)])
    spec = medication()
    m = lambda y, mo: epoch_month(y, mo)  # noqa: E731
    grid = [m(2016, 9)] + [m(y, mo) for y in range(2017, 2021) for mo in (3, 9)]
    assert prediction_months(spec, store.first_month, store.last_month) == grid
    anyu = rows(build_cohort(store, medication("none")))
    assert {t for (_, t), v in anyu.items() if v} == {m(2017, 3), m(2018, 9)}
    assert set(anyu) == {(7, t) for t in grid}
    new = rows(build_cohort(store, spec))
    # 12-month washout (t-12 month end, t]: use in 2017-05 blocks 2017-09 and 2018-03,
    # use in 2018-11 blocks 2019-03 and 2019-09.
    assert new == {(7, m(2016, 9)): False, (7, m(2017, 3)): True, (7, m(2018, 9)): True,
                   (7, m(2020, 3)): False, (7, m(2020, 9)): False}


def test_age_is_calendar_years():
    b = np.array([day(1980, 3, 1), day(1980, 3, 1)])
    assert list(age_years(b, np.array([day(2020, 2, 29), day(2020, 3, 1)]))) == [39, 40]


def test_empty_cohort_is_a_clear_error():
    store = ListStore([person(2, (2000, 1, 1), yearly())])
    with pytest.raises(ClaimsfmError, match="t2d_test.*empty cohort"):
        check_cohort(build_cohort(store, incidence()))


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_loop_reference_on_random_stores(seed):
    rng = np.random.default_rng(seed)
    codes = [T2D, HTN, STATIN, "JPDRUG//600000002", "JPPROC//100000001", "MEDS_DEATH"]
    recs = []
    for sid in range(60):
        n = int(rng.integers(0, 25))
        ev = []
        for _ in range(n):
            d = dt.date(2014, 1, 1) + dt.timedelta(days=int(rng.integers(0, 7 * 365)))
            c = codes[int(rng.choice(6, p=[.1, .3, .15, .1, .3, .05]))]
            ev.append(((d.year, d.month, d.day), c, bool(rng.random() < 0.3) and c.startswith("JPDX")))
        ev = [e for e in ev if e[1] != "MEDS_DEATH"] + [e for e in ev if e[1] == "MEDS_DEATH"][:1]
        recs.append(person(1000 + sid, (int(rng.integers(1930, 1995)), 5, 17), ev or yearly()))
    store = ListStore(recs)
    for spec in (incidence(), incidence(min_age=0, washout="none", history=0, active=0),
                 medication(), medication("none")):
        assert rows(build_cohort(store, spec)) == reference_cohort(store, spec)
