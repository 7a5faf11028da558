"""PretrainLoader: packed, disjoint per rank, equal steps, resumable, identical with workers."""
import numpy as np
import pytest
import torch

from claimsfm.data import PretrainLoader, build_store
from claimsfm.errors import ClaimsfmError
from claimsfm.splits import TRAIN

from helpers.medskit import random_subjects, write_meds


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("loader")
    write_meds(root, random_subjects(400, seed=21))
    return build_store(root, root / "store", min_count=1)


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert (torch.equal(a[k], b[k]) if torch.is_tensor(a[k]) else a[k] == b[k]), k


def _subjects(loader, epoch):
    return np.concatenate(loader.plan(epoch))


def test_batches_are_packed_and_cover_the_split(store):
    loader = PretrainLoader(store, max_len=32, batch_tokens=256, seed=1, chunk_subjects=100)
    batches = list(loader)
    assert len(batches) == len(loader.plan(0)) > 3
    for b in batches:
        assert int(b["cu_seqlens"][-1]) == len(b["input_ids"]) <= 256 and b["max_seqlen"] <= 32
        assert (b["labels"] != -100).any()
    seen = _subjects(loader, 0)
    train = np.flatnonzero((store.split == TRAIN) & (np.diff(store.offsets) > 0))
    assert sorted(seen) == list(train)
    assert loader.state_dict() == {"epoch": 1, "step": 0}
    assert not np.array_equal(_subjects(loader, 1), seen)  # reshuffled each epoch


def test_ranks_are_disjoint_with_equal_steps(store):
    ranks = [PretrainLoader(store, max_len=32, batch_tokens=200, seed=4, rank=r, world_size=3) for r in range(3)]
    plans = [_subjects(r, 2) for r in ranks]
    assert len({len(r.plan(2)) for r in ranks}) == 1
    for i in range(3):
        for j in range(i + 1, 3):
            assert not set(plans[i]) & set(plans[j])


def test_resume_and_workers_give_identical_batches(store):
    kw = dict(max_len=24, batch_tokens=128, seed=7)
    full = PretrainLoader(store, **kw)
    it = iter(full)
    first = [next(it) for _ in range(5)]
    state = full.state_dict()
    assert state == {"epoch": 0, "step": 5}
    rest = [next(it) for _ in range(3)]
    resumed = PretrainLoader(store, **kw)
    resumed.load_state_dict(state)
    for a, b in zip(rest, iter(resumed)):
        _same(a, b)
    workers = PretrainLoader(store, num_workers=2, **kw)
    got = []
    for b in workers:
        got.append(b)
        if len(got) == 8:
            break
    for a, b in zip(first + rest, got):
        _same(a, b)


def test_padded_layout_and_bad_settings(store):
    b = next(iter(PretrainLoader(store, max_len=16, batch_tokens=64, layout="padded")))
    assert b["input_ids"].shape == b["attention_mask"].shape and b["input_ids"].shape[1] <= 16
    with pytest.raises(ClaimsfmError, match="batch-tokens"):
        PretrainLoader(store, max_len=64, batch_tokens=32)
    with pytest.raises(ClaimsfmError, match="split"):
        PretrainLoader(store, split="test")


def test_empty_split_yields_nothing(tmp_path):
    write_meds(tmp_path, [s for s in random_subjects(30, seed=2) if s["split"] == "train"])
    s = build_store(tmp_path, tmp_path / "store", min_count=1)
    loader = PretrainLoader(s, split="tuning", max_len=16, batch_tokens=64)
    assert len(loader) == 0 and list(loader) == []
    assert len(PretrainLoader(s, max_len=16, batch_tokens=64, rank=63, world_size=64)) == 0


def test_epoch_dataset_unpickles_in_a_fresh_process(store, monkeypatch):
    import pickle

    from claimsfm.data import loader as mod

    loader = PretrainLoader(store, max_len=16, batch_tokens=64)
    blob = pickle.dumps(mod._epoch_dataset(loader, 0, 2))
    monkeypatch.setattr(mod, "_EpochDataset", None)  # as in a spawned worker before first use
    clone = pickle.loads(blob)
    assert isinstance(clone, torch.utils.data.IterableDataset) and clone.start == 2
    _same(next(iter(clone)), loader.batch(0, 2))
