"""Hand-made batches in the docs/internals.md §4 dict format (no token store needed)."""
import pytest
import torch


def make_varlen(lengths, vocab_size, seed=0, mlm=True, rows=None):
    g = torch.Generator().manual_seed(seed)
    T = int(sum(lengths))
    cu = torch.zeros(len(lengths) + 1, dtype=torch.int32)
    cu[1:] = torch.cumsum(torch.tensor(lengths), 0)
    batch = {
        "input_ids": torch.randint(5, vocab_size, (T,), generator=g),
        "age_months": torch.randint(-1, 1200, (T,), generator=g),
        "visit": torch.randint(0, 40, (T,), generator=g),
        "segment": torch.randint(0, 2, (T,), generator=g),
        "days_before": torch.randint(0, 4000, (T,), generator=g),
        "gap_days": torch.randint(-1, 400, (T,), generator=g),
        "cu_seqlens": cu,
        "max_seqlen": max(lengths),
    }
    batch["input_ids"][cu[:-1].long()] = 1  # [CLS]
    if rows is not None:
        batch["seq_row"] = torch.tensor(rows)
    if mlm:
        labels = torch.full((T,), -100)
        pick = torch.rand(T, generator=g) < 0.3
        labels[pick] = batch["input_ids"][pick]
        batch["labels"] = labels
    return batch


def to_padded(batch):
    """The same sequences in the (B, L) layout with an attention mask."""
    cu = batch["cu_seqlens"].long()
    B, L = len(cu) - 1, int(batch["max_seqlen"])
    out = {}
    for key in ("input_ids", "age_months", "visit", "segment", "days_before", "gap_days", "labels"):
        if key in batch:
            fill = -100 if key == "labels" else 0
            t = torch.full((B, L), fill, dtype=batch[key].dtype)
            for i in range(B):
                n = int(cu[i + 1] - cu[i])
                t[i, :n] = batch[key][cu[i]:cu[i + 1]]
            out[key] = t
    out["attention_mask"] = torch.arange(L)[None, :] < (cu[1:] - cu[:-1])[:, None]
    return out


@pytest.fixture
def batches():
    """(make_varlen, to_padded) for the tests (importlib mode cannot import conftest by name)."""
    return make_varlen, to_padded
