"""`claimsfm synth`: configuration, the month loop, and synth.json."""
from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from claimsfm.errors import ClaimsfmError
from claimsfm.io import atomic_dir, write_json
from claimsfm.synth.diseases import INDEX
from claimsfm.synth.hospitals import draw_hospitals
from claimsfm.synth.masters import write_masters
from claimsfm.synth.observation import month_receipts
from claimsfm.synth.oracle import TruthCollector, write_keys
from claimsfm.synth.population import PROFILES, draw_population
from claimsfm.synth.prescribing import REGIMENS, RI
from claimsfm.synth.simulate import Simulation
from claimsfm.synth.streams import patient_keys
from claimsfm.synth.uke import fmt_month, write_file
from claimsfm.tasks.spec import load_task, builtin_task_names, month_index

AGE_BANDS = ((20, 30), (30, 40), (40, 50), (50, 60), (60, 70), (70, 200))


@dataclass(frozen=True)
class SynthConfig:
    out: str
    patients: int = 3000
    hospitals: int = 8
    start: str = "2014-01"
    months: int = 96
    seed: int = 0
    profile: str = "hospital"
    era_dates: bool = False
    overwrite: bool = False
    progress: bool = True


def _validate(cfg: SynthConfig) -> int:
    if not re.fullmatch(r"\d{4}-\d{2}", cfg.start) or not 1 <= int(cfg.start[5:]) <= 12:
        raise ClaimsfmError(f"--start must be YYYY-MM, got {cfg.start!r}")
    for flag, value, lo in (("--patients", cfg.patients, 1), ("--hospitals", cfg.hospitals, 1), ("--months", cfg.months, 1)):
        if value < lo:
            raise ClaimsfmError(f"{flag} must be >= {lo}, got {value}")
    if cfg.hospitals > 9999:
        raise ClaimsfmError(f"--hospitals must be <= 9999, got {cfg.hospitals}")
    if cfg.profile not in PROFILES:
        raise ClaimsfmError(f"--profile must be one of {', '.join(PROFILES)}, got {cfg.profile!r}")
    start = month_index(int(cfg.start[:4]), int(cfg.start[5:]))
    if start < 1990 * 12 or start + cfg.months > 2100 * 12:
        raise ClaimsfmError(f"--start/--months must stay within 1990-2099, got {cfg.start} + {cfg.months}")
    out = Path(cfg.out)
    if out.exists() and any(out.iterdir()) and not cfg.overwrite:
        raise ClaimsfmError(f"--out {out}: folder exists and is not empty (pass --overwrite to replace it)")
    return start


def _progress(total: int, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=total, desc="synth", unit="month", disable=not enabled, leave=False)


def run(cfg: SynthConfig) -> dict:
    start = _validate(cfg)
    t0 = time.perf_counter()
    hospitals = draw_hospitals(cfg.seed, cfg.hospitals)
    keys = patient_keys(cfg.seed, cfg.patients)
    pop = draw_population(keys, cfg.profile, start, np.array([h.weight for h in hospitals]))
    sim = Simulation(keys, pop, hospitals, start)
    specs = [load_task(n) for n in builtin_task_names()]
    last = start + cfg.months - 1
    truth = TruthCollector(sim, specs, start, last)
    initial = prevalence_table(sim, start)
    counts = {"receipts": 0, "lines": 0, "sy_lines": 0, "sy_suspected": 0, "inpatient_receipts": 0}
    with atomic_dir(cfg.out, overwrite=cfg.overwrite) as tmp, _progress(cfg.months, cfg.progress) as bar:
        for m in range(start, last + 1):
            out = sim.step(m)
            truth.after_step(m, out)
            per_h = month_receipts(sim, m, out)
            for h, hosp in enumerate(hospitals):
                receipts = per_h.get(h, [])
                path = tmp / "uke" / hosp.code / f"{fmt_month(m + 1, False)}.UKE"
                n_r, n_l = write_file(path, hosp, m + 1, receipts, cfg.era_dates)
                counts["receipts"] += n_r
                counts["lines"] += n_l
                for r in receipts:
                    counts["sy_lines"] += len(r.sy)
                    counts["sy_suspected"] += sum(1 for s in r.sy if s[3] == "8002")
                    counts["inpatient_receipts"] += int(r.rtype[-1]) % 2
            bar.update(1)
        write_masters(tmp / "masters")
        write_keys(sim, tmp / "truth")
        oracle = truth.write(tmp / "truth")
        summary = _summary(cfg, sim, start, last, initial, counts, oracle, time.perf_counter() - t0)
        write_json(tmp / "synth.json", summary)
    return summary


