"""Token store: build from a hand-made MEDS dataset, reopen memory-mapped, refuse other versions."""
import json
import pickle

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from claimsfm.data import FORMAT_VERSION, build_store, open_store
from claimsfm.data.format import month_of_day
from claimsfm.errors import ClaimsfmError

from helpers.medskit import PARENTS, day, random_subjects, write_meds

A, B, C = 100, 7, 55  # subject ids, deliberately unsorted


def _hand_subjects():
    dx1, dx2, drug = "JPDX//1000001", "JPDX//1000002", "JPDRUG//600000001"
    a_events = [
        ((2020, 1, 10), drug, "F1", False, 2.0),
        ((2020, 1, 3), "JPVISIT//INPATIENT", "F1", False),
        ((2020, 1, 3), dx1, "F1", True),
        ((2020, 1, 5), "JPVISIT//OUTPATIENT", "F2", False),   # same month, other facility: 2nd visit
        ((2020, 1, 5), dx2, "F2", False),
        ((2020, 2, 1), dx1, "F1", False),                       # next month: 3rd visit
        ((2020, 2, 29), "MEDS_DEATH", None, False),
    ]
    b_events = [((2019, 12, 31), dx1, "F9", False), ((2019, 12, 31), drug, "F9", False, 1.0)]
    return [
        {"id": A, "split": "train", "sex": "F", "birth": (1950, 6, 15), "events": a_events},
        {"id": B, "split": "train", "sex": "M", "birth": (1960, 1, 1), "events": b_events},
        {"id": C, "split": "held_out", "events": [((2021, 3, 3), "JPDX//1000003", "F1", False)] * 3},
    ]


@pytest.fixture
def hand_store(tmp_path):
    write_meds(tmp_path / "meds", _hand_subjects())
    return build_store(tmp_path / "meds", tmp_path / "meds" / "store", min_count=1)


def test_subject_fields(hand_store):
    s = hand_store
    assert s.n_subjects == 3 and list(s.subject_ids) == [B, C, A]
    assert list(s.split) == [0, 2, 0]
    assert list(s.sex) == [1, 0, 2]
    assert list(s.birth_day) == [day(1960, 1, 1), -1, day(1950, 6, 15)]
    assert list(s.death_day) == [-1, -1, day(2020, 2, 29)]
    assert list(np.diff(s.offsets)) == [2, 3, 7]
    assert s.first_month == 2019 * 12 + 11 and s.last_month == 2021 * 12 + 2
    assert isinstance(s.token, np.memmap) and not s.token.flags.writeable


def test_events_sorted_with_visits_and_flags(hand_store):
    s = hand_store
    a = slice(s.offsets[2], s.offsets[3])
    codes = [s.code_names[c] for c in s.code[a]]
    assert codes == ["JPDX//1000001", "JPVISIT//INPATIENT", "JPDX//1000002", "JPVISIT//OUTPATIENT",
                     "JPDRUG//600000001", "JPDX//1000001", "MEDS_DEATH"]
    assert list(s.day[a]) == [day(2020, 1, 3)] * 2 + [day(2020, 1, 5)] * 2 + [day(2020, 1, 10), day(2020, 2, 1),
                                                                            day(2020, 2, 29)]
    # visit = month x facility, numbered by first day; the F1 January visit resumes on the 10th
    assert list(s.visit[a]) == [0, 0, 1, 1, 0, 2, 3]
    assert list(s.flags[a]) == [3, 2, 0, 0, 2, 0, 0]  # bit 0 suspected, bit 1 inpatient visit
    assert s.value[a][4] == 2.0 and np.isnan(s.value[a][0])


def test_vocab_counts_train_only_and_suspected_tokens(hand_store):
    s = hand_store
    assert s.id_to_token[:5] == ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"]
    assert "JPDX//1000001//S" in s.vocab and "JPDX//1000003" not in s.vocab  # only held_out has it
    a = slice(s.offsets[2], s.offsets[3])
    assert s.id_to_token[s.token[a][0]] == "JPDX//1000001//S"
    assert s.id_to_token[s.token[a][5]] == "JPDX//1000001"
    c = slice(s.offsets[1], s.offsets[2])
    assert list(s.token[c]) == [4, 4, 4]
    assert s.vocab["JPDX//1000001"] < s.vocab["JPDX//1000002"]  # by descending train count
    assert "JPDX//1000003" in s.code_names  # codes.json keeps every raw code


def test_min_count_and_mapped_level(tmp_path):
    write_meds(tmp_path / "m", _hand_subjects())
    s = build_store(tmp_path / "m", tmp_path / "s2", min_count=2)  # the suspected dx is counted apart
    assert set(s.vocab) == {"[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]", "JPDRUG//600000001", "JPDX//1000001"}
    m = build_store(tmp_path / "m", tmp_path / "s3", min_count=1, code_level="mapped")
    assert "ICD10//E11" in m.vocab and "ICD10//E11//S" in m.vocab and "JPDX//1000001" not in m.vocab
    assert "JPVISIT//INPATIENT" in m.vocab  # codes without parents keep their raw code
    assert m.format["code_level"] == "mapped"


def test_match_codes_uses_parents(hand_store):
    s = hand_store
    hit = s.match_codes(["ICD10//E11"])
    assert {c for c, h in zip(s.code_names, hit) if h} == {"JPDX//1000001", "JPDX//1000002"}
    assert s.code_parents[s.code_names.index("JPDX//1000001")] == PARENTS["JPDX//1000001"]
    assert list(s.rows_of([A, 8, B])) == [2, -1, 0]


