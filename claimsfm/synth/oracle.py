"""Collects the ground truth while the simulation runs and writes `truth/` (internals.md §3).

oracle_<task>.parquet: per eligible (patient, prediction month) p_latent and p_observable from
rollouts of the simulator (rollout.py), their Monte-Carlo standard errors, and the label.

hazards.parquet holds, at the incidence tasks' prediction months, each living patient's true
monthly hazard `h` (frailty included) of each target module and its `state`: 0 no onset,
1 onset but not yet diagnosed (latent), 2 diagnosed.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from claimsfm.io import atomic_path
from claimsfm.synth.diseases import INDEX, MODULES, Z_VALUES
from claimsfm.synth.population import chart_number
from claimsfm.synth.prescribing import NAMES, REGIMENS
from claimsfm.synth.rollout import Target, rollout
from claimsfm.synth.simulate import PARENT
from claimsfm.synth.truth import IncidenceFilter, average_precision, eligible, task_drugs, task_module, task_regimens
from claimsfm.tasks.spec import prediction_months, prediction_time

ROLLOUTS = 4          # forks per patient and prediction month, for each oracle
FORK_ROWS = 200_000   # forked rows stepped at once (memory); results do not depend on it
ORACLE_METHOD = (f"p_latent: mean over {ROLLOUTS} seeded rollouts per patient of the generator's own monthly step "
                 "from the true state at t "
                 "(deaths, onsets, visits, detection, starts, stops, dispensing inside the window), each rollout "
                 "scored by its compensator (label-event probability integrated over the deciding draws; a row "
                 "whose label needs its indication or parent stage coded first integrates that coding too); "
                 "p_observable: the same from hidden states drawn given the claims (forward filters over frailty "
                 "and undiagnosed onset, regimen survival since the last claim, importance-weighted); "
                 "*_se columns: Monte-Carlo standard errors")


class DrugHistory:
    """Months in which a set of drugs was dispensed, per patient.  (N, months) bool"""

    def __init__(self, n, first, months, drugs):
        self.first, self.drugs = first, np.array(drugs)
        self.hist = np.zeros((n, months), bool)

    def record(self, m, dispensed):
        self.hist[:, m - self.first] = np.isin(dispensed, self.drugs).any(axis=1)

    def any_in(self, lo, hi, idx=None) -> np.ndarray:
        lo, hi = max(lo - self.first, 0), min(hi - self.first, self.hist.shape[1] - 1)
        h = self.hist if idx is None else self.hist[idx]
        return h[:, lo:hi + 1].any(axis=1) if hi >= lo else np.zeros(len(h), bool)


class TruthCollector:
    def __init__(self, sim, specs, first, last, rollouts: int = ROLLOUTS):
        self.sim, self.first, self.reps = sim, first, rollouts
        self.tasks, self.filters, self.hists, self.rows, self.hazard_rows = [], {}, {}, {}, []
        months = last - first + 1
        for spec in specs:
            grid = set(prediction_months(spec, first, last))
            if spec.kind == "incidence":
                d = task_module(spec)
                if d is None:
                    continue
                self.filters.setdefault(d, IncidenceFilter(sim, d))
                if PARENT[d] >= 0:       # a dependent module: the parent's hidden state drives its hazard
                    self.filters.setdefault(int(PARENT[d]), IncidenceFilter(sim, int(PARENT[d])))
                self.tasks.append((spec, grid, d, None))
            else:
                drugs = task_drugs(spec)
                if not drugs:
                    continue
                self.hists.setdefault(drugs, DrugHistory(sim.n, first, months, drugs))
                self.tasks.append((spec, grid, None, drugs))
                for r in task_regimens(drugs):   # indications: their hidden state drives new starts
                    for k in REGIMENS[NAMES[r]].indications:
                        self.filters.setdefault(INDEX[k], IncidenceFilter(sim, INDEX[k]))
            self.rows[spec.name] = []
        self.hazard_months = {m for spec, grid, d, _ in self.tasks if d is not None for m in grid}

    def after_step(self, m, out):
        sim = self.sim
        for f in self.filters.values():
            f.update(sim)
        for h in self.hists.values():
            h.record(m, out["dispensed"])
        due = [(spec, d, drugs) for spec, grid, d, drugs in self.tasks if m in grid]
        if due:
            self._oracle(m, due)
        if m in self.hazard_months:
            self._hazards(m)

    def _oracle(self, m, due):
        """Both oracles for every task due at month m, from one set of forks per patient."""
        sim = self.sim
        idxs = [eligible(sim, spec, m, self.hists.get(drugs)) for spec, _, drugs in due]
        patients = np.unique(np.concatenate(idxs))
        parts = {spec.name: [] for spec, _, _ in due}
        step = max(FORK_ROWS // self.reps, 1)
        for lo in range(0, len(patients), step):
            chunk = patients[lo:lo + step]
            targets = []
            for (spec, d, drugs), idx in zip(due, idxs, strict=True):
                pos = np.searchsorted(chunk, idx[(idx >= chunk[0]) & (idx <= chunk[-1])])
                regs = tuple(task_regimens(drugs)) if drugs else ()
                targets.append(Target(spec.name, spec.prediction_months, pos, d=d, drugs=drugs or (), regs=regs))
            lat = rollout(sim, chunk, m, targets, self.reps, mode=0)
            obs = rollout(sim, chunk, m, targets, self.reps, self.filters, mode=1)
            for tg in targets:
                parts[tg.name].append((*obs[tg.name], *lat[tg.name]))
        for (spec, _, _), idx in zip(due, idxs, strict=True):
            cols = [np.concatenate([p[k] for p in parts[spec.name]]) if parts[spec.name] else np.zeros(0)
                    for k in range(4)]
            self.rows[spec.name].append((idx, m, *cols))

    def _hazards(self, m):
        sim = self.sim
        alive = np.flatnonzero(sim.alive)
        for d in dict.fromkeys(d for _, _, d, _ in self.tasks if d is not None):
            state = np.where(sim.dx[alive, d] >= 0, 2, np.where(sim.onset[alive, d] >= 0, 1, 0)).astype(np.int8)
            h = (Z_VALUES[sim.zk[alive, d]] * sim.cur_h[alive, d]).astype(np.float32)
            self.hazard_rows.append((alive, m, MODULES[d].name, h, state))

    def labels(self, spec, d, drugs, idx, t) -> np.ndarray:
        if d is not None:
            dx = self.sim.dx[idx, d]
            return (dx > t) & (dx <= t + spec.prediction_months)
        return self.hists[drugs].any_in(t + 1, t + spec.prediction_months, idx)

    def write(self, folder: Path) -> dict:
        """Write truth/ and return per-task statistics for synth.json."""
        stats = {}
        for spec, _, d, drugs in self.tasks:
            parts = self.rows[spec.name]
            patient = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
            t = np.concatenate([np.full(len(p[0]), p[1]) for p in parts]) if parts else np.zeros(0, np.int64)
            p_obs, se_obs, p_lat, se_lat = (np.concatenate([p[k] for p in parts]) if parts else np.zeros(0)
                                            for k in range(2, 6))
            label = (np.concatenate([self.labels(spec, d, drugs, p[0], p[1]) for p in parts]) if parts
                     else np.zeros(0, bool))
            ptime = np.array([prediction_time(int(x)) for x in np.unique(t)], dtype="datetime64[us]")
            times = ptime[np.searchsorted(np.unique(t), t)] if len(t) else np.zeros(0, "datetime64[us]")
            table = pa.table({"patient": pa.array(patient, pa.int64()),
                              "prediction_time": pa.array(times, pa.timestamp("us")),
                              "p_observable": p_obs.astype(np.float64), "p_latent": p_lat.astype(np.float64),
                              "p_observable_se": se_obs.astype(np.float64), "p_latent_se": se_lat.astype(np.float64),
                              "label": pa.array(label, pa.bool_())})
            _write(table, folder / f"oracle_{spec.name}.parquet")
            prev = float(label.mean()) if len(label) else float("nan")
            stats[spec.name] = {"rows": int(len(label)), "positives": int(label.sum()), "prevalence": prev,
                                "auprc_observable": average_precision(label, p_obs),
                                "auprc_latent": average_precision(label, p_lat),
                                "mean_p_observable": float(p_obs.mean()) if len(p_obs) else float("nan"),
                                "expected_latent": float(p_lat.sum()), "expected_observable": float(p_obs.sum()),
                                "z_latent": _z(label, p_lat), "z_observable": _z(label, p_obs),
                                "mc_se_latent": float(se_lat.mean()) if len(se_lat) else float("nan"),
                                "mc_se_observable": float(se_obs.mean()) if len(se_obs) else float("nan")}
        self._write_hazards(folder)
        return stats

    def _write_hazards(self, folder):
        rows = self.hazard_rows
        cols = {"patient": pa.array(np.concatenate([r[0] for r in rows]) if rows else [], pa.int64()),
                "month": pa.array(np.concatenate([np.full(len(r[0]), r[1]) for r in rows]) if rows else [], pa.int32()),
                "module": pa.array([r[2] for r in rows for _ in range(len(r[0]))], pa.string()),
                "h": pa.array(np.concatenate([r[3] for r in rows]) if rows else [], pa.float32()),
                "state": pa.array(np.concatenate([r[4] for r in rows]) if rows else [], pa.int8())}
        _write(pa.table(cols), folder / "hazards.parquet")


def _z(label, p) -> float:
    """Binomial z of observed minus expected positives (independent Bernoulli(p) labels)."""
    var = float((p * (1 - p)).sum())
    return float((label.sum() - p.sum()) / np.sqrt(var)) if var > 0 else float("nan")


def _write(table, path):
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def write_keys(sim, folder: Path) -> None:
    """keys.parquet: one row per (patient, facility) visited, with the identity as written in the UKE."""
    pat, hosp = np.nonzero(sim.visited)
    pop = sim.pop
    epoch = dt.date(1970, 1, 1)
    table = pa.table({
        "patient": pa.array(pat, pa.int64()),
        "facility_code": [sim.hosp[h].code for h in hosp],
        "chart_no": [chart_number(int(p), int(h)) for p, h in zip(pat, hosp, strict=True)],
        "insurer_no": [pop.insurer_no[p] for p in pat],
        "card_symbol": [pop.card_symbol[p] for p in pat],
        "card_number": [pop.card_number[p] for p in pat],
        "birth_date": pa.array([epoch + dt.timedelta(days=int(pop.birth_day[p])) for p in pat], pa.date32()),
        "sex": pa.array(pop.sex[pat], pa.int8()),
    })
    _write(table, folder / "keys.parquet")
