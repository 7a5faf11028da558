"""T5: guideline-like prescribing. One rule form for every regimen:

    P(start at a visit) = sigmoid(b - 2 + 1 [indication first coded this month]
                                    + 5 [first coded 1-3 months ago] + 2.5 [4-12 months ago]
                                    + log intensity_hosp + extra)

Treatment mostly starts at a follow-up visit 1-3 months after the diagnosis (lifestyle advice
and work-up first), so a new-user task hinges on a recently coded, still untreated indication,
which a count/recency model sees; the background rate for old diagnoses is kept low. Then a
monthly stop hazard, and the option (drug class) = global share x hospital preference x
patient modifiers; the ingredient inside a class = the hospital's preference. A patient on a
regimen is dispensed its drugs at every visit. `start_probability` and `option_weights` serve
both the simulation and the oracle, so the oracle uses exactly the generator's rule.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from claimsfm.synth.diseases import INDEX
from claimsfm.synth.masters import DRUG_INDEX


@dataclass(frozen=True)
class Regimen:
    name: str
    indications: tuple          # modules; the most recent diagnosis drives the start
    options: tuple              # (option name, slots: tuple of ingredient alternatives)
    shares: tuple               # global option shares
    b: float
    stop: float                 # monthly stop hazard
    requires: str = ""          # another regimen that must be on for >= 6 months (add-ons)


T2D_OPTIONS = (
    ("dpp4i", (("sitagliptin", "linagliptin", "teneligliptin"),)), ("metformin", (("metformin",),)),
    ("sglt2i", (("dapagliflozin", "empagliflozin"),)), ("su", (("glimepiride",),)), ("glp1", (("semaglutide",),)),
)
ARB = ("olmesartan", "telmisartan", "azilsartan", "candesartan")
R = Regimen
REGIMENS = {r.name: r for r in [
    R("t2d", ("t2d",), T2D_OPTIONS, (.48, .20, .11, .06, .03), -3.0, .008),
    R("t2d_addon", ("t2d",), T2D_OPTIONS, (.40, .25, .25, .06, .04), -3.6, .01, requires="t2d"),
    R("htn", ("htn",),
      (("ccb", (("amlodipine",),)), ("arb", (ARB,)), ("arb_ccb", (("amlodipine",), ARB)), ("acei", (("enalapril",),))),
      (.45, .40, .10, .05), -2.5, .006),
    R("dyslip", ("dyslip", "ami", "stroke"),
      (("statin", (("rosuvastatin", "pitavastatin", "atorvastatin"),)), ("ezetimibe", (("ezetimibe",),))),
      (.89, .11), -3.4, .015),
    R("af", ("af",), (("doac", (("apixaban", "edoxaban", "rivaroxaban"),)), ("warfarin", (("warfarin",),))), (.5, .5),
      -1.5, .015),
    R("hf", ("hf",),
      (("loop_bb", (("furosemide",), ("carvedilol", "bisoprolol"))),
       ("arni", (("sacubitril",), ("bisoprolol",), ("spironolactone",)))),
      (.8, .2), -0.5, .01),
    R("antiplatelet", ("ami", "stroke", "angina", "pad"), (("clopidogrel", (("clopidogrel",),)),), (1.0,), -1.0, .01),
    R("ckd45", ("ckd45",), (("ast120", (("ast120",),)),), (1.0,), -1.5, .02),
    R("dialysis", ("dialysis",), (("lanthanum", (("lanthanum",),)),), (1.0,), 0.0, .01),
    R("dementia", ("dementia",), (("donepezil", (("donepezil",),)), ("memantine", (("memantine",),))), (.7, .3), -1.0,
      .015),
    R("hyperuric", ("hyperuric",), (("febuxostat", (("febuxostat",),)),), (1.0,), -2.0, .02),
    R("gerd", ("gerd",), (("vonoprazan", (("vonoprazan",),)),), (1.0,), -1.0, .04),
    R("osteoporosis", ("osteoporosis",), (("alendronate", (("alendronate",),)),), (1.0,), -2.0, .02),
    R("insomnia", ("insomnia",), (("zolpidem", (("zolpidem",),)),), (1.0,), -1.5, .03),
]}
NAMES = tuple(REGIMENS)
RI = {k: i for i, k in enumerate(NAMES)}
# Drug groups whose dispensing feeds links.py (index order = links.GROUPS)
GROUP_DRUGS = {
    "statin": ("atorvastatin", "rosuvastatin", "pitavastatin"),
    "dpp4i": ("sitagliptin", "linagliptin", "teneligliptin"),
    "anticoag": ("apixaban", "edoxaban", "rivaroxaban", "warfarin"), "antihtn": ("amlodipine", "enalapril") + ARB,
    "sglt2i": ("dapagliflozin", "empagliflozin"),
}


def latest_dx(dx, regimen: Regimen) -> np.ndarray:
    """Month of the most recent diagnosis among the regimen's indications (-1 when none)."""
    return np.max(dx[:, [INDEX[k] for k in regimen.indications]], axis=1)