def test_version_mismatch_and_missing_store(hand_store, tmp_path):
    fmt = hand_store.path / "format.json"
    header = json.loads(fmt.read_text())
    header["FORMAT_VERSION"] = FORMAT_VERSION + 1
    fmt.write_text(json.dumps(header))
    with pytest.raises(ClaimsfmError, match="format version"):
        open_store(tmp_path / "meds")
    with pytest.raises(ClaimsfmError, match="no token store"):
        open_store(tmp_path / "nowhere")


def test_bad_input_is_a_clear_error(tmp_path):
    write_meds(tmp_path / "m", _hand_subjects())
    shard = next((tmp_path / "m" / "data").rglob("*.parquet"))
    pq.write_table(pq.read_table(shard).drop(["code"]), shard)
    with pytest.raises(ClaimsfmError, match=r"\.parquet: not a MEDS shard: missing column\(s\) code"):
        build_store(tmp_path / "m", tmp_path / "s")
    with pytest.raises(ClaimsfmError, match="code-level"):
        build_store(tmp_path / "m", tmp_path / "s", code_level="icd")


def test_subject_in_two_shards_is_refused(tmp_path):
    subs = _hand_subjects()
    write_meds(tmp_path / "m", subs)
    t = pq.read_table(tmp_path / "m" / "data" / "train" / "0.parquet")
    pq.write_table(t.filter(pa.compute.equal(t["subject_id"], A)), tmp_path / "m" / "data" / "train" / "1.parquet")
    with pytest.raises(ClaimsfmError, match="one MEDS shard"):
        build_store(tmp_path / "m", tmp_path / "s")


def _expected_events(subject):
    """Independent oracle: per-subject sort by (day, visit, code) with visits from first principles."""
    evs = [(day(*e[0]), e[1], e[2] or "", bool(e[3])) for e in subject["events"]]
    visits = {}
    for d, _, fac, _ in evs:
        key = (int(month_of_day(np.array([d]))[0]), fac)
        visits[key] = min(visits.get(key, d), d)
    rank = {k: i for i, k in enumerate(sorted(visits, key=lambda k: (visits[k], k[1])))}
    rows = [(d, rank[(int(month_of_day(np.array([d]))[0]), fac)], code, s) for d, code, fac, s in evs]
    return sorted(rows, key=lambda r: r[:3])


def test_random_dataset_matches_oracle_and_is_shard_invariant(tmp_path):
    subjects = random_subjects(60, seed=3)
    write_meds(tmp_path / "one", subjects)
    write_meds(tmp_path / "many", subjects, shards_per_split=3, splits_file=False)
    s1 = build_store(tmp_path / "one", tmp_path / "one" / "store", min_count=2)
    s3 = build_store(tmp_path / "many", tmp_path / "many" / "store", min_count=2)
    for name in ("subject_ids", "split", "offsets", "code", "token", "day", "visit", "flags", "birth_day", "sex"):
        np.testing.assert_array_equal(getattr(s1, name), getattr(s3, name), err_msg=name)
    assert s1.vocab == s3.vocab
    by_id = {s["id"]: s for s in subjects}
    for i, sid in enumerate(s1.subject_ids):
        lo, hi = s1.offsets[i], s1.offsets[i + 1]
        got = [(int(s1.day[k]), int(s1.visit[k]), s1.code_names[s1.code[k]], bool(s1.flags[k] & 1))
               for k in range(lo, hi)]
        assert got == _expected_events(by_id[int(sid)])


def test_store_pickles_by_path(hand_store):
    clone = pickle.loads(pickle.dumps(hand_store))
    assert len(pickle.dumps(hand_store)) < 1000
    np.testing.assert_array_equal(clone.token, hand_store.token)


def test_native_event_order_equals_numpy_twin():
    from claimsfm import _native
    from claimsfm.data import reference as ref

    rng = np.random.default_rng(9)
    n, m = 20000, 300
    sid = rng.integers(0, m, n).astype(np.int64)
    day = rng.integers(18000, 18400, n).astype(np.int32)  # ~13 months: many same-month visits
    fac = rng.integers(-1, 4, n).astype(np.int32)
    code = rng.integers(0, 30, n).astype(np.int32)
    inp = (rng.random(n) < 0.05).astype(np.uint8)
    fast = _native.order_events(sid, day, fac, code, inp, m)
    slow = ref.order_events(sid, day, fac, code, inp, m)
    for a, b in zip(fast, slow):
        np.testing.assert_array_equal(a, b)


def test_minimal_external_meds(tmp_path):
    """MEDS made elsewhere: only the core columns, ns timestamps, int32 ids, an empty shard, no metadata."""
    import datetime as dt

    t = pa.table({
        "subject_id": pa.array([3, 3, 3, 9], pa.int32()),
        "time": pa.array([None, dt.datetime(2020, 5, 1, 10), dt.datetime(2020, 5, 1, 9), dt.datetime(2021, 1, 1)],
                         pa.timestamp("ns")),
        "code": pa.array(["SEX//F", "B", "A", "A"]),
    })
    (tmp_path / "data" / "train").mkdir(parents=True)
    pq.write_table(t, tmp_path / "data" / "train" / "0.parquet")
    pq.write_table(t.slice(0, 0), tmp_path / "data" / "train" / "1.parquet")
    s = build_store(tmp_path, tmp_path / "store", min_count=1)
    assert list(s.subject_ids) == [3, 9] and list(s.sex) == [2, 0] and list(s.split) == [0, 0]
    assert [s.code_names[c] for c in s.code] == ["A", "B", "A"]  # same day: by code
    assert list(s.visit) == [0, 0, 0] and list(s.flags) == [0, 0, 0] and np.isnan(s.value).all()
    with pytest.raises(ClaimsfmError, match="mapped needs parent codes"):
        build_store(tmp_path, tmp_path / "store2", code_level="mapped")
