"""The tabular baseline side by side with MEDS-Tab: AUPRC (95% CIs), wall time and peak RSS, features.

Same data, labels and splits for both:
- data: claimsfm's MEDS output of a synthetic cohort (`<data>/data/{train,tuning,held_out}`);
- labels: three built-in tasks from claimsfm's task engine (`tasks.cohort.build_cohort`), exported as MEDS
  label tables (`subject_id`, `prediction_time`, `boolean_value`), one folder per task;
- splits: the MEDS split folders (MEDS-Tab) = the store's split of each subject (claimsfm).
MEDS-Tab (`meds-tab`, installed in a venv of its own: it pins its own polars and hydra) runs end to end by
subprocess from --medstab-bin / $CLAIMSFM_MEDSTAB_BIN: describe, tabularize-static, tabularize-time-series
(--workers joblib workers), then per task cache-task and `meds-tab-model` (XGBoost, an Optuna sweep of
--medstab-trials trials, which writes the best trial's held-out predictions). claimsfm's side runs in a
child process: the token store built from the same MEDS folder (`data.build.build_store`, what ingest does
after writing MEDS), the label tables read as tasks (`tasks.labels`), LightGBM's count/recency features
(`baseline.features`, the built-in task's observation window) and `baseline.gbm` (early-stopped on tuning).

Reported per side: featurisation wall time and peak RSS (MEDS-Tab: describe + static + time-series +
cache-task; claimsfm: store build + features), training wall time and peak RSS (MEDS-Tab: each stage is a
process of its own, os.wait4 gives its peak; claimsfm: one process, so its training peak includes
featurisation's), the number of features, and per task the held-out AUPRC of each with patient-bootstrap
CIs (`eval.metrics.summarize`) and the paired difference LightGBM - MEDS-Tab on the rows both scored.
If MEDS-Tab cannot be found or a stage fails, the JSON says which and why (command, exit code, log tail).

    nice -n 5 python benchmarks/peers_tabular.py --work /tmp/peers --out benchmarks/results/peers_tabular.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

NAME = "peers_tabular"
TASKS = "statin_any_use,dpp4i_any_use,dementia"
# MEDS-Tab's windows and aggregations. Its usage guide runs [1d,30d,365d,full] x [static/present, static/first,
# code/count, value/count, value/sum, value/sum_sqd, value/min, value/max]; static/first is refused on claims
# (no numeric static codes), and on this 2-core machine the rest made ~1.5 of its 96 (window, aggregation,
# shard) time-series files a minute under load, over an hour. So the default keeps the windows closest to
# LightGBM's (30 days, a year, all history; LightGBM has 3 and 12 months and all) and the aggregations that
# carry the claims' information (presence, counts, summed day counts); --windows/--aggs take the full set.
WINDOWS = "[30d,365d,full]"
AGGS = "[static/present,code/count,value/sum]"
MIN_CODE_COUNT = 10


def run_timed(cmd: list[str], log: Path, env: dict | None = None) -> dict:
    """Run a command; its wall time, exit code and peak RSS (os.wait4: that process and its waited children)."""
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    out = {"wall_s": time.perf_counter() - t0, "exit_code": os.waitstatus_to_exitcode(status),
           "peak_rss_bytes": usage.ru_maxrss * 1024}
    if out["exit_code"] != 0:
        out["command"] = " ".join(cmd)
        out["log_tail"] = log.read_text(errors="replace").splitlines()[-15:]
    return out


def write_labels(data: Path, tasks: list[str], out: Path) -> dict:
    """<out>/<task>/0.parquet: the task engine's cohort as a MEDS label table. -> {task: row and positive counts}"""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from claimsfm.data import open_store
    from claimsfm.splits import SPLITS
    from claimsfm.tasks.cohort import build_cohort
    from claimsfm.tasks.spec import load_task

    store, counts = open_store(data), {}
    for task in tasks:
        c = build_cohort(store, load_task(task))
        (out / task).mkdir(parents=True, exist_ok=True)
        table = pa.table({"subject_id": pa.array(c.subject_id, pa.int64()),
                          "prediction_time": pa.array(c.prediction_time.astype("datetime64[us]")),
                          "boolean_value": pa.array(c.label, pa.bool_())})
        pq.write_table(table, out / task / "0.parquet")
        counts[task] = {name: {"n": int((c.split == k).sum()), "n_pos": int(c.label[c.split == k].sum())}
                        for k, name in enumerate(SPLITS)}
    return counts


# ------------------------------------------------------------------------------------------------
# MEDS-Tab


