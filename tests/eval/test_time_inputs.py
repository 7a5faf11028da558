"""Time inputs hold nothing after the prediction time: an event one day after t changes no input
(sequences, time features, FM embeddings), while the same event before t does."""
import numpy as np
import pytest

from helpers.medskit import day, write_meds

torch = pytest.importorskip("torch")

from claimsfm.data import build_sequences, build_store  # noqa: E402
from claimsfm.eval.finetune import TOKEN_FIELDS, embed  # noqa: E402

T_DAY = day(2021, 3, 31)  # a prediction time: the end of March 2021


def _subjects(extra_day=None):
    events = [((2020, 5, 3), "JPDX//1000001", "F1", False), ((2020, 5, 3), "JPDRUG//600000001", "F1", False),
              ((2020, 11, 20), "JPDRUG//600000001", "F2", False), ((2021, 2, 8), "JPDX//1000002", "F1", False),
              ((2021, 3, 31), "JPDRUG//600000001", "F1", False)]
    other = [((2019, 7, 1), "JPDX//1000002", "F1", False), ((2021, 1, 15), "JPDRUG//600000001", "F3", False)]
    if extra_day is not None:
        d = np.datetime64(extra_day, "D").astype(object)
        events.append(((d.year, d.month, d.day), "JPDRUG//600000001", "F2", False))
    return [{"id": 1, "split": "train", "birth": (1950, 6, 1), "sex": "F", "events": events},
            {"id": 2, "split": "train", "birth": (1970, 1, 1), "sex": "M", "events": other}]


def _store(tmp_path, name, extra_day=None):
    root = tmp_path / name
    write_meds(root, _subjects(extra_day))
    return build_store(root, root / "store", min_count=1)


def _model(vocab_size):
    from claimsfm.model import Encoder, ModelConfig

    torch.manual_seed(0)
    return Encoder(ModelConfig(n_layer=1, d_model=32, n_head=2, d_ff=64, vocab_size=vocab_size, max_len=64))


def _inputs(store, cutoff):
    seqs = build_sequences(store, np.arange(store.n_subjects), np.full(store.n_subjects, cutoff, np.int32), 64)
    return seqs, embed(_model(store.vocab_size), seqs, 1024)


def test_an_event_one_day_after_the_prediction_time_changes_no_input(tmp_path):
    base = _store(tmp_path, "base")
    after = _store(tmp_path, "after", extra_day=T_DAY + 1)
    before = _store(tmp_path, "before", extra_day=T_DAY - 20)
    assert base.vocab == after.vocab == before.vocab and after.n_events == base.n_events + 1
    seqs, emb = _inputs(base, T_DAY)
    seqs_after, emb_after = _inputs(after, T_DAY)
    for field in ("offsets", *TOKEN_FIELDS):
        np.testing.assert_array_equal(getattr(seqs, field), getattr(seqs_after, field), err_msg=field)
    np.testing.assert_array_equal(emb, emb_after)
    # The same event inside the history is seen: new tokens, new time features, a new embedding.
    seqs_before, emb_before = _inputs(before, T_DAY)
    assert seqs_before.lengths[0] > seqs.lengths[0]
    assert not np.allclose(emb_before[0], emb[0]) and np.allclose(emb_before[1], emb[1], atol=1e-6)
    # The time inputs are live: the same history at a later prediction time embeds differently.
    _, emb_later = _inputs(base, T_DAY + 90)
    assert not np.allclose(emb_later[0], emb[0])
