"""Re-key the ground truth of a `claimsfm synth` folder by subject_id (internals.md §2-3).

`truth/keys.parquet` maps the generator's `patient` to the identifying fields written into the
receipts; from them we compute the same subject_id the parsers' keys get (same salt, same link
mode). Every other truth parquet file with a `patient` column is written to `<out>/truth/` with
`patient` replaced by `subject_id` (rows repeated when one patient became several subjects) and
no identifying column. keys.parquet itself is never copied.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from claimsfm.errors import ClaimsfmError
from claimsfm.ingest import pseudo

KEY_COLUMNS = ("facility_code", "chart_no", "insurer_no", "card_symbol", "card_number", "birth_date", "sex")


def _str(v) -> str:
    return "" if v is None else str(v)


def patient_subjects(keys: pa.Table, salt: bytes, link_by: str) -> tuple[np.ndarray, np.ndarray]:
    """(patient, subject_id) pairs, unique, sorted by patient."""
    missing = [c for c in ("patient",) + KEY_COLUMNS if c not in keys.column_names]
    if missing:
        raise ClaimsfmError(f"truth/keys.parquet: missing columns {', '.join(missing)}")
    rows = keys.select(["patient", *KEY_COLUMNS]).to_pylist()
    pairs = set()
    for r in rows:
        if link_by == "insurer" and _str(r["insurer_no"]).strip():
            birth = pseudo.day_of(r["birth_date"])
            key = pseudo.insurer_key(_str(r["insurer_no"]), _str(r["card_symbol"]),
                                     _str(r["card_number"]), birth, r["sex"])
        else:
            key = pseudo.chart_key(_str(r["facility_code"]), _str(r["chart_no"]))
        pairs.add((int(r["patient"]), pseudo.subject_id(salt, key)))
    arr = np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def rekey_table(table: pa.Table, patients: np.ndarray, subjects: np.ndarray) -> pa.Table:
    """Replace `patient` by `subject_id`, repeating rows per subject of a patient."""
    p = table.column("patient").to_numpy().astype(np.int64)
    lo = np.searchsorted(patients, p, side="left")
    hi = np.searchsorted(patients, p, side="right")
    counts = hi - lo
    rows = np.repeat(np.arange(len(p)), counts)
    pos = np.repeat(lo, counts) + (np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts))
    keep = [c for c in table.column_names if c != "patient" and c not in KEY_COLUMNS]
    out = table.select(keep).take(pa.array(rows, pa.int64()))
    return out.add_column(0, "subject_id", pa.array(subjects[pos], pa.int64()))


def rekey_truth(truth_dir: Path, out_dir: Path, salt: bytes, link_by: str) -> list[str]:
    """Write re-keyed truth files into `out_dir`; returns their names."""
    keys_path = Path(truth_dir) / "keys.parquet"
    if not keys_path.is_file():
        raise ClaimsfmError(f"{truth_dir}: synthetic truth without keys.parquet")
    patients, subjects = patient_subjects(pq.read_table(keys_path), salt, link_by)
    written = []
    for path in sorted(Path(truth_dir).glob("*.parquet")):
        if path.name == "keys.parquet":
            continue
        table = pq.read_table(path)
        if "patient" not in table.column_names:
            continue
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        pq.write_table(rekey_table(table, patients, subjects), Path(out_dir) / path.name)
        written.append(path.name)
    return written
