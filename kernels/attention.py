"""Fused bidirectional attention over packed variable-length sequences (forward and backward).

Contract
--------
- Inputs: q, k, v of shape (T, H, D) (T = total real tokens of all sequences, packed back to back),
  same dtype (bf16, fp16 or fp32) and device; the last dimension must have stride 1 (other strides
  are free, so q/k/v may be views of one fused qkv projection). Output (T, H, D), contiguous, dtype of q.
- cu_seqlens: int32, (n_seq + 1,), on the device of q, non-decreasing prefix sums starting at 0 and
  ending at T; sequence i owns tokens cu_seqlens[i]:cu_seqlens[i+1]. Empty sequences are allowed.
- max_seqlen: a host int >= the longest sequence. It sizes the grid and is NOT checked against
  cu_seqlens on the device (that would need a sync); a value too small silently drops query tiles.
- Attention is bidirectional (no causal mask) and block-diagonal: no token attends across sequences.
- head_dim D in {16, 32, 64, 128}; sequence length 1 .. any (the `gpu` tests use up to 1024; the
  interpreter tests up to 200).
- Backward: dq, dk, dv by fused kernels; the forward saves the log-sum-exp (base 2, fp32, (H, T)).
- Accumulation in fp32; bf16/fp16 inputs use tensor-core dots, fp32 inputs use exact ("ieee") dots.
- Not supported: causal or sliding-window masks, attention bias, dropout, grouped/multi-query
  heads (k/v must have the same H as q), head dims other than those above, non-CUDA GPUs (untested).

Layout of the grid: one program per (sequence, query or key tile, head). Tiles past the end of a
sequence exit at once, so padding costs a program launch and nothing else. Block sizes are small
(16-128) because claims sequences are mostly 16-512 tokens; on a GPU they are autotuned per
(head_dim, dtype, MAX_SEQ_BUCKET = next power of two of max_seqlen; the kernels only carry it as the
autotune key), in the interpreter one fixed small config runs. The backward uses no atomics, so it is
deterministic.
"""
import contextlib
import operator
import os

import torch
import triton
import triton.language as tl

_LOG2E = 1.4426950408889634
HEAD_DIMS = (16, 32, 64, 128)
# Triton decides interpreted vs compiled when @triton.jit runs, i.e. when this module is imported.
_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


@triton.jit
def _mm(a, b, DOT_PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    # UPCAST: the CPU interpreter multiplies bf16 as raw uint16 bits, so it gets fp32 operands
    # (exact for bf16 values); compiled GPU code never sets it.
    if UPCAST:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision=DOT_PRECISION)
    return tl.dot(a, b, input_precision=DOT_PRECISION)


@triton.jit
def _mma(a, b, acc, DOT_PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    if UPCAST:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision=DOT_PRECISION)
    return tl.dot(a, b, acc, input_precision=DOT_PRECISION)


