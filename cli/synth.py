"""`claimsfm synth`: generate a synthetic Japanese claims cohort (UKE files, code masters, truth)."""
from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("synth")
    def synth(
        out: Path = typer.Option(..., "--out", help="Output folder: uke/, masters/, truth/, synth.json."),
        patients: int = typer.Option(3000, "--patients", help="Number of synthetic people (not all of them visit)."),
        hospitals: int = typer.Option(8, "--hospitals",
                                      help="Number of hospitals (one UKE file per hospital per claim month)."),
        start: str = typer.Option("2014-01", "--start", help="First simulated 診療年月, YYYY-MM."),
        months: int = typer.Option(96, "--months", help="Number of simulated months."),
        seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives byte-identical output."),
        profile: str = typer.Option("hospital", "--profile", help="Population: census | employer | hospital."),
        era_dates: bool = typer.Option(False, "--era-dates",
                                       help="Write era-coded dates (GYYMM / GYYMMDD) instead of Gregorian."),
        overwrite: bool = typer.Option(
            False, "--overwrite",
            help="Replace an earlier synth in --out (only the files it wrote; never a folder claimsfm "
                 "did not make)."),
        background: str = typer.Option("default", "--background",
                                       help="Background code layer: default (thousands of codes from latent minor "
                                            "conditions) | none (the planted vocabulary only, for fast tests)."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    ) -> None:
        """Simulate patients month by month and write real UKE receipts plus the ground truth.

        Writes DIR/uke/<facility>/<YYYYMM>.UKE (CP932), DIR/masters/{diseases,drugs,procedures,devices}.csv,
        DIR/truth/ (keys, per-task oracle probabilities and labels, hazards) and DIR/synth.json
        (parameters and realised statistics). Ingest with `claimsfm ingest DIR/uke --masters
        DIR/masters --link-by insurer`.
        """
        from claimsfm.synth.run import SynthConfig, run

        summary = run(SynthConfig(out=out, patients=patients, hospitals=hospitals, start=start, months=months,
                                  seed=seed, profile=profile, era_dates=era_dates, overwrite=overwrite,
                                  progress=not quiet, background=background))
        c, v = summary["counts"], summary["vocabulary"]
        typer.echo(f"synth: {summary['patients_with_claims']} patients with claims, {c['receipts']} receipts, "
                   f"{c['lines']} lines, {v['distinct_codes']} distinct codes "
                   f"({100 * v['background_token_share']:.0f}% background tokens), {summary['seconds']:.1f}s -> {out}")
