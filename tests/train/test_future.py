"""The future-codes pretraining objective: cutoffs, targets against a brute-force loop, batches that hold
nothing after the cutoff, the loss against a hand computation, and the parameter count of its head."""
import numpy as np
import pytest

from helpers.storekit import planted_records, write_records

torch = pytest.importorskip("torch")

from claimsfm.data import PretrainLoader, build_store  # noqa: E402
from claimsfm.data.format import month_end_day, month_of_day  # noqa: E402
from claimsfm.data.sequences import future_codes, pretrain_cutoff  # noqa: E402


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("future")
    write_records(planted_records(n=200, seed=3), root)
    return build_store(root, root / "store", min_count=1)


def test_cutoffs_are_month_ends_within_each_history_and_keyed_by_epoch(store):
    rows = np.arange(store.n_subjects)
    cut = pretrain_cutoff(store, rows, seed=0, epoch=0)
    first = month_of_day(np.asarray(store.day)[np.asarray(store.offsets)[rows]])
    month = month_of_day(cut)
    assert np.array_equal(month_end_day(month), cut)
    assert (month >= first).all() and (month <= store.last_month).all()
    assert np.array_equal(cut, pretrain_cutoff(store, rows, seed=0, epoch=0))
    assert not np.array_equal(cut, pretrain_cutoff(store, rows, seed=0, epoch=1))
    assert len(np.unique(month - first)) > 10  # spread over the histories, not one point


def test_future_codes_match_a_brute_force_loop(store):
    rows = np.arange(store.n_subjects)
    cut = pretrain_cutoff(store, rows, seed=5, epoch=2)
    ids, seq, known = future_codes(store, rows, cut, 3)
    offsets, day, token = np.asarray(store.offsets), np.asarray(store.day), np.asarray(store.token)
    for i, r in enumerate(rows):
        end_month = month_of_day(cut[i]) + 3
        assert known[i] == (end_month <= store.last_month)
        events = range(offsets[r], offsets[r + 1])
        want = sorted(token[k] for k in events if cut[i] < day[k] <= month_end_day(end_month)) if known[i] else []
        assert sorted(ids[seq == i]) == want
    assert known.any() and (~known).any() and len(ids) > 0


def test_batches_hold_nothing_after_the_cutoff_and_carry_the_targets(store):
    loader = PretrainLoader(store, max_len=64, batch_tokens=512, seed=1, future_months=3)
    batch = loader.batch(0, 0)
    assert (batch["days_before"] >= 0).all()  # every token at or before the cutoff (= the reference)
    n_seq = len(batch["cu_seqlens"]) - 1
    assert batch["future_known"].shape == (n_seq,) and batch["future_known"].dtype == torch.bool
    assert (batch["future_seq"] < n_seq).all() and batch["future_known"][batch["future_seq"]].all()
    plain = PretrainLoader(store, max_len=64, batch_tokens=512, seed=1).batch(0, 0)
    assert "future_known" not in plain


def test_future_loss_is_the_per_sequence_normalised_bce():
    from claimsfm.train.loop import future_loss_sum

    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.0, -2.0], [1.0, 1.0, 1.0]])
    batch = {"future_ids": torch.tensor([0, 2, 1]), "future_seq": torch.tensor([0, 0, 1]),
             "future_known": torch.tensor([True, True, False])}
    target = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits[:2], target, reduction="none").sum(1)
    want = bce[0] / 2 + bce[1] / 1   # sequence 2's window is unknown: no loss
    torch.testing.assert_close(future_loss_sum(logits, batch), want)


def test_future_head_counts_and_switch():
    from dataclasses import replace

    from claimsfm.model import Encoder, ModelConfig, count_params
    from claimsfm.model.scale import future_head_params

    cfg = ModelConfig(n_layer=1, d_model=32, n_head=2, d_ff=64, vocab_size=300, max_len=64)
    on, off = Encoder(cfg), Encoder(replace(cfg, future_months=0))
    assert on.num_params() == count_params(300, 64, 1, 32, 64)
    assert off.num_params() == count_params(300, 64, 1, 32, 64, future_months=0)
    assert on.num_params()["total_params"] - off.num_params()["total_params"] == future_head_params(32, 300)
    assert on.num_params()["non_embedding_params"] == off.num_params()["non_embedding_params"]
    with torch.no_grad():
        p = torch.sigmoid(on.future_logits(torch.randn(4, 32)))
    assert p.shape == (4, 300) and float(p.mean()) < 0.05   # starts at a rare-event prior, not 0.5
