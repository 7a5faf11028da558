"""Is the synthetic oracle an honest ground truth? (issue 11)  Prints JSON, writes benchmarks/results/.

For each cohort size: synth (fresh seed) -> ingest --link-by insurer -> evaluate LightGBM on every
built-in task. Then, per task:
- calibration of p_latent and p_observable against the labels (truth/oracle_<task>.parquet, every
  eligible row): observed vs expected positives and the binomial z, overall and per decile of
  distinct p (ties never split); the done-when bar is |z| <= 3 overall and <= 4 per decile whose
  expected count is >= 4 (rows of one patient at different times are treated as independent);
- AUPRC of both oracles on all rows, and the mean Monte-Carlo standard error of each;
- LightGBM vs the latent oracle on the same held-out rows: paired bootstrap over subjects of
  AUPRC(LightGBM) - AUPRC(latent); "significantly above" = the CI's lower end > 0.

    nice -n 5 python benchmarks/oracle_check.py --patients 4000 20000 --seed 2026
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

SALT = b"claimsfm oracle_check benchmark salt: synthetic data only\n"
Z_OVERALL, Z_DECILE, MIN_EXPECTED = 3.0, 4.0, 4.0


def _log(msg: str) -> None:
    print(f"[oracle_check {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def deciles(p: np.ndarray) -> np.ndarray:
    """Group 0-9 per row by rank of p; equal p share the rank of their first occurrence (one group)."""
    first = np.searchsorted(np.sort(p), p, side="left")   # min rank among ties
    return np.minimum(first * 10 // max(len(p), 1), 9)


def z_test(label: np.ndarray, p: np.ndarray) -> dict:
    var = float((p * (1 - p)).sum())
    obs, exp = int(label.sum()), float(p.sum())
    return {"n": int(len(p)), "observed": obs, "expected": round(exp, 2),
            "z": round((obs - exp) / np.sqrt(var), 3) if var > 0 else None}


def calibration(label, p) -> dict:
    groups = deciles(p)
    per = [z_test(label[groups == g], p[groups == g])
           | {"p_range": [float(p[groups == g].min()), float(p[groups == g].max())]} for g in np.unique(groups)]
    judged = [g["z"] for g in per if g["expected"] >= MIN_EXPECTED and g["z"] is not None]
    overall = z_test(label, p)
    worst = max((abs(z) for z in judged), default=0.0)
    ok = overall["z"] is not None and abs(overall["z"]) <= Z_OVERALL and worst <= Z_DECILE
    return {"overall": overall, "worst_decile_abs_z": round(worst, 3), "consistent": bool(ok), "deciles": per}


@contextlib.contextmanager
def _timed_oracle():
    """CPU seconds spent in the oracle's rollouts during the synth run (instrumentation only)."""
    from claimsfm.synth import oracle

    spent, inner = [0.0], oracle.TruthCollector._oracle

    def timed(self, m, due):
        c = time.process_time()
        inner(self, m, due)
        spent[0] += time.process_time() - c

    oracle.TruthCollector._oracle = timed
    try:
        yield spent
    finally:
        oracle.TruthCollector._oracle = inner


