"""A tiny real pipeline built once per module (synth -> ingest -> a 2-step pretraining run) for the hostile
tests to break copies of (about 10 s on 2 idle cores)."""
import pytest

SYNTH = ["--patients", "400", "--hospitals", "3", "--months", "60", "--seed", "3", "--quiet"]
PRETRAIN = ["--params", "demo-S", "--steps", "2", "--batch-tokens", "512", "--micro-batch-tokens", "512",
            "--max-len", "64", "--json"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """{"root", "synth", "data", "run", "pretrain"}: a synthetic cohort, its ingest folder, a finished pretraining
    run and the pretrain flags that made it (a rerun with them finds the same settings)."""
    from claimsfm.cli.main import main

    root = tmp_path_factory.mktemp("world")
    for args in (["synth", "--out", root / "synth", *SYNTH],
                 ["ingest", root / "synth", "--out", root / "data", "--link-by", "insurer", "--no-progress"],
                 ["pretrain", "--data", root / "data", "--out", root / "run", *PRETRAIN]):
        with pytest.raises(SystemExit) as info:
            main([str(a) for a in args])
        assert info.value.code in (0, None), args
    return {"root": root, "synth": root / "synth", "data": root / "data", "run": root / "run", "pretrain": PRETRAIN}
