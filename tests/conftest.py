"""Shared test helpers.

Subprocesses run `python -P` from a temporary folder so that they import the *installed* claimsfm
(with its compiled core and the claimsfm.cli / claimsfm.kernels mapping), never the source tree.
"""
import os
import subprocess
import sys

import pytest


def run_cli(args, cwd, env=None, timeout=600, input=None):
    """Run `claimsfm ARGS...` as a user would; returns the CompletedProcess (text mode)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-P", "-m", "claimsfm.cli.main", *map(str, args)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
    )


@pytest.fixture
def cli(tmp_path):
    """`cli(*args, env=None)` runs the claimsfm command in tmp_path."""

    def _run(*args, env=None, timeout=600, input=None):
        return run_cli(args, cwd=tmp_path, env=env, timeout=timeout, input=input)

    return _run
