"""Background code layer: thousands of diagnosis, drug, procedure and device codes from latent minor
conditions, independent of the planted modules and the tasks (synthetic-data.md, "Background layer").

Real claims carry thousands of distinct receipt codes with a heavily skewed frequency curve, most of
them unrelated to any prediction task. This layer adds such codes to the receipts the planted process
writes, without touching it:

* A fixed catalogue (the same for every seed, built from `CATALOGUE_SEED`) of latent minor conditions,
  each in an organ system, with a kind (acute: 1-2 months, resolves; subacute: months; chronic: years),
  an age slope, a sex ratio, a season (winter respiratory / gastro-intestinal infections, spring pollen,
  summer heat and skin) and a Zipf-like base rate; and its own cluster of codes: diagnoses (7-digit,
  mapped to a real ICD-10 category of its system), drugs (`6` + YJ7 + product digit, in a real YJ4
  class of its system), procedures (mapped to a 点数表 区分番号) and devices (特定器材). Popular
  drugs and procedures of a system are shared between its conditions, the rest belong to one.
* Per patient, up to `SLOTS` conditions at a time; a monthly onset (at most one) picked by the
  age band x sex x calendar-month table; prevalent chronic conditions at the start.
* At a month the planted process makes a visit, each active condition shows on that receipt: its
  diagnosis (repeated monthly until 治ゆ), sometimes a second one from its cluster, its regimen's
  drugs, and now and then a procedure or a device, all on the visit's first day.

Independence: every draw comes from a second key per patient (`background_keys`, a splitmix64 of the
planted key), so the planted streams, whatever slots they use, are never read; the layer reads only
the planted visits (who, where, which day), never changes them, and its codes map to no ICD-10
category, YJ4 class or 区分番号 that a planted module or a task uses. Dropping the background codes
from a cohort gives back the `--background none` cohort (tests/synth/test_background.py).

Codes and names are synthetic; the ICD-10 categories, YJ4 classes and 区分番号 they map to are real
identifiers (public classification codes: WHO ICD-10 3-character categories, the MHLW 薬効分類
numbers, the MHLW 点数表 区分番号); no external table is copied.
"""
from __future__ import annotations

import functools
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np

from claimsfm.splits import splitmix64
from claimsfm.synth.masters import DISEASES, DRUGS, PROCEDURES
from claimsfm.synth.simulate import month_first_day
from claimsfm.synth.streams import uniform
from claimsfm.synth.uke import fmt_day

LEVELS = ("none", "default")
CATALOGUE_SEED = 20_260_415
SLOTS = 12
AGE_BANDS = 20                      # 5-year bands, the last open
_BG_SALT = np.uint64(0xB6C0_DE5E_ED00_15A1)

