"""Sequence builder: C++ == Python twin, no leakage past the cutoff, truncation keeps the latest."""
import numpy as np
import pytest

from claimsfm.data import build_sequences, build_store, sequence_lengths
from claimsfm.data import reference as ref
from claimsfm.data.format import CLS, SEP
from claimsfm.data.sequences import PRETRAIN_MAX_GAP_MONTHS, pretrain_reference
from claimsfm.errors import ClaimsfmError

from helpers.medskit import day, random_subjects, write_meds

FIELDS = ("offsets", "input_ids", "age_months", "visit", "months", "segment", "days_before", "gap_days")


@pytest.fixture(scope="module")
def rand_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("seq")
    write_meds(root, random_subjects(150, seed=11))
    return build_store(root, root / "store", min_count=1)


@pytest.fixture(scope="module")
def boundary_store(tmp_path_factory):
    """One subject whose codes identify their day: the last day of March, 1 April, mid-March."""
    root = tmp_path_factory.mktemp("boundary")
    events = [
        ((2021, 3, 2), "JPDX//1000001", "F1", False),
        ((2021, 3, 15), "JPDRUG//600000001", "F1", False),
        ((2021, 3, 31), "JPDX//1000002", "F1", False),        # on the boundary day: visible
        ((2021, 4, 1), "JPDX//1000003", "F1", False),         # the next day: never visible
        ((2021, 4, 30), "JPDRUG//600000002", "F1", False),
    ]
    subj = {"id": 5, "split": "train", "birth": (1980, 1, 20), "events": events}
    write_meds(root, [subj])
    return build_store(root, root / "store", min_count=1)


def _names(store, ids):
    return [store.id_to_token[i] for i in ids]


def test_boundary_day_and_month(boundary_store):
    s = boundary_store
    at = lambda c: _names(s, build_sequences(s, [0], np.array([c])).input_ids)  # noqa: E731
    assert at(day(2021, 3, 31)) == ["[CLS]", "JPDX//1000001", "JPDRUG//600000001", "JPDX//1000002"]
    assert at(day(2021, 3, 30)) == ["[CLS]", "JPDX//1000001", "JPDRUG//600000001"]
    assert at(day(2021, 4, 1)) == at(day(2021, 3, 31))[:1] + at(day(2021, 3, 31))[1:] + ["[SEP]", "JPDX//1000003"]
    assert at(day(2021, 3, 1)) == ["[CLS]"]
    whole = build_sequences(s, [0])
    assert _names(s, whole.input_ids)[-1] == "JPDRUG//600000002"
    # features: age in months from January 1980; months since the first event; visits 1, 2
    assert list(whole.age_months) == [-1, 494, 494, 494, 494, 495, 495]
    assert list(whole.months) == [0, 0, 0, 0, 0, 1, 1]
    assert list(whole.visit) == [0, 1, 1, 1, 1, 2, 2] and list(whole.segment) == [0, 1, 1, 1, 1, 0, 0]


def test_time_inputs(boundary_store):
    s = boundary_store
    # Whole history: the reference is the end of the last event's month (30 April).
    whole = build_sequences(s, [0])
    assert _names(s, whole.input_ids)[4] == "[SEP]"
    assert list(whole.days_before) == [0, 59, 46, 30, 30, 29, 0]
    # [CLS] carries the gap from the last event to the reference; visit 2 opens 1 day after visit 1.
    assert list(whole.gap_days) == [0, -1, -1, -1, -1, 1, 1]
    # At a prediction time (cutoff = reference = 10 April): nothing after it, times counted back from it.
    t = build_sequences(s, [0], np.array([day(2021, 4, 10)]))
    assert list(t.days_before) == [0, 39, 26, 10, 10, 9] and list(t.gap_days) == [9, -1, -1, -1, -1, 1]
    # An explicit reference moves every time before it, and the [CLS] gap, by the same days.
    later = build_sequences(s, [0], np.array([day(2021, 4, 10)]), reference_day=np.array([day(2021, 6, 10)]))
    assert list(later.days_before - t.days_before) == [0] + [61] * 5 and later.gap_days[0] == 70
    # Truncation keeps the gap to the event before the window.
    short = build_sequences(s, [0], max_len=3)
    assert _names(s, short.input_ids) == ["[CLS]", "JPDX//1000003", "JPDRUG//600000002"]
    assert list(short.gap_days) == [0, 1, 1]


