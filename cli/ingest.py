"""`claimsfm ingest`: claims (UKE receipts, long CSV or MEDS) -> MEDS dataset + token store."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("ingest")
    def ingest(
        inputs: List[Path] = typer.Argument(..., metavar="INPUT...",
                                            help="UKE files or folders of them (searched recursively; a `claimsfm "
                                                 "synth` folder also brings its masters/ and truth/), CSV "
                                                 "files/folders, or a MEDS dataset folder."),
        out: Path = typer.Option(..., "--out", "-o",
                                 help="Output folder: data/, metadata/, store/ (and truth/ for synthetic input)."),
        format: str = typer.Option("uke", "--format",
                                   help="Input format: uke | meds | csv (csv: subject_id,time,code[,numeric_value])."),
        masters: Optional[Path] = typer.Option(None, "--masters",
                                               help="Folder of code masters (diseases.csv, drugs.csv, procedures.csv: "
                                                    "code,name,mapped_code,class)."),
        threads: int = typer.Option(0, "--threads", help="Parser threads (0 = all cores)."),
        salt_file: Optional[Path] = typer.Option(None, "--salt-file",
                                                 help="Secret salt for the keyed subject_id hash. Else $CLAIMSFM_SALT, "
                                                      "else a random salt kept in <out>/salt (mode 0600)."),
        link_by: str = typer.Option("chart", "--link-by",
                                    help="Patient key: chart (facility + chart number, else name + birth date + sex) | "
                                         "insurer (insurer, card symbol and number, birth date, sex; links across "
                                         "facilities)."),
        on_error: str = typer.Option("raise", "--on-error",
                                     help="Bad input: raise (stop with file:line: reason, exit 2) | skip (quarantine "
                                          "the receipt, list the bad lines in <out>/rejects.txt)."),
        overwrite: bool = typer.Option(
            False, "--overwrite",
            help="Replace an earlier ingest in --out made from other inputs (only the files it wrote; "
                 "never a folder claimsfm did not make)."),
        min_count: int = typer.Option(5, "--min-count",
                                      help="Token store: codes seen fewer times in the train split become [UNK]."),
        code_level: str = typer.Option("raw", "--code-level",
                                       help="Token store vocabulary: raw (receipt codes) | mapped (coarsest master "
                                            "parent, e.g. ICD10//E11)."),
        shard_rows: int = typer.Option(1_000_000, "--shard-rows",
                                       help="Rows per MEDS shard (a subject never spans two shards)."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
        time_range: str = typer.Option(
            "1900:2100", "--time-range",
            help="--format meds: the years FIRST:LAST a `time` may fall in; a time outside stops the ingest "
                 "(it usually means a wrong unit)."),
        memory_limit: Optional[str] = typer.Option(
            None, "--memory-limit",
            help="UKE input: the most RAM the out-of-core sort may use (e.g. 2G, 1500M; default: 1/8 of the "
                 "available memory, at most 1 GiB). Events are spilled to disk and sorted in subject_id buckets "
                 "that fit in it (at most 262,144 events each: larger ones sort no faster)."),
        name: Optional[str] = typer.Option(
            None, "--name",
            help="dataset_name in metadata/dataset.json (default: a MEDS input's own name, else the --out "
                 "folder's name)."),
    ) -> None:
        """Read claims and write a MEDS 0.4 dataset (data/<split>/*.parquet, metadata/) and its token store.

        Names, chart and insurer numbers never reach any output: subject_id is a keyed HMAC-SHA256 of the patient key.
        """
        from claimsfm.ingest import IngestConfig, run

        cfg = IngestConfig(inputs=list(inputs), out=out, format=format, masters=masters, threads=threads,
                           salt_file=salt_file, link_by=link_by, on_error=on_error, overwrite=overwrite,
                           min_count=min_count, code_level=code_level, shard_rows=shard_rows, progress=progress,
                           name=name, time_range=time_range, memory_limit=memory_limit)
        summary = run(cfg)
        _print_summary(summary, out)


def _print_summary(s: dict, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"ingest -> {out}", show_header=False)
    for key in ("files_read", "files_rejected", "inputs_skipped", "duplicate_inputs", "receipts", "receipts_rejected",
                "rows", "subjects", "events",
                "rejects", "records_unknown", "codes", "mb", "mb_per_s", "seconds"):
        if key in s:
            table.add_row(key, str(s[key]))
    for kind, n in s.get("events_by_kind", {}).items():
        table.add_row(f"events {kind}", str(n))
    if s.get("truth_files"):
        table.add_row("truth", ", ".join(s["truth_files"]))
    console = Console(stderr=True)
    console.print(table)
    if s.get("stages"):
        stages = Table(title="ingest stages", show_header=True)
        stages.add_column("stage")
        stages.add_column("seconds", justify="right")
        stages.add_column("share", justify="right")
        stages.add_column("CPU s", justify="right")
        stages.add_column("peak RSS MB", justify="right")
        total = sum(s["stages"].values()) or 1.0
        peak, cpu = s.get("stages_peak_mb", {}), s.get("stages_cpu", {})
        for name, sec in s["stages"].items():
            stages.add_row(name, f"{sec:.2f}", f"{100 * sec / total:.0f}%", f"{cpu.get(name, 0):.2f}",
                           f"{peak.get(name, 0):.0f}")
        stages.add_row("total", f"{total:.2f}", "100%", f"{sum(cpu.values()):.2f}",
                       f"{max(peak.values(), default=0):.0f}")
        console.print(stages)
    for line in _notes(s):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def _notes(s: dict) -> list[str]:
    """Where the splits came from, and what the token store does not turn into tokens (with counts)."""
    lines = [f"splits: {s['splits']}"] if s.get("splits") else []
    lines += [f"note: {n}" for n in s.get("notes", [])]
    static = s.get("static_rows_not_tokens") or {}
    if static:
        shown = ", ".join(f"{c} ({k})" for c, k in list(static.items())[:10])
        more = f" and {len(static) - 10} more codes" if len(static) > 10 else ""
        lines.append(f"note: {sum(static.values())} static rows are kept in data/ but are not tokens: {shown}{more}")
    if s.get("text_values"):
        lines.append(f"note: {s['text_values']} text_value entries are kept in data/ but are not tokens")
    if s.get("events_with_time_of_day"):
        lines.append(f"note: {s['events_with_time_of_day']} events have a time of day: kept in data/, "
                     "the token store keeps their day (same-day order: visit, then code)")
    return lines
