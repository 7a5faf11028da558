"""Encoder: layouts agree, patients do not see each other, counts match the formula, head is tied."""
import pytest
import torch

from claimsfm.errors import ClaimsfmError
from claimsfm.model import Encoder, ModelConfig, count_params, resolve_scale
from claimsfm.model.model import cls_states

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
    future = model.future_logits(cls_states(h, batch))       # (B, vocab): the future-codes head
    loss = loss + torch.nn.functional.binary_cross_entropy_with_logits(future, torch.zeros_like(future))
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


_TRITON_CHECK = """
import torch
from claimsfm.model import Encoder, ModelConfig
cfg = ModelConfig(n_layer=2, d_model=32, n_head=2, d_ff=64, vocab_size=50, max_len=32)
lengths = [5, 17, 1, 9]
T = sum(lengths)
g = torch.Generator().manual_seed(0)
cu = torch.tensor([0, 5, 22, 23, 32], dtype=torch.int32)
batch = {"input_ids": torch.randint(5, 50, (T,), generator=g), "age_months": torch.randint(0, 900, (T,), generator=g),
         "visit": torch.randint(0, 9, (T,), generator=g), "segment": torch.randint(0, 2, (T,), generator=g),
         "days_before": torch.randint(0, 900, (T,), generator=g), "gap_days": torch.randint(-1, 90, (T,), generator=g),
         "cu_seqlens": cu, "max_seqlen": 17}
outs = []
for backend in ("sdpa", "triton"):
    torch.manual_seed(0)
    m = Encoder(cfg, attention=backend)
    h = m(batch)
    h.square().sum().backward()
    assert m.backend == backend
    outs.append((h.detach(), m.wte.weight.grad.clone(), m.blocks[0].attn.c_attn.weight.grad.clone()))
for a, b in zip(*outs):
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
print("ok")
"""


def test_triton_backend_matches_sdpa_in_the_interpreter():
    import os
    import subprocess
    import sys

    pytest.importorskip("triton")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    out = subprocess.run([sys.executable, "-P", "-c", _TRITON_CHECK], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "ok"


def test_triton_backend_refused_where_it_cannot_run(monkeypatch):
    import claimsfm.kernels

    monkeypatch.setattr(claimsfm.kernels, "triton_available", lambda: False)
    model = Encoder(CFG, attention="triton")
    with pytest.raises(ClaimsfmError, match="triton"):
        model(make_varlen_min())


def make_varlen_min():
    T = 4
    zeros = torch.zeros(T, dtype=torch.long)
    return {"input_ids": torch.tensor([1, 6, 7, 8]), "age_months": zeros, "visit": zeros, "segment": zeros,
            "days_before": zeros, "gap_days": zeros,
            "cu_seqlens": torch.tensor([0, 4], dtype=torch.int32), "max_seqlen": 4}


def test_rows_with_gaps_and_empty_sequences(batches):
    make_varlen, _ = batches
    # Row ids with a gap (row 1 unused); nine short patients share row 2, so rows are the cheaper grouping.
    batch = make_varlen([20] + [2] * 9, CFG.vocab_size, rows=[0] + [2] * 9)
    model = _model()
    with torch.no_grad():
        h_rows = model(batch)
        del batch["seq_row"]
        h_seq = model(batch)
        torch.testing.assert_close(h_rows, h_seq, atol=1e-5, rtol=1e-5)
        # An empty sequence in the middle changes nothing for the others.
        empty = dict(batch)
        cu = batch["cu_seqlens"]
        empty["cu_seqlens"] = torch.cat([cu[:2], cu[1:]])
        h_empty = model(empty)
    torch.testing.assert_close(h_empty, h_seq, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(h_empty).all()


def test_time_inputs_switch(batches):
    from dataclasses import replace

    from claimsfm.model.model import time_bucket
    from claimsfm.model.scale import N_TIME

    make_varlen, _ = batches
    batch = make_varlen([9, 17, 4], CFG.vocab_size, mlm=False)
    shifted = {**batch, "days_before": batch["days_before"] + 400, "gap_days": batch["gap_days"] + 30}
    with torch.no_grad():
        on = _model()
        assert not torch.allclose(on(batch), on(shifted))
        torch.manual_seed(0)
        off = Encoder(replace(CFG, time_inputs=False)).eval()
        torch.testing.assert_close(off(batch), off(shifted))  # the ablation ignores the time inputs
    counts = count_params(CFG.vocab_size, CFG.max_len, CFG.n_layer, CFG.d_model, CFG.d_ff, time_inputs=False)
    assert off.num_params() == counts
    assert on.num_params()["total_params"] - counts["total_params"] == 2 * N_TIME * CFG.d_model
    days = torch.tensor([-5, -1, 0, 1, 7, 30, 91, 365, 3650, 10**6])
    assert time_bucket(days).tolist() == [0, 0, 1, 2, 7, 20, 34, 56, 96, N_TIME - 1]
    many = time_bucket(torch.arange(0, 40_000))
    assert (many[1:] >= many[:-1]).all() and int(many.max()) == N_TIME - 1
