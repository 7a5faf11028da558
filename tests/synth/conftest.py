import pytest

from claimsfm.synth.run import SynthConfig, run


@pytest.fixture(scope="session")
def cohort(tmp_path_factory):
    """One small cohort shared by the synth tests: (folder, synth.json summary)."""
    out = tmp_path_factory.mktemp("synth") / "cohort"
    summary = run(SynthConfig(out=str(out), patients=1500, hospitals=4, start="2014-01", months=96, seed=7,
                              progress=False))
    return out, summary
