"""The compiled core `claimsfm._native` (csrc/), loaded through `native()` with a clear error.

ABI_VERSION is the binding interface (names, arguments, result keys; see claimsfm/_native.pyi) this
Python code was written against. csrc/bind_numpy.hpp holds the compiled side's number; importing
`claimsfm._native` fails with a one-line ImportError when the two differ (a stale build), and `native()`
turns that, or a missing build, into a ClaimsfmError.
"""
from __future__ import annotations

from claimsfm.errors import ClaimsfmError

ABI_VERSION = 5
_REBUILD = "rebuild it with `pip install --no-build-isolation -e .`"


def native():
    """The compiled core, checked against ABI_VERSION."""
    try:
        from claimsfm import _native
    except ImportError as exc:
        raise ClaimsfmError(f"claimsfm's C++ core cannot be loaded ({exc}); {_REBUILD}") from None
    built = getattr(_native, "ABI_VERSION", None)
    if built != ABI_VERSION:
        raise ClaimsfmError(f"claimsfm._native has ABI_VERSION {built}, but this claimsfm needs {ABI_VERSION}; "
                            f"{_REBUILD}")
    return _native