# ---- organ systems: the real classification codes each system's conditions map to -------------------------
# key, share of conditions, kind probabilities (acute, subacute, chronic), season (peak month 1-12, log
# amplitude), mean age slope per decade, mean log female:male ratio, condition stems, ICD-10 categories,
# YJ4 classes (code, name, form: 21 内服 / 23 外用 / 33 注射), 区分番号 (code, name), device stems.
SYSTEMS = [
    ("respiratory", 0.13, (0.6, 0.3, 0.1), (1, 0.9), -0.05, 0.0,
     ["咽頭炎", "扁桃炎", "喉頭炎", "気管支炎", "副鼻腔炎", "インフルエンザ", "ウイルス感染症", "咳嗽", "鼻咽頭炎",
      "細気管支炎"],
     ["J00", "J01", "J02", "J03", "J04", "J05", "J10", "J11", "J20", "J21", "J32", "J34", "J39", "J40", "J42", "B34",
      "R05"],
     [("2223", "鎮咳剤", "21"), ("2233", "去たん剤", "21"), ("2259", "気管支拡張剤", "21"),
      ("6132", "セフェム系抗生物質", "21"),
      ("6149", "マクロライド系抗生物質", "21"), ("6241", "合成抗菌剤", "21"), ("6250", "抗ウイルス剤", "21"),
      ("1141", "解熱鎮痛剤", "21"), ("2260", "含嗽剤", "23")],
     [("D012", "感染症免疫学的検査"), ("D018", "細菌培養同定検査"), ("D023", "微生物核酸同定検査"),
      ("E001", "写真診断"), ("J114", "ネブライザ"), ("J098", "口腔咽頭処置"), ("D200", "スパイログラフィー")],
     ["ネブライザ用マスク", "吸入補助器具"]),
    ("allergy_ent", 0.09, (0.3, 0.3, 0.4), (3, 1.0), -0.15, 0.1,
     ["アレルギー性鼻炎", "花粉症", "中耳炎", "外耳炎", "めまい症", "耳鳴症", "難聴", "鼻出血", "蕁麻疹",
      "アレルギー性結膜炎"],
     ["J30", "J31", "H60", "H61", "H65", "H66", "H81", "H83", "H91", "H93", "R04", "L50", "T78"],
     [("4490", "その他のアレルギー用薬", "21"), ("4419", "抗ヒスタミン剤", "21"), ("1329", "耳鼻科用剤", "23"),
      ("1339", "鎮暈剤", "21"), ("2456", "副腎皮質ホルモン剤", "21")],
     [("D244", "自覚的聴力検査"), ("J095", "耳処置"), ("J097", "鼻処置"), ("D250", "平衡機能検査"),
      ("D291", "皮内反応検査")],
     []),
    ("digestive", 0.12, (0.45, 0.3, 0.25), (12, 0.5), 0.05, 0.1,
     ["胃腸炎", "便秘症", "胃炎", "十二指腸炎", "過敏性腸症候群", "痔核", "脂肪肝", "胆石症", "機能性ディスペプシア",
      "大腸ポリープ"],
     ["A08", "A09", "K29", "K30", "K31", "K57", "K58", "K59", "K62", "K63", "K64", "K76", "K80", "K81", "K86", "D12",
      "R10", "R11"],
     [("2316", "整腸剤", "21"), ("2319", "止しゃ剤", "21"), ("2325", "Ｈ２遮断剤", "21"), ("2344", "制酸剤", "21"),
      ("2354", "下剤", "21"), ("2362", "利胆剤", "21"), ("2399", "その他の消化器官用薬", "21"),
      ("2559", "痔疾用剤", "23")],
     [("D003", "糞便検査"), ("D308", "胃・十二指腸ファイバースコピー"), ("D313", "大腸内視鏡検査"),
      ("E001", "写真診断"), ("K721", "内視鏡的大腸ポリープ切除術"), ("G004", "点滴注射"), ("D009", "腫瘍マーカー")],
     ["内視鏡用クリップ"]),
    ("musculoskeletal", 0.14, (0.25, 0.35, 0.4), (0, 0.0), 0.25, 0.25,
     ["腰痛症", "頚椎症", "肩関節周囲炎", "腱鞘炎", "関節痛", "筋肉痛", "坐骨神経痛", "脊柱管狭窄症", "変形性股関節症",
      "痛風関節炎"],
     ["M10", "M16", "M19", "M25", "M47", "M48", "M50", "M51", "M53", "M54", "M62", "M65", "M67", "M70", "M75", "M77",
      "M79"],
     [("1149", "その他の解熱鎮痛消炎剤", "21"), ("2649", "鎮痛・消炎外用剤", "23"), ("1249", "鎮けい剤", "21"),
      ("3136", "ビタミンＢ１２剤", "21"), ("1141", "解熱鎮痛剤", "21")],
     [("H002", "運動器リハビリテーション料"), ("E001", "写真診断"), ("E002", "撮影"), ("J119", "消炎鎮痛等処置"),
      ("J118", "介達牽引"), ("G000", "皮内・皮下及び筋肉内注射"), ("L100", "神経ブロック"), ("J116", "関節穿刺")],
     ["腰部固定帯", "関節用サポーター", "ギプス包帯"]),
    ("skin", 0.10, (0.35, 0.35, 0.3), (8, 0.5), -0.05, 0.15,
     ["湿疹", "皮膚炎", "白癬", "帯状疱疹", "尋常性ざ瘡", "脂漏性皮膚炎", "皮膚そう痒症", "乾皮症", "伝染性膿痂疹",
      "疣贅"],
     ["B00", "B02", "B07", "B35", "B36", "L01", "L02", "L03", "L08", "L20", "L21", "L23", "L24", "L28", "L29", "L30",
      "L70",
      "L85", "L98"],
     [("2646", "副腎皮質ホルモン外用剤", "23"), ("2655", "寄生性皮ふ疾患用剤", "23"),
      ("2699", "その他の外皮用薬", "23"),
      ("6250", "抗ウイルス剤", "21"), ("2634", "抗生物質外用剤", "23"), ("4490", "その他のアレルギー用薬", "21")],
     [("J053", "皮膚科軟膏処置"), ("J054", "皮膚科光線療法"), ("K005", "皮膚・皮下腫瘍摘出術"), ("D017", "真菌検査"),
      ("J057", "いぼ等冷凍凝固法")],
     ["創傷被覆材"]),
    ("eye", 0.07, (0.3, 0.2, 0.5), (4, 0.3), 0.3, 0.15,
     ["結膜炎", "白内障", "ドライアイ", "麦粒腫", "緑内障疑い", "飛蚊症", "角膜炎", "眼精疲労", "屈折異常", "網膜変性"],
     ["H00", "H01", "H04", "H10", "H11", "H16", "H25", "H26", "H40", "H43", "H52", "H53", "H57"],
     [("1319", "眼科用剤", "23"), ("1311", "眼科用抗生物質", "23"), ("1315", "散瞳剤", "23")],
     [("D255", "精密眼底検査"), ("D256", "眼底カメラ撮影"), ("D257", "細隙灯顕微鏡検査"), ("D264", "精密眼圧測定"),
      ("D261", "屈折検査"), ("K282", "水晶体再建術")],
     ["眼内レンズ"]),
    ("genitourinary", 0.07, (0.35, 0.3, 0.35), (0, 0.0), 0.2, 0.0,
     ["膀胱炎", "前立腺肥大症", "過活動膀胱", "尿路結石", "月経困難症", "更年期症候群", "腟炎", "子宮筋腫", "腎のう胞",
      "排尿障害"],
     ["N20", "N28", "N30", "N32", "N40", "N41", "N80", "N83", "N89", "N92", "N94", "N95", "D25", "R30", "R35"],
     [("2590", "泌尿生殖器官用剤", "21"), ("6241", "合成抗菌剤", "21"), ("2529", "生殖器官用剤", "23"),
      ("2482", "混合ホルモン剤", "21")],
     [("D000", "尿中一般物質定性半定量検査"), ("D002", "尿沈渣"), ("D216", "超音波検査（腹部）"), ("D289", "残尿測定"),
      ("J060", "膀胱洗浄"), ("J063", "留置カテーテル設置")],
     ["膀胱留置用カテーテル", "導尿用カテーテル"]),
    ("mental_neuro", 0.08, (0.15, 0.35, 0.5), (0, 0.0), 0.0, 0.25,
     ["不安神経症", "適応障害", "片頭痛", "緊張型頭痛", "自律神経失調症", "心身症", "末梢神経障害", "手根管症候群",
      "顔面神経麻痺", "パニック障害"],
     ["F40", "F41", "F43", "F45", "F48", "G43", "G44", "G51", "G56", "G57", "G62", "R42", "R51"],
     [("1124", "抗不安剤", "21"), ("1179", "その他の精神神経用剤", "21"), ("1139", "抗てんかん剤", "21"),
      ("1149", "その他の解熱鎮痛消炎剤", "21"), ("3136", "ビタミンＢ１２剤", "21")],
     [("I002", "通院・在宅精神療法"), ("D235", "脳波検査"), ("D239", "筋電図検査"), ("L100", "神経ブロック")],
     []),
    ("endocrine_blood", 0.06, (0.05, 0.35, 0.6), (0, 0.0), 0.2, 0.5,
     ["甲状腺機能低下症", "甲状腺機能亢進症", "橋本病", "鉄欠乏性貧血", "ビタミンＤ欠乏症", "ビタミンＢ１２欠乏症",
      "低カリウム血症", "甲状腺腫", "血小板減少症", "低ナトリウム血症"],
     ["E03", "E04", "E05", "E06", "E55", "E53", "E83", "E87", "D50", "D51", "D69"],
     [("2431", "甲状腺ホルモン製剤", "21"), ("2432", "抗甲状腺ホルモン剤", "21"), ("3222", "無機質製剤（鉄）", "21"),
      ("3112", "ビタミンＤ剤", "21"), ("3136", "ビタミンＢ１２剤", "21"), ("3229", "その他の無機質製剤", "21")],
     [("D008", "内分泌学的検査"), ("D006", "出血・凝固検査"), ("D217", "骨塩定量検査"), ("D415", "経皮的針生検法")],
     []),
    ("circulatory_minor", 0.05, (0.15, 0.35, 0.5), (0, 0.0), 0.3, 0.2,
     ["下肢静脈瘤", "起立性低血圧", "動悸", "浮腫", "末梢循環障害", "低血圧症", "深部静脈血栓症疑い", "期外収縮"],
     ["I83", "I95", "I73", "I87", "R00", "R60", "I49"],
     [("2160", "血管収縮剤", "21"), ("3321", "止血剤", "21"), ("2159", "その他の循環器官用薬", "21")],
     [("D210", "ホルター型心電図検査"), ("D207", "体液量等測定"), ("K617", "下肢静脈瘤手術"), ("J001", "熱傷処置")],
     ["弾性ストッキング"]),
    ("injury", 0.07, (0.7, 0.25, 0.05), (8, 0.3), 0.0, -0.2,
     ["打撲傷", "捻挫", "挫創", "擦過傷", "熱傷", "熱中症", "骨折（手指）", "異物", "咬傷", "切創"],
     ["S00", "S01", "S13", "S20", "S30", "S40", "S50", "S60", "S62", "S63", "S80", "S83", "S90", "S93", "T14", "T15",
      "T20",
      "T67"],
     [("2649", "鎮痛・消炎外用剤", "23"), ("1149", "その他の解熱鎮痛消炎剤", "21"), ("2634", "抗生物質外用剤", "23"),
      ("6132", "セフェム系抗生物質", "21")],
     [("J000", "創傷処置"), ("K000", "創傷処理"), ("E001", "写真診断"), ("J001", "熱傷処置"),
      ("K044", "骨折非観血的整復術"), ("J119", "消炎鎮痛等処置")],
     ["ギプス包帯", "副木", "創傷被覆材", "縫合糸"]),
    ("oral_misc", 0.02, (0.5, 0.3, 0.2), (0, 0.0), 0.0, 0.2,
     ["口内炎", "口角炎", "舌炎", "唾石症", "顎関節症"],
     ["K12", "K13", "K14", "K11", "K07"],
     [("2399", "その他の消化器官用薬", "21"), ("2390", "口腔用剤", "23")],
     [("J098", "口腔咽頭処置"), ("E001", "写真診断")],
     []),
]
VARIANTS = ["", "・急性", "・慢性", "・右", "・左", "・両側", "・再発性", "・軽症", "・重症", "・術後", "・増悪",
            "・初期", "・遷延性", "・多発性", "・限局性", "・びまん性"]
