"""Scale sweep: pretrain a ladder of model sizes, evaluate every task, find where each task saturates.

`saturation` holds the rule, `powerlaw` the loss fit, `compute` the FLOP/hour accounting and the
paper-scale plan, `run` the orchestration behind `claimsfm sweep`.
"""