def test_pretrain_reference_is_a_later_month_end(rand_store):
    s = rand_store
    rows = np.flatnonzero(np.diff(s.offsets) > 0)
    last = s.day[s.offsets[rows + 1] - 1]
    a, b = (pretrain_reference(s, rows, seed=3, epoch=e) for e in (0, 1))
    np.testing.assert_array_equal(a, pretrain_reference(s, rows, seed=3, epoch=0))  # deterministic
    assert not np.array_equal(a, b)  # a fresh draw each epoch
    ends = a.astype("datetime64[D]")
    assert ((ends + 1).astype("datetime64[M]") != ends.astype("datetime64[M]")).all()  # month ends
    months = ends.astype("datetime64[M]").astype(int) - last.astype("datetime64[D]").astype("datetime64[M]").astype(int)
    assert months.min() == 0 and months.max() <= PRETRAIN_MAX_GAP_MONTHS
    assert 0.3 < (months == 0).mean() < 0.7


def test_native_equals_python_twin(rand_store):
    s = rand_store
    rng = np.random.default_rng(0)
    subjects = rng.integers(0, s.n_subjects, 300)
    cutoffs = rng.integers(s.day.min() - 5, s.day.max() + 5, 300).astype(np.int32)
    references = cutoffs + rng.integers(0, 400, 300).astype(np.int32)
    for max_len in (2, 3, 7, 40, 512):
        for cut, reference in ((None, None), (cutoffs, None), (None, references), (cutoffs, references)):
            fast = build_sequences(s, subjects, cut, max_len, reference)
            slow = ref.build_sequences(s, subjects, cut, max_len, reference)
            for f in FIELDS:
                np.testing.assert_array_equal(getattr(fast, f), getattr(slow, f), err_msg=f"{f} max_len={max_len}")
            np.testing.assert_array_equal(sequence_lengths(s, subjects, cut, max_len), fast.lengths)


def test_no_token_after_cutoff_and_truncation_keeps_latest(rand_store):
    s = rand_store
    rng = np.random.default_rng(1)
    subjects = np.arange(s.n_subjects)
    cutoffs = rng.integers(s.day.min(), s.day.max(), s.n_subjects).astype(np.int32)
    full = build_sequences(s, subjects, cutoffs, max_len=10_000)
    short = build_sequences(s, subjects, cutoffs, max_len=9)
    for i, r in enumerate(subjects):
        lo, hi = s.offsets[r], s.offsets[r + 1]
        visible = s.token[lo:hi][s.day[lo:hi] <= cutoffs[i]]
        seq = full.tokens(i)
        assert seq[0] == CLS and list(seq[seq != SEP][1:]) == list(visible)
        kept = short.tokens(i)
        assert len(kept) <= 9 and kept[0] == CLS and (len(kept) == 1 or kept[1] != SEP)
        assert list(kept[1:]) == list(seq[len(seq) - len(kept) + 1:])  # a suffix: the most recent
        if len(seq) > 9:
            assert len(kept) >= 8  # only a would-be leading [SEP] may be dropped


def test_sep_between_visits_only(rand_store):
    s = rand_store
    seqs = build_sequences(s, np.arange(s.n_subjects), max_len=10_000)
    for i in range(len(seqs)):
        r = seqs.subjects[i]
        v = s.visit[s.offsets[r]:s.offsets[r + 1]]
        assert int((seqs.tokens(i) == SEP).sum()) == int((v[1:] != v[:-1]).sum())


def test_bad_requests(rand_store):
    with pytest.raises(ClaimsfmError, match="out of range"):
        build_sequences(rand_store, [rand_store.n_subjects])
    with pytest.raises(ClaimsfmError, match="max-len"):
        build_sequences(rand_store, [0], max_len=1)
    with pytest.raises(ClaimsfmError, match="cutoff_day"):
        build_sequences(rand_store, [0, 1], np.array([3], np.int32))
