"""Packer and MLM masking: C++ == Python twins, packing invariants, masking rates, collate layouts."""
import numpy as np
import pytest
import torch

from claimsfm import _native
from claimsfm.data import build_sequences, build_store, collate, pack_lengths
from claimsfm.data import reference as ref
from claimsfm.data.collate import TOKEN_KEYS, mask_tokens
from claimsfm.data.format import MASK, N_SPECIAL
from claimsfm.errors import ClaimsfmError

from helpers.medskit import random_subjects, write_meds


@pytest.mark.parametrize("n,max_tokens", [(0, 8), (1, 8), (200, 16), (3000, 512), (500, 100_000)])
def test_packer_equals_twin_and_keeps_invariants(n, max_tokens):
    rng = np.random.default_rng(n)
    lengths = np.minimum(rng.geometric(0.02, n), max_tokens).astype(np.int64)
    if n > 2:
        lengths[:2] = [max_tokens, 0]
    rows = pack_lengths(lengths, max_tokens)
    np.testing.assert_array_equal(rows, ref.pack_lengths(lengths, max_tokens))
    if n:
        fill = np.bincount(rows, weights=lengths)
        assert fill.max() <= max_tokens and set(rows) == set(range(rows.max() + 1))
        # first fit: a row opens only when no earlier row could take that sequence
        assert rows.max() + 1 <= max(1, 2 * int(np.ceil(lengths.sum() / max_tokens)))


def test_packer_rejects_bad_lengths():
    with pytest.raises(ClaimsfmError, match="max_tokens=4"):
        pack_lengths([5], 4)
    with pytest.raises(ClaimsfmError, match="max_tokens"):
        pack_lengths([1], 0)


def _flat_batch(rng, n_seqs=64, vocab=50):
    lens = rng.integers(1, 80, n_seqs)
    cu = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    ids = rng.integers(0, vocab, cu[-1]).astype(np.int32)
    ids[cu[:-1]] = 1
    return ids, cu


def test_mask_equals_twin():
    rng = np.random.default_rng(2)
    ids, cu = _flat_batch(rng)
    for seed, epoch, step in [(0, 0, 0), (7, 1, 3), (2**40, 5, 123456)]:
        key = _native.mlm_batch_key(seed, epoch, step)
        assert key == ref.mlm_batch_key(seed, epoch, step)
        fast = _native.mlm_mask(ids, cu, key, 50, 0.15)
        slow = ref.mlm_mask(ids, cu, key, 50, 0.15)
        np.testing.assert_array_equal(fast[0], slow[0])
        np.testing.assert_array_equal(fast[1], slow[1])
    # a batch too small to draw a target still gets exactly one
    tiny = np.array([1, 9, 2, 10], np.int32)
    key = _native.mlm_batch_key(3, 0, 0)
    for out in (_native.mlm_mask(tiny, np.array([0, 4]), key, 50, 0.0), ref.mlm_mask(tiny, [0, 4], key, 50, 0.0)):
        assert (out[1] != -100).sum() == 1


def test_mask_rates_and_specials():
    rng = np.random.default_rng(3)
    ids, cu = _flat_batch(rng, n_seqs=3000)
    masked, labels = mask_tokens(ids, cu, 50, (1, 2, 3))
    code = ids >= N_SPECIAL
    target = labels != -100
    assert not target[~code].any() and (masked[~code] == ids[~code]).all()
    assert abs(target[code].mean() - 0.15) < 0.01
    assert (labels[target] == ids[target]).all()
    kinds = np.array([(masked[target] == MASK).mean(), (masked[target] == ids[target]).mean()])
    assert abs(kinds[0] - 0.8) < 0.02 and abs(kinds[1] - (0.1 + 0.1 / 45)) < 0.02
    out = masked[target]
    assert ((out == MASK) | ((out >= N_SPECIAL) & (out < 50))).all()
    again = mask_tokens(ids, cu, 50, (1, 2, 3))
    other = mask_tokens(ids, cu, 50, (1, 2, 4))
    assert (again[1] == labels).all() and (other[1] != labels).any()


@pytest.fixture(scope="module")
def seqs(tmp_path_factory):
    root = tmp_path_factory.mktemp("collate")
    write_meds(root, random_subjects(40, seed=5))
    s = build_store(root, root / "store", min_count=1)
    return build_sequences(s, np.arange(s.n_subjects), max_len=32)


def test_collate_varlen_and_padded_agree(seqs):
    idx = np.array([5, 0, 17, 3, 3, 30])
    v = collate(seqs, idx, mlm=(0, 1, 2))
    p = collate(seqs, idx, mlm=(0, 1, 2), layout="padded")
    cu = v["cu_seqlens"]
    assert cu.dtype == torch.int32 and v["input_ids"].dtype == torch.long
    assert v["max_seqlen"] == int(seqs.lengths[idx].max()) == p["input_ids"].shape[1]
    for j, i in enumerate(idx):
        a, b = int(cu[j]), int(cu[j + 1])
        n = int(seqs.lengths[i])
        assert b - a == n and p["attention_mask"][j].sum() == n
        for key in TOKEN_KEYS:
            assert torch.equal(v[key][a:b], p[key][j, :n]), key
        for key in ("age_months", "days_before", "gap_days"):
            want = getattr(seqs, key)[seqs.offsets[i]:seqs.offsets[i + 1]]
            assert torch.equal(v[key][a:b], torch.from_numpy(want).long()), key
    assert "position_ids" not in v and "age" not in v
    assert (p["labels"][~p["attention_mask"]] == -100).all() and (p["input_ids"][~p["attention_mask"]] == 0).all()
    rows = v["seq_row"].numpy()
    assert np.bincount(rows, weights=np.diff(cu.numpy())).max() <= 32
    plain = collate(seqs, idx)
    assert "labels" not in plain and torch.equal(plain["input_ids"][cu[:-1].long()], torch.ones(len(idx)).long())
