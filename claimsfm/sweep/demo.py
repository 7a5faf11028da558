"""`claimsfm demo`: the whole chain on a small synthetic cohort, sized for a 2-core CPU (P11: <= 10 min).

synth (DEMO_PATIENTS patients, 96 months) -> ingest (--link-by insurer) -> sweep on the `demo`
ladder over the built-in tasks -> report. Each stage's output is kept under `--out`, and a stage
whose output is complete is reused, so an interrupted demo picks up where it stopped.

Sizing (measured on the 2-core CPU, see the README): every scale pretrains on the same DEMO_TOKENS
tokens at max_len DEMO_MAX_LEN (enough for the three scales' eval losses to separate); evaluation uses
at most DEMO_MAX_TRAIN train rows per task (tuning and held-out rows up to DEMO_MAX_EVAL each); the
default adaptation is a logistic-regression probe on frozen encoder features ([CLS] + code mean +
last-visit mean; `--mode finetune` trains DEMO_EPOCHS epochs instead, several times slower).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from claimsfm.sweep.run import SweepConfig
from claimsfm.sweep.run import run as sweep_run

DEMO_PATIENTS = 6000
DEMO_MONTHS = 96
DEMO_TOKENS = 800_000
DEMO_MAX_LEN = 128
DEMO_MAX_TRAIN = 4000
DEMO_MAX_EVAL = 2500
DEMO_EPOCHS = 1
DEMO_N_BOOT = 1000
DEMO_SALT = b"claimsfm-demo-salt: synthetic data only\n"


@dataclass(frozen=True)
class DemoConfig:
    out: Path = Path("claimsfm-demo")
    patients: int = DEMO_PATIENTS
    seed: int = 0
    tasks: str = "all"
    mode: str = "probe"
    tokens: int = DEMO_TOKENS
    progress: bool = True


def _synth(config: DemoConfig, folder: Path) -> None:
    if (folder / "synth.json").is_file():
        print(f"[demo] synth: reusing {folder}")
        return
    from claimsfm.synth.run import SynthConfig
    from claimsfm.synth.run import run as synth_run

    print(f"[demo] synth: {config.patients:,} patients, {DEMO_MONTHS} months -> {folder}")
    synth_run(SynthConfig(out=str(folder), patients=config.patients, months=DEMO_MONTHS, seed=config.seed,
                          overwrite=True, progress=config.progress))


def _ingest(config: DemoConfig, synth: Path, data: Path) -> None:
    if (data / "store" / "format.json").is_file():
        print(f"[demo] ingest: reusing {data}")
        return
    from claimsfm.io import write_bytes
    from claimsfm.ingest.pipeline import IngestConfig
    from claimsfm.ingest.pipeline import run as ingest_run

    # A fixed salt keeps subject ids, and so the splits, identical across demo runs; the data is synthetic.
    salt = Path(config.out) / "demo.salt"
    write_bytes(salt, DEMO_SALT)
    print(f"[demo] ingest: {synth} -> {data} (--link-by insurer)")
    ingest_run(IngestConfig(inputs=[synth], out=data, link_by="insurer", salt_file=salt, overwrite=True,
                            progress=config.progress))


def sweep_config(config: DemoConfig, data: Path) -> SweepConfig:
    out = Path(config.out)
    return SweepConfig(
        data=data, scales="demo", tasks=config.tasks, tokens=config.tokens, runs=out / "runs",
        out=out / "sweep", max_len=DEMO_MAX_LEN, mode=config.mode, n_boot=DEMO_N_BOOT, seed=config.seed,
        pretrain_options={"progress": config.progress},
        eval_options={"max_train": DEMO_MAX_TRAIN, "max_eval": DEMO_MAX_EVAL, "epochs": DEMO_EPOCHS,
                      "quiet": True},
    )


def run(config: DemoConfig) -> dict:
    """Run the chain; returns the sweep results plus per-stage wall times (`timings`, seconds)."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    timings = {}
    t0 = time.perf_counter()
    _synth(config, out / "synth")
    timings["synth"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    _ingest(config, out / "synth", out / "data")
    timings["ingest"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    results = sweep_run(sweep_config(config, out / "data"))
    timings["sweep"] = time.perf_counter() - t2
    timings["total"] = time.perf_counter() - t0
    results["timings"] = timings
    return results
