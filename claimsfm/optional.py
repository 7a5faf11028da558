"""Each heavy or optional import in one place, with a clear error when it is missing.

Modules call these functions inside the code that needs the package, so `import claimsfm`
and `claimsfm --help` stay free of torch, triton and lightgbm.
"""
import importlib

from claimsfm.errors import ClaimsfmError

_HINTS = {
    "torch": "pip install torch  (CPU: pip install torch --index-url https://download.pytorch.org/whl/cpu)",
    "triton": "pip install triton  (only needed for --attention triton on a CUDA GPU)",
    "lightgbm": "pip install lightgbm",
    "polars": "pip install polars  (only used by the CSV benchmark)",
}


def _require(name: str):
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        hint = _HINTS.get(name, f"pip install {name}")
        raise ClaimsfmError(f"this command needs the optional package '{name}': {hint} ({exc})") from None


def torch():
    return _require("torch")


def triton():
    return _require("triton")


def lightgbm():
    return _require("lightgbm")


def polars():
    return _require("polars")


def has_triton() -> bool:
    try:
        importlib.import_module("triton")
    except ImportError:
        return False
    return True
