"""Triton varlen attention vs its PyTorch twin: output and dq, dk, dv over random length mixes.

On a CPU the kernels run in Triton's interpreter (see conftest.py), so shapes stay tiny; on a CUDA
GPU the same tests run compiled, and the `gpu` tests add long sequences and the autotuned path.
"""
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from claimsfm.kernels import varlen_attention_ref

# (atol, rtol) for the output and for the gradients, against an fp32 reference rounded to the dtype.
# Measured in the interpreter: worst error / tolerance <= ~0.4 over these tests (and over one
# 1024-token sequence), so a real bug (a wrong mask, scale or tile bound) fails by a wide margin.
TOL = {
    torch.float32: ((1e-5, 1e-5), (2e-5, 2e-5)),
    torch.float16: ((2e-3, 2e-3), (6e-3, 5e-3)),
    torch.bfloat16: ((1.6e-2, 1.6e-2), (3e-2, 2e-2)),
}
DTYPES = list(TOL)


def _cu(lengths, device):
    cu = [0]
    for n in lengths:
        cu.append(cu[-1] + n)
    return torch.tensor(cu, dtype=torch.int32, device=device)


def _inputs(lengths, n_head, head_dim, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    T = sum(lengths)
    q, k, v, do = (torch.randn(T, n_head, head_dim, generator=g).to(device=device, dtype=dtype) for _ in range(4))
    return q, k, v, do


def _fwd_bwd(fn, q, k, v, do, cu, max_seqlen, **kwargs):
    q, k, v = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
    out = fn(q, k, v, cu, max_seqlen, **kwargs)
    out.backward(do)
    return [out.detach(), q.grad, k.grad, v.grad]


def _compare(kernel, lengths, n_head, head_dim, dtype, device, blocks=(32, 16), scale=None, seed=0):
    # Pinned tiles (the interpreter's own) unless a test asks for autotuning with blocks=None: on a
    # GPU every autotuned key compiles the whole config list.
    q, k, v, do = _inputs(lengths, n_head, head_dim, dtype, device, seed)
    cu = _cu(lengths, device)
    max_seqlen = max(lengths)

    def fast(q, k, v, cu, m):
        return kernel._varlen_attention(q, k, v, cu, m, scale, blocks)

    got = _fwd_bwd(fast, q, k, v, do, cu, max_seqlen)
    want = _fwd_bwd(varlen_attention_ref, q, k, v, do, cu, max_seqlen, softmax_scale=scale)
    for name, a, b in zip(("out", "dq", "dk", "dv"), got, want):
        assert a.dtype == dtype and a.shape == b.shape, name
        atol, rtol = TOL[dtype][0 if name == "out" else 1]
        torch.testing.assert_close(a.float(), b.float(), atol=atol, rtol=rtol, msg=lambda m, name=name: f"{name}: {m}")


def _mix(seed, n, high):
    g = torch.Generator().manual_seed(seed)
    return [1] + torch.randint(2, high, (n - 1,), generator=g).tolist()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("head_dim", [16, 32, 64, 128])
def test_matches_reference_each_dtype_and_head_dim(kernel, device, dtype, head_dim):
    # Length 1 first, then lengths that are mostly not multiples of any block size.
    lengths = _mix(head_dim, 5, 70)
    _compare(kernel, lengths, 2 if head_dim < 128 else 1, head_dim, dtype, device, seed=head_dim)


@pytest.mark.parametrize("lengths", [
    [200],                          # one long sequence: many tiles both ways
    [1, 2, 3, 1, 1, 2, 3, 1] * 4,   # many tiny ones: most of every tile is masked
    [5, 0, 33, 0, 16],              # empty sequences and an exact block multiple
    [1],                            # a single token
], ids=["long", "many_tiny", "empty_and_exact", "single_token"])
def test_length_mixes(kernel, device, lengths):
    _compare(kernel, lengths, 1, 32, torch.float16, device)


@pytest.mark.parametrize("blocks", [(16, 16), (64, 32), (16, 64)])
def test_tile_shapes(kernel, device, blocks):
    _compare(kernel, [1, 15, 16, 17, 63, 64, 65], 1, 16, torch.float32, device, blocks=blocks)


def test_softmax_scale_and_strided_views(kernel, device):
    # q, k, v as views of one fused projection (T, 3, H, D): the token stride is 3 * H * D.
    lengths, H, D = [7, 30, 1], 2, 32
    T = sum(lengths)
    g = torch.Generator().manual_seed(1)
    qkv = torch.randn(T, 3, H, D, generator=g).to(device).requires_grad_(True)
    do = torch.randn(T, H, D, generator=g).to(device)
    cu = _cu(lengths, device)
    outs = []
    for fn in (kernel._varlen_attention, varlen_attention_ref):
        qkv.grad = None
        q, k, v = qkv.unbind(1)
        out = fn(q, k, v, cu, max(lengths), 0.3, *([(32, 16)] if fn is kernel._varlen_attention else []))
        out.backward(do)
        outs.append((out.detach(), qkv.grad.clone()))
    torch.testing.assert_close(outs[0][0], outs[1][0], atol=2e-5, rtol=2e-5)
    torch.testing.assert_close(outs[0][1], outs[1][1], atol=5e-5, rtol=5e-5)


def test_no_attention_across_sequences(kernel, device):
    # Changing one sequence's keys and values must leave every other sequence's output unchanged.
    lengths = [9, 20, 4]
    q, k, v, _ = _inputs(lengths, 1, 16, torch.float32, device)
    cu = _cu(lengths, device)
    before = kernel.varlen_attention(q, k, v, cu, 20)
    k2, v2 = k.clone(), v.clone()
    k2[9:29] += 3.0
    v2[9:29] -= 5.0
    after = kernel.varlen_attention(q, k2, v2, cu, np.int64(20))  # numpy ints are host ints too
    assert torch.equal(before[:9], after[:9]) and torch.equal(before[29:], after[29:])
    assert not torch.allclose(before[9:29], after[9:29])


def test_autotune_space_is_pruned_to_the_longest_sequence(kernel):
    import triton

    configs = [triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=w, num_stages=st)
               for m, n, w, st in kernel._TILES]
    short = kernel._prune(configs, {"MAX_SEQ_BUCKET": 32})
    assert short and all(max(c.kwargs.values()) <= 32 for c in short)
    tiny = kernel._prune(configs, {"MAX_SEQ_BUCKET": 1})
    assert [tuple(c.kwargs.values()) for c in tiny] == [(16, 16)]
    assert len(kernel._prune(configs, {"MAX_SEQ_BUCKET": 1024})) == len(configs)