@triton.jit
def _attn_fwd(Q, K, V, O, LSE, CU, qk_scale,
              stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh,
              stride_ot, stride_oh, stride_lh, MAX_SEQ_BUCKET,
              HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
              DOT_PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    seq = tl.program_id(0)
    tile = tl.program_id(1)
    head = tl.program_id(2)
    first = tl.load(CU + seq)
    seqlen = tl.load(CU + seq + 1) - first
    start = first.to(tl.int64)  # 64-bit row offsets: T * stride may pass 2**31
    if tile * BLOCK_M < seqlen:
        offs_m = tile * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = tl.arange(0, BLOCK_N)
        offs_d = tl.arange(0, HEAD_DIM)
        m_mask = offs_m < seqlen
        q = tl.load(Q + (start + offs_m)[:, None] * stride_qt + head * stride_qh + offs_d[None, :],
                    mask=m_mask[:, None], other=0.0)  # (BM, D)
        m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
        l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
        acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
        for start_n in range(0, seqlen, BLOCK_N):
            n_mask = (start_n + offs_n) < seqlen
            rows = start + start_n + offs_n
            kT = tl.load(K + rows[None, :] * stride_kt + head * stride_kh + offs_d[:, None],
                         mask=n_mask[None, :], other=0.0)  # (D, BN)
            qk = _mm(q, kT, DOT_PRECISION, UPCAST)  # (BM, BN)
            # Every block holds at least one real key, so the running max stays finite.
            qk = tl.where(n_mask[None, :], qk * qk_scale, float("-inf"))
            m_ij = tl.maximum(m_i, tl.max(qk, 1))
            p = tl.math.exp2(qk - m_ij[:, None])
            alpha = tl.math.exp2(m_i - m_ij)
            l_i = l_i * alpha + tl.sum(p, 1)
            v = tl.load(V + rows[:, None] * stride_vt + head * stride_vh + offs_d[None, :],
                        mask=n_mask[:, None], other=0.0)  # (BN, D)
            acc = _mma(p.to(v.dtype), v, acc * alpha[:, None], DOT_PRECISION, UPCAST)
            m_i = m_ij
        acc = acc / l_i[:, None]
        tl.store(LSE + head * stride_lh + start + offs_m, m_i + tl.math.log2(l_i), mask=m_mask)
        tl.store(O + (start + offs_m)[:, None] * stride_ot + head * stride_oh + offs_d[None, :],
                 acc.to(O.dtype.element_ty), mask=m_mask[:, None])


@triton.jit
def _attn_bwd_preprocess(O, DO, DELTA, T, stride_ot, stride_oh, stride_dot, stride_doh, stride_lh,
                         HEAD_DIM: tl.constexpr, BLOCK: tl.constexpr):
    # delta_i = sum_d o_id * do_id, the row term of the softmax gradient.
    head = tl.program_id(1)
    offs_t = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    offs_d = tl.arange(0, HEAD_DIM)
    mask = offs_t < T
    rows = offs_t.to(tl.int64)[:, None]
    o = tl.load(O + rows * stride_ot + head * stride_oh + offs_d[None, :], mask=mask[:, None], other=0.0)
    do = tl.load(DO + rows * stride_dot + head * stride_doh + offs_d[None, :], mask=mask[:, None], other=0.0)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), axis=1)
    tl.store(DELTA + head * stride_lh + offs_t, delta, mask=mask)


