"""Plain PyTorch twin of the Triton varlen attention: the test oracle and the CPU path.

Same signature and contract as `attention.varlen_attention` (see the header of attention.py), but
any head_dim and any device. It scatters the packed tokens into a padded (B, H, L, D) batch, runs
scaled_dot_product_attention with a key-padding mask in fp32, and gathers the real tokens back,
so autograd gives the gradients. Memory is O(B * H * L * L) in the worst case; fine on a CPU batch.
"""
import torch
import torch.nn.functional as F


def _positions(cu_seqlens: torch.Tensor, total: int):
    """Sequence index and position inside it of every packed token, both (T,) long."""
    cu = cu_seqlens.long()
    lengths = cu[1:] - cu[:-1]
    seq = torch.repeat_interleave(torch.arange(lengths.numel(), device=cu.device), lengths, output_size=total)
    pos = torch.arange(total, device=cu.device) - cu[seq]
    return seq, pos


def varlen_attention_ref(q, k, v, cu_seqlens, max_seqlen, softmax_scale=None):
    """q, k, v: (T, H, D); cu_seqlens: int32 (n_seq + 1,); max_seqlen: int. Returns (T, H, D), dtype of q."""
    if q.dim() != 3 or q.shape != k.shape or q.shape != v.shape:
        raise ValueError(f"q, k, v must share one (T, H, D) shape, got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    if cu_seqlens.dim() != 1 or cu_seqlens.numel() < 1 or cu_seqlens.dtype.is_floating_point:
        raise ValueError(f"cu_seqlens must be a 1-D integer tensor (n_seq + 1,), got {tuple(cu_seqlens.shape)}")
    T, H, D = q.shape
    n_seq = cu_seqlens.numel() - 1
    if T == 0 or n_seq == 0 or max_seqlen == 0:
        return (q + k + v) * 0.0
    cu_seqlens = cu_seqlens.to(q.device)
    if int(cu_seqlens[-1]) != T or int((cu_seqlens[1:] - cu_seqlens[:-1]).max()) > max_seqlen:
        raise ValueError(f"cu_seqlens must end at T={T} and no sequence may exceed max_seqlen={max_seqlen}")
    seq, pos = _positions(cu_seqlens, T)
    scale = softmax_scale if softmax_scale is not None else D ** -0.5

    def pad(x):  # (T, H, D) -> (B, H, L, D), fp32
        out = x.new_zeros((n_seq, max_seqlen, H, D), dtype=torch.float32)
        out = out.index_put((seq, pos), x.float())
        return out.transpose(1, 2)

    valid = torch.zeros((n_seq, max_seqlen), dtype=torch.bool, device=q.device)
    valid[seq, pos] = True
    # An empty sequence would leave a fully masked row (NaN); its one pad key is never read back.
    valid[:, 0] = True
    out = F.scaled_dot_product_attention(pad(q), pad(k), pad(v), attn_mask=valid[:, None, None, :], scale=scale)
    return out.transpose(1, 2)[seq, pos].to(q.dtype)  # (T, H, D)
