"""User-facing errors.

A `ClaimsfmError` is a problem with the user's input or environment (bad file, bad flag, missing
optional package). The CLI prints its message as one line and exits with code 2, without a
traceback. Messages name the file and line, or the flag, and never contain patient identifiers.
"""
from __future__ import annotations

import math
from numbers import Real


class ClaimsfmError(Exception):
    """An error caused by input or environment, reported to the user in one line."""


def located(path, line: int | None, reason: str) -> ClaimsfmError:
    """`file:line: reason` (or `file: reason` without a line)."""
    where = f"{path}:{line}" if line is not None else f"{path}"
    return ClaimsfmError(f"{where}: {reason}")


def os_error(exc: OSError, what: str = "") -> ClaimsfmError:
    """One line for a failed file-system call: `path: reason` (read-only folder, a file in the way, ...)."""
    where = exc.filename if exc.filename is not None else "(unknown path)"
    if exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    reason = exc.strerror or type(exc).__name__
    return ClaimsfmError(f"{where}: {what + ': ' if what else ''}{reason}")


def check_number(flag: str, value, low=None, high=None, *, above: bool = False) -> None:
    """Refuse a flag value that is not a finite number in [low, high] (`above`: strictly > low); None = unset."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ClaimsfmError(f"{flag} must be a finite number, got {value!r}")
    if low is not None and (value <= low if above else value < low):
        raise ClaimsfmError(f"{flag} must be {'>' if above else '>='} {low}, got {value}")
    if high is not None and value > high:
        raise ClaimsfmError(f"{flag} must be <= {high}, got {value}")


MAX_SEED = 2**31 - 1  # LightGBM takes an int32 seed; numpy and torch take any non-negative one below it


def check_seed(seed) -> None:
    """`--seed`: an integer in [0, MAX_SEED], the range every library a command seeds accepts."""
    check_number("--seed", seed, 0, MAX_SEED)
