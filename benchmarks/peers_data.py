"""What the peer benchmarks (peers_pretrain.py, peers_tabular.py) share: the synthetic cohort they run on,
the machine they ran on, and peak memory of a child process.

The cohort is made through the library (synth -> ingest --link-by insurer), once per settings, under
--work; a rerun with the same settings reuses it. Imported by path from the scripts beside it.
"""
from __future__ import annotations

import os
import platform
import resource
import time
from pathlib import Path

from claimsfm.io import read_json, write_bytes, write_json

SALT = b"claimsfm peers benchmark salt: synthetic data only\n"


def log(name: str, msg: str) -> None:
    print(f"[{name} {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def cohort(work: Path, patients: int, months: int, seed: int) -> Path:
    """<work>/data: the ingested synthetic cohort (MEDS + token store + truth), made unless it exists
    with these settings."""
    from claimsfm.ingest.pipeline import IngestConfig
    from claimsfm.ingest.pipeline import run as ingest_run
    from claimsfm.synth.run import SynthConfig
    from claimsfm.synth.run import run as synth_run

    settings = {"patients": patients, "months": months, "seed": seed}
    synth, data, marker = work / "synth", work / "data", work / "data.bench.json"
    if (data / "store" / "format.json").exists() and marker.is_file() and read_json(marker) == settings:
        return data
    work.mkdir(parents=True, exist_ok=True)
    synth_run(SynthConfig(out=str(synth), patients=patients, months=months, seed=seed, overwrite=True,
                          progress=False))
    salt = work / "bench.salt"
    write_bytes(salt, SALT)
    ingest_run(IngestConfig(inputs=[synth], out=data, link_by="insurer", salt_file=salt, overwrite=True,
                            progress=False))
    write_json(marker, settings)
    return data


def machine() -> dict:
    """CPU count, platform and the load average (other processes share this machine)."""
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor(),
            "python": platform.python_version(), "loadavg": list(os.getloadavg())}


def self_peak_rss() -> int:
    """Peak resident set size of this process so far, bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
