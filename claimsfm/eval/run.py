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

from claimsfm.errors import ClaimsfmError, check_seed
from claimsfm.eval import BASELINES, check_mode, check_n_boot, report
from claimsfm.eval.metrics import paired_bootstrap, summarize
from claimsfm.eval.samples import Pool, load_oracle, oracle_unit_note, subsample
from claimsfm.splits import HELD_OUT, TRAIN, TUNING
from claimsfm.tasks.cohort import EventSubset, build_cohort, check_cohort, cohort_summary, unusable_reason
from claimsfm.tasks.labels import LABELS_KIND, build_label_cohort, label_spec
from claimsfm.tasks.spec import select_tasks


@dataclass(frozen=True)
class EvalConfig:
    data: Path
    task: str = "medication"
    task_files: tuple[str, ...] = ()  # task names or .toml paths
    model: Path | None = None
    params: str | None = None
    runs: Path = Path("runs")
    baselines: tuple[str, ...] = ("lightgbm",)
    mode: str = "finetune"
    features: str = "cls+mean+last"
    out: Path | None = None
    max_len: int | None = None
    max_train: int | None = None
    max_eval: int | None = None
    epochs: int = 3
    batch_tokens: int = 8192
    n_boot: int = 1000
    seed: int = 0
    device: str = "cpu"
    quiet: bool = False
    labels: Path | None = None      # a MEDS label table evaluated as one more task (claimsfm.tasks.labels)
    labels_name: str | None = None  # its task name (default: the file's stem)

    def check(self) -> None:
        """Every option rule, before anything is read or written."""
        check_mode(self.mode)
        check_n_boot(self.n_boot)
        check_seed(self.seed)
        if self.epochs < 1 or self.batch_tokens < 1:
            raise ClaimsfmError("--epochs and --batch-tokens must be positive")
        from claimsfm.eval.finetune import FEATURES

        if self.features not in FEATURES:
            raise ClaimsfmError(f"--features must be one of {', '.join(FEATURES)}, not '{self.features}'")
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown:
            raise ClaimsfmError(f"--baselines: unknown baseline '{unknown[0]}' (known: {', '.join(BASELINES)}, none)")
        if self.labels_name and not self.labels:
            raise ClaimsfmError("--labels-name names the task of --labels; give --labels FILE.parquet too")
        for flag, v in (("--max-train", self.max_train), ("--max-eval", self.max_eval), ("--max-len", self.max_len)):
            if v is not None and v < 2:
                raise ClaimsfmError(f"{flag} must be at least 2, got {v}")
        if self.model is not None or self.params is not None:  # only the FM runs on --device
            from claimsfm.model.checkpoint import check_device

            check_device(self.device)


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
    labels = (cfg.labels_name or Path(cfg.labels).stem) if cfg.labels else ""
    name = cfg.task.replace(",", "+") or labels
    return Path(cfg.out) if cfg.out else Path(cfg.runs) / "eval" / name


def build_cohorts(store, specs, cfg: EvalConfig) -> tuple[list, list, dict]:
    """(usable specs, their cohorts, {task: reason} for tasks skipped for lack of positives)."""
    everything = EventSubset(np.asarray(store.offsets, dtype=np.int64), np.asarray(store.day))
    kept, cohorts, skipped = [], [], {}
    for spec in specs:
        full = (build_label_cohort(store, spec, cfg.data) if spec.kind == LABELS_KIND
                else build_cohort(store, spec, everything))
        cohort = subsample(full, cfg.max_train, cfg.max_eval, cfg.seed)
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


