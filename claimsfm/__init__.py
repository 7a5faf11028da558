"""claimsfm: foundation models from medical claims.

Importing this package is cheap: it loads no torch, triton or lightgbm. Heavy modules are imported
by the functions that need them.
"""
from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("claimsfm")
except _metadata.PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+source"

from claimsfm.errors import ClaimsfmError

__all__ = ["ClaimsfmError", "__version__"]