def prevalence_table(sim, m) -> dict:
    """True prevalence of T2D and HTN by sex and age band among the living (NHNS-style)."""
    age = sim.age(m)
    out = {}
    for module in ("t2d", "htn"):
        d = INDEX[module]
        rows = {}
        for sex, label in ((1, "M"), (2, "F")):
            for lo, hi in AGE_BANDS:
                sel = sim.alive & (sim.pop.sex == sex) & (age >= lo) & (age < hi)
                has = (sim.onset[sel, d] >= 0) & (sim.onset[sel, d] <= m)
                rows[f"{label}{lo}-{hi if hi < 200 else ''}"] = {"n": int(sel.sum()), "prevalence": float(has.mean()) if sel.any() else None}
        out[module] = rows
    return out


def calibration_stats(sim, m) -> dict:
    """Other realised figures beside synthetic-data.md §3 (true state among the living at month m)."""
    age, alive = sim.age(m), sim.alive
    has = lambda k: sim.onset[:, INDEX[k]] >= 0  # noqa: E731
    coded = lambda k: sim.dx[:, INDEX[k]] >= 0  # noqa: E731
    old, mid = alive & (age >= 65), alive & (age >= 40) & (age < 75)
    af = alive & coded("af")
    opt = sim.reg_opt[:, RI["af"]]
    names = [o[0] for o in REGIMENS["af"].options]
    return {
        "dementia_65plus": float(has("dementia")[old].mean()) if old.any() else None,        # target 12.3%
        "af_40_74": float(has("af")[mid].mean()) if mid.any() else None,                     # target ~2%
        "ckd_coded_share": float(coded("ckd")[alive & has("ckd")].mean()) if (alive & has("ckd")).any() else None,  # 23%
        "af_anticoagulation": {"n": int(af.sum()), **{n: float((opt[af] == i).mean()) if af.any() else None for i, n in enumerate(names)},
                               "none": float((opt[af] < 0).mean()) if af.any() else None},
        "on_dialysis": int((alive & coded("dialysis")).sum()),
    }


def _summary(cfg, sim, start, last, initial, counts, oracle, seconds) -> dict:
    names = [o[0] for o in REGIMENS["t2d"].options]
    first_line = np.bincount(np.asarray(sim.first_line, dtype=np.int64), minlength=len(names))
    total = max(int(first_line.sum()), 1)
    return {
        "parameters": asdict(cfg) | {"first_month": start, "last_month": last},
        "patients_with_claims": int((sim.first_claim >= 0).sum()),
        "deaths": int((sim.death_month >= 0).sum()),
        "counts": counts,
        "suspected_code_rate": counts["sy_suspected"] / max(counts["sy_lines"], 1),
        "prevalence_start": initial,
        "prevalence_end": prevalence_table(sim, last),
        "calibration_end": calibration_stats(sim, last),
        "first_line_t2d": {"starts": int(first_line.sum()), "shares": {n: int(c) / total for n, c in zip(names, first_line)}},
        "tasks": oracle,
        "seconds": seconds,
        "truth_keys": ("truth/keys.parquet maps the generator's `patient` to each (facility_code, chart_no) it visited and to "
                       "its one insurer identity (insurer_no, card_symbol, card_number, birth_date, sex), as written in the "
                       "UKE RE/HO records; `claimsfm ingest` re-keys truth/ by subject_id with the same salt and link mode"),
        "oracle_method": ("incidence: exact forward filter over (frailty class, undiagnosed onset) given the claims, "
                          "window projected with covariates frozen at t; medication: on-treatment state from the last "
                          "dispensing and visit, starts by the prescribing rule; no rollouts of within-window covariate changes"),
        "month_span": [fmt_month(start, False), fmt_month(last, False)],
    }