def medstab_versions(bin_dir: Path) -> dict:
    code = ("import importlib.metadata as m, json; print(json.dumps({p: m.version(p) for p in "
            "('meds-tab', 'xgboost', 'polars', 'hydra-core', 'meds')}))")
    res = subprocess.run([str(bin_dir / "python"), "-c", code], capture_output=True, text=True)
    return json.loads(res.stdout) if res.returncode == 0 else {"error": res.stderr.strip()[-500:]}


def medstab_features(task_cache: Path) -> int:
    """Columns of one shard's cached matrices (every window x aggregation file of the task; MEDS-Tab stores
    each as npz arrays `array` (3, nnz) and `shape` (rows, columns))."""
    shard = next(p for p in sorted(task_cache.glob("train/*")) if p.is_dir())
    return int(sum(int(np.load(f)["shape"][1]) for f in sorted(shard.rglob("*.npz"))))


def run_medstab(bin_dir: Path, data: Path, labels: Path, work: Path, tasks: list[str], args) -> dict:
    out, logs = work / "medstab", work / "medstab_logs"
    logs.mkdir(parents=True, exist_ok=True)
    if out.exists():
        import shutil

        shutil.rmtree(out)  # the benchmark's own folder: MEDS-Tab refuses to overwrite (do_overwrite=False)
    common = [f"input_dir={data / 'data'}", f"output_dir={out}",
              f"tabularization.min_code_inclusion_count={MIN_CODE_COUNT}",
              f"tabularization.window_sizes={args.windows}", f"tabularization.aggs={args.aggs}"]
    par = ["--multirun", f"worker=range(0,{args.workers})", "hydra/launcher=joblib"]
    stages = {"describe": [str(bin_dir / "meds-tab-describe"), f"input_dir={data / 'data'}", f"output_dir={out}"],
              "tabularize_static": [str(bin_dir / "meds-tab-tabularize-static"), *common, "do_overwrite=False"],
              "tabularize_time_series": [str(bin_dir / "meds-tab-tabularize-time-series"), *par, *common]}
    res = {"stages": {}, "tasks": {}}
    for name, cmd in stages.items():
        _log(f"MEDS-Tab {name}")
        res["stages"][name] = run_timed(cmd, logs / f"{name}.log")
        if res["stages"][name]["exit_code"]:
            res["failed"] = name
            return res
    for task in tasks:
        r = res["tasks"][task] = {}
        _log(f"MEDS-Tab cache-task + model ({args.medstab_trials} trials): {task}")
        # One process: with joblib workers, meds-tab 0.2.0's cache-task races on its label cache (one worker
        # reads labels/<split>/<shard>.parquet while another is still writing it: "Invalid thrift").
        cmd = [str(bin_dir / "meds-tab-cache-task"), *common, f"input_label_dir={labels / task}", f"task_name={task}"]
        r["cache_task"] = run_timed(cmd, logs / f"cache_{task}.log")
        if r["cache_task"]["exit_code"]:
            res["failed"] = f"cache_task {task}"
            return res
        model_dir = work / "medstab_models" / task
        cmd = [str(bin_dir / "meds-tab-model"), "--multirun", "model_launcher=xgboost", *common,
               f"output_model_dir={model_dir}", f"task_name={task}", f"hydra.sweeper.n_trials={args.medstab_trials}",
               "hydra.sweeper.n_jobs=1"]
        r["model"] = run_timed(cmd, logs / f"model_{task}.log")
        if r["model"]["exit_code"]:
            res["failed"] = f"model {task}"
            return res
        preds = sorted(model_dir.rglob("held_out_predictions.parquet"))
        r["predictions"] = str(preds[-1]) if preds else None
        r["n_features"] = medstab_features(out / task / "task_cache")
    return res


# ------------------------------------------------------------------------------------------------
# claimsfm's LightGBM (a child process, so that its peak RSS is its own)


