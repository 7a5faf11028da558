"""MLM pretraining: the loop, optimizer and schedule, checkpoints and resume, DDP, compute accounting.

`claimsfm.train.pretrain` holds `PretrainConfig` and `run(config)` (docs/internals.md §5). Nothing
here is imported by `import claimsfm`; torch loads when a function runs.
"""
