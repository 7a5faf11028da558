"""Code tables of the synthetic cohort and the code masters written beside the receipts.

The 7-digit disease codes and 9-digit drug / procedure codes are synthetic (the real SSK masters
are not redistributable), but what they map to is real: ICD-10 codes, YJ7 ingredient codes
verified against the MHLW price list (synthetic-data.md §1) and 点数表 区分番号. A drug's receipt
code is `6` + its YJ7 + a 1-digit product number, so the mapping can be read off the code.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from claimsfm.io import write_bytes

# code, name, ICD-10 (no dot), module. Several codes of one module are a hospital's dialect
# (synonyms); the first one is the default.
DISEASES = [
    ("8833421", "高血圧症", "I10", "htn"), ("8843215", "本態性高血圧症", "I10", "htn"),
    ("8840131", "脂質異常症", "E785", "dyslip"), ("8841055", "高脂血症", "E785", "dyslip"),
    ("8842260", "高コレステロール血症", "E780", "dyslip"),
    ("8850020", "２型糖尿病", "E11", "t2d"), ("8854270", "２型糖尿病・糖尿病合併症なし", "E119", "t2d"),
    ("8871549", "糖尿病", "E14", "t2d"),
    ("8845012", "高尿酸血症", "E790", "hyperuric"), ("8846633", "肥満症", "E669", "obesity"),
    ("8860183", "慢性腎臓病ステージＧ３", "N183", "ckd"), ("8860194", "慢性腎臓病ステージＧ４", "N184", "ckd45"),
    ("8860205", "慢性腎臓病ステージＧ５", "N185", "ckd45"), ("8860216", "透析患者", "Z992", "dialysis"),
    ("8850113", "糖尿病網膜症", "E113", "retinopathy"),
    ("8830211", "心房細動", "I48", "af"), ("8876499", "慢性心不全", "I500", "hf"),
    ("8884004", "うっ血性心不全", "I500", "hf"), ("8831207", "狭心症", "I209", "angina"),
    ("8832109", "急性心筋梗塞", "I219", "ami"), ("8836309", "脳梗塞", "I639", "stroke"),
    ("8836109", "脳出血", "I619", "ich"), ("8836509", "一過性脳虚血発作", "G459", "tia"),
    ("8837021", "閉塞性動脈硬化症", "I702", "pad"),
    ("8887316", "アルツハイマー型認知症", "G309", "dementia"), ("8887294", "認知症", "F03", "dementia"),
    ("8820329", "うつ病", "F329", "depression"), ("8824700", "不眠症", "G470", "insomnia"),
    ("8823209", "パーキンソン病", "G20", "parkinson"), ("8854409", "慢性閉塞性肺疾患", "J449", "copd"),
    ("8854509", "気管支喘息", "J459", "asthma"), ("8852109", "逆流性食道炎", "K210", "gerd"),
    ("8858109", "骨粗鬆症", "M8199", "osteoporosis"), ("8857209", "大腿骨頚部骨折", "S720", "fracture"),
    ("8851709", "変形性膝関節症", "M179", "knee_oa"), ("8851809", "肺炎", "J189", "pneumonia"),
    ("8853909", "尿路感染症", "N390", "uti"), ("8816909", "胃癌", "C169", "gastric_ca"),
    # Not modules: receipt-justifying diagnoses (レセプト病名) and rule-out targets.
    ("8852509", "胃潰瘍", "K259", "-"), ("8852609", "急性上気道炎", "J069", "-"),
    ("8815009", "貧血", "D649", "-"),
]

# drug key, YJ7, name, daily points, receipt code product digit
DRUGS = [
    ("sitagliptin", "3969010", "シタグリプチン錠５０ｍｇ", 12),
    ("linagliptin", "3969014", "リナグリプチン錠５ｍｇ", 14),
    ("teneligliptin", "3969015", "テネリグリプチン錠２０ｍｇ", 11),
    ("metformin", "3962002", "メトホルミン錠２５０ｍｇ", 2),
    ("glimepiride", "3961008", "グリメピリド錠１ｍｇ", 2), ("dapagliflozin", "3969019", "ダパグリフロジン錠５ｍｇ", 18),
    ("empagliflozin", "3969023", "エンパグリフロジン錠１０ｍｇ", 19),
    ("semaglutide", "2499014", "セマグルチド錠３ｍｇ", 15),
    ("amlodipine", "2171022", "アムロジピン錠５ｍｇ", 2), ("olmesartan", "2149044", "オルメサルタン錠２０ｍｇ", 5),
    ("telmisartan", "2149042", "テルミサルタン錠４０ｍｇ", 5), ("azilsartan", "2149048", "アジルサルタン錠２０ｍｇ", 9),
    ("candesartan", "2149040", "カンデサルタン錠８ｍｇ", 4), ("enalapril", "2144002", "エナラプリル錠５ｍｇ", 2),
    ("atorvastatin", "2189015", "アトルバスタチン錠１０ｍｇ", 3),
    ("rosuvastatin", "2189017", "ロスバスタチン錠２．５ｍｇ", 3),
    ("pitavastatin", "2189016", "ピタバスタチン錠１ｍｇ", 3), ("ezetimibe", "2189018", "エゼチミブ錠１０ｍｇ", 7),
    ("apixaban", "3339004", "アピキサバン錠５ｍｇ", 26), ("edoxaban", "3339002", "エドキサバン錠３０ｍｇ", 40),
    ("rivaroxaban", "3339003", "リバーロキサバン錠１５ｍｇ", 40), ("warfarin", "3332001", "ワルファリン錠１ｍｇ", 1),
    ("clopidogrel", "3399008", "クロピドグレル錠７５ｍｇ", 6), ("carvedilol", "2149032", "カルベジロール錠１０ｍｇ", 2),
    ("bisoprolol", "2123016", "ビソプロロール錠２．５ｍｇ", 2), ("furosemide", "2139005", "フロセミド錠２０ｍｇ", 1),
    ("spironolactone", "2133001", "スピロノラクトン錠２５ｍｇ", 1),
    ("sacubitril", "2190041", "サクビトリルバルサルタン錠１００ｍｇ", 13),
    ("ast120", "3929003", "球形吸着炭細粒", 9), ("lanthanum", "2190029", "炭酸ランタン顆粒", 30),
    ("donepezil", "1190012", "ドネペジル錠５ｍｇ", 5), ("memantine", "1190018", "メマンチン錠２０ｍｇ", 10),
    ("febuxostat", "3949003", "フェブキソスタット錠２０ｍｇ", 4),
    ("vonoprazan", "2329030", "ボノプラザン錠２０ｍｇ", 13),
    ("alendronate", "3999018", "アレンドロン酸錠３５ｍｇ", 8), ("zolpidem", "1129009", "ゾルピデム錠５ｍｇ", 1),
]

# key, receipt code, 区分番号, name, points, 診療識別
PROCEDURES = [
    ("first_visit", "111000110", "A000", "初診料", 288, "11"), ("revisit", "112007410", "A001", "再診料", 73, "12"),
    ("prescribing", "120001210", "F100", "処方料", 42, "25"),
    ("blood_chem", "160008010", "D007", "血液化学検査", 93, "60"),
    ("hba1c", "160010010", "D005", "ＨｂＡ１ｃ", 49, "60"), ("ecg", "160068410", "D208", "心電図検査", 130, "60"),
    ("echo", "160072110", "D215", "超音波検査（心臓）", 880, "60"), ("ct", "170011810", "E200", "ＣＴ撮影", 1020, "70"),
    ("mri", "170020110", "E202", "ＭＲＩ撮影", 1620, "70"), ("dialysis", "140007310", "J038", "人工腎臓", 1924, "40"),
    ("ward", "190117710", "A100", "一般病棟入院基本料", 1650, "90"),
]

DISEASE_CODES = {row[0]: row for row in DISEASES}
DRUG_INDEX = {row[0]: i for i, row in enumerate(DRUGS)}
PROC = {row[0]: row for row in PROCEDURES}


def drug_code(key: str) -> str:
    """The 9-digit receipt code of a drug: `6` + YJ7 + product digit 1."""
    return "6" + DRUGS[DRUG_INDEX[key]][1] + "1"


MODULE_CODES: dict = {}
for _row in DISEASES:
    MODULE_CODES.setdefault(_row[3], []).append(_row[0])


def module_codes(module: str) -> list[str]:
    return MODULE_CODES[module]


def _csv(rows) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["code", "name", "mapped_code", "class"])
    w.writerows(rows)
    return buf.getvalue().encode("utf-8")


def write_masters(folder: Path, extra: dict | None = None) -> None:
    """`diseases.csv`, `drugs.csv`, `procedures.csv` (internals.md §1); `extra` (file name -> rows, from the
    background layer) appends rows to them or adds files (`devices.csv`)."""
    folder = Path(folder)
    extra = extra or {}
    files = {"diseases.csv": [(c, n, icd, icd[:3]) for c, n, icd, _ in DISEASES],
             "drugs.csv": [(drug_code(k), n, yj, yj[:4]) for k, yj, n, _ in DRUGS],
             "procedures.csv": [(code, n, kubun, kubun[0]) for _, code, kubun, n, _, _ in PROCEDURES]}
    for name, rows in extra.items():
        files[name] = files.get(name, []) + list(rows)
    for name, rows in files.items():
        write_bytes(folder / name, _csv(rows))