@triton.jit
def _attn_bwd_dkdv(Q, K, V, DO, DK, DV, LSE, DELTA, CU, qk_scale, sm_scale,
                   stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh,
                   stride_dot, stride_doh, stride_gt, stride_gh, stride_lh, MAX_SEQ_BUCKET,
                   HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                   DOT_PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    # One program owns a key/value tile and sweeps every query tile of its sequence.
    seq = tl.program_id(0)
    tile = tl.program_id(1)
    head = tl.program_id(2)
    first = tl.load(CU + seq)
    seqlen = tl.load(CU + seq + 1) - first
    start = first.to(tl.int64)  # 64-bit row offsets: T * stride may pass 2**31
    if tile * BLOCK_N < seqlen:
        offs_n = tile * BLOCK_N + tl.arange(0, BLOCK_N)
        offs_m = tl.arange(0, BLOCK_M)
        offs_d = tl.arange(0, HEAD_DIM)
        n_mask = offs_n < seqlen
        rows_n = (start + offs_n)[:, None]
        k = tl.load(K + rows_n * stride_kt + head * stride_kh + offs_d[None, :], mask=n_mask[:, None], other=0.0)
        v = tl.load(V + rows_n * stride_vt + head * stride_vh + offs_d[None, :], mask=n_mask[:, None], other=0.0)
        dk = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
        dv = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
        for start_m in range(0, seqlen, BLOCK_M):
            m_mask = (start_m + offs_m) < seqlen
            rows_m = start + start_m + offs_m
            qT = tl.load(Q + rows_m[None, :] * stride_qt + head * stride_qh + offs_d[:, None],
                         mask=m_mask[None, :], other=0.0)  # (D, BM)
            lse = tl.load(LSE + head * stride_lh + rows_m, mask=m_mask, other=0.0)
            qkT = _mm(k, qT, DOT_PRECISION, UPCAST)  # (BN, BM)
            pT = tl.where(m_mask[None, :], tl.math.exp2(qkT * qk_scale - lse[None, :]), 0.0)
            do = tl.load(DO + rows_m[:, None] * stride_dot + head * stride_doh + offs_d[None, :],
                         mask=m_mask[:, None], other=0.0)  # (BM, D)
            dv = _mma(pT.to(do.dtype), do, dv, DOT_PRECISION, UPCAST)
            delta = tl.load(DELTA + head * stride_lh + rows_m, mask=m_mask, other=0.0)
            dpT = _mm(v, tl.trans(do), DOT_PRECISION, UPCAST)  # (BN, BM)
            dsT = pT * (dpT - delta[None, :])
            dk = _mma(dsT.to(qT.dtype), tl.trans(qT), dk, DOT_PRECISION, UPCAST)
        dk = dk * sm_scale
        tl.store(DK + rows_n * stride_gt + head * stride_gh + offs_d[None, :], dk.to(DK.dtype.element_ty),
                 mask=n_mask[:, None])
        tl.store(DV + rows_n * stride_gt + head * stride_gh + offs_d[None, :], dv.to(DV.dtype.element_ty),
                 mask=n_mask[:, None])


@triton.jit
def _attn_bwd_dq(Q, K, V, DO, DQ, LSE, DELTA, CU, qk_scale, sm_scale,
                 stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh,
                 stride_dot, stride_doh, stride_gt, stride_gh, stride_lh, MAX_SEQ_BUCKET,
                 HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                 DOT_PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    # One program owns a query tile and sweeps every key/value tile of its sequence.
    seq = tl.program_id(0)
    tile = tl.program_id(1)
    head = tl.program_id(2)
    first = tl.load(CU + seq)
    seqlen = tl.load(CU + seq + 1) - first
    start = first.to(tl.int64)  # 64-bit row offsets: T * stride may pass 2**31
    if tile * BLOCK_M < seqlen:
        offs_m = tile * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = tl.arange(0, BLOCK_N)
        offs_d = tl.arange(0, HEAD_DIM)
        m_mask = offs_m < seqlen
        rows_m = start + offs_m
        q = tl.load(Q + rows_m[:, None] * stride_qt + head * stride_qh + offs_d[None, :],
                    mask=m_mask[:, None], other=0.0)
        do = tl.load(DO + rows_m[:, None] * stride_dot + head * stride_doh + offs_d[None, :],
                     mask=m_mask[:, None], other=0.0)
        lse = tl.load(LSE + head * stride_lh + rows_m, mask=m_mask, other=0.0)
        delta = tl.load(DELTA + head * stride_lh + rows_m, mask=m_mask, other=0.0)
        dq = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
        for start_n in range(0, seqlen, BLOCK_N):
            n_mask = (start_n + offs_n) < seqlen
            rows_n = start + start_n + offs_n
            kT = tl.load(K + rows_n[None, :] * stride_kt + head * stride_kh + offs_d[:, None],
                         mask=n_mask[None, :], other=0.0)  # (D, BN)
            vT = tl.load(V + rows_n[None, :] * stride_vt + head * stride_vh + offs_d[:, None],
                         mask=n_mask[None, :], other=0.0)  # (D, BN)
            qk = _mm(q, kT, DOT_PRECISION, UPCAST)  # (BM, BN)
            p = tl.where(n_mask[None, :], tl.math.exp2(qk * qk_scale - lse[:, None]), 0.0)
            dp = _mm(do, vT, DOT_PRECISION, UPCAST)  # (BM, BN)
            ds = p * (dp - delta[:, None])
            dq = _mma(ds.to(kT.dtype), tl.trans(kT), dq, DOT_PRECISION, UPCAST)
        dq = dq * sm_scale
        tl.store(DQ + rows_m[:, None] * stride_gt + head * stride_gh + offs_d[None, :], dq.to(DQ.dtype.element_ty),
                 mask=m_mask[:, None])


# (owned tile, swept tile, warps, stages): a short list, because every entry is compiled per key.
_TILES = [(16, 16, 2, 2), (16, 32, 2, 2), (32, 32, 4, 2), (32, 64, 4, 2), (64, 32, 4, 2), (64, 64, 4, 2),
          (64, 64, 4, 3), (64, 64, 8, 3), (128, 32, 8, 2), (128, 64, 8, 2)]


def _configs(first: str, second: str):
    """Autotune space; `first` names the tile a program owns, `second` the tile its loop sweeps."""
    if _INTERPRET:
        # One config keeps the interpreter fast; unequal tiles exercise both loop bounds.
        return [triton.Config({first: 32, second: 16}, num_warps=4, num_stages=1)]
    return [triton.Config({first: own, second: swept}, num_warps=w, num_stages=st) for own, swept, w, st in _TILES]


def _prune(configs, named_args, **kwargs):
    # Tiles larger than the longest sequence only add masked work.
    bucket = max(16, named_args["MAX_SEQ_BUCKET"])
    return [c for c in configs if max(c.kwargs.values()) <= bucket] or configs[:1]


_KEY = ["HEAD_DIM", "MAX_SEQ_BUCKET"]
_PRUNE = {"early_config_prune": _prune}
_fwd_tuned = triton.autotune(_configs("BLOCK_M", "BLOCK_N"), key=_KEY, prune_configs_by=_PRUNE)(_attn_fwd)
_dkdv_tuned = triton.autotune(_configs("BLOCK_N", "BLOCK_M"), key=_KEY, prune_configs_by=_PRUNE)(_attn_bwd_dkdv)
_dq_tuned = triton.autotune(_configs("BLOCK_M", "BLOCK_N"), key=_KEY, prune_configs_by=_PRUNE)(_attn_bwd_dq)


def _launch(raw, tuned, blocks, tile_key, n_seq, max_seqlen, n_head, *args, **kwargs):
    """Run `tuned`, or `raw` with explicit blocks=(BLOCK_M, BLOCK_N) (tests pin tile shapes)."""
    bucket = triton.next_power_of_2(max(max_seqlen, 1))
    if blocks is None:
        grid = lambda meta: (n_seq, triton.cdiv(max_seqlen, meta[tile_key]), n_head)  # noqa: E731
        tuned[grid](*args, bucket, **kwargs)
        return
    tiles = dict(BLOCK_M=blocks[0], BLOCK_N=blocks[1])
    raw[(n_seq, triton.cdiv(max_seqlen, tiles[tile_key]), n_head)](
        *args, bucket, **kwargs, **tiles, num_warps=4, num_stages=2)


def _strides(*tensors):
    return [s for t in tensors for s in t.stride()[:2]]


def _forward(q, k, v, cu_seqlens, max_seqlen, sm_scale, blocks):
    T, H, D = q.shape
    o = torch.empty((T, H, D), dtype=q.dtype, device=q.device)  # (T, H, D)
    lse = torch.empty((H, T), dtype=torch.float32, device=q.device)  # (H, T), base 2
    _launch(_attn_fwd, _fwd_tuned, blocks, "BLOCK_M", cu_seqlens.numel() - 1, max_seqlen, H,
            q, k, v, o, lse, cu_seqlens, sm_scale * _LOG2E, *_strides(q, k, v, o), lse.stride(0),
            HEAD_DIM=D, **_dot_args(q.dtype))
    return o, lse


def _backward(q, k, v, o, lse, do, cu_seqlens, max_seqlen, sm_scale, blocks):
    T, H, D = q.shape
    delta = torch.empty_like(lse)  # (H, T)
    _attn_bwd_preprocess[(triton.cdiv(T, 64), H)](
        o, do, delta, T, *_strides(o, do), delta.stride(0), HEAD_DIM=D, BLOCK=64)
    dq = torch.empty((T, H, D), dtype=q.dtype, device=q.device)
    dk = torch.empty_like(dq)
    dv = torch.empty_like(dq)
    n_seq = cu_seqlens.numel() - 1
    common = dict(HEAD_DIM=D, **_dot_args(q.dtype))
    scales = (sm_scale * _LOG2E, sm_scale)
    _launch(_attn_bwd_dkdv, _dkdv_tuned, blocks, "BLOCK_N", n_seq, max_seqlen, H,
            q, k, v, do, dk, dv, lse, delta, cu_seqlens, *scales, *_strides(q, k, v, do, dk), lse.stride(0),
            **common)
    _launch(_attn_bwd_dq, _dq_tuned, blocks, "BLOCK_M", n_seq, max_seqlen, H,
            q, k, v, do, dq, lse, delta, cu_seqlens, *scales, *_strides(q, k, v, do, dq), lse.stride(0),
            **common)
    return dq, dk, dv


def _dot_args(dtype) -> dict:
    # fp32 callers asked for fp32 math; tf32 would cost them ~3 decimal digits.
    precision = "ieee" if dtype == torch.float32 else "tf32"
    return dict(DOT_PRECISION=precision, UPCAST=_INTERPRET and dtype == torch.bfloat16)


class _VarlenAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, cu_seqlens, max_seqlen, sm_scale, blocks):
        with _on_device(q):
            o, lse = _forward(q, k, v, cu_seqlens, max_seqlen, sm_scale, blocks)
        ctx.save_for_backward(q, k, v, o, lse, cu_seqlens)
        ctx.max_seqlen, ctx.sm_scale, ctx.blocks = max_seqlen, sm_scale, blocks
        return o

    @staticmethod
    def backward(ctx, do):
        q, k, v, o, lse, cu_seqlens = ctx.saved_tensors
        do = _last_dim_contiguous(do.to(q.dtype))
        with _on_device(q):
            dq, dk, dv = _backward(q, k, v, o, lse, do, cu_seqlens, ctx.max_seqlen, ctx.sm_scale, ctx.blocks)
        return dq, dk, dv, None, None, None, None


def _on_device(t):
    # Triton launches on the current CUDA device; follow the tensor, not the default.
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


def _last_dim_contiguous(t):
    return t if t.stride(-1) == 1 else t.contiguous()


def _check(q, k, v, cu_seqlens, max_seqlen):
    if q.dim() != 3 or q.shape != k.shape or q.shape != v.shape:
        raise ValueError(f"q, k, v must share one (T, H, D) shape, got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    if q.dtype not in (torch.bfloat16, torch.float16, torch.float32) or k.dtype != q.dtype or v.dtype != q.dtype:
        raise ValueError(f"q, k, v must share one dtype of bf16/fp16/fp32, got {q.dtype}, {k.dtype}, {v.dtype}")
    if q.shape[2] not in HEAD_DIMS:
        raise ValueError(f"head_dim must be one of {HEAD_DIMS}, got {q.shape[2]}")
    if cu_seqlens.dtype != torch.int32 or cu_seqlens.dim() != 1 or cu_seqlens.numel() < 1:
        raise ValueError(f"cu_seqlens must be a 1-D int32 tensor (n_seq + 1,), got {cu_seqlens.dtype} "
                         f"{tuple(cu_seqlens.shape)}")
    if not (q.device == k.device == v.device == cu_seqlens.device):
        raise ValueError("q, k, v and cu_seqlens must be on one device")
    if not q.is_cuda and not _INTERPRET:
        raise ValueError("the Triton kernel needs CUDA tensors (or TRITON_INTERPRET=1 on CPU); "
                         "use varlen_attention_ref on CPU")
    try:
        n = operator.index(max_seqlen)  # numpy ints pass; floats do not
    except TypeError:
        n = -1
    if n < 0:
        raise ValueError(f"max_seqlen must be a non-negative host int, got {max_seqlen!r}")
    return n


def varlen_attention(q, k, v, cu_seqlens, max_seqlen, softmax_scale=None):
    """Bidirectional attention within each packed sequence; see the contract at the top of this file.

    q, k, v: (T, H, D); cu_seqlens: int32 (n_seq + 1,); max_seqlen: host int. Returns (T, H, D).
    """
    return _varlen_attention(q, k, v, cu_seqlens, max_seqlen, softmax_scale, None)


def _varlen_attention(q, k, v, cu_seqlens, max_seqlen, softmax_scale, blocks):
    # blocks=(BLOCK_M, BLOCK_N) pins the tiles instead of autotuning (tests cover several shapes).
    max_seqlen = _check(q, k, v, cu_seqlens, max_seqlen)
    q, k, v = (_last_dim_contiguous(t) for t in (q, k, v))
    cu_seqlens = cu_seqlens.contiguous()
    sm_scale = float(softmax_scale) if softmax_scale is not None else q.shape[2] ** -0.5
    if q.shape[0] == 0 or max_seqlen == 0 or cu_seqlens.numel() == 1:
        # Nothing to attend over; the product keeps the graph so backward yields zero gradients.
        return (q + k + v) * 0.0
    return _VarlenAttention.apply(q, k, v, cu_seqlens, max_seqlen, sm_scale, blocks)
