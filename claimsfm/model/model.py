"""The claims encoder, top to bottom: config, attention, block, encoder.

Input is a batch dict from `claimsfm.data.collate` (docs/internals.md §4) in one of two layouts:
- varlen: flat tokens (T,) plus `cu_seqlens` (B+1,) int32 and `max_seqlen`; many patients share a
  packed row, none attends to another, and the linear layers see only real tokens;
- padded: (B, L) tensors plus `attention_mask` (B, L) bool (the baseline packing is measured against).

Embeddings: code + age (whole years, bucket 0 = unknown) + visit index + segment, summed. Pre-LN
blocks with a GELU MLP, a final LayerNorm, and an MLM head tied to the code embedding. The attention
backend is chosen once, at the first forward: `triton` (claimsfm.kernels.varlen_attention, CUDA),
`sdpa` (torch scaled_dot_product_attention with the block-diagonal constraint), or `auto`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from claimsfm.errors import ClaimsfmError
from claimsfm.model.scale import N_AGE, N_SEGMENT

BACKENDS = ("auto", "triton", "sdpa")


@dataclass(frozen=True)
class ModelConfig:
    n_layer: int
    d_model: int
    n_head: int
    d_ff: int
    vocab_size: int
    max_len: int = 512

    def __post_init__(self):
        if self.d_model % self.n_head:
            raise ClaimsfmError(f"d_model {self.d_model} is not a multiple of n_head {self.n_head}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head


def config_for(scale, vocab_size: int, max_len: int) -> ModelConfig:
    return ModelConfig(scale.n_layer, scale.d_model, scale.n_head, scale.d_ff, vocab_size, max_len)


# ----------------------------------------------------------------------------------------------
# Attention plans: how one forward pass turns (q, k, v) into attention output. Built once per
# forward from the batch layout and shared by every layer, so the index work is not repeated.


class _TritonVarlen:
    def __init__(self, cu_seqlens, max_seqlen):
        from claimsfm.kernels import varlen_attention

        self.fn, self.cu_seqlens, self.max_seqlen = varlen_attention, cu_seqlens, int(max_seqlen)

    def __call__(self, q, k, v):  # (T, H, D) each
        return self.fn(q, k, v, self.cu_seqlens, self.max_seqlen)


class _SdpaVarlen:
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


class _SdpaPadded:
    def __init__(self, attention_mask):
        self.mask = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, L): keys only

    def __call__(self, q, k, v):  # (B, L, H, D) each
        q, k, v = (x.transpose(1, 2) for x in (q, k, v))
        return F.scaled_dot_product_attention(q, k, v, attn_mask=self.mask).transpose(1, 2)


# ----------------------------------------------------------------------------------------------


class SelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.c_attn = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.c_proj = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, x, attend):  # x (T, d) or (B, L, d)
        lead = x.shape[:-1]
        qkv = self.c_attn(x).view(*lead, 3, self.n_head, -1)  # (..., 3, H, D)
        q, k, v = qkv.unbind(-3)
        y = attend(q, k, v)  # (..., H, D)
        return self.c_proj(y.reshape(*lead, -1))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.d_model, cfg.d_ff)
        self.c_proj = nn.Linear(cfg.d_ff, cfg.d_model)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.d_model)
        self.attn = SelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg)

    def forward(self, x, attend):
        x = x + self.attn(self.ln_1(x), attend)
        return x + self.mlp(self.ln_2(x))


class Encoder(nn.Module):
    def __init__(self, cfg: ModelConfig, attention: str = "auto"):
        super().__init__()
        if attention not in BACKENDS:
            raise ClaimsfmError(f"--attention must be one of {', '.join(BACKENDS)}, not '{attention}'")
        self.config, self.attention, self.backend = cfg, attention, None
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.wage = nn.Embedding(N_AGE, cfg.d_model)
        self.wvis = nn.Embedding(cfg.max_len, cfg.d_model)
        self.wseg = nn.Embedding(N_SEGMENT, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.apply(self._init_weights)
        # GPT-2: scale the residual projections so the residual stream does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> dict:
        total = sum(p.numel() for p in self.parameters() if p.requires_grad)
        emb = sum(m.weight.numel() for m in (self.wte, self.wage, self.wvis, self.wseg))
        return {"total_params": total, "non_embedding_params": total - emb}

    def resolve_backend(self, device) -> str:
        if self.backend is None:
            if self.attention == "sdpa":
                self.backend = "sdpa"
            elif self.attention == "triton":
                if not _triton_available():
                    raise ClaimsfmError("--attention triton: needs triton and a CUDA GPU (or TRITON_INTERPRET=1)")
                self.backend = "triton"
            else:
                self.backend = "triton" if device.type == "cuda" and _triton_available() else "sdpa"
        return self.backend

    def _plan(self, batch, device):
        if "cu_seqlens" not in batch:
            return _SdpaPadded(batch["attention_mask"])
        if self.resolve_backend(device) == "triton":
            return _TritonVarlen(batch["cu_seqlens"], batch["max_seqlen"])
        return _SdpaVarlen(batch["cu_seqlens"], batch.get("seq_row"))

    def forward(self, batch):
        ids = batch["input_ids"]
        age = torch.clamp(torch.div(batch["age"], 12, rounding_mode="floor") + 1, 0, N_AGE - 1)
        visit = torch.clamp(batch["visit"], 0, self.config.max_len - 1)
        x = self.wte(ids) + self.wage(age) + self.wvis(visit) + self.wseg(batch["segment"])  # (T, d) | (B, L, d)
        attend = self._plan(batch, ids.device)
        for block in self.blocks:
            x = block(x, attend)
        return self.ln_f(x)

    def mlm_logits(self, h):
        return F.linear(h, self.wte.weight)  # (..., vocab): tied to the code embedding


def _triton_available() -> bool:
    """The kernel runs here: triton imports and CUDA is present (or TRITON_INTERPRET=1 on a CPU)."""
    from claimsfm.kernels import triton_available

    return triton_available()