def test_reference_matches_naive_softmax():
    # The oracle itself, against the textbook formula per sequence in float64.
    lengths = [1, 6, 13]
    q, k, v, _ = _inputs(lengths, 2, 8, torch.float64, "cpu")
    cu = _cu(lengths, "cpu")
    got = varlen_attention_ref(q, k, v, cu, 13)
    for s, e in zip(cu[:-1].tolist(), cu[1:].tolist()):
        qs, ks, vs = (t[s:e].transpose(0, 1) for t in (q, k, v))  # (H, L, D)
        w = torch.softmax(qs @ ks.transpose(1, 2) / math.sqrt(8), dim=-1)
        torch.testing.assert_close(got[s:e], (w @ vs).transpose(0, 1).to(got.dtype), atol=1e-6, rtol=1e-6)


def test_empty_batch_gives_empty_output_and_zero_grads(kernel, device):
    q = torch.zeros(0, 2, 16, device=device, requires_grad=True)
    out = kernel.varlen_attention(q, q, q, torch.zeros(1, dtype=torch.int32, device=device), 0)
    assert out.shape == (0, 2, 16)
    out.sum().backward()
    assert q.grad.shape == q.shape


@pytest.mark.parametrize("change, message", [
    (lambda a: dict(a, q=a["q"].double()), "dtype"),
    (lambda a: dict(a, q=a["q"][..., :8], k=a["k"][..., :8], v=a["v"][..., :8]), "head_dim"),
    (lambda a: dict(a, k=a["k"][:-1]), "shape"),
    (lambda a: dict(a, cu_seqlens=a["cu_seqlens"].long()), "int32"),
    (lambda a: dict(a, max_seqlen=5.0), "max_seqlen"),
])
def test_rejects_bad_input(kernel, device, change, message):
    q, k, v, _ = _inputs([3, 4], 1, 16, torch.float32, device)
    args = dict(q=q, k=k, v=v, cu_seqlens=_cu([3, 4], device), max_seqlen=4)
    with pytest.raises(ValueError, match=message):
        kernel.varlen_attention(**change(args))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("head_dim", [16, 32, 64, 128])
def test_gpu_long_sequences(kernel, dtype, head_dim):
    # Compiled, lengths up to 1024 drawn like claims (lognormal), GPU-sized tiles.
    _compare(kernel, _claims_lengths(head_dim), 4, head_dim, dtype, "cuda", blocks=(64, 64), seed=head_dim)


