"""T6: what the claims show of one patient-month: receipt type, SY lines (dialect, drift, 疑い,
レセプト病名), SI/IY lines with days and billing units. Pure bookkeeping over the month's state;
the random draws arrive pre-drawn per visitor so that this loop stays cheap and deterministic.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from claimsfm.synth.diseases import INDEX, MODULES
from claimsfm.synth.hospitals import t2d_code
from claimsfm.synth.masters import DRUGS, PROC, drug_code, module_codes
from claimsfm.synth.simulate import days_in_month, month_first_day
from claimsfm.synth.streams import uniform
from claimsfm.synth.uke import unit_lines

CHRONIC = [d for d, m in enumerate(MODULES) if m.kind != "episodic"]
MODULE_NAMES = [m.name for m in MODULES]
DIALYSIS, T2D, AF, HF, DYSLIP = (INDEX[k] for k in ("dialysis", "t2d", "af", "hf", "dyslip"))
DRUG_CODES = [drug_code(row[0]) for row in DRUGS]
DRUG_POINTS = [row[3] for row in DRUGS]
SUPPLY = 28


@dataclass(slots=True)
class Receipt:
    month: int
    rtype: str
    name: str
    sex: int
    birth_day: int
    benefit: str
    admission_day: int | None
    chart_no: str
    kana: str
    insurer_no: str
    card_symbol: str
    card_number: str
    sy: list
    items: list
    patient: int = -1        # the generator's patient index (not written; for the cohort statistics)
    bg_sy: str = ""          # background layer: pre-formatted SY lines, CRLF-joined
    bg_items: str = ""       # background layer: pre-formatted SI/IY/TO lines (each its own billing unit)
    bg_points: int = 0       # their 点数 x 回数


def receipt_type(kind: int, dependant: bool, age: float, inpatient: bool) -> tuple[str, str]:
    """(レセプト種別, 給付割合) for the patient's insurance and age."""
    last = 1 if inpatient else 2
    if kind == 2:
        return f"131{7 if inpatient else 8}", ""
    if age < 6:
        last += 2
    elif 70 <= age < 75:
        last += 6
    elif dependant:
        last += 4
    benefit = ("80" if age < 6 or age >= 70 else "70") if kind == 1 else ""
    return f"111{last}", benefit


def disease_code(d: int, hosp, month: int, dx_row) -> str:
    name = MODULE_NAMES[d]
    if name == "t2d":
        return t2d_code(hosp, month)
    if name == "ckd45":
        return module_codes("ckd45")[1 if dx_row[DIALYSIS] >= 0 else 0]
    return hosp.dialect.get(name) or module_codes(name)[0]


def sy_lines(dx_row, dx_day_row, chronic, episodes, suspects, hosp, month, day1, dying) -> list:
    """Diagnoses on this receipt: every diagnosed chronic module (until death), this month's
    episodes (cured), 疑い codes (rule-out or prodrome; 転帰 中止), or an acute URI for a healthy visit.
    dx_row / dx_day_row are Python lists (this runs once per receipt)."""
    out = [[disease_code(d, hosp, month, dx_row), dx_day_row[d], 1, "", ""] for d in chronic]
    out += [[module_codes(MODULE_NAMES[d])[0], day1, 2, "", ""] for d in episodes]
    out += [[disease_code(d, hosp, month, dx_row), day1, 4, "8002", ""] for d in suspects]
    if not out:
        out.append([module_codes("-")[1], day1, 2, "", ""])
    out[0][4] = "01"
    if dying:
        out[0][2] = 3
    return [tuple(x) for x in out]


def drugs_of(drug_list) -> set:
    return {DRUGS[i][0] for i in drug_list}


