"""Triton kernels (installed as claimsfm.kernels). Imports nothing from claimsfm.

Importing this package loads neither torch nor triton; each function imports what it needs, so
`varlen_attention_ref` works where triton is missing.
"""
import os


def varlen_attention(q, k, v, cu_seqlens, max_seqlen, softmax_scale=None):
    """Fused Triton attention within packed sequences: q, k, v (T, H, D) -> (T, H, D).

    cu_seqlens: int32 (n_seq + 1,) prefix sums on q's device; max_seqlen: host int >= the longest
    sequence. Differentiable (fused backward). Contract and limits: kernels/attention.py.
    """
    from .attention import varlen_attention as impl

    return impl(q, k, v, cu_seqlens, max_seqlen, softmax_scale)


def varlen_attention_ref(q, k, v, cu_seqlens, max_seqlen, softmax_scale=None):
    """Plain PyTorch attention within packed sequences; same contract, any device, no triton."""
    from .attention_ref import varlen_attention_ref as impl

    return impl(q, k, v, cu_seqlens, max_seqlen, softmax_scale)


def triton_available() -> bool:
    """True when the Triton kernel can run here: triton imports and (CUDA is present or TRITON_INTERPRET=1)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    import torch

    return torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"


__all__ = ["varlen_attention", "varlen_attention_ref", "triton_available"]
