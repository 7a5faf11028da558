"""A MEDS label table as a task: `claimsfm evaluate --labels FILE.parquet [--labels-name NAME]`.

The table (MEDS LabelSchema: `subject_id`, `prediction_time`, `boolean_value`; ACES writes one) gives
the rows and labels; claimsfm adds only what a built-in task also gets: the store's split of each
subject and the input cutoff. Inputs are events at or before `prediction_time`. The store keeps days,
so an event's day counts as "at or before" when the whole day does: `t_day` is the day of
`prediction_time` when that time is 23:59:59 or later, or when the dataset has no times of day at all
(every event at midnight, as in claims); otherwise the day before. A day-resolution store can never
leak an event from later on the prediction day.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from claimsfm.data.format import month_of_day
from claimsfm.errors import ClaimsfmError, located
from claimsfm.io import read_parquet
from claimsfm.tasks.cohort import Cohort
from claimsfm.tasks.spec import TaskSpec

LABELS_KIND = "labels"  # TaskSpec.kind of a label-table task (fine-tuned as its own group)
LABEL_COLUMNS = ("subject_id", "prediction_time", "boolean_value")
_US_PER_DAY = 86_400_000_000
_END_OF_DAY_US = 86_399_000_000  # 23:59:59, the built-in tasks' prediction time of day


def label_spec(path, name: str | None = None) -> TaskSpec:
    """The TaskSpec standing for a label file: named `name` or the file's stem; no target or windows."""
    from claimsfm.outdir import check_name

    path = Path(path)
    if not path.exists():
        raise ClaimsfmError(f"--labels: {path}: no such file or folder")
    name = check_name(name or path.stem, "--labels-name")
    return TaskSpec(name=name, kind=LABELS_KIND, group=LABELS_KIND, description=f"MEDS labels from {path}",
                    target=(), prediction_months=0, observation_months=0, washout="none", washout_months=0,
                    min_age=0, min_history_months=0, active_months=0, every_months=0, path=str(path))


def label_files(path) -> list[Path]:
    """The parquet files of a label table: the file itself, or every *.parquet under a folder (ACES
    writes one file per MEDS shard), in a stable order."""
    path = Path(path)
    files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    if not files:
        raise ClaimsfmError(f"--labels: {path}: no .parquet files in this folder")
    return files


def read_labels(path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """(subject_id int64, prediction_time int64 µs, boolean_value bool, where) of a MEDS label table
    (a file or a folder of them); `where[i]` = (file, 1-based row) of row i, for error messages."""
    parts = [_read_label_file(f) for f in label_files(path)]
    where = [(f, r + 1) for f, p in zip(label_files(path), parts) for r in range(len(p[0]))]
    return (*(np.concatenate([p[k] for p in parts]) for k in range(3)), where)


def _read_label_file(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import pyarrow as pa
    import pyarrow.compute as pc

    t = read_parquet(path)
    missing = [c for c in LABEL_COLUMNS if c not in t.column_names]
    if missing:
        raise located(path, None, f"missing column(s) {', '.join(missing)}; a MEDS label table has "
                                  f"{', '.join(LABEL_COLUMNS)}")
    ptime = t["prediction_time"]
    if not (pa.types.is_timestamp(ptime.type) or pa.types.is_date(ptime.type)):
        raise located(path, None, f"prediction_time is {ptime.type}; it must be a timestamp")
    try:
        sid = pc.cast(t["subject_id"], pa.int64())
        label = pc.cast(t["boolean_value"], pa.bool_())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise located(path, None, "subject_id must be an integer and boolean_value a boolean") from None
    ptime = pc.cast(ptime, pa.timestamp("us"), safe=False).cast(pa.int64())
    for col, what in ((sid, "subject_id"), (ptime, "prediction_time"), (label, "boolean_value")):
        if col.null_count:
            row = int(pc.index(pc.is_null(col), True).as_py())
            raise located(path, row + 1, f"null {what}")
    return (sid.to_numpy().astype(np.int64), ptime.to_numpy().astype(np.int64),
            label.to_numpy(zero_copy_only=False).astype(bool))


def _has_time_of_day(data_dir) -> bool:
    """Whether the ingested dataset has events at times other than midnight (unknown: assume yes)."""
    from claimsfm.io import read_json

    path = Path(data_dir) / "metadata" / "dataset.json"
    if not path.is_file():
        return True
    n = read_json(path).get("claimsfm", {}).get("events_with_time_of_day")
    return n is None or n > 0


def input_day(ptime_us: np.ndarray, time_of_day: bool) -> np.ndarray:
    """Last day whose events are inputs at each prediction time (see the module docstring).  (n,) -> (n,) int64"""
    day = np.floor_divide(ptime_us, _US_PER_DAY)
    if not time_of_day:
        return day
    whole_day = ptime_us - day * _US_PER_DAY >= _END_OF_DAY_US
    return np.where(whole_day, day, day - 1)


def build_label_cohort(store, spec: TaskSpec, data_dir) -> Cohort:
    """The cohort of a label table: one row per distinct (subject, prediction_time), split from the
    store, sorted by (prediction_time, subject). A subject the store lacks, or one (subject,
    prediction_time) with two different labels, is a `file:row: reason` error."""
    sid, ptime, label, where = read_labels(spec.path)
    rows = store.rows_of(sid)
    if (rows < 0).any():
        i = int(np.flatnonzero(rows < 0)[0])
        raise located(*where[i], f"subject_id {sid[i]} is not in the token store {store.path} "
                                 "(labels from another dataset?)")
    order = np.lexsort((label, sid, ptime))
    same = (sid[order][1:] == sid[order][:-1]) & (ptime[order][1:] == ptime[order][:-1])
    clash = np.flatnonzero(same & (label[order][1:] != label[order][:-1]))
    if len(clash):
        a, b = sorted((order[clash[0]], order[clash[0] + 1]))
        (fa, ra), (fb, rb) = where[a], where[b]
        raise located(fb, rb, f"subject_id {sid[b]} has this prediction_time with another label at {fa}:{ra}")
    order = order[np.r_[True, ~same]]  # exact repeats (one trigger event listed twice) count once
    t_day = input_day(ptime[order], _has_time_of_day(data_dir))
    sid, ptime, label, rows = sid[order], ptime[order], label[order], rows[order]
    return Cohort(task=spec.name, kind=spec.kind, subject_idx=rows.astype(np.int64),
                  t_month=month_of_day(t_day).astype(np.int32), t_day=t_day.astype(np.int32), label=label,
                  split=np.asarray(store.split)[rows], subject_id=sid,
                  prediction_time=ptime.astype("datetime64[us]"))
