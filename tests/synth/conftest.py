import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from claimsfm.synth.run import SynthConfig, run  # noqa: E402


@pytest.fixture(scope="session")
def cohort(tmp_path_factory):
    """One small cohort shared by the synth tests: (folder, synth.json summary)."""
    out = tmp_path_factory.mktemp("synth") / "cohort"
    summary = run(SynthConfig(out=str(out), patients=1500, hospitals=4, start="2014-01", months=96, seed=7, progress=False))
    return out, summary
