"""Fixtures of the MEDS ecosystem tests: one small synthetic cohort ingested once by the CLI."""
import os
import subprocess
import sys

import pytest

from helpers.medstools import SALT


@pytest.fixture(scope="session")
def ingested(tmp_path_factory):
    """(data folder, ingest stderr) of a 1500-patient synthetic cohort ingested by the CLI."""
    from claimsfm.synth.run import SynthConfig, run

    root = tmp_path_factory.mktemp("meds")
    run(SynthConfig(out=str(root / "synth"), patients=1500, hospitals=3, start="2014-01", months=72, seed=3,
                    progress=False))
    data = root / "data"
    proc = subprocess.run([sys.executable, "-P", "-m", "claimsfm.cli.main", "ingest", str(root / "synth"),
                           "--out", str(data), "--link-by", "insurer", "--no-progress"],
                          capture_output=True, text=True, timeout=600, cwd=root, env={**os.environ, **SALT})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return data, proc.stderr

