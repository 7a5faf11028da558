"""Ingest benchmark (performance.md P1-P3); prints one JSON object.

    python benchmarks/ingest.py [--mb 200] [--corpus /tmp/claimsfm_bench_uke] [--ref-mb 4] [--csv-mb 60]

Builds (once, reused) a seeded UKE corpus of at least --mb MB under /tmp, then in one run measures:
P1 the C++ parser vs the pure-Python reference parser on the same slice of files (seconds per MB),
P2 C++ throughput on 1 and 2 threads over the whole corpus, P3 a long CSV -> per-patient sequences,
C++ (parse + group) vs polars (read_csv + sort + group_by) on the same file and thread count.
Throughput is reported per wall second and per CPU second: these machines are shared, and the CPU
figure is the one that does not depend on what the neighbours run.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

THREADS = 2
os.environ.setdefault("POLARS_MAX_THREADS", str(THREADS))  # polars reads it once, at import

import numpy as np  # noqa: E402

from claimsfm import _native  # noqa: E402
from claimsfm.ingest import reference, ukewriter  # noqa: E402


def corpus(folder: Path, mb: float) -> list[Path]:
    files = sorted(folder.rglob("*.UKE"))
    if sum(f.stat().st_size for f in files) >= mb * 1e6:
        return files
    print(f"building a {mb:.0f} MB UKE corpus in {folder} ...", file=sys.stderr)
    ukewriter.write_corpus(folder, seed=0, facilities=20, months=1, patients=1500, target_bytes=int(mb * 1e6))
    return sorted(folder.rglob("*.UKE"))


def timed(fn, repeat=1):
    best = None
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        dw, dc = time.perf_counter() - w, time.process_time() - c
        if best is None or dw < best[0]:
            best = (dw, dc, out)
    return best


def bench_uke(files: list[Path], ref_mb: float) -> dict:
    paths = [str(f) for f in files]
    size = sum(f.stat().st_size for f in files) / 1e6
    res = {"corpus_mb": round(size, 1), "files": len(files)}
    for t in (1, THREADS):
        w, c, out = timed(lambda t=t: _native.parse_uke(paths, "chart", True, t), repeat=2)
        res[f"cpp_{t}t_mb_per_s_wall"] = round(size / w, 1)
        res[f"cpp_{t}t_mb_per_s_cpu"] = round(size / c, 1)
        res["events"] = int(len(out["day"]))
    # P1 on an identical slice: the same files through both parsers.
    sl, acc = [], 0.0
    for f in files:
        if acc >= ref_mb * 1e6:
            break
        sl.append(str(f))
        acc += f.stat().st_size
    w_ref, c_ref, ref = timed(lambda: reference.parse_files(sl, "chart", True))
    w_cpp, c_cpp, nat = timed(lambda: _native.parse_uke(sl, "chart", True, 1), repeat=3)
    assert np.array_equal(ref["day"], nat["day"]) and ref["codes"] == nat["codes"], "parsers disagree"
    res.update(ref_slice_mb=round(acc / 1e6, 2), ref_mb_per_s_cpu=round(acc / 1e6 / c_ref, 2),
               cpp_slice_mb_per_s_cpu=round(acc / 1e6 / c_cpp, 1),
               P1_speedup_cpu=round(c_ref / c_cpp, 1), P1_speedup_wall=round(w_ref / w_cpp, 1))
    res["P2_mb_per_s_1thread_cpu"] = res["cpp_1t_mb_per_s_cpu"]
    res["P2_mb_per_s_1thread_wall"] = res["cpp_1t_mb_per_s_wall"]
    res["P2_scaling_2t_over_1t_wall"] = round(res[f"cpp_{THREADS}t_mb_per_s_wall"] / res["cpp_1t_mb_per_s_wall"], 2)
    return res


def write_csv(path: Path, mb: float) -> Path:
    if path.is_file() and path.stat().st_size >= mb * 1e6:
        return path
    rng = np.random.default_rng(0)
    n = int(mb * 1e6 / 38)
    subj = rng.integers(0, max(1, n // 60), n)
    day = rng.integers(16000, 20000, n)
    code = rng.integers(0, 5000, n)
    dates = np.datetime_as_string(day.astype("datetime64[D]"))
    with open(path, "w") as f:
        f.write("subject_id,time,code,numeric_value\n")
        for i in range(0, n, 200_000):
            j = slice(i, i + 200_000)
            rows = [f"{s},{d},JPDRUG//{c:09d},{v}" for s, d, c, v in
                    zip(subj[j], dates[j], code[j], rng.integers(1, 30, len(subj[j])))]
            f.write("\n".join(rows) + "\n")
    return path


def cpp_sequences(path: Path):
    r = _native.parse_csv(str(path), THREADS, False)
    order, offsets, subjects = _native.group_by_subject(r["subject_id"], r["time_us"], THREADS)
    return r["code"][order], offsets, subjects


def polars_sequences(path: Path):
    import polars as pl

    df = pl.read_csv(path, schema_overrides={"subject_id": pl.Int64, "time": pl.Utf8, "code": pl.Utf8,
                                             "numeric_value": pl.Float32})
    df = df.with_columns(pl.col("time").str.to_datetime(strict=True), pl.col("code").cast(pl.Categorical).to_physical())
    return df.sort(["subject_id", "time"], maintain_order=True).group_by("subject_id", maintain_order=True).agg("code")


def bench_csv(path: Path) -> dict:
    size = path.stat().st_size / 1e6
    w_c, c_c, (codes, offsets, subjects) = timed(lambda: cpp_sequences(path), repeat=2)
    w_p, c_p, seqs = timed(lambda: polars_sequences(path), repeat=2)
    assert seqs.height == len(subjects), "different subject counts"
    return {"csv_mb": round(size, 1), "threads": THREADS, "cpp_mb_per_s_wall": round(size / w_c, 1),
            "polars_mb_per_s_wall": round(size / w_p, 1), "P3_speedup_wall": round(w_p / w_c, 2),
            "P3_speedup_cpu": round(c_p / c_c, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=200)
    ap.add_argument("--corpus", type=Path, default=Path("/tmp/claimsfm_bench_uke"))
    ap.add_argument("--ref-mb", type=float, default=4)
    ap.add_argument("--csv-mb", type=float, default=60)
    args = ap.parse_args()
    files = corpus(args.corpus, args.mb)
    result = {"benchmark": "ingest", "cpu_count": os.cpu_count(), "load_avg_1m": os.getloadavg()[0],
              "uke": bench_uke(files, args.ref_mb),
              "csv": bench_csv(write_csv(args.corpus.parent / "claimsfm_bench_events.csv", args.csv_mb))}
    result["targets"] = {"P1": ">= 20x", "P2": ">= 300 MB/s on one thread", "P3": ">= 3x polars"}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
