"""The LightGBM baseline: gradient-boosted trees on the sparse features of `features.py`.

Trained on the train split, early-stopped on tuning-split average precision, deterministic
(`deterministic`, fixed seeds, row-wise histograms, 2 threads). No class weighting, so the
probabilities stay calibrated for the Brier score; average precision depends only on the ranking.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from claimsfm import optional


@dataclass(frozen=True)
class GBMConfig:
    num_boost_round: int = 300
    early_stopping_rounds: int = 20
    learning_rate: float = 0.1
    num_leaves: int = 31
    min_data_in_leaf: int = 20
    max_bin: int = 63           # count features have few distinct values; fewer bins, faster histograms
    feature_fraction: float = 0.8
    num_threads: int = 2
    seed: int = 0


def _params(cfg: GBMConfig) -> dict:
    return {
        "objective": "binary", "metric": "average_precision", "learning_rate": cfg.learning_rate,
        "num_leaves": cfg.num_leaves, "min_data_in_leaf": cfg.min_data_in_leaf, "max_bin": cfg.max_bin,
        "feature_fraction": cfg.feature_fraction, "feature_fraction_seed": cfg.seed,
        "bagging_seed": cfg.seed, "data_random_seed": cfg.seed, "seed": cfg.seed,
        "num_threads": cfg.num_threads, "deterministic": True, "force_row_wise": True, "verbose": -1,
    }


def fit(X_train, y_train, X_tune, y_tune, cfg: GBMConfig = GBMConfig()):
    """A booster trained on (X_train, y_train), stopped at the best tuning average precision."""
    lgb = optional.lightgbm()
    train = lgb.Dataset(X_train, label=np.asarray(y_train, dtype=np.float64), free_raw_data=False)
    tune = lgb.Dataset(X_tune, label=np.asarray(y_tune, dtype=np.float64), reference=train)
    return lgb.train(
        _params(cfg), train, num_boost_round=cfg.num_boost_round, valid_sets=[tune], valid_names=["tuning"],
        callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, verbose=False)],
    )


def predict(booster, X) -> np.ndarray:
    """P(label) per row, from the best iteration."""
    return np.asarray(booster.predict(X, num_iteration=booster.best_iteration), dtype=np.float64)