@pytest.mark.gpu
def test_gpu_autotuned(kernel):
    # The public path: autotuned tiles (every config of the list compiles once for this key).
    lengths = _claims_lengths(7)
    q, k, v, do = _inputs(lengths, 4, 64, torch.bfloat16, "cuda")
    cu = _cu(lengths, "cuda")
    got = _fwd_bwd(kernel.varlen_attention, q, k, v, do, cu, max(lengths))
    want = _fwd_bwd(varlen_attention_ref, q, k, v, do, cu, max(lengths))
    for name, a, b in zip(("out", "dq", "dk", "dv"), got, want):
        atol, rtol = TOL[torch.bfloat16][0 if name == "out" else 1]
        torch.testing.assert_close(a.float(), b.float(), atol=atol, rtol=rtol, msg=lambda m, name=name: f"{name}: {m}")


def _claims_lengths(seed):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.exp(torch.randn(40, generator=g) * 0.9 + math.log(100)).clamp(1, 1024).long().tolist()
    return [1, 1024, 511] + lengths


@pytest.mark.gpu
def test_gpu_matches_sdpa_per_sequence(kernel):
    # An independent oracle on the GPU: SDPA on each sequence alone, bf16 throughout.
    lengths = [1, 128, 300, 77, 512]
    q, k, v, _ = _inputs(lengths, 8, 64, torch.bfloat16, "cuda")
    cu = _cu(lengths, "cuda")
    out = kernel.varlen_attention(q, k, v, cu, 512)
    for s, e in zip(cu[:-1].tolist(), cu[1:].tolist()):
        ref = torch.nn.functional.scaled_dot_product_attention(*(t[s:e].transpose(0, 1)[None] for t in (q, k, v)))
        torch.testing.assert_close(out[s:e], ref[0].transpose(0, 1), atol=3e-2, rtol=2e-2)


_AOT = r"""
import sys, triton
from triton.backends.compiler import GPUTarget
from claimsfm.kernels import attention as A
assert not A._INTERPRET
POINTERS = {"CU": "*i32", "LSE": "*fp32", "DELTA": "*fp32"}
def signature(fn, dtype, consts):
    sig = {}
    for name in fn.arg_names:
        if name in consts:
            sig[name] = "constexpr"
        elif name in ("qk_scale", "sm_scale"):
            sig[name] = "fp32"
        elif name.isupper() and name not in ("T", "MAX_SEQ_BUCKET"):
            sig[name] = POINTERS.get(name, "*" + dtype)
        else:
            sig[name] = "i32"
    return sig
for dtype, head_dim in (("bf16", 64), ("fp32", 16)):
    for fn in (A._attn_fwd, A._attn_bwd_dkdv, A._attn_bwd_dq):
        consts = dict(HEAD_DIM=head_dim, BLOCK_M=64, BLOCK_N=32, UPCAST=False,
                      DOT_PRECISION="ieee" if dtype == "fp32" else "tf32")
        src = triton.compiler.ASTSource(fn, signature(fn, dtype, consts), consts)
        k = triton.compile(src, target=GPUTarget("cuda", 90, 32), options=dict(num_warps=4, num_stages=2))
        assert len(k.asm["cubin"]) > 0
print("ok")
"""


def test_kernels_compile_for_sm90_without_a_gpu(tmp_path):
    # The interpreter accepts code that the compiler rejects; compiling to an sm_90 cubin (Triton
    # ships ptxas) catches that on a CPU-only machine.
    triton = pytest.importorskip("triton")
    if "nvidia" not in triton.backends.backends:
        pytest.skip("triton has no nvidia backend here")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(TRITON_CACHE_DIR=str(tmp_path / "cache"), TRITON_DEFAULT_FP_FUSION="1")
    out = subprocess.run([sys.executable, "-P", "-c", _AOT], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


def test_package_works_without_triton(tmp_path):
    # The reference and triton_available() must not need triton at all.
    code = (
        "import sys; sys.modules['triton'] = None\n"
        "import torch, claimsfm.kernels as K\n"
        "assert 'torch' in sys.modules and not K.triton_available()\n"
        "q = torch.randn(5, 1, 16); cu = torch.tensor([0, 2, 5], dtype=torch.int32)\n"
        "print(tuple(K.varlen_attention_ref(q, q, q, cu, 3).shape))\n"
    )
    out = subprocess.run([sys.executable, "-P", "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "(5, 1, 16)", out.stderr[-2000:]
