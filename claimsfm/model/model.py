"""The claims encoder, top to bottom: config, attention, block, encoder.

Input is a batch dict from `claimsfm.data.collate` (docs/internals.md §4) in one of two layouts:
- varlen: flat tokens (T,) plus `cu_seqlens` (B+1,) int32 and `max_seqlen`; many patients share a
  packed row, none attends to another, and the linear layers see only real tokens;
- padded: (B, L) tensors plus `attention_mask` (B, L) bool (the baseline packing is measured against).

Embeddings: code + age (whole years, bucket 0 = unknown) + visit index + segment, plus (when
`config.time_inputs`) the time inputs: days before the reference time and days since the previous
visit, each in log-spaced buckets (`time_bucket`); the [CLS] token's gap is the time from the last
event to the reference (the prediction time as an input). All summed. Pre-LN
blocks with a GELU MLP, a final LayerNorm, and an MLM head tied to the code embedding. With
`config.future_months`, a future-codes head reads the [CLS] state (a d x d projection, GELU, LayerNorm,
then the code table again plus a per-code bias): the logit that each code occurs within that many months
after the reference (pretraining's second objective, docs/internals.md §4). The attention
backend is chosen once, at the first forward: `triton` (claimsfm.kernels.varlen_attention, CUDA),
`sdpa` (claimsfm.kernels.attention_ref.SdpaVarlen: torch scaled_dot_product_attention over packed rows
with a block-diagonal mask; the CPU path), or `auto`. Both are tested against `varlen_attention_ref`.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from claimsfm.errors import ClaimsfmError
from claimsfm.kernels.attention_ref import SdpaVarlen
from claimsfm.model.scale import BACKENDS, N_AGE, N_SEGMENT, N_TIME, ModelConfig

TIME_BUCKETS_PER_DOUBLING = 12
TIME_SCALE_DAYS = 15.0


def time_bucket(days):
    """Log-spaced bucket of a day count: 0 = unknown (negative), then 1 + floor(12 log2(1 + days / 15)).

    Same day -> 1, 1 week -> 7, 1 month -> 20, 3 months -> 34, 1 year -> 56, 10 years -> 96; widths are
    ~4 days at 1 month, ~3 weeks at 1 year, ~7 months at 10 years; the last bucket is open-ended (~60 y).
    """
    b = torch.floor(TIME_BUCKETS_PER_DOUBLING * torch.log2(1.0 + days.clamp(min=0).float() / TIME_SCALE_DAYS))
    return torch.where(days < 0, 0, b.long().clamp(max=N_TIME - 2) + 1)


# ----------------------------------------------------------------------------------------------
# Attention plans: how one forward pass turns (q, k, v) into attention output. Built once per
# forward from the batch layout and shared by every layer, so the index work is not repeated.


class _TritonVarlen:
    def __init__(self, cu_seqlens, max_seqlen):
        from claimsfm.kernels import varlen_attention

        self.fn, self.cu_seqlens, self.max_seqlen = varlen_attention, cu_seqlens, int(max_seqlen)

    def __call__(self, q, k, v):  # (T, H, D) each
        return self.fn(q, k, v, self.cu_seqlens, self.max_seqlen)


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
        if cfg.time_inputs:
            self.wbefore = nn.Embedding(N_TIME, cfg.d_model)  # days before the reference
            self.wgap = nn.Embedding(N_TIME, cfg.d_model)  # days since the previous visit ([CLS]: last event)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        if cfg.future_months:
            self.future = FutureHead(cfg.d_model, cfg.vocab_size)
        self.apply(self._init_weights)
        if cfg.future_months:
            self.future.reset_bias()
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
        """All trainable parameters; non-embedding ones leave out the tables and the future head."""
        total = sum(p.numel() for p in self.parameters() if p.requires_grad)
        emb = sum(m.weight.numel() for m in self.modules() if isinstance(m, nn.Embedding))
        heads = sum(p.numel() for p in self.future.parameters()) if self.config.future_months else 0
        return {"total_params": total, "non_embedding_params": total - emb - heads}

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
        return SdpaVarlen(batch["cu_seqlens"], batch.get("seq_row"))

    def embed(self, batch):
        """Summed input embeddings.  -> (T, d) | (B, L, d)"""
        ids = batch["input_ids"]
        age = torch.clamp(torch.div(batch["age_months"], 12, rounding_mode="floor") + 1, 0, N_AGE - 1)
        visit = torch.clamp(batch["visit"], 0, self.config.max_len - 1)
        x = self.wte(ids) + self.wage(age) + self.wvis(visit) + self.wseg(batch["segment"])
        if self.config.time_inputs:
            x = x + self.wbefore(time_bucket(batch["days_before"])) + self.wgap(time_bucket(batch["gap_days"]))
        return x

    def forward(self, batch):
        ids = batch["input_ids"]
        x = self.embed(batch)  # (T, d) | (B, L, d)
        attend = self._plan(batch, ids.device)
        for block in self.blocks:
            x = block(x, attend)
        return self.ln_f(x)

    def mlm_logits(self, h):
        return F.linear(h, self.wte.weight)  # (..., vocab): tied to the code embedding

    def future_logits(self, h_cls):
        """(B, vocab) logits that each code occurs within future_months after the reference."""
        return F.linear(self.future(h_cls), self.wte.weight, self.future.bias)


class FutureHead(nn.Module):
    """[CLS] state -> the vector whose dot product with each code's embedding (+ bias) is that code's
    future logit. Its output is also a pooled feature for the downstream heads ("future")."""

    def __init__(self, d_model: int, vocab_size: int):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)
        self.ln = nn.LayerNorm(d_model)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def reset_bias(self):
        # Start every code at a rare-event prior (1 / vocab), not 0.5: a window holds a few dozen of them.
        nn.init.constant_(self.bias, -math.log(self.bias.numel()))

    def forward(self, h_cls):
        return self.ln(F.gelu(self.proj(h_cls)))


def cls_states(h, batch):
    """The [CLS] hidden state of each sequence: (B, d) from varlen (T, d) or padded (B, L, d)."""
    if "cu_seqlens" in batch:
        return h[batch["cu_seqlens"][:-1].long()]
    return h[:, 0]


def _triton_available() -> bool:
    """The kernel runs here: triton imports and CUDA is present (or TRITON_INTERPRET=1 on a CPU)."""
    from claimsfm.kernels import triton_available

    return triton_available()

