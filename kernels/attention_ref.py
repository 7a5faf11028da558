"""Varlen attention in plain PyTorch: the reference, and the CPU path the encoder runs.

- `varlen_attention_ref`: the reference (the test oracle of both fast paths). Same signature and
  contract as `attention.varlen_attention` (see the header of attention.py), but any head_dim and any
  device. It scatters the packed tokens into a padded (B, H, L, D) batch, one sequence per batch row,
  runs scaled_dot_product_attention with a key-padding mask in fp32, and gathers the real tokens back,
  so autograd gives the gradients. Memory is O(B * H * L * L); simple, not fast.
- `SdpaVarlen`: the CPU (and non-Triton) path of `claimsfm.model.Encoder`: the same attention, but
  several short patients share one (L,) group (a packed row of the loader, `seq_row`) under a
  block-diagonal mask, so attention and copies are spent on real tokens, not padding. Built once per
  forward from the batch and called by every layer. Tested against the reference in tests/kernels.
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


class SdpaVarlen:
    """Varlen attention through SDPA: gather tokens into (G, L) groups, mask across patients.

    A group is either one sequence (pad to max_seqlen) or one packed row of the loader (seq_row),
    whichever wastes fewer attention FLOPs; a block-diagonal mask keeps patients apart inside a row.
    Padded slots carry sequence id -1; in a packed row they attend only to each other, so no query
    row is fully masked (that would give NaN). With one sequence per group a key mask suffices.
    """

    def __init__(self, cu_seqlens, seq_row=None):
        cu = cu_seqlens.long()
        lengths = cu[1:] - cu[:-1]  # (B,)
        n_seq, n_tok = lengths.numel(), int(cu[-1])
        group, one_per_group = torch.arange(n_seq, device=cu.device), True
        if seq_row is not None:
            seq_row = seq_row.to(cu.device).long()
            row_len = torch.zeros(int(seq_row.max()) + 1, dtype=torch.long, device=cu.device)
            row_len.index_add_(0, seq_row, lengths)
            if row_len.numel() * int(row_len.max()) ** 2 < n_seq * int(lengths.max()) ** 2:
                group, one_per_group = seq_row, bool(torch.bincount(seq_row).max() == 1)
        n_group = int(group.max()) + 1
        # Start of each sequence inside its group: exclusive cumsum over sequences of that group.
        order = torch.argsort(group, stable=True)
        sorted_len = lengths[order]
        csum = torch.cumsum(sorted_len, 0) - sorted_len
        g_sorted = group[order]
        g_first = torch.zeros(n_group, dtype=torch.long, device=cu.device)
        g_first.scatter_reduce_(0, g_sorted, csum, reduce="amin", include_self=False)
        start_in_group = torch.empty_like(lengths)
        start_in_group[order] = csum - g_first[g_sorted]
        g_len = torch.zeros(n_group, dtype=torch.long, device=cu.device).index_add_(0, group, lengths)
        self.L = int(g_len.max())
        seq_of_tok = torch.repeat_interleave(torch.arange(n_seq, device=cu.device), lengths)  # (T,)
        pos = torch.arange(n_tok, device=cu.device) - cu[:-1][seq_of_tok] + start_in_group[seq_of_tok]
        self.slot = group[seq_of_tok] * self.L + pos  # (T,) flat slot in (G * L)
        sid = torch.full((n_group * self.L,), -1, dtype=torch.long, device=cu.device)
        sid[self.slot] = seq_of_tok
        sid = sid.view(n_group, self.L)
        if one_per_group and bool((lengths > 0).all()):  # masking padded keys is enough
            self.mask = None if bool((sid >= 0).all()) else (sid >= 0)[:, None, None, :]  # (G, 1, 1, L)
        else:
            self.mask = (sid[:, :, None] == sid[:, None, :]).unsqueeze(1)  # (G, 1, L, L)
        self.n_group = n_group
        # Equal lengths (p = 0): the flat tokens already are the groups, no copies needed.
        self.identity = n_group * self.L == n_tok and bool((self.slot == torch.arange(n_tok, device=cu.device)).all())

    def __call__(self, q, k, v):  # (T, H, D) each
        T, H, D = q.shape

        def to_groups(x):
            if not self.identity:
                x = x.new_zeros(self.n_group * self.L, H, D).index_copy(0, self.slot, x)
            return x.view(self.n_group, self.L, H, D).transpose(1, 2)  # (G, H, L, D)

        y = F.scaled_dot_product_attention(to_groups(q), to_groups(k), to_groups(v), attn_mask=self.mask)
        y = y.transpose(1, 2).reshape(self.n_group * self.L, H, D)
        return y if self.identity else y[self.slot]  # (T, H, D)
