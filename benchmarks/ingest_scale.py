"""Ingest at scale (issue #13): end-to-end wall, MB/s and peak RSS of `claimsfm ingest` on bulk UKE
corpora of growing size, against a bare Python decode+split loop over the same files; prints JSON and
writes benchmarks/results/ingest_scale.json.

    nice -n 5 python benchmarks/ingest_scale.py [--sizes 0.1,0.4,2] [--threads 1,2] [--root /tmp/claimsfm_scale]
                                                [--memory-limit ""] [--identity 0.4] [--keep] [--repeat 1]
                                                [--facilities 32]

Corpora come from claimsfm.ingest.bulk (--facilities x 12 months, recurring patients, ~10,000 codes),
built once per size under --root and deleted at the end unless --keep. Each ingest is a fresh
`claimsfm ingest` process (imports included, as a user runs it); its peak RSS is the child's
ru_maxrss from wait4. The Python reference reads each file, decodes CP932 and splits every line on
commas (nothing else), in this process, right after the ingests of that size. The 70 GB projection
fits wall = a + b * GB and RSS = c + d * GB on the measured sizes of the largest thread count.
Before each timed run the inputs are read once and dirty pages flushed (`settle`): every run, the split loop
included, starts with the corpus in the page cache and no writeback pending. With `--repeat R` each ingest and
the split loop run R times, interleaved, and the fastest of each is reported and compared (all walls are kept):
on a shared virtual machine single runs of the split loop took 28-73 s at 2 GB within one hour. The peak RSS
reported is the fastest run's; every run's is in `peak_rss_mb_all` (they differ by up to ~15 MB).
`--identity GB`: on that corpus, the in-memory ingest (the reference twin: write_dataset(in_memory=True) and
build_store from its MEDS files, in a fresh process) must give the same files as the last `claimsfm ingest`
(spill.output_checksums over data/, metadata/ and store/: a sha256 of every file).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "ingest_scale.json"
FACILITIES = 32  # write_bulk's default: 384 files (x 12 months), 5 MB each at 2 GB
SALT = "ingest-scale-benchmark"


def corpus(root: Path, gb: float, facilities: int = FACILITIES) -> list[Path]:
    from claimsfm.ingest.bulk import write_bulk

    folder = root / (f"uke_{gb:g}gb" if facilities == FACILITIES else f"uke_{gb:g}gb_{facilities}f")
    files = sorted(folder.rglob("*.UKE"))
    if not files:
        t0 = time.perf_counter()
        files = sorted(write_bulk(folder, gb * 1000, seed=0, facilities=facilities))
        print(f"wrote {gb:g} GB corpus in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return files


def ingest_rss(folder: Path, out: Path, threads: int, memory_limit: str) -> dict:
    """One `claimsfm ingest` process: wall seconds, peak RSS (the child's ru_maxrss from wait4), stage table."""
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "claimsfm.cli.main", "ingest", str(folder), "--out", str(out),
           "--threads", str(threads), "--no-progress"] + (["--memory-limit", memory_limit] if memory_limit else [])
    env = {**os.environ, "CLAIMSFM_SALT": SALT, "COLUMNS": "200"}
    err = out.parent / f"{out.name}.stderr"
    t0 = time.perf_counter()
    with open(err, "w") as f:
        pid = _spawn(cmd, env, f)
        _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    text = err.read_text()
    err.unlink()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"ingest failed:\n{text[-3000:]}")
    table = re.finditer(r"│ ([a-z+]+)\s+│\s+([\d.]+) │\s+\d+% │\s+([\d.]+) │\s+(\d+) │", text)
    stages = {m.group(1): {"s": float(m.group(2)), "cpu_s": float(m.group(3)), "peak_rss_mb": int(m.group(4))}
              for m in table}
    stages.pop("total", None)
    summary = {m.group(1): int(m.group(2)) for m in re.finditer(r"│ (subjects|events)\s+│ (\d+)", text)}
    return {"wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "stages": stages,
            **summary}


