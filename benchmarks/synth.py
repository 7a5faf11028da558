"""Benchmark `claimsfm synth`: wall and CPU time per cohort size, with a split of where the time goes.

Prints one JSON object. Default sizes: the test/demo cohort (2,000 x 96) and 10,000 x 120; pass
`--full` for the acceptance size 100,000 x 120 (target: <= 10 minutes on one core).
Usage: python benchmarks/synth.py [--full] [--sizes 2000x96,10000x120] [--background default|none|none,default]
           [--out benchmarks/results/synth.json]
Each run also records the cohort's vocabulary statistics (synth.json `vocabulary`).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time

from claimsfm.synth.run import SynthConfig, run


def one(patients: int, months: int, hospitals: int, background: str) -> dict:
    out = tempfile.mkdtemp(prefix="synth-bench-")
    try:
        w0, c0 = time.perf_counter(), time.process_time()
        s = run(SynthConfig(out=os.path.join(out, "c"), patients=patients, hospitals=hospitals, months=months,
                            start="2014-01", seed=0, progress=False, background=background))
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    finally:
        shutil.rmtree(out, ignore_errors=True)
    c, v = s["counts"], s["vocabulary"]
    return {"patients": patients, "months": months, "hospitals": hospitals, "background": background,
            "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2), "receipts": c["receipts"], "lines": c["lines"],
            "receipts_per_cpu_s": round(c["receipts"] / cpu),
            "patient_months_per_cpu_s": round(patients * months / cpu),
            "tasks_auprc_over_prevalence": {k: round(v["auprc_observable"] / v["prevalence"], 1)
                                            for k, v in s["tasks"].items() if v["prevalence"] > 0},
            "vocabulary": {k: v[k] for k in ("distinct_codes", "distinct_codes_by_kind", "background_token_share",
                                             "tokens", "tokens_per_patient_year", "rank_frequency")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="2000x96,10000x120", help="comma list of PATIENTSxMONTHS")
    ap.add_argument("--full", action="store_true", help="also run 100000x120")
    ap.add_argument("--hospitals", type=int, default=20)
    ap.add_argument("--background", default="default", help="comma list of background levels to run at each size")
    ap.add_argument("--out", default=None, help="also write the JSON here (e.g. benchmarks/results/synth.json)")
    args = ap.parse_args()
    sizes = [tuple(int(x) for x in s.split("x")) for s in args.sizes.split(",") if s]
    if args.full:
        sizes.append((100_000, 120))
    runs = [one(p, m, args.hospitals, b) for p, m in sizes for b in args.background.split(",")]
    last = runs[-1]
    est = 100_000 * 120 / last["patient_months_per_cpu_s"]
    text = json.dumps({"benchmark": "synth", "runs": runs, "target_100k_x_120_s": 600,
                       "estimated_100k_x_120_cpu_s": round(est), "cpu_count": os.cpu_count()}, indent=2)
    print(text)
    if args.out:
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
