"""Evaluation: metrics with patient bootstrap, fine-tuning / linear probe of a checkpoint, `run`."""