def _spawn(cmd: list[str], env: dict, stderr) -> int:
    pid = os.fork()
    if pid == 0:  # child: stdout to /dev/null, stderr to the file, then exec
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(stderr.fileno(), 2)
        try:
            os.execve(cmd[0], cmd, env)
        finally:
            os._exit(127)
    return pid


REFERENCE = """
import sys
from pathlib import Path
from claimsfm.data.build import build_store
from claimsfm.ingest import IngestConfig, write_dataset
cfg = IngestConfig(inputs=[Path(sys.argv[1])], out=Path(sys.argv[2]), threads=int(sys.argv[3]), progress=False)
write_dataset(cfg, cfg.out, in_memory=True)
build_store(cfg.out, cfg.out / "store", min_count=cfg.min_count, code_level=cfg.code_level,
            source=cfg.out.resolve(), threads=cfg.n_threads())
"""


def identity(folder: Path, ingested: Path, ref: Path, threads: int) -> dict:
    """The in-memory twin in a fresh process (its wall and peak RSS too), then a checksum of every file."""
    from claimsfm.ingest.spill import output_checksums

    shutil.rmtree(ref, ignore_errors=True)
    ref.mkdir(parents=True)
    env = {**os.environ, "CLAIMSFM_SALT": SALT}
    t0 = time.perf_counter()
    with open(ref.parent / "ref.stderr", "w") as f:
        pid = _spawn([sys.executable, "-c", REFERENCE, str(folder), str(ref), str(threads)], env, f)
        _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    err = (ref.parent / "ref.stderr").read_text()
    (ref.parent / "ref.stderr").unlink()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"in-memory reference failed:\n{err[-3000:]}")
    parts = ("data", "metadata", "store")
    a = {k: v for k, v in output_checksums(ingested).items() if k.split("/")[0] in parts}
    b = {k: v for k, v in output_checksums(ref).items() if k.split("/")[0] in parts}
    differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    return {"files": len(a), "identical": not differ and len(a) > 0, "differ": differ[:20],
            "in_memory_wall_s": round(wall, 2), "in_memory_peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def settle(files: list[Path]) -> float:
    """Flush dirty pages (the previous run's outputs) and read every input file once, so that each timed run
    starts alike: the inputs in the page cache, no writeback pending. On this machine's virtual disk a cold
    read of 2 GB took 6-10 s and the page cache kept only part of the corpora between runs, which made
    the parse stage of single runs 3-8x slower in wall time at unchanged CPU time. Returns the read seconds."""
    os.sync()
    t0 = time.perf_counter()
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass
    return time.perf_counter() - t0


def python_split(files: list[Path]) -> float:
    """The bare Python reference: read, decode CP932, split lines and fields. Returns wall seconds."""
    t0 = time.perf_counter()
    fields = 0
    for f in files:
        for line in f.read_bytes().decode("cp932", errors="replace").splitlines():
            fields += len(line.split(","))
    assert fields > 0
    return time.perf_counter() - t0


def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    return my - b * mx, b


def summarize(runs: list[dict], threads: int) -> dict:
    """The 70 GB projection (slopes between the two largest corpora, where every run has many buckets)
    and the issue's targets, checked on the largest corpus."""
    if len(runs) < 2:
        return {}
    top = f"ingest_{threads}t"
    big, mid = runs[-1], runs[-2]
    gbs = [mid["mb"] / 1000, big["mb"] / 1000]
    out = {"projection_70gb": {"threads": threads, "from": [mid["gb"], big["gb"]]}}
    for key, scale, unit in (("wall_s", 3600, "h"), ("cpu_s", 3600, "h"), ("peak_rss_mb", 1000, "gb")):
        a, b = fit(gbs, [mid[top][key], big[top][key]])
        out["projection_70gb"][f"{key}_per_gb"] = round(b, 1)
        out["projection_70gb"][f"{key.rsplit('_', 1)[0]}_{unit}"] = round((a + 70 * b) / scale, 2)
    out["targets"] = {
        "peak_rss_largest_le_1500mb": big[top]["peak_rss_mb"] <= 1500,
        "peak_rss_largest_within_10pct_of_previous": big[top]["peak_rss_mb"] <= 1.1 * mid[top]["peak_rss_mb"],
        "mb_per_s_largest_ge_60": big[top]["mb_per_s"] >= 60,
        "x_python_split_largest_ge_2_5": big[top]["x_python_split"] >= 2.5}
    checked = [r["identity"] for r in runs if "identity" in r]
    if checked:
        out["targets"]["outputs_identical_to_in_memory"] = all(c["identical"] for c in checked)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="0.1,0.4,2", help="corpus sizes in GB")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--root", type=Path, default=Path("/tmp/claimsfm_scale"))
    ap.add_argument("--memory-limit", default="", help="passed to ingest (default: ingest's own default)")
    ap.add_argument("--identity", type=float, default=0.4,
                    help="corpus size (GB) whose outputs are checked against the in-memory ingest (0: none)")
    ap.add_argument("--keep", action="store_true", help="keep the corpora for another run")
    ap.add_argument("--facilities", type=int, default=FACILITIES,
                    help="facilities of the bulk corpus (12 monthly files each): fewer make larger files, as real "
                         "receipts of large hospitals are (the paper's ~70 GB from 32 hospitals: ~180 MB a file)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--note", default="", help="conditions of the run, kept in the JSON (e.g. the machine load)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="timed runs of each ingest and of the split loop (interleaved); the fastest of each is "
                         "reported and compared, all walls are kept")
    args = ap.parse_args()
    sizes = [float(x) for x in args.sizes.split(",")]
    threads = [int(x) for x in args.threads.split(",")]
    runs = []
    try:
        for gb in sizes:
            files = corpus(args.root, gb, args.facilities)
            mb = sum(f.stat().st_size for f in files) / 1e6
            row = {"gb": gb, "mb": round(mb, 1), "files": len(files), "load_avg_1m_before": os.getloadavg()[0]}
            row["first_read_s"] = round(settle(files), 2)
            splits = []
            for _ in range(args.repeat):  # interleaved, so that a slow spell of the machine hits both sides
                for t in threads:
                    settle(files)
                    r = ingest_rss(files[0].parents[1], args.root / "out", t, args.memory_limit)
                    r["mb_per_s"] = round(mb / r["wall_s"], 1)
                    best = row.get(f"ingest_{t}t")
                    walls = (best or {}).get("wall_s_all", []) + [r["wall_s"]]
                    rss = (best or {}).get("peak_rss_mb_all", []) + [r["peak_rss_mb"]]
                    row[f"ingest_{t}t"] = {**(r if best is None or r["wall_s"] < best["wall_s"] else best),
                                           "wall_s_all": walls, "peak_rss_mb_all": rss}
                settle(files)
                splits.append(python_split(files))
            py = min(splits)
            row["python_split_s"] = round(py, 2)
            row["python_split_s_all"] = [round(x, 2) for x in splits]
            row["python_split_mb_per_s"] = round(mb / py, 1)
            for t in threads:
                row[f"ingest_{t}t"]["x_python_split"] = round(py / row[f"ingest_{t}t"]["wall_s"], 2)
            if args.identity and abs(gb - args.identity) < 1e-9:
                ref = args.root / "ref" / "out"  # the same folder name: dataset.json names the dataset after it
                row["identity"] = identity(files[0].parents[1], args.root / "out", ref, threads[-1])
                print(json.dumps(row["identity"]), file=sys.stderr)
            row["load_avg_1m_after"] = os.getloadavg()[0]
            runs.append(row)
            print(json.dumps(row), file=sys.stderr)
    finally:
        shutil.rmtree(args.root / "out", ignore_errors=True)
        shutil.rmtree(args.root / "ref", ignore_errors=True)
        if not args.keep:
            shutil.rmtree(args.root, ignore_errors=True)
    result = {"benchmark": "ingest_scale", "cpu_count": os.cpu_count(), "threads": threads,
              "facilities": args.facilities,
              "memory_limit": args.memory_limit or "default (1/8 of available RAM, at most 1 GiB)", "runs": runs,
              **summarize(runs, max(threads)), **({"note": args.note} if args.note else {})}
    text = json.dumps(result, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(text + "\n")
    tmp.replace(args.out)


if __name__ == "__main__":
    main()
