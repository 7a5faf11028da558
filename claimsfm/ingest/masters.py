"""Code masters (CSV `code,name,mapped_code,class`) -> metadata/codes.parquet rows.

internals.md §1: diseases -> JPDX// with parents ICD10//<mapped>, ICD10//<class>; drugs ->
JPDRUG// with YJ//; procedures -> JPPROC// with KUBUN//.
"""
from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa

from claimsfm.errors import ClaimsfmError, located, os_error
from claimsfm.io import arrow_string_lists, arrow_strings

MASTERS = {  # file -> (MEDS prefix, parent prefix, code width)
    "diseases.csv": ("JPDX//", "ICD10//", 7),
    "drugs.csv": ("JPDRUG//", "YJ//", 9),
    "procedures.csv": ("JPPROC//", "KUBUN//", 9),
    "devices.csv": ("JPDEVICE//", "DEVICE_CLASS//", 9),  # 特定器材: no public parent code; the class is the parent
}
HEADER = ["code", "name", "mapped_code", "class"]
FIXED = {
    "SEX//M": "sex: male", "SEX//F": "sex: female", "MEDS_BIRTH": "birth", "MEDS_DEATH": "death",
    "JPVISIT//INPATIENT": "inpatient receipt (one month at one facility)",
    "JPVISIT//OUTPATIENT": "outpatient receipt (one month at one facility)",
}


def read_masters(folder: Path) -> dict[str, tuple[str, list[str]]]:
    """MEDS code -> (description, parent codes) from every master file present in `folder`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ClaimsfmError(f"--masters: {folder} is not a folder")
    found = [name for name in MASTERS if (folder / name).is_file()]
    if not found:
        raise ClaimsfmError(f"--masters: {folder} holds none of {', '.join(MASTERS)}")
    out: dict[str, tuple[str, list[str]]] = {}
    for name in found:
        try:
            out.update(_read_one(folder / name, *MASTERS[name]))
        except UnicodeDecodeError:
            raise located(folder / name, None, "not UTF-8 text; save the master as UTF-8 (a CP932 export?)") from None
        except OSError as exc:
            raise os_error(exc, "cannot read the master") from None
    return out


def _read_one(path: Path, prefix: str, parent: str, width: int) -> dict:
    rows = {}
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip().lstrip("\ufeff") for h in header] != HEADER:
            raise located(path, 1, f"header must be {','.join(HEADER)}")
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != 4:
                raise located(path, lineno, f"expected 4 fields, got {len(row)}")
            code, desc, mapped, klass = (x.strip() for x in row)
            if len(code) != width or not code.isdigit():
                raise located(path, lineno, f"code must be {width} digits")
            parents = [parent + p for p in (mapped, klass) if p]
            rows[prefix + code] = (desc, list(dict.fromkeys(parents)))
    return rows


def codes_table(codes: list[str], masters: dict | None) -> pa.Table:
    """One row per distinct code in the data, sorted by code."""
    masters = masters or {}
    names = sorted(set(codes))
    desc, parents = [], []
    for c in names:
        d, p = masters.get(c, (FIXED.get(c), []))
        desc.append(d)
        parents.append(p)
    return pa.table({"code": arrow_strings(names), "description": arrow_strings(desc),
                     "parent_codes": arrow_string_lists(parents)})