REGIONS = ("", "上部", "下部", "頭部", "体幹", "末梢", "中枢性", "特発性", "反応性", "続発性", "単純性", "混合性")
FORMS = {"21": ("錠", "ｍｇ"), "23": ("外用", "ｇ"), "33": ("注", "ｍＬ")}
SI_CAT = {"B": "13", "C": "14", "D": "60", "E": "70", "G": "33", "H": "80", "I": "80", "J": "40", "K": "50", "L": "50"}
SUPPLY = {0: 5, 1: 14, 2: 28}       # days of drugs per dispensing, by kind (acute, subacute, chronic)
KINDS = ("acute", "subacute", "chronic")

# What a planted module or a task uses: the background never maps into it.
PLANTED_ICD3 = frozenset({row[2][:3] for row in DISEASES}
                         | {"E10", "E11", "E12", "E13", "E14", "F00", "F01", "F02", "F03", "G30", "N18", "Z99"})
PLANTED_YJ4 = frozenset(row[1][:4] for row in DRUGS)
PLANTED_KUBUN = frozenset(row[2] for row in PROCEDURES)


@dataclass(frozen=True)
class Catalogue:
    """The fixed code catalogue: codes per kind with names and parents, and the conditions' clusters."""
    dx: list        # (code, name, icd10 4-char, icd10 category)
    drugs: list     # (code, name, yj7, yj4, form category, points per day)
    procs: list     # (code, name, kubun, class letter, points, 診療識別)
    devices: list   # (code, name, class, points)
    kind: np.ndarray        # (K,) 0 acute, 1 subacute, 2 chronic
    rate: np.ndarray        # (K, AGE_BANDS, 2, 12) monthly onset hazard by age band, sex, calendar month
    chronic_mean: np.ndarray  # (K,) mean months of a chronic condition
    p_treat: np.ndarray     # (K,) P(a drug regimen at onset)
    p_proc: np.ndarray      # (K,) P(a procedure at a visit)
    p_dev: np.ndarray       # (K,) P(a device at a visit)
    clusters: dict          # kind -> (offsets (K+1,), code ids, cumulative weights + cluster index)


