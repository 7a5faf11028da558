"""`claimsfm synth`: configuration, the month loop, and synth.json."""
from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from claimsfm.errors import ClaimsfmError, check_seed
from claimsfm.io import write_json
from claimsfm.outdir import build, check_name
from claimsfm.synth.background import LEVELS, Background, PlantedTokens, cohort_statistics
from claimsfm.synth.diseases import INDEX
from claimsfm.synth.hospitals import draw_hospitals
from claimsfm.synth.masters import write_masters
from claimsfm.synth.observation import month_receipts
from claimsfm.synth.oracle import ORACLE_METHOD, TruthCollector, write_keys
from claimsfm.synth.population import PROFILES, draw_population
from claimsfm.synth.prescribing import REGIMENS, RI
from claimsfm.synth.simulate import Simulation
from claimsfm.synth.streams import patient_keys
from claimsfm.synth.uke import fmt_month, write_file
from claimsfm.tasks.spec import builtin_task_names, load_task, month_index

AGE_BANDS = ((20, 30), (30, 40), (40, 50), (50, 60), (60, 70), (70, 200))


@dataclass(frozen=True)
class SynthConfig:
    out: Path
    patients: int = 3000
    hospitals: int = 8
    start: str = "2014-01"
    months: int = 96
    seed: int = 0
    profile: str = "hospital"
    era_dates: bool = False
    overwrite: bool = False
    progress: bool = True
    background: str = "default"   # none | default: the background code layer (background.py)

    def start_month(self) -> int:
        return month_index(int(self.start[:4]), int(self.start[5:]))

    def check(self) -> None:
        """Every option rule, before anything is simulated or written."""
        if not re.fullmatch(r"\d{4}-\d{2}", self.start) or not 1 <= int(self.start[5:]) <= 12:
            raise ClaimsfmError(f"--start must be YYYY-MM, got {self.start!r}")
        for flag, value, lo in (("--patients", self.patients, 1), ("--hospitals", self.hospitals, 1),
                                ("--months", self.months, 1)):
            if value < lo:
                raise ClaimsfmError(f"{flag} must be >= {lo}, got {value}")
        if self.hospitals > 9999:
            raise ClaimsfmError(f"--hospitals must be <= 9999, got {self.hospitals}")
        check_seed(self.seed)
        if self.background not in LEVELS:
            raise ClaimsfmError(f"--background must be one of {', '.join(LEVELS)}, got {self.background!r}")
        if self.profile not in PROFILES:
            raise ClaimsfmError(f"--profile must be one of {', '.join(PROFILES)}, got {self.profile!r}")
        start = self.start_month()
        if start < 1990 * 12 or start + self.months > 2100 * 12:
            raise ClaimsfmError(f"--start/--months must stay within 1990-2099, got {self.start} + {self.months}")


def _progress(total: int, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=total, desc="synth", unit="month", disable=not enabled, leave=False)


def run(cfg: SynthConfig) -> dict:
    cfg.check()
    start = cfg.start_month()
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
    bg = Background(keys, pop.birth_day, pop.sex, start, cfg.era_dates) if cfg.background != "none" else None
    planted = PlantedTokens()
    with build(cfg.out, "synth", replace=cfg.overwrite) as tmp, _progress(cfg.months, cfg.progress) as bar:
        for m in range(start, last + 1):
            out = sim.step(m)
            truth.after_step(m, out)
            if bg is not None:
                bg.step(m)
            per_h = month_receipts(sim, m, out, bg)
            for h, hosp in enumerate(hospitals):
                receipts = per_h.get(h, [])
                path = tmp / "uke" / check_name(hosp.code, "facility code") / f"{fmt_month(m + 1, False)}.UKE"
                n_r, n_l = write_file(path, hosp, m + 1, receipts, cfg.era_dates)
                counts["receipts"] += n_r
                counts["lines"] += n_l
                planted.add(receipts)
                for r in receipts:
                    counts["sy_lines"] += len(r.sy)
                    counts["sy_suspected"] += sum(1 for s in r.sy if s[3] == "8002")
                    counts["inpatient_receipts"] += int(r.rtype[-1]) % 2
            bar.update(1)
        write_masters(tmp / "masters", bg.master_rows() if bg is not None else None)
        write_keys(sim, tmp / "truth")
        oracle = truth.write(tmp / "truth")
        summary = _summary(cfg, sim, start, last, initial, counts, oracle, time.perf_counter() - t0)
        summary["vocabulary"] = _vocabulary(sim, planted, bg)
        write_json(tmp / "synth.json", summary)
    return summary


def _vocabulary(sim, planted: PlantedTokens, bg) -> dict:
    """Cohort token statistics; patient-years run from each patient's first to last claim month."""
    seen = sim.first_claim >= 0
    years = float((sim.last_claim[seen] - sim.first_claim[seen] + 1).sum()) / 12.0
    counts = planted.counts(int(seen.sum()), int((sim.death_month >= 0).sum()))
    stats = cohort_statistics(counts, bg.code_tokens() if bg is not None else {}, years)
    return {"background": "none" if bg is None else "default",
            "background_cpu_s": None if bg is None else round(bg.cpu_s, 2)} | stats


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
                rows[f"{label}{lo}-{hi if hi < 200 else ''}"] = {"n": int(sel.sum()),
                                                                 "prevalence": float(has.mean()) if sel.any() else None}
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
        # 23%
        "ckd_coded_share": float(coded("ckd")[alive & has("ckd")].mean()) if (alive & has("ckd")).any() else None,
        "af_anticoagulation": {"n": int(af.sum()),
                               **{n: float((opt[af] == i).mean()) if af.any() else None for i, n in enumerate(names)},
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
        "first_line_t2d": {"starts": int(first_line.sum()),
                           "shares": {n: int(c) / total for n, c in zip(names, first_line)}},
        "tasks": oracle,
        "seconds": seconds,
        "truth_keys": ("truth/keys.parquet maps the generator's `patient` to each (facility_code, chart_no) it "
                       "visited and to its one insurer identity (insurer_no, card_symbol, card_number, birth_date, "
                       "sex), as written in the UKE RE/HO records; `claimsfm ingest` re-keys truth/ by subject_id "
                       "with the same salt and link mode"),
        "oracle_method": ORACLE_METHOD,
        "month_span": [fmt_month(start, False), fmt_month(last, False)],
    }
