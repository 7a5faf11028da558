"""Each command's config validates itself with check(); the command line refuses the same values the library does."""
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from claimsfm.errors import ClaimsfmError
from claimsfm.eval import MIN_N_BOOT, MODES
from claimsfm.eval.run import EvalConfig
from claimsfm.ingest.pipeline import IngestConfig
from claimsfm.model.scale import BACKENDS
from claimsfm.sweep.run import SweepConfig
from claimsfm.synth.run import SynthConfig
from claimsfm.train.pretrain import PretrainConfig


@pytest.mark.parametrize("config, message", [
    (EvalConfig(data="d", n_boot=MIN_N_BOOT - 1), "--n-boot must be at least"),
    (SweepConfig(data=None, n_boot=MIN_N_BOOT - 1), "--n-boot must be at least"),
    (EvalConfig(data="d", mode="zeroshot"), "--mode must be one of " + ", ".join(MODES)),
    (SweepConfig(data=None, mode="zeroshot"), "--mode must be one of " + ", ".join(MODES)),
    (EvalConfig(data="d", baselines=("xgboost",)), "unknown baseline 'xgboost'"),
    (SweepConfig(data=None, tokens=0), "--tokens must be"),
    (PretrainConfig(data="d", attention="flash"), "--attention must be one of " + ", ".join(BACKENDS)),
    (PretrainConfig(data="d", max_len=0), "--max-len must be"),
    (IngestConfig(inputs=[Path("x")], out=Path("y"), code_level="coarse"), "--code-level"),
    (SynthConfig(out=Path("s"), start="2014-13"), "--start must be YYYY-MM"),
])
def test_check_refuses(config, message):
    with pytest.raises(ClaimsfmError, match=message):
        config.check()


def test_defaults_pass_and_configs_are_frozen():
    configs = [EvalConfig(data="d"), SweepConfig(data=None), PretrainConfig(data="d"),
               IngestConfig(inputs=[Path("x")], out=Path("y")), SynthConfig(out=Path("s"))]
    for config in configs:
        config.check()
        with pytest.raises(FrozenInstanceError):
            config.seed = 1  # a frozen dataclass refuses any assignment


@pytest.mark.parametrize("command", [["sweep", "--dry-run"], ["evaluate", "--data", "."]])
def test_cli_refuses_few_bootstrap_resamples_alike(cli, command):
    out = cli(*command, "--n-boot", "5")
    assert out.returncode == 2
    assert out.stderr.strip() == f"error: --n-boot must be at least {MIN_N_BOOT}, got 5"