def receipt_diagnoses(dx, drugs: set, day: int, lipid_panel: bool) -> list:
    """レセプト病名: diagnoses written to justify a drug or a test, not a disease of the patient.

    A PPI (vonoprazan) gets 胃潰瘍; an outpatient lipid panel on someone without dyslipidaemia gets
    脂質異常症の疑い. Neither is a task target nor a hazard input, so the oracle is unaffected.
    """
    out = []
    if "vonoprazan" in drugs:
        out.append((module_codes("-")[0], day, 1, "", ""))
    if lipid_panel and dx[DYSLIP] < 0:
        out.append((module_codes("dyslip")[0], day, 4, "8002", ""))
    return out


def proc(key: str, days: dict):
    """A one-record SI billing unit, formatted (uke.unit_lines caches it)."""
    _, code, _, _, pts, cat = PROC[key]
    return unit_lines((("SI", cat, code, "", pts, tuple(sorted(days.items()))),))


@functools.lru_cache(maxsize=1 << 16)
def drug_units(drugs: tuple, day: int, count: int) -> list:
    """Oral drugs in billing units of up to two (points only on the unit's last record), formatted."""
    units = []
    for k in range(0, len(drugs), 2):
        unit = drugs[k:k + 2]
        pts = sum(DRUG_POINTS[i] for i in unit)
        units.append(unit_lines(tuple(("IY", "21" if j == 0 else "", DRUG_CODES[i], "1",
                                       pts if j == len(unit) - 1 else None,
                                       ((day, count),)) for j, i in enumerate(unit))))
    return units


def dialysis_days(dim: int) -> list:
    return list(range(1, dim + 1, 2))[:13]


def month_receipts(sim, m: int, out: dict, background=None) -> dict:
    """{hospital index: [Receipt]} for the visitors of month m (patients in index order).

    `background` (a background.Background, stepped to month m) adds its codes to these receipts; it
    reads the visits and never changes the planted state."""
    pop, dim, first = sim.pop, days_in_month(m), month_first_day(m)
    idx = np.flatnonzero(out["visit"])
    if background is not None:
        bg_sy, bg_items, bg_points = background.emit(m, idx, out["day1"][idx])
    else:
        bg_sy = bg_items = [""] * len(idx)
        bg_points = [0] * len(idx)
    u = np.stack([uniform(sim.keys[idx], m, s) for s in range(43, 49)], axis=1).tolist()
    rows = dict(dx=sim.dx[idx].tolist(), dx_day=sim.dx_day[idx].tolist(), hosp=sim.cur_hosp[idx].tolist(),
                day1=out["day1"][idx].tolist(), stay=out["admit"][idx].tolist(), dying=out["dying"][idx].tolist(),
                visited=sim.visited[idx, sim.cur_hosp[idx]].tolist())
    episodes, suspects, onsets = (_lists(a[idx]) for a in (out["episodes"], sim.cur_suspect, sim.cur_at_onset))
    chronic = _lists(sim.dx[idx][:, CHRONIC] >= 0, CHRONIC)
    drug_lists = _drug_lists(out["dispensed"][idx])
    hosp_idx = sim.cur_hosp[idx]
    charts = ((idx.astype(np.int64) * 2654435761 + hosp_idx.astype(np.int64) * 7919) % 10**9).tolist()
    types = _receipt_types(pop, idx, (first - pop.birth_day[idx]) / 365.25, out["admit"][idx] > 0)
    per_h: dict = {}
    for j, i in enumerate(idx.tolist()):
        h, day1, stay = rows["hosp"][j], rows["day1"][j], rows["stay"][j]
        hosp = sim.hosp[h]
        dx = rows["dx"][j]
        sy = sy_lines(dx, rows["dx_day"][j], chronic[j], episodes[j], suspects[j], hosp, m, first + day1 - 1,
                      rows["dying"][j])
        if u[j][5] < hosp.receipt_dx_rate:
            lipid_panel = not stay and max(dx) >= 0 and u[j][2] < 0.5    # the blood_chem draw below
            sy += receipt_diagnoses(dx, drugs_of(drug_lists[j]), first + day1 - 1, lipid_panel)
        drugs = tuple(drug_lists[j])
        if stay:
            items = _inpatient_items(dx, drugs, onsets[j], day1, stay, dim)
        else:
            items = _outpatient_items(dx, drugs, rows["visited"][j], day1, dim, u[j])
        if dx[DIALYSIS] >= 0:
            items.append(proc("dialysis", {d: 1 for d in dialysis_days(dim)}))
        rtype, benefit = types[j]
        per_h.setdefault(h, []).append(Receipt(
            month=m, rtype=rtype, name=pop.name[i], sex=int(pop.sex[i]), birth_day=int(pop.birth_day[i]),
            benefit=benefit, admission_day=first + day1 - 1 if stay else None, chart_no=f"{charts[j]:09d}",
            kana=pop.kana[i], insurer_no=pop.insurer_no[i], card_symbol=pop.card_symbol[i],
            card_number=pop.card_number[i], sy=sy, items=items, patient=i, bg_sy=bg_sy[j], bg_items=bg_items[j],
            bg_points=bg_points[j]))
    sim.visited[idx, sim.cur_hosp[idx]] = True
    return per_h