def _stages(n: int, args, work: Path) -> tuple[Path, Path, Path, dict]:
    from claimsfm.eval.run import EvalConfig
    from claimsfm.eval.run import run as evaluate_run
    from claimsfm.ingest.pipeline import IngestConfig
    from claimsfm.ingest.pipeline import run as ingest_run
    from claimsfm.io import write_bytes
    from claimsfm.synth.run import SynthConfig
    from claimsfm.synth.run import run as synth_run

    synth, data, ev = work / f"synth{n}", work / f"data{n}", work / f"eval{n}"
    _log(f"synth {n:,} patients x {args.months} months, {args.hospitals} hospitals, seed {args.seed}")
    c0 = time.process_time()
    if args.reuse_synth and (synth / "synth.json").is_file():   # same seed and size: the same files
        _log(f"reusing the synth in {synth}")
        synth_cpu = {"synth_cpu_s": None, "oracle_cpu_s": None}
    else:
        with _timed_oracle() as oracle_cpu:
            synth_run(SynthConfig(out=str(synth), patients=n, hospitals=args.hospitals, months=args.months,
                                  seed=args.seed, overwrite=True, progress=False))
        synth_cpu = {"synth_cpu_s": round(time.process_time() - c0, 1), "oracle_cpu_s": round(oracle_cpu[0], 1)}
    salt = work / "bench.salt"
    write_bytes(salt, SALT)
    _log("ingest --link-by insurer")
    ingest_run(IngestConfig(inputs=[synth], out=data, link_by="insurer", salt_file=salt, overwrite=True,
                            progress=False))
    if args.reuse_eval and (ev / "metrics.json").is_file():   # the claims (so LightGBM) do not change with the oracle
        _log(f"reusing the LightGBM evaluation in {ev}")
        return synth, data, ev, synth_cpu
    _log("evaluate lightgbm, all built-in tasks")
    w0 = time.time()
    evaluate_run(EvalConfig(data=str(data), task="all", baselines=("lightgbm",), out=str(ev), max_train=args.max_train,
                            max_eval=args.max_eval, n_boot=args.n_boot, seed=args.seed, quiet=True))
    return synth, data, ev, synth_cpu | {"evaluate_wall_s": round(time.time() - w0, 1)}


def _versus_lightgbm(task: str, data: Path, ev: Path, n_boot: int, seed: int) -> dict | None:
    import pyarrow.parquet as pq

    from claimsfm.eval.metrics import paired_bootstrap, point_metrics

    pred_path = ev / "predictions" / task / "lightgbm.parquet"
    if not pred_path.is_file():
        return None
    pred = pq.read_table(pred_path).to_pandas()
    orc = pq.read_table(data / "truth" / f"oracle_{task}.parquet",
                        columns=["subject_id", "prediction_time", "p_latent", "p_observable"]).to_pandas()
    orc["prediction_time"] = orc["prediction_time"].astype("datetime64[us]")
    pred["prediction_time"] = pred["prediction_time"].astype("datetime64[us]")
    j = pred.merge(orc.drop_duplicates(["subject_id", "prediction_time"]), on=["subject_id", "prediction_time"])
    y = j["boolean_value"].to_numpy(bool)
    if not y.any():
        return None
    p_gbm, p_lat = j["predicted_boolean_probability"].to_numpy(float), j["p_latent"].to_numpy(float)
    diff = paired_bootstrap(y, p_gbm, p_lat, j["subject_id"].to_numpy(), "auprc", n_boot, seed)
    return {"rows": int(len(j)), "unmatched": int(len(pred) - len(j)), "positives": int(y.sum()),
            "auprc_lightgbm": point_metrics(y, p_gbm)["auprc"], "auprc_latent": point_metrics(y, p_lat)["auprc"],
            "auprc_observable": point_metrics(y, j["p_observable"].to_numpy(float))["auprc"],
            "lightgbm_minus_latent": diff, "lightgbm_significantly_above": bool(diff["ci"][0] > 0)}


def _truth_only(n: int, args, work: Path) -> tuple[Path, dict]:
    """The generator's month loop and truth collection only (no receipts written): same truth/ files."""
    from claimsfm.synth.hospitals import draw_hospitals
    from claimsfm.synth.oracle import TruthCollector
    from claimsfm.synth.population import draw_population
    from claimsfm.synth.simulate import Simulation
    from claimsfm.synth.streams import patient_keys
    from claimsfm.tasks.spec import builtin_task_names, load_task, month_index

    _log(f"simulate {n:,} patients x {args.months} months (truth only), seed {args.seed}")
    c0 = time.process_time()
    start = month_index(2014, 1)
    hospitals = draw_hospitals(args.seed, args.hospitals)
    keys = patient_keys(args.seed, n)
    sim = Simulation(keys, draw_population(keys, "hospital", start, np.array([h.weight for h in hospitals])),
                     hospitals, start)
    truth = TruthCollector(sim, [load_task(t) for t in builtin_task_names()], start, start + args.months - 1)
    with _timed_oracle() as oracle_cpu:
        for m in range(start, start + args.months):
            truth.after_step(m, sim.step(m))
    folder = work / f"truth{n}"
    truth.write(folder / "truth")
    return folder, {"synth_cpu_s": round(time.process_time() - c0, 1), "oracle_cpu_s": round(oracle_cpu[0], 1)}


