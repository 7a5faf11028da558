"""Scale sweep: pretrain a ladder of model sizes, evaluate every task, find where each task saturates.

`saturation` holds the rule, `powerlaw` the loss fit, `compute` the FLOP/hour accounting, `plan` the
paper-scale `--dry-run`, `collect` the per-task paired comparisons, `run` the orchestration behind
`claimsfm sweep`, and `demo` the whole chain behind `claimsfm demo`.
"""
