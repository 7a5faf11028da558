"""`claimsfm sweep`: pretrain every scale, evaluate every task, find each task's saturation scale.

Every scale is pretrained on the same data with the same token budget (`runs/pretrain/<scale>/`;
a finished run is reused, an unfinished one resumed by pretraining itself), then evaluated on the
same splits (`<out>/eval/<scale>/`), and LightGBM once (`<out>/eval/lightgbm/`). An evaluation
whose `metrics.json` exists with the same settings is reused, so an interrupted sweep resumes.

results.json (read by `claimsfm.report`):
  schema 2; data; hours_kind "gpu" | "cpu"; margin (δ of the non-inferiority rule); tokens; notes [str]
  scales: {scale: {params, non_embedding_params, n_layer, d_model, train_loss, eval_loss,
           tokens_seen, steps, wall_time_s, gpu_hours, hours, flops, device, run_dir}}
  tasks:  {task: {kind, group, cohort, scales: {scale: summarize()}, lightgbm: summarize() | null,
           oracle: {name: summarize()}, paired: {"<a> - <b>": paired_bootstrap()}, saturation}}
  fit:    power law of eval loss vs params, or null when not identifiable; fit_note: what was fitted
          and why (`powerlaw.loss_law`)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from claimsfm.errors import ClaimsfmError, check_seed
from claimsfm.eval import MODES, check_mode, check_n_boot
from claimsfm.io import read_json, write_json, write_run_config
from claimsfm.model.scale import DEFAULT_SCALES, ladder_names
from claimsfm.outdir import claim, record
from claimsfm.sweep import compute
from claimsfm.sweep.collect import collect_task, encoder_unused
from claimsfm.sweep.powerlaw import loss_law
from claimsfm.sweep.saturation import DEFAULT_MARGIN, check_margin


@dataclass(frozen=True)
class SweepConfig:
    data: Path | None
    scales: str = DEFAULT_SCALES
    tasks: str = "all"
    tokens: int | None = None
    margin: float = DEFAULT_MARGIN      # δ: a smaller scale is non-inferior when CI lo of (scale - best) > -δ
    runs: Path = Path("runs")
    out: Path | None = None              # default: <runs>/sweep
    dry_run: bool = False
    max_len: int = 512
    mode: str = MODES[0]
    n_boot: int = 1000
    seed: int = 0
    report: bool = True
    benchmarks: Path = Path("benchmarks/results")
    pretrain_options: dict = field(default_factory=dict)  # extra PretrainConfig fields (demo sizing)
    eval_options: dict = field(default_factory=dict)      # extra EvalConfig fields (demo sizing)
    notes: tuple[str, ...] = ()                           # caller's notes for results.json and the report

    def check(self) -> None:
        """Every option rule (the data folder is checked after --dry-run, which does not need it)."""
        check_mode(self.mode)
        check_margin(self.margin)
        check_n_boot(self.n_boot)
        check_seed(self.seed)
        if self.tokens is not None and self.tokens <= 0:
            raise ClaimsfmError(f"--tokens must be positive, got {self.tokens}")
        if self.max_len < 2:
            raise ClaimsfmError(f"--max-len must be at least 2, got {self.max_len}")


def parse_scales(text: str) -> list[str]:
    """`demo`, `default`, or a comma list of ladder rows / sizes, smallest first."""
    from claimsfm.model.scale import parse_size

    text = text.strip()
    if text in ("demo", "default"):
        return ladder_names(text)
    names = [p.strip() for p in text.split(",") if p.strip()]
    if not names:
        raise ClaimsfmError("--scales: give a ladder name (demo, default) or a comma list such as 2.2M,11M")
    known = set(ladder_names("default")) | set(ladder_names("demo"))
    for name in names:
        if name not in known:
            try:
                parse_size(name)
            except ClaimsfmError:
                raise ClaimsfmError(f"--scales: cannot read '{name}' (use demo, default, ladder rows such as "
                                    f"2.2M,11M or sizes such as 50M)") from None
    if len(set(names)) != len(names):
        raise ClaimsfmError(f"--scales: '{text}' names a scale twice")
    return sorted(names, key=lambda n: _row(n).target)


def _row(name: str):
    """A scale's target size and training defaults, which do not depend on the vocabulary."""
    from claimsfm.model.scale import defaults

    return defaults(name)


def _out_dir(config: SweepConfig) -> Path:
    return Path(config.out) if config.out else Path(config.runs) / "sweep"


def _pretrain(config: SweepConfig, scale: str, tokens: int) -> dict:
    """summary.json of one scale. Pretraining itself returns a finished run's summary, resumes an
    unfinished one from its last checkpoint, and refuses a folder that holds other settings."""
    from claimsfm.train.pretrain import PretrainConfig
    from claimsfm.train.pretrain import run as pretrain_run

    run_dir = Path(config.runs) / "pretrain" / scale
    summary_path = run_dir / "summary.json"
    done = summary_path.is_file() and read_json(summary_path).get("finished")
    print(f"[sweep] {scale}: {'reusing finished run' if done else f'pretraining on {tokens:,} tokens'} -> {run_dir}")
    options = {"data": Path(config.data), "params": scale, "out": run_dir, "runs": Path(config.runs),
               "tokens": tokens, "max_len": config.max_len, "seed": config.seed, **config.pretrain_options}
    return pretrain_run(PretrainConfig(**options))


