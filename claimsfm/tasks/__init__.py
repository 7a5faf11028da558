"""Prediction tasks: declarative TOML specs (spec.py), cohorts and labels from the token store."""
from claimsfm.tasks.spec import TaskSpec, builtin_task_names, load_task, select_tasks

__all__ = ["TaskSpec", "builtin_task_names", "load_task", "select_tasks"]