def check(n: int, args, work: Path) -> dict:
    import pyarrow.parquet as pq
    from sklearn.metrics import average_precision_score

    from claimsfm.tasks.spec import builtin_task_names

    if args.truth_only:
        synth, synth_cpu = _truth_only(n, args, work)
    else:
        synth, data, ev, synth_cpu = _stages(n, args, work)
    tasks = {}
    for task in builtin_task_names():
        t = pq.read_table(synth / "truth" / f"oracle_{task}.parquet").to_pandas()
        y = t["label"].to_numpy(bool)
        entry = {"rows": int(len(y)), "positives": int(y.sum())}
        for which in ("latent", "observable"):
            p = t[f"p_{which}"].to_numpy(float)
            entry[which] = calibration(y, p) | {
                "auprc": float(average_precision_score(y, p)) if y.any() else None,
                "mean_mc_se": float(t[f"p_{which}_se"].mean())}
        entry["vs_lightgbm"] = None if args.truth_only else _versus_lightgbm(task, data, ev, args.n_boot, args.seed)
        tasks[task] = entry
    summary = {"seconds": float("nan")} if args.truth_only else json.loads((synth / "synth.json").read_text())
    ok_cal = all(t[w]["consistent"] for t in tasks.values() for w in ("latent", "observable"))
    beaten = [k for k, t in tasks.items() if t["vs_lightgbm"] and t["vs_lightgbm"]["lightgbm_significantly_above"]]
    return {"patients": n, "months": args.months, "hospitals": args.hospitals, "seed": args.seed,
            "mode": "truth only (no LightGBM)" if args.truth_only else "synth + ingest --link-by insurer + LightGBM",
            "max_train": args.max_train, "max_eval": args.max_eval,
            **synth_cpu, "synth_seconds": round(summary["seconds"], 1),
            "all_consistent": ok_cal, "lightgbm_significantly_above_latent": beaten, "tasks": tasks}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, nargs="+", default=[4000, 20000])
    ap.add_argument("--months", type=int, default=120)
    ap.add_argument("--hospitals", type=int, default=5)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--max-train", type=int, default=None)
    ap.add_argument("--max-eval", type=int, default=None)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    ap.add_argument("--truth-only", action="store_true", help="truth only: calibration, no LightGBM")
    ap.add_argument("--reuse-eval", action="store_true", help="keep an earlier LightGBM evaluation found in --work")
    ap.add_argument("--reuse-synth", action="store_true", help="keep an earlier synth of this size found in --work")
    ap.add_argument("--append", action="store_true",
                    help="keep the runs of other cohort sizes already in --out (and their commands)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "oracle_check.json"))
    args = ap.parse_args()
    import tempfile

    from claimsfm.io import write_json

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        runs = [check(n, args, work) for n in args.patients]
    nice = f"nice -n {os.nice(0)} " if os.nice(0) else ""
    out, command = Path(args.out), f"{nice}python benchmarks/oracle_check.py " + " ".join(sys.argv[1:])
    old = json.loads(out.read_text()) if args.append and out.is_file() else {}
    kept = [r for r in old.get("runs", []) if r["patients"] not in args.patients]
    result = {"benchmark": "oracle_check", "cpu_count": os.cpu_count(),
              "runs": sorted(kept + runs, key=lambda r: r["patients"]),
              "criteria": {"z_overall": Z_OVERALL, "z_decile": Z_DECILE, "decile_min_expected": MIN_EXPECTED},
              "commands": [c for c in old.get("commands", []) if kept] + [command]}
    write_json(out, result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