def _evaluate(config: SweepConfig, name: str, model_dir: Path | None, baselines: tuple) -> dict:
    """metrics.json of one evaluation, reused when it exists with the same settings."""
    from claimsfm.eval.run import EvalConfig
    from claimsfm.eval.run import run as evaluate_run

    out = _out_dir(config) / "eval" / name
    settings = {"tasks": config.tasks, "model": str(model_dir) if model_dir else None, "mode": config.mode,
                "baselines": list(baselines), "seed": config.seed, "n_boot": config.n_boot,
                "max_len": config.max_len, **config.eval_options}
    marker = out / "sweep_settings.json"
    if (out / "metrics.json").is_file() and marker.is_file() and read_json(marker) == settings:
        print(f"[sweep] {name}: reusing evaluation {out}")
        return read_json(out / "metrics.json")
    print(f"[sweep] {name}: evaluating tasks '{config.tasks}' -> {out}")
    options = {"data": Path(config.data), "task": config.tasks, "model": model_dir,
               "runs": Path(config.runs), "baselines": baselines, "mode": config.mode, "out": out,
               "seed": config.seed, "n_boot": config.n_boot, "max_len": config.max_len, **config.eval_options}
    evaluate_run(EvalConfig(**options))
    write_json(marker, settings)
    return read_json(out / "metrics.json")


def _scale_entry(scale: str, summary: dict, run_dir: Path, tokens: int) -> dict:
    hours, kind = compute.hours_of(summary)
    flops = summary.get("flops")
    if not flops:
        flops = compute.training_flops(summary["non_embedding_params"], summary.get("tokens_seen") or tokens)
    return {
        "params": int(summary["total_params"]), "non_embedding_params": summary.get("non_embedding_params"),
        "n_layer": summary.get("n_layer"), "d_model": summary.get("d_model"),
        "train_loss": summary.get("train_loss"), "eval_loss": summary.get("eval_loss"),
        "tokens_seen": summary.get("tokens_seen"), "steps": summary.get("steps"),
        "wall_time_s": summary.get("wall_time_s"), "gpu_hours": summary.get("gpu_hours", 0.0),
        "hours": hours, "hours_kind": kind, "flops": float(flops), "device": summary.get("device"),
        "run_dir": str(run_dir),
    }


def _token_budget(config: SweepConfig, scales: list[str]) -> int:
    """One budget for every scale: --tokens, else the smallest default budget of the chosen rows."""
    if config.tokens is not None:
        return int(config.tokens)
    return min(_row(s).tokens for s in scales)


def _check_data(config: SweepConfig) -> None:
    if config.data is None:
        raise ClaimsfmError("--data is required (the folder written by `claimsfm ingest`)")
    from claimsfm.data.store import resolve_store_dir

    resolve_store_dir(config.data)


def run(config: SweepConfig) -> dict:
    """Run the sweep (or, with dry_run, the paper-scale plan); returns results (or the plan)."""
    config.check()
    scales = parse_scales(config.scales)
    if config.dry_run:
        from claimsfm.sweep.plan import dry_run

        plan = dry_run(scales, Path(config.data) if config.data else None, config.tokens, config.max_len,
                       Path(config.benchmarks))
        write_json(claim(_out_dir(config), "sweep", [config.data]) / "plan.json", plan)
        return plan
    _check_data(config)
    from claimsfm.tasks.spec import select_tasks

    specs = select_tasks(config.tasks)
    out = claim(_out_dir(config), "sweep", [config.data])
    record(out, out / "config.json", out / "results.json")
    write_run_config(out, {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()})
    tokens = _token_budget(config, scales)
    entries, metrics = {}, {}
    for scale in scales:
        summary = _pretrain(config, scale, tokens)
        entries[scale] = _scale_entry(scale, summary, Path(config.runs) / "pretrain" / scale, tokens)
    for scale in scales:
        metrics[scale] = _evaluate(config, scale, Path(config.runs) / "pretrain" / scale, ())
    baseline = _evaluate(config, "lightgbm", None, ("lightgbm",))
    results = _assemble(config, scales, entries, metrics, baseline, specs, tokens)
    write_json(out / "results.json", results)
    if config.report:
        from claimsfm.report import ReportConfig
        from claimsfm.report import run as report_run

        results["report"] = {k: str(v) for k, v in report_run(ReportConfig(results=out)).items()
                             if k.startswith("report")}
    return results


def _assemble(config, scales, entries, metrics, baseline, specs, tokens) -> dict:
    kinds = {e["hours_kind"] for e in entries.values()}
    hours_kind = "gpu" if kinds == {"gpu"} else "cpu"
    notes = list(config.notes)
    if len(kinds) > 1:
        notes.append("scales ran on different devices: hours mix GPU-hours and CPU wall-clock hours")
    tasks = {}
    for spec in specs:
        tasks[spec.name] = collect_task(spec, scales, entries, metrics, baseline, _out_dir(config) / "eval",
                                        config.margin, config.n_boot, config.seed)
    unused = encoder_unused(tasks)
    if unused:
        notes.append(f"the encoder added nothing on {', '.join(unused)}: at every scale the attend head kept no deep "
                     "part (its predictions are its bag-of-codes wide part), so the scale verdict there does not "
                     "measure the encoder")
    losses = [(e["params"], e["eval_loss"]) for e in entries.values() if e.get("eval_loss") is not None]
    law = loss_law([p for p, _ in losses], [v for _, v in losses])
    return {"schema": 2, "data": str(config.data), "hours_kind": hours_kind, "margin": config.margin,
            "tokens": tokens, "mode": config.mode, "notes": notes, "scales": entries, "tasks": tasks,
            "fit": law["fit"], "fit_note": law["note"]}
