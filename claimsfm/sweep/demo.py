"""`claimsfm demo`: the whole chain on a small synthetic cohort, sized for a 2-core CPU (P11: <= 10 min).

synth (DEMO_PATIENTS patients, 96 months) -> ingest (--link-by insurer) -> sweep on the `demo`
ladder over the built-in tasks -> report. Each stage's output is kept under `--out`, and a stage
whose output is complete is reused, so an interrupted demo picks up where it stopped.

Sizing (measured on the 2-core CPU, see the README): every scale pretrains on the same DEMO_TOKENS
tokens at max_len DEMO_MAX_LEN (enough for the three scales' eval losses to separate); evaluation uses
at most DEMO_MAX_TRAIN train rows per task (tuning and held-out rows up to DEMO_MAX_EVAL each); the
default adaptation is the attentive head on the frozen encoder's token states (claimsfm.eval.attend;
`--mode probe` is faster and far weaker, `--mode finetune` trains DEMO_EPOCHS epochs, several times slower).

Verdicts that are not noise: a task enters the sweep only when its held-out split keeps at least
DEMO_MIN_POSITIVES positives under these caps. Rare incidence tasks cannot reach that in a 10-minute
cohort, so they are dropped, and the report and the printout list them with their counts. The
saturation rule is the sweep's non-inferiority test with margin `--margin`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from claimsfm.errors import ClaimsfmError, check_number, check_seed
from claimsfm.sweep.saturation import DEFAULT_MARGIN, check_margin

if TYPE_CHECKING:  # the sweep (torch, sklearn) is imported where it runs: the CLI reads this module's defaults
    from claimsfm.sweep.run import SweepConfig

DEMO_PATIENTS = 6000
DEMO_MONTHS = 96
DEMO_TOKENS = 800_000
DEMO_MAX_LEN = 128
DEMO_MAX_TRAIN = 4000
DEMO_MAX_EVAL = 8000  # above the held-out rows of any task at the default size: every held-out positive counts
DEMO_EPOCHS = 1
DEMO_N_BOOT = 1000
DEMO_MIN_POSITIVES = 50  # held-out positives a task needs to enter the demo
DEMO_MARGIN = DEFAULT_MARGIN
DEMO_MODE = "attend"  # attentive heads on the frozen encoder: 5 min 17 s idle (the probe: 4 min 14 s, far weaker)
DEMO_SALT = b"claimsfm-demo-salt: synthetic data only\n"
# The generator's background vocabulary has ~10,000 codes at the demo size, most seen a handful of times;
# their embeddings alone would outgrow the 0.2M demo-S row. Codes seen fewer times than this in the train
# split become [UNK] for both models (the FM and LightGBM read the same vocabulary); ~96% of events keep
# their own token.
DEMO_MIN_COUNT = 50


@dataclass(frozen=True)
class DemoConfig:
    out: Path = Path("claimsfm-demo")
    patients: int = DEMO_PATIENTS
    seed: int = 0
    tasks: str = "all"
    mode: str = DEMO_MODE
    tokens: int = DEMO_TOKENS
    margin: float = DEMO_MARGIN
    progress: bool = True

    def check(self) -> None:
        """Every option rule, before a folder is made or a stage runs."""
        from claimsfm.eval import check_mode
        from claimsfm.tasks.spec import select_tasks

        check_number("--patients", self.patients, 1)
        check_seed(self.seed)
        check_number("--tokens", self.tokens, 0, above=True)
        check_mode(self.mode)
        check_margin(self.margin)
        select_tasks(self.tasks)  # an unknown task name fails here, not after synth and ingest


def _synth(config: DemoConfig, folder: Path) -> None:
    if (folder / "synth.json").is_file():
        print(f"[demo] synth: reusing {folder}")
        return
    from claimsfm.synth.run import SynthConfig
    from claimsfm.synth.run import run as synth_run

    print(f"[demo] synth: {config.patients:,} patients, {DEMO_MONTHS} months -> {folder}")
    synth_run(SynthConfig(out=folder, patients=config.patients, months=DEMO_MONTHS, seed=config.seed,
                          overwrite=True, progress=config.progress))


def _ingest(config: DemoConfig, synth: Path, data: Path) -> None:
    if (data / "store" / "format.json").is_file():
        print(f"[demo] ingest: reusing {data}")
        return
    from claimsfm.ingest.pipeline import IngestConfig
    from claimsfm.ingest.pipeline import run as ingest_run
    from claimsfm.io import write_bytes

    # A fixed salt keeps subject ids, and so the splits, identical across demo runs; the data is synthetic.
    from claimsfm.outdir import record

    salt = Path(config.out) / "demo.salt"
    record(config.out, salt)
    write_bytes(salt, DEMO_SALT)
    print(f"[demo] ingest: {synth} -> {data} (--link-by insurer)")
    ingest_run(IngestConfig(inputs=[synth], out=data, link_by="insurer", salt_file=salt, overwrite=True,
                            min_count=DEMO_MIN_COUNT, progress=config.progress))


def resolvable_tasks(config: DemoConfig, data: Path) -> tuple[list[str], dict[str, int]]:
    """(tasks of `config.tasks` with >= DEMO_MIN_POSITIVES held-out positives under the demo's caps,
    {dropped task: its held-out positives}); the same cohorts and seeded caps as the evaluation."""
    from claimsfm.data import open_store
    from claimsfm.eval.samples import subsample
    from claimsfm.splits import HELD_OUT
    from claimsfm.tasks.cohort import build_cohort
    from claimsfm.tasks.spec import select_tasks

    store = open_store(data)
    kept, dropped = [], {}
    for spec in select_tasks(config.tasks):
        cohort = subsample(build_cohort(store, spec), DEMO_MAX_TRAIN, DEMO_MAX_EVAL, config.seed)
        positives = int(cohort.label[cohort.split == HELD_OUT].sum())
        if positives >= DEMO_MIN_POSITIVES:
            kept.append(spec.name)
        else:
            dropped[spec.name] = positives
    if not kept:
        raise ClaimsfmError(f"--patients {config.patients:,}: no selected task has {DEMO_MIN_POSITIVES} held-out "
                            "positives, so no verdict would be more than noise; use more patients")
    return kept, dropped


def dropped_note(dropped: dict[str, int]) -> str:
    listed = ", ".join(f"{t} ({n})" for t, n in sorted(dropped.items()))
    return (f"dropped from the demo, fewer than {DEMO_MIN_POSITIVES} held-out positives in this cohort "
            f"(held-out positives in brackets): {listed}; run `claimsfm sweep` on a larger cohort for them")


def sweep_config(config: DemoConfig, data: Path, tasks: list[str] | None = None,
                 dropped: dict[str, int] | None = None) -> SweepConfig:
    out = Path(config.out)
    from claimsfm.sweep.run import SweepConfig

    return SweepConfig(
        data=data, scales="demo", tasks=",".join(tasks) if tasks else config.tasks, tokens=config.tokens,
        margin=config.margin, runs=out / "runs", notes=(dropped_note(dropped),) if dropped else (),
        out=out / "sweep", max_len=DEMO_MAX_LEN, mode=config.mode, n_boot=DEMO_N_BOOT, seed=config.seed,
        pretrain_options={"progress": config.progress},
        eval_options={"max_train": DEMO_MAX_TRAIN, "max_eval": DEMO_MAX_EVAL, "epochs": DEMO_EPOCHS,
                      "quiet": True},
    )


def run(config: DemoConfig) -> dict:
    """Run the chain; returns the sweep results plus per-stage wall times (`timings`, seconds)."""
    from claimsfm.outdir import claim

    config.check()
    out = claim(config.out, "demo")
    timings = {}
    t0 = time.perf_counter()
    _synth(config, out / "synth")
    timings["synth"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    _ingest(config, out / "synth", out / "data")
    timings["ingest"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    tasks, dropped = resolvable_tasks(config, out / "data")
    print(f"[demo] tasks with >= {DEMO_MIN_POSITIVES} held-out positives: {', '.join(tasks)}")
    if dropped:
        print(f"[demo] {dropped_note(dropped)}")
    from claimsfm.sweep.run import run as sweep_run

    results = sweep_run(sweep_config(config, out / "data", tasks, dropped))
    results["dropped_tasks"] = dropped
    timings["sweep"] = time.perf_counter() - t2
    timings["total"] = time.perf_counter() - t0
    results["timings"] = timings
    return results