def start_probability(reg: Regimen, dx, m, age, intensity) -> np.ndarray:
    """P(start at a visit in month m), ignoring whether the patient is already on it.  (n,)"""
    last = latest_dx(dx, reg)
    since = m - last
    logit = (reg.b - 2.0 + 1.0 * (since == 0) + 5.0 * ((since >= 1) & (since <= 3))
             + 2.5 * ((since >= 4) & (since <= 12)) + np.log(intensity))
    if reg.name == "af":
        chads = (age >= 75).astype(int) + (dx[:, INDEX["hf"]] >= 0) + (dx[:, INDEX["t2d"]] >= 0) \
            + (dx[:, INDEX["htn"]] >= 0) + 2 * (dx[:, INDEX["stroke"]] >= 0)
        logit = logit + 0.3 * chads
    return np.where(last >= 0, 1.0 / (1.0 + np.exp(-logit)), 0.0)


def option_weights(reg: Regimen, dx, m, pref, avoid_metformin, exclude=None) -> np.ndarray:
    """(n, k) unnormalised option weights: global share x hospital preference x patient modifiers."""
    w = np.tile(np.asarray(reg.shares, dtype=np.float64), (dx.shape[0], 1)) * pref
    names = [o[0] for o in reg.options]
    year = m // 12
    if reg.name.startswith("t2d"):
        met, dpp = names.index("metformin"), names.index("dpp4i")
        w[:, met] *= np.where(avoid_metformin, 0.1, 1.0) * np.where(dx[:, INDEX["ckd45"]] >= 0, 0.0, 1.0)
        w[:, dpp] *= np.where(dx[:, INDEX["ckd"]] >= 0, 2.0, 1.0)
    elif reg.name == "htn":
        boost = np.where((dx[:, INDEX["t2d"]] >= 0) | (dx[:, INDEX["ckd"]] >= 0), 2.0, 1.0)
        w[:, 1] *= boost
        w[:, 2] *= boost
    elif reg.name == "af":
        doac = np.clip(0.4 + 0.35 * (year - 2014) / 4.0, 0.3, 0.75)   # DOAC share 40% -> 75%, 2014-2018
        w[:, 0] *= doac / 0.5 * np.where(dx[:, INDEX["dialysis"]] >= 0, 0.0, 1.0)
        w[:, 1] *= (1 - doac) / 0.5
    elif reg.name == "hf" and year < 2020:
        w[:, 1] = 0.0                                                   # ARNI only from 2020
    if exclude is not None:
        w[np.arange(len(w)), np.maximum(exclude, 0)] *= np.where(exclude >= 0, 0.0, 1.0)
    return w


def ingredient_weights(slot: tuple, drug_pref, dx) -> np.ndarray:
    """(n, k) weights over a slot's ingredient alternatives (hospital preference; CKD -> linagliptin)."""
    idx = [DRUG_INDEX[k] for k in slot]
    w = drug_pref[:, idx].copy()
    if "linagliptin" in slot:
        w[:, slot.index("linagliptin")] *= np.where(dx[:, INDEX["ckd"]] >= 0, 3.0, 1.0)
    return w


def option_has(reg: Regimen, drugs: tuple) -> np.ndarray:
    """(k,) bool: which options contain one of `drugs` in every alternative of some slot."""
    return np.array([any(all(a in drugs for a in slot) for slot in slots) for _, slots in reg.options])
