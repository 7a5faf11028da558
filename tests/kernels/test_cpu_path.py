"""The encoder's CPU attention path (SdpaVarlen) against the reference (varlen_attention_ref)."""
import pytest
import torch

from claimsfm.kernels.attention_ref import SdpaVarlen, varlen_attention_ref


def _qkv(lengths, H=2, D=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    T = sum(lengths)
    q, k, v = (torch.randn(T, H, D, generator=g, requires_grad=True) for _ in range(3))
    cu = torch.zeros(len(lengths) + 1, dtype=torch.int32)
    cu[1:] = torch.cumsum(torch.tensor(lengths), 0)
    return q, k, v, cu


@pytest.mark.parametrize("lengths, rows", [
    ([5, 17, 1, 9], None),                      # one sequence per group, key-padding mask
    ([6, 6, 6], None),                          # equal lengths: no copies at all
    ([20, 3, 4, 5, 6, 2], [0, 1, 1, 1, 1, 0]),  # packed rows, block-diagonal mask
    ([20] + [2] * 9, [0] + [2] * 9),            # row ids with a gap
    ([4, 0, 7, 3], [0, 0, 1, 1]),               # an empty sequence inside a row
])
def test_cpu_path_matches_reference_with_gradients(lengths, rows):
    q, k, v, cu = _qkv(lengths)
    seq_row = None if rows is None else torch.tensor(rows)
    y = SdpaVarlen(cu, seq_row)(q, k, v)
    grads = torch.autograd.grad(y.square().sum(), (q, k, v))
    y_ref = varlen_attention_ref(q, k, v, cu, max(lengths))
    grads_ref = torch.autograd.grad(y_ref.square().sum(), (q, k, v))
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_cpu_path_picks_the_grouping_with_less_attention_work():
    # One long and eight short patients: two packed rows of 16 beat nine groups padded to 16.
    _, _, _, cu = _qkv([16] + [2] * 8)
    packed = SdpaVarlen(cu, torch.tensor([0] + [1] * 8))
    assert (packed.n_group, packed.L) == (2, 16)
    # Equal short patients: one group each is cheaper than a row of 32 with its (32, 32) mask.
    _, _, _, cu = _qkv([2] * 16)
    assert SdpaVarlen(cu, torch.zeros(16, dtype=torch.long)).n_group == 16