def lightgbm_child(data: Path, labels: Path, work: Path, tasks: list[str]) -> dict:
    from peers_data import self_peak_rss

    from claimsfm.baseline import gbm
    from claimsfm.baseline.features import build_features
    from claimsfm.data.build import build_store
    from claimsfm.splits import HELD_OUT, TRAIN, TUNING
    from claimsfm.tasks.labels import build_label_cohort, label_spec
    from claimsfm.tasks.spec import load_task

    t0 = time.perf_counter()
    store = build_store(meds_dir=data, out_dir=work / "lightgbm_store")  # what ingest does after writing MEDS
    t_store = time.perf_counter() - t0
    feats, out = {}, {"tasks": {}}
    for task in tasks:
        c = build_label_cohort(store, label_spec(labels / task, task), data)
        feats[task] = (c, build_features(store, c.subject_idx, c.t_day, load_task(task).observation_months))
    out["featurise"] = {"wall_s": time.perf_counter() - t0, "store_build_s": t_store, "peak_rss_bytes": self_peak_rss()}
    t1 = time.perf_counter()
    for task, (c, X) in feats.items():
        tr, tu, held = c.split == TRAIN, c.split == TUNING, c.split == HELD_OUT
        booster = gbm.fit(X[tr], c.label[tr], X[tu], c.label[tu], gbm.GBMConfig())
        p = gbm.predict(booster, X[held])
        path = work / f"lightgbm_{task}.npz"
        np.savez(path, subject_id=c.subject_id[held], prediction_time=c.prediction_time[held].astype(np.int64),
                 label=c.label[held], p=p)
        out["tasks"][task] = {"n_features": int(X.shape[1]), "best_iteration": int(booster.best_iteration),
                              "predictions": str(path)}
    out["train"] = {"wall_s": time.perf_counter() - t1, "peak_rss_bytes": self_peak_rss()}
    return out


def run_lightgbm(data: Path, labels: Path, work: Path, tasks: list[str]) -> dict:
    result = work / "lightgbm_result.json"
    cmd = [sys.executable, __file__, "--child-lightgbm", "--data", str(data), "--labels", str(labels),
           "--work", str(work), "--tasks", ",".join(tasks), "--out", str(result)]
    run = run_timed(cmd, work / "lightgbm.log")
    if run["exit_code"]:
        return {"failed": run}
    return {**json.loads(result.read_text()), "process": run}


# ------------------------------------------------------------------------------------------------
# Scoring


def score(task: str, lgb: dict, medstab: dict | None, n_boot: int, seed: int) -> dict:
    """Held-out metrics of each side and the paired difference on the rows both scored."""
    from claimsfm.eval.metrics import paired_bootstrap, summarize

    z = np.load(lgb["tasks"][task]["predictions"])
    sid, ptime, y, p_lgb = z["subject_id"], z["prediction_time"], z["label"], z["p"]
    out = {"lightgbm": summarize(y, p_lgb, sid, n_boot, seed) | {"n_features": lgb["tasks"][task]["n_features"]}}
    if not medstab or not medstab.get("predictions"):
        return out
    import pyarrow.parquet as pq

    t = pq.read_table(medstab["predictions"])
    m_sid = t["subject_id"].to_numpy().astype(np.int64)
    m_time = t["prediction_time"].cast("timestamp[us]").cast("int64").to_numpy()
    m_p = t["predicted_boolean_probability"].to_numpy().astype(float)
    index = {(int(a), int(b)): i for i, (a, b) in enumerate(zip(m_sid, m_time))}
    pos = np.array([index.get((int(a), int(b)), -1) for a, b in zip(sid, ptime)])
    both = pos >= 0
    yb, gb = y[both], sid[both]
    m_label = t["boolean_value"].to_numpy(zero_copy_only=False).astype(bool)
    out["rows"] = {"lightgbm": int(len(y)), "medstab": int(len(m_sid)), "both": int(both.sum()),
                   "same_label": float(np.mean(m_label[pos[both]] == yb)) if both.any() else None}
    out["medstab"] = summarize(yb, m_p[pos[both]], gb, n_boot, seed) | {"n_features": medstab.get("n_features")}
    out["lightgbm_on_common_rows"] = summarize(yb, p_lgb[both], gb, n_boot, seed)
    out["lightgbm_minus_medstab"] = paired_bootstrap(yb, p_lgb[both], m_p[pos[both]], gb, "auprc", n_boot, seed)
    return out


def _log(msg: str) -> None:
    from peers_data import log

    log(NAME, msg)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=None, help="an ingested folder (default: make a synth cohort under --work)")
    p.add_argument("--work", default="/tmp/claimsfm-peers")
    p.add_argument("--patients", type=int, default=15000,
                   help="synthetic patients when --data is not given (15,000: ~60 held-out dementia positives; "
                   "~30 min on 2 cores, 3,000: ~6 min)")
    p.add_argument("--months", type=int, default=96)
    p.add_argument("--tasks", default=TASKS)
    p.add_argument("--medstab-bin", default=os.environ.get("CLAIMSFM_MEDSTAB_BIN"),
                   help="bin folder of a venv with meds-tab (or $CLAIMSFM_MEDSTAB_BIN)")
    p.add_argument("--medstab-trials", type=int, default=4, help="Optuna trials of meds-tab-model per task")
    p.add_argument("--workers", type=int, default=2, help="MEDS-Tab joblib workers (LightGBM uses 2 threads)")
    p.add_argument("--windows", default=WINDOWS, help="MEDS-Tab tabularization.window_sizes")
    p.add_argument("--aggs", default=AGGS, help="MEDS-Tab tabularization.aggs")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--labels", default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-lightgbm", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help="also write the JSON here")
    args = p.parse_args()
    if args.child_lightgbm:
        from claimsfm.io import write_json

        write_json(args.out, lightgbm_child(Path(args.data), Path(args.labels), Path(args.work),
                                            args.tasks.split(",")))
        return
    run(args)