def _zipf(n: int, s: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** s
    return w / w.sum()


def _cluster(members: list, weights: list) -> tuple:
    """CSR of per-condition code lists; `cum` is each cluster's normalised CDF plus its index (monotone)."""
    off = np.zeros(len(members) + 1, np.int64)
    off[1:] = np.cumsum([len(m) for m in members])
    codes = np.concatenate([np.asarray(m, np.int64) for m in members]) if off[-1] else np.zeros(0, np.int64)
    cum = np.concatenate([k + np.cumsum(w) / np.sum(w) if len(w) else np.zeros(0) for k, w in enumerate(weights)])
    return off, codes, cum


@functools.lru_cache(maxsize=1)
def catalogue() -> Catalogue:
    rng = np.random.default_rng(CATALOGUE_SEED)
    n_cond = 560
    shares = np.array([s[1] for s in SYSTEMS])
    system = np.repeat(np.arange(len(SYSTEMS)), np.round(shares / shares.sum() * n_cond).astype(int))
    k_all = len(system)
    kind = np.array([rng.choice(3, p=SYSTEMS[s][2]) for s in system])
    # base rates: Zipf over a random order of the conditions of each kind; totals per patient-month at age 50
    total = {0: 0.15, 1: 0.05, 2: 0.016}
    base = np.zeros(k_all)
    for kd in range(3):
        sel = np.flatnonzero(kind == kd)
        base[sel] = total[kd] * _zipf(len(sel), 0.7)[rng.permutation(len(sel))]
    age_mid = np.minimum(np.arange(AGE_BANDS) * 5 + 2.5, 95.0)
    rate = np.zeros((k_all, AGE_BANDS, 2, 12))
    months = np.arange(12) + 1
    dx, drugs, procs, devices = [], [], [], []
    dx_m, dx_w, dr_m, dr_w, pr_m, pr_w, dv_m, dv_w = ([[] for _ in range(k_all)] for _ in range(8))
    chronic_mean = np.exp(rng.normal(np.log(96), 0.5, k_all))
    names_used: dict = {}
    ingredient_no: dict = {}
    for si, (key, _, _, (peak, amp), beta, fem, stems, icds, classes, kubuns, dev_stems) in enumerate(SYSTEMS):
        conds = np.flatnonzero(system == si)
        icds = [c for c in icds if c not in PLANTED_ICD3]
        # the system's drug products: ingredients per class, 1-4 products each; popularity Zipf over products
        products = []
        for yj4, cname, form in classes:
            if yj4 in PLANTED_YJ4:
                continue
            for _ in range(int(rng.integers(28, 48))):
                no = ingredient_no.get(yj4, 100) + 1
                ingredient_no[yj4] = no
                yj7 = f"{yj4}{no:03d}"
                word, unit = FORMS[form]
                for p in range(1, int(rng.integers(1, 5)) + 1):
                    strength = (1, 2.5, 5, 10, 20, 25, 50, 100)[int(rng.integers(8))] * p
                    drugs.append(("6" + yj7 + str(p), f"{cname}{no:03d}{word}{strength:g}{unit}", yj7, yj4, form,
                                  int(rng.integers(1, 40))))
                    products.append(len(drugs) - 1)
        sys_procs = []
        for kubun, pname in kubuns:
            if kubun in PLANTED_KUBUN:
                continue
            for v in range(int(rng.integers(18, 34))):
                code = f"15{len(procs):06d}0"
                procs.append((code, f"{pname}（{v + 1}）" if v else pname, kubun, kubun[0],
                              int(rng.integers(20, 600)), SI_CAT[kubun[0]]))
                sys_procs.append(len(procs) - 1)
        sys_devs = []
        for dname in dev_stems:
            for v in range(int(rng.integers(6, 14))):
                devices.append((f"70{len(devices):06d}0", f"{dname}{'・' + str(v + 1) if v else ''}", key,
                                int(rng.integers(5, 300))))
                sys_devs.append(len(devices) - 1)
        products, sys_procs, sys_devs = (np.array(rng.permutation(x), np.int64)
                                         for x in (products, sys_procs, sys_devs))
        own_drugs = np.array_split(products, len(conds)) if len(conds) else []
        own_procs = np.array_split(sys_procs, len(conds)) if len(conds) else []
        pop_drugs, pop_procs = products[:max(3, len(products) // 40)], sys_procs[:max(2, len(sys_procs) // 20)]
        for j, k in enumerate(conds):
            stem = stems[j % len(stems)]
            cname = REGIONS[j // len(stems) % len(REGIONS)] + stem
            names_used[cname] = names_used.get(cname, 0) + 1
            if names_used[cname] > 1:
                cname += f"（{names_used[cname]}型）"
            icd3 = icds[int(rng.integers(len(icds)))]
            for v in range(int(rng.integers(4, 15))):
                sub = int(rng.integers(10))
                dx.append((f"5{int(k):04d}{v:02d}", cname + VARIANTS[v], f"{icd3}{sub}", icd3))
                dx_m[k].append(len(dx) - 1)
                dx_w[k].append(1.0 / (v + 1) ** 1.0)
            shared_d = rng.choice(pop_drugs, size=min(len(pop_drugs), int(rng.integers(1, 4))), replace=False)
            mine = own_drugs[j]
            dr_m[k] = list(shared_d) + list(mine)
            dr_w[k] = [2.0] * len(shared_d) + list(1.0 / np.arange(1, len(mine) + 1) ** 0.8)
            shared_p = rng.choice(pop_procs, size=min(len(pop_procs), int(rng.integers(1, 3))), replace=False)
            minep = own_procs[j]
            pr_m[k] = list(shared_p) + list(minep)
            pr_w[k] = [2.0] * len(shared_p) + list(1.0 / np.arange(1, len(minep) + 1) ** 0.8)
            if len(sys_devs) and rng.random() < 0.35:
                pick = rng.choice(sys_devs, size=min(len(sys_devs), int(rng.integers(1, 6))), replace=False)
                dv_m[k], dv_w[k] = list(pick), list(_zipf(len(pick), 1.0))
            slope = rng.normal(beta, 0.3) / 10.0
            female = rng.normal(fem, 0.4)
            if key == "genitourinary" and rng.random() < 0.35:
                female = 4.0 if rng.random() < 0.6 else -4.0          # sex-specific (gynaecological / prostate)
            season = np.exp(amp * rng.uniform(0.5, 1.5) * np.cos(2 * np.pi * (months - peak) / 12)) if amp \
                else np.ones(12)
            if key in ("respiratory", "digestive") and kind[k] != 0:
                season = np.ones(12)
            age_f = np.exp(np.clip(slope * (age_mid - 50), -4, 3) + (0.0, 0.015, 0.035)[kind[k]] * (age_mid - 50))
            if key == "respiratory":
                age_f *= 1 + 1.5 * (age_mid < 15)                     # children's infections
            sex_f = np.exp(np.array([-female / 2, female / 2]))
            rate[k] = base[k] * age_f[:, None, None] * sex_f[None, :, None] * season[None, None, :]
    # every system's product is in some cluster; conditions without own codes still have the shared ones
    cl = {"dx": _cluster(dx_m, dx_w), "drug": _cluster(dr_m, dr_w), "proc": _cluster(pr_m, pr_w),
          "device": _cluster(dv_m, dv_w)}
    p_treat = np.where(kind == 2, rng.uniform(0.4, 0.95, k_all), rng.uniform(0.3, 0.9, k_all))
    p_proc = rng.uniform(0.05, 0.5, k_all)
    p_dev = np.where([len(x) > 0 for x in dv_m], rng.uniform(0.05, 0.3, k_all), 0.0)
    return Catalogue(dx, drugs, procs, devices, kind, rate, chronic_mean, p_treat, p_proc, p_dev, cl)


def background_keys(keys: np.ndarray) -> np.ndarray:
    """The layer's own per-patient keys: no draw of the planted streams is ever reused."""
    return splitmix64(keys.astype(np.uint64) ^ _BG_SALT)


def _pick(cluster: tuple, k: np.ndarray, u: np.ndarray) -> np.ndarray:
    """One code id per row from condition k's cluster by inverse CDF; -1 where the cluster is empty."""
    off, codes, cum = cluster
    pos = np.searchsorted(cum, k + u, side="right")
    ok = (off[k + 1] > off[k])
    pos = np.clip(pos, off[k], np.maximum(off[k + 1] - 1, off[k]))
    return np.where(ok, codes[np.minimum(pos, len(codes) - 1)] if len(codes) else -1, -1)


@functools.lru_cache(maxsize=1 << 12)
def _days(day: int, count: int) -> str:
    f = [""] * 31
    f[day - 1] = str(count)
    return ",".join(f)


class Background:
    """Per-patient latent minor conditions (slots) and their codes on the planted visits' receipts."""

    def __init__(self, keys: np.ndarray, birth_day: np.ndarray, sex: np.ndarray, start: int, era: bool):
        self.cat = catalogue()
        self.bk = background_keys(keys)
        self.birth_day, self.era, self.n = birth_day, era, len(keys)
        self.sex_i = (np.asarray(sex) == 2).astype(np.int64)
        n, s = self.n, SLOTS
        self.cond = np.full((n, s), -1, np.int32)
        self.end = np.full((n, s), -1, np.int32)
        self.start_day = np.zeros((n, s), np.int32)
        self.dxc = np.full((n, s), -1, np.int32)
        self.reg = np.full((n, s, 3), -1, np.int32)
        k_all = len(self.cat.kind)
        self.rate_tab = self.cat.rate.transpose(1, 2, 3, 0).reshape(-1, k_all)    # (groups, K)
        self.total = self.rate_tab.sum(axis=1)
        self.onset_cdf = _flat_cdf(self.rate_tab)
        c = self.cat
        # code strings and line prefixes per code id
        self.dx_code = [r[0] for r in c.dx]
        self.drug_pre = [f"IY,{r[4]},1,{r[0]},1,{r[5]}," for r in c.drugs]
        self.drug_pts = np.array([r[5] for r in c.drugs], np.int64)
        self.proc_pre = [f"SI,{r[5]},1,{r[0]},,{r[4]},1,,,,,,," for r in c.procs]
        self.proc_pts = np.array([r[4] for r in c.procs], np.int64)
        self.dev_pre = [f"TO,40,1,{r[0]},1,{r[3]},1,001,{r[3] * 10},,,,,,,,," for r in c.devices]
        self.dev_pts = np.array([r[3] for r in c.devices], np.int64)
        self.n_codes = {"dx": len(c.dx), "drug": len(c.drugs), "proc": len(c.procs), "device": len(c.devices)}
        self.tokens = {kd: np.zeros(v, np.int64) for kd, v in self.n_codes.items()}
        self.dx_seen = np.zeros((n * len(c.dx) + 7) // 8, np.uint8)
        t0 = time.process_time()
        self._prevalent(start)
        self.cpu_s = time.process_time() - t0     # CPU seconds spent in this layer (synth.json)

    def _age_band(self, m: int) -> np.ndarray:
        age = (month_first_day(m) + 14 - self.birth_day) / 365.25
        return np.clip((age // 5).astype(np.int64), 0, AGE_BANDS - 1)

    def _groups(self, m: int) -> np.ndarray:
        return (self._age_band(m) * 2 + self.sex_i) * 12 + m % 12

    def _prevalent(self, start: int) -> None:
        """Chronic conditions already present at the start: Poisson(sum of rate x mean duration), capped.

        Draws use month start - 1, which no `step` reads."""
        c, m0 = self.cat, start - 1
        w = self.rate_tab * ((c.kind == 2) * c.chronic_mean)          # (groups, K) expected prevalent count
        cdf = _flat_cdf(w)
        g = self._groups(start)
        lam = w.sum(axis=1)[g]
        u0 = uniform(self.bk, m0, 1)
        count = np.zeros(self.n, np.int64)                           # Poisson by inversion, at most SLOTS // 2
        p = np.exp(-lam)
        acc = p.copy()
        for j in range(1, SLOTS // 2 + 1):
            count += u0 > acc
            p = p * lam / j
            acc = acc + p
        for j in range(SLOTS // 2):
            who = np.flatnonzero(count > j)
            if len(who) == 0:
                break
            k = _choose(cdf, g[who], uniform(self.bk[who], m0, 10 + j), len(c.kind))
            dup = (self.cond[who] == k[:, None]).any(axis=1)
            who, k = who[~dup], k[~dup]
            back = np.floor(uniform(self.bk[who], m0, 30 + j) * np.minimum(c.chronic_mean[k], 120)).astype(np.int64)
            rest = np.floor(-np.log1p(-uniform(self.bk[who], m0, 50 + j)) * c.chronic_mean[k]).astype(np.int64)
            self._assign(who, np.full(len(who), j), k, start - 1 - back, start + rest, m0, 70 + 4 * j)

    def _assign(self, who, slot, k, onset, end, m, base_slot) -> None:
        c = self.cat
        self.cond[who, slot] = k
        self.end[who, slot] = end
        first = np.array([month_first_day(int(x)) for x in np.unique(onset)]) if len(who) else np.zeros(0)
        lut = dict(zip(np.unique(onset).tolist(), first.tolist(), strict=True))
        day0 = np.array([lut[x] for x in onset.tolist()], np.int64)
        self.start_day[who, slot] = day0 + np.floor(uniform(self.bk[who], m, base_slot) * 28).astype(np.int64)
        self.dxc[who, slot] = _pick(c.clusters["dx"], k, uniform(self.bk[who], m, base_slot + 1))
        treated = uniform(self.bk[who], m, base_slot + 2) < c.p_treat[k]
        n_drugs = treated * (1 + (uniform(self.bk[who], m, base_slot + 3) < 0.45)
                             + (uniform(self.bk[who], m, base_slot + 3) < 0.15))
        for d in range(3):
            code = _pick(c.clusters["drug"], k, uniform(self.bk[who], m, base_slot + 200 + d))
            self.reg[who, slot, d] = np.where(n_drugs > d, code, -1)

    def step(self, m: int) -> None:
        """End conditions past their last month; at most one onset per patient this month."""
        t0 = time.process_time()
        self._step(m)
        self.cpu_s += time.process_time() - t0

    def _step(self, m: int) -> None:
        c = self.cat
        self.cond[self.end < m] = -1
        g = self._groups(m)
        on = np.flatnonzero(uniform(self.bk, m, 1) < -np.expm1(-self.total[g]))
        if len(on) == 0:
            return
        k = _choose(self.onset_cdf, g[on], uniform(self.bk[on], m, 2), len(c.kind))
        cond = self.cond[on]
        free = cond < 0
        keep = free.any(axis=1) & ~(cond == k[:, None]).any(axis=1)
        on, k, slot = on[keep], k[keep], free[keep].argmax(axis=1)
        kd = c.kind[k]
        u3 = uniform(self.bk[on], m, 3)
        dur = np.select([kd == 0, kd == 1],
                        [1 + (u3 < 0.25), 2 + np.floor(-np.log1p(-u3) * 5)],
                        12 + np.floor(-np.log1p(-u3) * c.chronic_mean[k])).astype(np.int64)
        self._assign(on, slot, k, np.full(len(on), m), m + dur - 1, m, 4)

    def emit(self, m: int, idx: np.ndarray, day1: np.ndarray) -> tuple[list, list, list]:
        """For the visitors idx (index order) on day day1 (1-based): per visitor the background SY lines,
        the SI/IY/TO lines (each as one CRLF-joined string, "" if none) and their points."""
        t0 = time.process_time()
        out = self._emit(m, idx, day1)
        self.cpu_s += time.process_time() - t0
        return out

    def _emit(self, m: int, idx: np.ndarray, day1: np.ndarray) -> tuple[list, list, list]:
        c = self.cat
        v = len(idx)
        act = (self.cond[idx] >= 0) & (self.end[idx] >= m)
        r, s = np.nonzero(act)
        k = self.cond[idx[r], s].astype(np.int64)
        keys = self.bk[idx[r]]
        salt = (s.astype(np.uint64) + np.uint64(1)) * np.uint64(0x9E37_79B9)
        pk = keys ^ salt                                               # a stream per (patient, slot)
        uu = [uniform(pk, m, 100 + t) for t in range(9)]
        kd = c.kind[k]
        outcome = np.where((self.end[idx[r], s] == m) & (kd < 2), 2, 1)
        # 診療開始日 of a condition that starts this month is no later than the visit that shows it
        visit_day = month_first_day(m) + day1.astype(np.int64) - 1
        self.start_day[idx[r], s] = np.minimum(self.start_day[idx[r], s], visit_day[r])
        # diagnoses: the condition's own code, and sometimes a second one from its cluster
        extra = np.where(uu[0] < 0.2, _pick(c.clusters["dx"], k, uu[1]), -1)
        dr = np.concatenate([r, r])
        dcode = np.concatenate([self.dxc[idx[r], s], extra])
        dday = np.concatenate([self.start_day[idx[r], s], self.start_day[idx[r], s]])
        dout = np.concatenate([outcome, outcome])
        ok = dcode >= 0
        dr, dcode, dday, dout = dr[ok], dcode[ok], dday[ok], dout[ok]
        first = self._dedupe(dr, dcode)
        dr, dcode, dday, dout = dr[first], dcode[first], dday[first], dout[first]
        self._count_dx(idx[dr], dcode)
        # drugs: the regimen's, dispensed at 90% of visits, and an occasional symptomatic one
        reg = self.reg[idx[r], s]                                      # (P, 3)
        disp = np.stack([uu[2] < 0.9] * 3, axis=1) & (reg >= 0)
        extra_d = np.where(uu[3] < 0.12, _pick(c.clusters["drug"], k, uu[4]), -1)
        gr = np.concatenate([np.repeat(r, 3)[disp.ravel()], r[extra_d >= 0]])
        gcode = np.concatenate([reg.ravel()[disp.ravel()], extra_d[extra_d >= 0]])
        gsup = np.concatenate([np.repeat(np.array([SUPPLY[x] for x in range(3)])[kd], 3)[disp.ravel()],
                               np.full(int((extra_d >= 0).sum()), 7)])
        keep = self._dedupe(gr, gcode)
        gr, gcode, gsup = gr[keep], gcode[keep], gsup[keep]
        # procedures and devices
        pcode = np.where(uu[5] < c.p_proc[k], _pick(c.clusters["proc"], k, uu[6]), -1)
        pr, pcode = r[pcode >= 0], pcode[pcode >= 0]
        keep = self._dedupe(pr, pcode)
        pr, pcode = pr[keep], pcode[keep]
        vcode = np.where(uu[7] < c.p_dev[k], _pick(c.clusters["device"], k, uu[8]), -1)
        vr, vcode = r[vcode >= 0], vcode[vcode >= 0]
        keep = self._dedupe(vr, vcode)
        vr, vcode = vr[keep], vcode[keep]
        for kind_, codes in (("drug", gcode), ("proc", pcode), ("device", vcode)):
            self.tokens[kind_] += np.bincount(codes, minlength=self.n_codes[kind_])
        points = (np.bincount(gr, self.drug_pts[gcode] * gsup, minlength=v)
                  + np.bincount(pr, self.proc_pts[pcode], minlength=v)
                  + np.bincount(vr, self.dev_pts[vcode], minlength=v)).astype(np.int64)
        # lines, grouped by visitor
        era = self.era
        dx_code = self.dx_code
        sy = [f"SY,{dx_code[cd]},{fmt_day(dd, era)},{o},,,,"
              for cd, dd, o in zip(dcode.tolist(), dday.tolist(), dout.tolist(), strict=True)]
        d1 = day1.tolist()
        drug_pre, proc_pre, dev_pre = self.drug_pre, self.proc_pre, self.dev_pre
        items = ([f"{drug_pre[cd]}{n},,,,,,,{_days(d1[j], n)}"
                  for j, cd, n in zip(gr.tolist(), gcode.tolist(), gsup.tolist(), strict=True)]
                 + [f"{proc_pre[cd]}{_days(d1[j], 1)}" for j, cd in zip(pr.tolist(), pcode.tolist(), strict=True)]
                 + [f"{dev_pre[cd]}{_days(d1[j], 1)}" for j, cd in zip(vr.tolist(), vcode.tolist(), strict=True)])
        return _group(dr, sy, v), _group(np.concatenate([gr, pr, vr]), items, v), points.tolist()

    @staticmethod
    def _dedupe(rows: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Indices of the first occurrence of each (row, code), in row order (stable)."""
        if len(rows) == 0:
            return np.zeros(0, np.int64)
        key = rows.astype(np.int64) * (1 << 24) + codes
        order = np.argsort(key, kind="stable")
        ks = key[order]
        first = np.ones(len(ks), bool)
        first[1:] = ks[1:] != ks[:-1]
        return np.sort(order[first])

    def _count_dx(self, patients: np.ndarray, codes: np.ndarray) -> None:
        """A diagnosis is one token per patient and code (ingest keeps its first observation)."""
        key = np.unique(patients.astype(np.int64) * len(self.dx_code) + codes)
        byte, bit = key >> 3, (key & 7).astype(np.uint8)
        new = ((self.dx_seen[byte] >> bit) & 1) == 0
        np.bitwise_or.at(self.dx_seen, byte[new], (np.uint8(1) << bit[new]).astype(np.uint8))
        self.tokens["dx"] += np.bincount(codes_of(key[new], len(self.dx_code)), minlength=self.n_codes["dx"])

    def master_rows(self) -> dict:
        """Rows for masters.csv files: file name -> [(code, name, mapped_code, class)]."""
        c = self.cat
        return {"diseases.csv": [(cd, nm, icd, icd3) for cd, nm, icd, icd3 in c.dx],
                "drugs.csv": [(cd, nm, yj7, yj4) for cd, nm, yj7, yj4, _, _ in c.drugs],
                "procedures.csv": [(cd, nm, kubun, klass) for cd, nm, kubun, klass, _, _ in c.procs],
                "devices.csv": [(cd, nm, "", klass) for cd, nm, klass, _ in c.devices]}

    def code_tokens(self) -> dict:
        """MEDS code -> token count of the codes written so far."""
        c = self.cat
        out = {}
        for kind_, prefix, rows in (("dx", "JPDX//", c.dx), ("drug", "JPDRUG//", c.drugs),
                                    ("proc", "JPPROC//", c.procs),
                                    ("device", "JPDEVICE//", c.devices)):
            t = self.tokens[kind_]
            for i in np.flatnonzero(t).tolist():
                out[prefix + rows[i][0]] = int(t[i])
        return out


def _flat_cdf(w: np.ndarray) -> np.ndarray:
    """Row-normalised CDFs of a (G, K) weight table, row g shifted by g: one monotone flat array."""
    cdf = np.cumsum(w, axis=1)
    return (cdf / cdf[:, -1:] + np.arange(len(w))[:, None]).ravel()


def _choose(flat: np.ndarray, g: np.ndarray, u: np.ndarray, k_all: int) -> np.ndarray:
    """Inverse-CDF pick of a column per row: row g of a `_flat_cdf` table of k_all columns, uniforms u."""
    pos = np.searchsorted(flat, g + u, side="right") - g * k_all
    return np.clip(pos, 0, k_all - 1)


def codes_of(key: np.ndarray, n_codes: int) -> np.ndarray:
    return (key % n_codes).astype(np.int64)


def _group(rows: np.ndarray, lines: list, v: int) -> list:
    """CRLF-joined lines per visitor 0..v-1 ("" where none); lines are in the order of `rows` per visitor."""
    out = [""] * v
    if not lines:
        return out
    order = np.argsort(rows, kind="stable").tolist()
    rs = np.sort(rows, kind="stable")
    bounds = np.flatnonzero(np.diff(rs)) + 1
    starts = np.concatenate([[0], bounds]).tolist()
    ends = np.concatenate([bounds, [len(rs)]]).tolist()
    for a, b in zip(starts, ends, strict=True):
        out[int(rs[a])] = "\r\n".join([lines[i] for i in order[a:b]])
    return out


def background_codes() -> set:
    """Every MEDS code the layer can write (for tests and statistics)."""
    c = catalogue()
    return ({"JPDX//" + r[0] for r in c.dx} | {"JPDRUG//" + r[0] for r in c.drugs}
            | {"JPPROC//" + r[0] for r in c.procs} | {"JPDEVICE//" + r[0] for r in c.devices})



KIND_PREFIX = {"JPDX//": "diagnoses", "JPDRUG//": "drugs", "JPPROC//": "procedures", "JPDEVICE//": "devices"}


class PlantedTokens:
    """Token counts of the planted receipts, the way ingest turns them into MEDS events: a diagnosis once
    per (patient, code, 疑い), an SI/IY/TO record once per day with a count, one visit per receipt."""

    def __init__(self):
        self.units: Counter = Counter()
        self.codes: Counter = Counter()
        self.seen: dict = {}

    def add(self, receipts) -> None:
        units, codes, seen = self.units, self.codes, self.seen
        for r in receipts:
            codes["JPVISIT//INPATIENT" if int(r.rtype[-1]) % 2 else "JPVISIT//OUTPATIENT"] += 1
            for u in r.items:
                units[u[3]] += 1
            mine = seen.setdefault(r.patient, set())
            for s in r.sy:
                key = (s[0], s[3])
                if key not in mine:
                    mine.add(key)
                    codes["JPDX//" + s[0]] += 1

    def counts(self, patients_with_claims: int, deaths: int) -> Counter:
        out = Counter(self.codes)
        for tokens, n in self.units.items():
            for code, days in tokens:
                out[code] += n * days
        out["SEX"] += patients_with_claims              # SEX//M or SEX//F, and MEDS_BIRTH, per patient
        out["MEDS_BIRTH"] += patients_with_claims
        out["MEDS_DEATH"] += deaths
        return out


def cohort_statistics(planted: Counter, background: dict, patient_years: float) -> dict:
    """synth.json `vocabulary`: distinct codes per kind, rank-frequency summary (log-log slope over ranks
    10-1,000 of all codes), tokens per patient-year, background token share."""
    allc = Counter(planted)
    allc.update(background)
    distinct = {name: sum(1 for c in allc if c.startswith(p)) for p, name in KIND_PREFIX.items()}
    distinct_bg = {name: sum(1 for c in background if c.startswith(p)) for p, name in KIND_PREFIX.items()}
    freq = np.sort(np.array([v for v in allc.values() if v > 0], np.float64))[::-1]
    n_bg, n_all = sum(background.values()), float(freq.sum())
    ranks = np.arange(1, len(freq) + 1)
    lo, hi = 10, min(1000, len(freq))
    slope = float(np.polyfit(np.log(ranks[lo - 1:hi]), np.log(freq[lo - 1:hi]), 1)[0]) if hi - lo >= 10 else None
    cum = np.cumsum(freq) / max(n_all, 1.0)
    return {
        "distinct_codes": sum(distinct.values()), "distinct_codes_by_kind": distinct,
        "distinct_background_codes_by_kind": distinct_bg,
        "tokens": int(n_all), "background_tokens": int(n_bg), "background_token_share": n_bg / max(n_all, 1.0),
        "patient_years": patient_years, "tokens_per_patient_year": n_all / max(patient_years, 1e-9),
        "rank_frequency": {
            "loglog_slope_ranks_10_1000": slope,
            "count_at_rank": {str(r): int(freq[r - 1]) for r in (1, 10, 100, 1000, 3000, 10000) if r <= len(freq)},
            "token_share_of_top": {str(r): float(cum[r - 1]) for r in (10, 100, 1000) if r <= len(freq)},
            "codes_seen_once": int((freq == 1).sum()), "codes_seen_5_plus": int((freq >= 5).sum()),
        },
    }