def _fm_predictions(store, run, specs, cohorts, pool, cfg, info: dict | None = None) -> dict:
    """FM P(label) per task over its cohort rows; `info` receives the attend head's per-task summary."""
    from claimsfm.data import build_sequences
    from claimsfm.eval import finetune as ft
    from claimsfm.model.checkpoint import read_model_config, weights_folder

    max_len = cfg.max_len or read_model_config(weights_folder(run)).max_len
    seqs = build_sequences(store, pool.subject_idx, cutoff_day=pool.t_day, max_len=max_len)
    head = ft.HeadConfig(epochs=cfg.epochs, batch_tokens=cfg.batch_tokens, features=cfg.features, seed=cfg.seed)
    rows = [pool.rows(c) for c in cohorts]
    out = {}
    if cfg.mode == "attend":
        from claimsfm.eval.attend import AttendConfig, attend
        from claimsfm.model import load_checkpoint

        model, _ = load_checkpoint(run, device=cfg.device)
        tasks = [(c.task, r, c.label, c.split) for c, r in zip(cohorts, rows)]
        # --max-train, when given, is the head's train draw too: the FM learns from as many rows as LightGBM
        train_rows = cfg.max_train if cfg.max_train is not None else AttendConfig.train_rows
        return attend(model, seqs, tasks, AttendConfig(batch_tokens=cfg.batch_tokens, seed=cfg.seed,
                                                       train_rows=train_rows), cfg.device, info)
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
        tr, tu = c.split == TRAIN, c.split == TUNING
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
    note = oracle_unit_note(data_dir) if oracle is not None else None
    if note is not None:   # chart linking: label agreement only, never an oracle ceiling
        entry["cohort"]["oracle_note"] = note
    if oracle is not None:
        p_obs, p_lat, o_label, matched = oracle
        entry["cohort"]["oracle_matched"] = int(matched.sum())
        entry["cohort"]["oracle_label_agreement"] = (
            float(np.mean(o_label[matched] == y[matched])) if matched.any() else None)
        if matched.any() and y[matched].any() and note is None:
            for name, p in (("oracle_observable", p_obs), ("oracle_latent", p_lat)):
                entry["oracle"][name] = summarize(y[matched], p[matched], groups[matched], cfg.n_boot, cfg.seed)
            ceiling = entry["oracle"]["oracle_observable"]["auprc"]
            for m in entry["models"].values():
                m["auprc_over_oracle_observable"] = m["auprc"] / ceiling if ceiling > 0 else None
    return entry


def run(cfg: EvalConfig) -> dict:
    """Evaluate the selected tasks; write metrics.json, predictions/ and config.json under the out folder."""
    from claimsfm.data import open_store

    cfg.check()
    run_dir = model_dir(cfg)
    if run_dir is None and not cfg.baselines:
        raise ClaimsfmError("nothing to evaluate: give --model or --params, or --baselines lightgbm")
    if run_dir is not None:  # a damaged run folder fails here, before any cohort is built
        from claimsfm.model.checkpoint import check_checkpoint

        check_checkpoint(run_dir)
        name = model_name(run_dir)
    from claimsfm.io import check_creatable
    from claimsfm.outdir import preflight

    check_creatable(default_out(cfg))  # before the cohorts and models, not after them
    preflight(default_out(cfg), "evaluate", [cfg.data, run_dir, *cfg.task_files, cfg.labels], replace=True)
    specs = select_tasks(cfg.task, list(cfg.task_files)) if cfg.task or cfg.task_files or not cfg.labels else []
    if cfg.labels:
        specs.append(label_spec(cfg.labels, cfg.labels_name))
    store = open_store(cfg.data)
    specs, cohorts, skipped = build_cohorts(store, specs, cfg)
    report.print_cohorts(cohorts, skipped, cfg.quiet)
    pool = Pool.of(cohorts)
    preds = {c.task: {} for c in cohorts}
    heads: dict = {}
    if run_dir is not None:
        for task, p in _fm_predictions(store, run_dir, specs, cohorts, pool, cfg, heads).items():
            preds[task][name] = report.as_written(p)
    if "lightgbm" in cfg.baselines:
        for task, p in _lightgbm_predictions(store, specs, cohorts, pool, cfg).items():
            preds[task]["lightgbm"] = report.as_written(p)
    metrics = {"tasks": {c.task: score_task(c, preds[c.task], cfg.data, cfg) for c in cohorts}, "skipped": skipped}
    for task, head in heads.items():   # what the attend head kept (deep_epochs 0: the FM is its wide part)
        metrics["tasks"][task]["models"][name]["head"] = head
    settings = {**asdict(cfg), "model_dir": str(run_dir) if run_dir else None, "n_pool": len(pool)}
    out = default_out(cfg)
    report.write_outputs(out, metrics, cohorts, preds, settings)
    report.print_table(metrics, cfg.quiet)
    return metrics
