"""Evaluation: metrics with patient bootstrap, fine-tuning / linear probe of a checkpoint, `run`.

The choices and limits shared by `evaluate`, `sweep` and the command line live here (no heavy imports).
"""
from claimsfm.errors import ClaimsfmError

# How the FM is adapted to a task, in MODES order (the first is the default); MODE_HELP is the one --mode help.
MODES = ("attend", "finetune", "probe")
MODE_HELP = " | ".join(MODES) + (
    ": frozen encoder + a wide-and-deep head per task (a bag-of-codes logistic regression "
    "over the sequence, then attention over every token state for what the encoder adds) | full fine-tuning with a "
    "linear head (one encoder per task group) | frozen encoder + logistic regression on pooled vectors.")
BASELINES = ("lightgbm",)      # baseline models `--baselines` may name
MIN_N_BOOT = 100               # fewer bootstrap resamples give CIs too coarse to compare scales


def check_n_boot(n_boot: int) -> None:
    if n_boot < MIN_N_BOOT:
        raise ClaimsfmError(f"--n-boot must be at least {MIN_N_BOOT}, got {n_boot}")


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ClaimsfmError(f"--mode must be one of {', '.join(MODES)}, not '{mode}'")