def _lists(mask: np.ndarray, names=None) -> list:
    """Row-wise indices of a boolean (n, k) matrix (or names[index]), as Python lists."""
    rows, cols = np.nonzero(mask)
    if names is not None:
        cols = np.asarray(names)[cols]
    out = [[] for _ in range(mask.shape[0])]
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        out[r].append(c)
    return out


def _drug_lists(dispensed: np.ndarray) -> list:
    """Sorted distinct drug indices per row of a (n, slots) array with -1 for empty slots."""
    have = np.zeros((dispensed.shape[0], len(DRUGS) + 1), bool)
    have[np.arange(dispensed.shape[0])[:, None], dispensed] = True   # -1 lands in the last column
    return _lists(have[:, :-1])


def _receipt_types(pop, idx, age, inpatient) -> list:
    """(レセプト種別, 給付割合) per visitor; vectorised receipt_type."""
    kind, dep = pop.kind[idx], pop.dependant[idx]
    last = np.where(inpatient, 1, 2) + np.select([age < 6, (age >= 70) & (age < 75), dep], [2, 6, 4], 0)
    rtype = np.where(kind == 2, np.where(inpatient, 1317, 1318), 1110 + last)
    benefit = np.where(kind == 1, np.where((age < 6) | (age >= 70), "80", "70"), "")
    return list(zip(rtype.astype(str).tolist(), benefit.tolist(), strict=True))


def _inpatient_items(dx, drugs, onsets, day1, stay, dim) -> list:
    days = {d: 1 for d in range(day1, min(day1 + stay - 1, dim) + 1)}
    items = [proc("ward", days)]
    names = {MODULE_NAMES[d] for d in onsets}
    if names & {"stroke", "ich"}:
        items.append(proc("ct", {day1: 1}))
    if names & {"hf", "ami"}:
        items += [proc("ecg", {day1: 1}), proc("echo", {day1: 1})]
    if drugs:
        items += drug_units(drugs, day1, len(days))
    return items


def _outpatient_items(dx, drugs, seen_before, day1, dim, u) -> list:
    visits = {day1: 1}
    other = 1 + int(u[1] * dim)
    if u[0] < 0.3 and other != day1:
        visits[other] = 1
    if seen_before:
        items = [proc("revisit", visits)]
    else:
        items = [proc("first_visit", {day1: 1})]
        if len(visits) > 1:
            items.append(proc("revisit", {other: 1}))
    if drugs:
        items.append(proc("prescribing", {day1: 1}))
        items += drug_units(drugs, day1, SUPPLY)
    if max(dx) >= 0 and u[2] < 0.5:
        items.append(proc("blood_chem", {day1: 1}))
    if dx[T2D] >= 0 and u[3] < 0.7:
        items.append(proc("hba1c", {day1: 1}))
    if (dx[AF] >= 0 or dx[HF] >= 0) and u[4] < 0.3:
        items.append(proc("ecg", {day1: 1}))
    return items