def run(args) -> dict:
    from peers_data import cohort, machine

    from claimsfm.io import write_json

    work = Path(args.work) / "tabular"
    work.mkdir(parents=True, exist_ok=True)
    data = Path(args.data) if args.data else cohort(Path(args.work), args.patients, args.months, args.seed)
    tasks = args.tasks.split(",")
    start = machine()
    _log(f"labels of {', '.join(tasks)}")
    counts = write_labels(data, tasks, work / "labels")
    _log("claimsfm LightGBM")
    lgb = run_lightgbm(data, work / "labels", work, tasks)
    medstab, versions = None, None
    bin_dir = Path(args.medstab_bin) if args.medstab_bin else None
    if bin_dir is None or not (bin_dir / "meds-tab-describe").exists():
        medstab = {"failed": "not installed", "why": f"no meds-tab-describe in --medstab-bin {bin_dir} "
                   "(pip install meds-tab into a separate venv and pass its bin folder)"}
    else:
        versions = medstab_versions(bin_dir)
        medstab = run_medstab(bin_dir, data, work / "labels", work, tasks, args)
    result = {"benchmark": NAME, "settings": {k: v for k, v in vars(args).items() if k != "child_lightgbm"},
              "data": str(data), "machine": {**start, "loadavg_end": list(os.getloadavg())},
              "versions": {"claimsfm_lightgbm": _version("lightgbm"), "medstab": versions},
              "medstab_settings": {"windows": args.windows, "aggs": args.aggs, "trials": args.medstab_trials,
                                   "min_code_inclusion_count": MIN_CODE_COUNT, "workers": args.workers,
                                   "cache_task_workers": 1},
              "labels": counts, "lightgbm": lgb, "medstab": medstab, "tasks": {}}
    if "failed" not in lgb:
        for task in tasks:
            result["tasks"][task] = score(task, lgb, (medstab or {}).get("tasks", {}).get(task), args.n_boot,
                                          args.seed)
    result["summary"] = summary(result)
    print(json.dumps(result, indent=2))
    if args.out:
        write_json(args.out, result)
    return result


def summary(r: dict) -> dict:
    """Totals per side and the verdict per task (LightGBM's AUPRC at least MEDS-Tab's within the paired CI)."""
    out = {}
    lgb, mt = r["lightgbm"], r["medstab"] or {}
    if "featurise" in lgb:
        out["lightgbm"] = {"featurise_s": lgb["featurise"]["wall_s"], "train_s": lgb["train"]["wall_s"],
                           "total_s": lgb["process"]["wall_s"], "peak_rss_bytes": lgb["process"]["peak_rss_bytes"]}
    if mt.get("stages") and "failed" not in mt:
        feat = list(mt["stages"].values()) + [t["cache_task"] for t in mt["tasks"].values()]
        model = [t["model"] for t in mt["tasks"].values()]
        out["medstab"] = {"featurise_s": sum(s["wall_s"] for s in feat), "train_s": sum(s["wall_s"] for s in model),
                          "featurise_peak_rss_bytes": max(s["peak_rss_bytes"] for s in feat),
                          "train_peak_rss_bytes": max(s["peak_rss_bytes"] for s in model)}
        out["medstab"]["total_s"] = out["medstab"]["featurise_s"] + out["medstab"]["train_s"]
    out["tasks"] = {}
    for task, t in r["tasks"].items():
        if "lightgbm_minus_medstab" in t:
            d = t["lightgbm_minus_medstab"]
            out["tasks"][task] = {"lightgbm_auprc": t["lightgbm_on_common_rows"]["auprc"],
                                  "medstab_auprc": t["medstab"]["auprc"], "diff": d["diff"], "ci": d["ci"],
                                  "lightgbm_at_least_medstab": d["ci"][1] >= 0}
    return out


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    main()
