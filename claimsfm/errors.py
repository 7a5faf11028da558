"""User-facing errors.

A `ClaimsfmError` is a problem with the user's input or environment (bad file, bad flag, missing
optional package). The CLI prints its message as one line and exits with code 2, without a
traceback. Messages name the file and line, or the flag, and never contain patient identifiers.
"""


class ClaimsfmError(Exception):
    """An error caused by input or environment, reported to the user in one line."""


def located(path, line: int | None, reason: str) -> ClaimsfmError:
    """`file:line: reason` (or `file: reason` without a line)."""
    where = f"{path}:{line}" if line is not None else f"{path}"
    return ClaimsfmError(f"{where}: {reason}")
