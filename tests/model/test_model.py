"""Encoder: layouts agree, patients do not see each other, counts match the formula, head is tied."""
import pytest
import torch

from claimsfm.errors import ClaimsfmError
from claimsfm.model import Encoder, ModelConfig, count_params, resolve_scale

CFG = ModelConfig(n_layer=2, d_model=64, n_head=2, d_ff=160, vocab_size=300, max_len=64)


def _model(attention="sdpa"):
    torch.manual_seed(0)
    return Encoder(CFG, attention=attention).eval()


def test_varlen_matches_padded_and_single_sequences(batches):
    make_varlen, to_padded = batches
    lengths = [7, 1, 30, 12]
    batch = make_varlen(lengths, CFG.vocab_size)
    model = _model()
    with torch.no_grad():
        h = model(batch)  # (T, d)
        hp = model(to_padded(batch))  # (B, L, d)
        cu = batch["cu_seqlens"].long()
        for i, n in enumerate(lengths):
            torch.testing.assert_close(h[cu[i]:cu[i + 1]], hp[i, :n], atol=1e-5, rtol=1e-5)
            one = {k: v[cu[i]:cu[i + 1]] for k, v in batch.items() if k not in ("cu_seqlens", "max_seqlen")}
            one["cu_seqlens"] = torch.tensor([0, n], dtype=torch.int32)
            one["max_seqlen"] = n
            torch.testing.assert_close(h[cu[i]:cu[i + 1]], model(one), atol=1e-5, rtol=1e-5)


def test_packed_rows_keep_patients_apart(batches):
    make_varlen, to_padded = batches
    # Two packed rows; the row grouping must give the same result as per-sequence grouping.
    lengths = [20, 3, 4, 5, 6, 2]
    rows = [0, 1, 1, 1, 1, 0]
    batch = make_varlen(lengths, CFG.vocab_size, rows=rows)
    model = _model()
    with torch.no_grad():
        h_rows = model(batch)
        del batch["seq_row"]
        h_seq = model(batch)
    torch.testing.assert_close(h_rows, h_seq, atol=1e-5, rtol=1e-5)


def test_changing_one_patient_leaves_the_others(batches):
    make_varlen, to_padded = batches
    batch = make_varlen([10, 10], CFG.vocab_size)
    model = _model()
    with torch.no_grad():
        h = model(batch)
        batch["input_ids"][15] = 7 if int(batch["input_ids"][15]) != 7 else 8
        h2 = model(batch)
    torch.testing.assert_close(h[:10], h2[:10])
    assert not torch.allclose(h[10:], h2[10:])


def test_param_count_matches_formula_and_head_is_tied():
    model = _model()
    expect = count_params(CFG.vocab_size, CFG.max_len, CFG.n_layer, CFG.d_model, CFG.d_ff)
    assert model.num_params() == expect
    h = torch.randn(3, CFG.d_model)
    torch.testing.assert_close(model.mlm_logits(h), h @ model.wte.weight.T)


def test_gradients_flow_and_loss_is_finite(batches):
    make_varlen, to_padded = batches
    batch = make_varlen([9, 17, 4], CFG.vocab_size)
    model = Encoder(CFG, attention="sdpa")
    h = model(batch)
    keep = batch["labels"] != -100
    loss = torch.nn.functional.cross_entropy(model.mlm_logits(h[keep]), batch["labels"][keep])
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_bad_backend_and_bad_heads():
    with pytest.raises(ClaimsfmError):
        Encoder(CFG, attention="flash")
    with pytest.raises(ClaimsfmError):
        ModelConfig(n_layer=1, d_model=60, n_head=7, d_ff=8, vocab_size=10)


def test_resolve_scale_builds_on_meta():
    cfg = resolve_scale("11M", 20_000, 512)
    with torch.device("meta"):
        model = Encoder(cfg)
    total = model.num_params()["total_params"]
    assert abs(total - 11e6) <= 0.05 * 11e6
