"""`claimsfm evaluate`: cohorts -> FM (probe or fine-tune) and LightGBM -> metrics on held_out.

Cost is shared across tasks: the cohorts of all selected tasks form one pool of distinct
(subject, prediction time) samples; sequences, [CLS] embeddings (probe) and LightGBM features are
built once for the pool and indexed by every task. Fine-tuning trains one encoder per task group
(disease / medication) with one head per task.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from claimsfm.errors import ClaimsfmError
from claimsfm.eval import report
from claimsfm.eval.metrics import paired_bootstrap, summarize
from claimsfm.eval.samples import Pool, load_oracle, subsample
from claimsfm.tasks.cohort import EventSubset, build_cohort, check_cohort, cohort_summary, unusable_reason
from claimsfm.tasks.spec import select_tasks

MODES = ("finetune", "probe")
BASELINES = ("lightgbm",)
HELD_OUT = 2


@dataclass
class EvalConfig:
    data: str
    task: str = "medication"
    task_files: tuple[str, ...] = ()
    model: str | None = None
    params: str | None = None
    runs: str = "runs"
    baselines: tuple[str, ...] = ("lightgbm",)
    mode: str = "finetune"
    features: str = "cls+mean+last"
    out: str | None = None
    max_len: int | None = None
    max_train: int | None = None
    max_eval: int | None = None
    epochs: int = 3
    batch_tokens: int = 8192
    n_boot: int = 1000
    seed: int = 0
    device: str = "cpu"
    quiet: bool = False


def model_dir(cfg: EvalConfig) -> Path | None:
    """The pretraining run to evaluate: --model, or <runs>/pretrain/<params>, or none."""
    if cfg.model and cfg.params:
        raise ClaimsfmError("--model and --params are exclusive: give the run folder or its size, not both")
    path = Path(cfg.model) if cfg.model else Path(cfg.runs) / "pretrain" / cfg.params if cfg.params else None
    if path is not None and not path.is_dir():
        flag = "--model" if cfg.model else "--params"
        raise ClaimsfmError(f"{flag}: no pretraining run at {path}")
    return path


def model_name(run: Path) -> str:
    summary = run / "summary.json"
    if summary.is_file():
        from claimsfm.io import read_json

        return f"fm:{read_json(summary).get('params', run.name)}"
    return f"fm:{run.name}"


def default_out(cfg: EvalConfig) -> Path:
    return Path(cfg.out) if cfg.out else Path(cfg.runs) / "eval" / cfg.task.replace(",", "+")


def _check(cfg: EvalConfig) -> None:
    if cfg.mode not in MODES:
        raise ClaimsfmError(f"--mode must be one of {', '.join(MODES)}, not '{cfg.mode}'")
    from claimsfm.eval.finetune import FEATURES

    if cfg.features not in FEATURES:
        raise ClaimsfmError(f"--features must be one of {', '.join(FEATURES)}, not '{cfg.features}'")
    unknown = [b for b in cfg.baselines if b not in BASELINES]
    if unknown:
        raise ClaimsfmError(f"--baselines: unknown baseline '{unknown[0]}' (known: lightgbm, none)")
    for flag, v in (("--max-train", cfg.max_train), ("--max-eval", cfg.max_eval), ("--max-len", cfg.max_len)):
        if v is not None and v < 2:
            raise ClaimsfmError(f"{flag} must be at least 2, got {v}")


def build_cohorts(store, specs, cfg: EvalConfig) -> tuple[list, list, dict]:
    """(usable specs, their cohorts, {task: reason} for tasks skipped for lack of positives)."""
    everything = EventSubset(np.asarray(store.offsets, dtype=np.int64), np.asarray(store.day))
    kept, cohorts, skipped = [], [], {}
    for spec in specs:
        cohort = subsample(build_cohort(store, spec, everything), cfg.max_train, cfg.max_eval, cfg.seed)
        check_cohort(cohort)
        reason = unusable_reason(cohort)
        if reason is None:
            kept.append(spec)
            cohorts.append(cohort)
        else:
            skipped[spec.name] = {"skipped": reason, "cohort": cohort_summary(cohort)}
    if not cohorts:
        raise ClaimsfmError("no selected task can be evaluated: " +
                            "; ".join(f"{k}: {v['skipped']}" for k, v in skipped.items()))
    return kept, cohorts, skipped


def _fm_predictions(store, run, specs, cohorts, pool, cfg) -> dict:
    """FM P(label) per task over its cohort rows."""
    from claimsfm.data import build_sequences
    from claimsfm.eval import finetune as ft
    from claimsfm.model.checkpoint import read_model_config, weights_folder

    max_len = cfg.max_len or read_model_config(weights_folder(run)).max_len
    seqs = build_sequences(store, pool.subject_idx, cutoff_day=pool.t_day, max_len=max_len)
    head = ft.HeadConfig(epochs=cfg.epochs, batch_tokens=cfg.batch_tokens, features=cfg.features, seed=cfg.seed)
    rows = [pool.rows(c) for c in cohorts]
    out = {}
    if cfg.mode == "probe":
        from claimsfm.model import load_checkpoint

        model, _ = load_checkpoint(run, device=cfg.device)
        emb = ft.embed(model, seqs, cfg.batch_tokens, cfg.device, cfg.features)
        for c, r in zip(cohorts, rows):
            out[c.task] = ft.probe(emb[r], c.label, c.split, cfg.seed)
        return out
    for kind in sorted({s.kind for s in specs}):
        group = [k for k, s in enumerate(specs) if s.kind == kind]
        y = np.zeros((len(pool), len(group)), dtype=bool)
        mask = np.zeros_like(y)
        for j, k in enumerate(group):
            y[rows[k], j], mask[rows[k], j] = cohorts[k].label, True
        used = np.flatnonzero(mask.any(axis=1))
        sub = ft.take_sequences(seqs, used)
        p = ft.finetune(run, sub, y[used], mask[used], pool.split[used], head, cfg.device, desc=f"finetune {kind}")
        back = np.full(len(pool), -1, dtype=np.int64)
        back[used] = np.arange(len(used))
        for j, k in enumerate(group):
            out[cohorts[k].task] = p[back[rows[k]], j]
    return out


def _lightgbm_predictions(store, specs, cohorts, pool, cfg) -> dict:
    from claimsfm.baseline import gbm
    from claimsfm.baseline.features import build_features

    by_window: dict[int, object] = {}
    out = {}
    for spec, c in zip(specs, cohorts):
        if spec.observation_months not in by_window:
            by_window[spec.observation_months] = build_features(store, pool.subject_idx, pool.t_day,
                                                                spec.observation_months)
        X = by_window[spec.observation_months][pool.rows(c)]
        tr, tu = c.split == 0, c.split == 1
        booster = gbm.fit(X[tr], c.label[tr], X[tu], c.label[tu], gbm.GBMConfig(seed=cfg.seed))
        out[c.task] = gbm.predict(booster, X)
    return out


def score_task(cohort, preds: dict, data_dir, cfg: EvalConfig) -> dict:
    """The metrics.json entry of one task (held_out rows)."""
    held = cohort.split == HELD_OUT
    y, groups = cohort.label[held], cohort.subject_id[held]
    entry = {"cohort": cohort_summary(cohort), "models": {}, "paired": {}, "oracle": {}}
    for name, p in preds.items():
        entry["models"][name] = summarize(y, p[held], groups, cfg.n_boot, cfg.seed)
    fms = [n for n in preds if n.startswith("fm:")]
    if "lightgbm" in preds:
        for name in fms:
            entry["paired"][f"{name} - lightgbm"] = paired_bootstrap(
                y, preds[name][held], preds["lightgbm"][held], groups, "auprc", cfg.n_boot, cfg.seed)
    oracle = load_oracle(data_dir, cohort.take(np.flatnonzero(held)))
    if oracle is not None:
        p_obs, p_lat, o_label, matched = oracle
        entry["cohort"]["oracle_matched"] = int(matched.sum())
        entry["cohort"]["oracle_label_agreement"] = float(np.mean(o_label[matched] == y[matched])) if matched.any() else None
        if matched.any() and y[matched].any():
            for name, p in (("oracle_observable", p_obs), ("oracle_latent", p_lat)):
                entry["oracle"][name] = summarize(y[matched], p[matched], groups[matched], cfg.n_boot, cfg.seed)
            ceiling = entry["oracle"]["oracle_observable"]["auprc"]
            for m in entry["models"].values():
                m["auprc_over_oracle_observable"] = m["auprc"] / ceiling if ceiling > 0 else None
    return entry


def run(cfg: EvalConfig) -> dict:
    """Evaluate the selected tasks; write metrics.json, predictions/ and config.json under the out folder."""
    from claimsfm.data import open_store

    _check(cfg)
    run_dir = model_dir(cfg)
    if run_dir is None and not cfg.baselines:
        raise ClaimsfmError("nothing to evaluate: give --model or --params, or --baselines lightgbm")
    specs = select_tasks(cfg.task, list(cfg.task_files))
    store = open_store(cfg.data)
    specs, cohorts, skipped = build_cohorts(store, specs, cfg)
    report.print_cohorts(cohorts, skipped, cfg.quiet)
    pool = Pool.of(cohorts)
    preds = {c.task: {} for c in cohorts}
    if run_dir is not None:
        name = model_name(run_dir)
        for task, p in _fm_predictions(store, run_dir, specs, cohorts, pool, cfg).items():
            preds[task][name] = p
    if "lightgbm" in cfg.baselines:
        for task, p in _lightgbm_predictions(store, specs, cohorts, pool, cfg).items():
            preds[task]["lightgbm"] = p
    metrics = {"tasks": {c.task: score_task(c, preds[c.task], cfg.data, cfg) for c in cohorts}, "skipped": skipped}
    settings = {**asdict(cfg), "model_dir": str(run_dir) if run_dir else None, "n_pool": len(pool)}
    out = default_out(cfg)
    report.write_outputs(out, metrics, cohorts, preds, settings)
    report.print_table(metrics, cfg.quiet)
    return metrics
