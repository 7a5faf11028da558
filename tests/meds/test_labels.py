"""`claimsfm evaluate --labels`: a MEDS label table is a task like a built-in one (same rows, splits,
inputs and metrics), and the predictions it writes pass MEDS-evaluation with the same AUPRC."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from claimsfm.data import open_store
from claimsfm.errors import ClaimsfmError
from claimsfm.tasks.cohort import build_cohort
from claimsfm.tasks.labels import build_label_cohort, input_day, label_spec
from claimsfm.tasks.spec import load_task

from helpers.medstools import check_predictions

CAPS = ("--max-train", "2000", "--max-eval", "600", "--n-boot", "100", "--baselines", "lightgbm")
US_DAY = 86_400_000_000


def _label_table(cohort) -> pa.Table:
    return pa.table({"subject_id": pa.array(cohort.subject_id, pa.int64()),
                     "prediction_time": pa.array(cohort.prediction_time, pa.timestamp("us")),
                     "boolean_value": pa.array(cohort.label, pa.bool_())})


def test_input_day_rule():
    day = 20_000
    t = np.array([day * US_DAY, day * US_DAY + 12 * 3600 * 10**6, day * US_DAY + 86_399 * 10**6], np.int64)
    assert input_day(t, time_of_day=False).tolist() == [day, day, day]  # every event at midnight: <= t
    assert input_day(t, time_of_day=True).tolist() == [day - 1, day - 1, day]  # only whole days before t


@pytest.mark.slow  # two LightGBM fits and a bootstrap: ~25 s on a busy 2-core machine
def test_labels_of_a_builtin_task_evaluate_like_it(ingested, cli, tmp_path):
    data, _ = ingested
    store = open_store(data)
    spec = load_task("statin_any_use")
    builtin = build_cohort(store, spec)
    pq.write_table(_label_table(builtin), tmp_path / "statin.parquet")
    again = build_label_cohort(store, label_spec(tmp_path / "statin.parquet", "statin_labels"), data)
    for f in ("subject_idx", "t_day", "t_month", "label", "split", "subject_id", "prediction_time"):
        assert np.array_equal(getattr(again, f), getattr(builtin, f)), f

    # One run, both tasks: the label table must give the built-in task's cohort, features and scores.
    proc = cli("evaluate", "--data", data, "--task", "statin_any_use", "--labels", tmp_path / "statin.parquet",
               "--labels-name", "statin_labels", "--out", tmp_path / "b", *CAPS)
    assert proc.returncode == 0, proc.stderr[-2000:]
    tasks = json.loads((tmp_path / "b" / "metrics.json").read_text())["tasks"]
    ma, mb = tasks["statin_any_use"], tasks["statin_labels"]
    assert ma["cohort"]["held_out"] == mb["cohort"]["held_out"] and ma["cohort"]["train"] == mb["cohort"]["train"]
    assert ma["models"]["lightgbm"]["auprc"] == mb["models"]["lightgbm"]["auprc"]
    check_predictions(tmp_path / "b" / "predictions" / "statin_labels" / "lightgbm.parquet",
                       mb["models"]["lightgbm"]["auprc"], tmp_path)


def test_label_table_errors_name_file_and_row(ingested, tmp_path):
    data, _ = ingested
    store = open_store(data)
    sid = int(store.subject_ids[0])
    times = np.array(["2016-03-31T23:59:59", "2016-06-30T23:59:59"], "datetime64[us]")

    def check(table, match):
        pq.write_table(table, tmp_path / "l.parquet")
        with pytest.raises(ClaimsfmError, match=match):
            build_label_cohort(store, label_spec(tmp_path / "l.parquet"), data)

    good = {"subject_id": pa.array([sid, sid], pa.int64()), "prediction_time": pa.array(times, pa.timestamp("us")),
            "boolean_value": [True, False]}
    check(pa.table({**good, "subject_id": pa.array([sid, 12345], pa.int64())}),
          r"l.parquet:2: subject_id 12345 is not in the token store")
    check(pa.table({**good, "prediction_time": pa.array(times[[0, 0]], pa.timestamp("us"))}),
          r"l.parquet:2: subject_id \d+ has this prediction_time with another label at .*l.parquet:1")
    check(pa.table({k: v for k, v in good.items() if k != "boolean_value"}), "missing column.*boolean_value")
    check(pa.table({**good, "prediction_time": pa.array([1, 2], pa.int64())}), "prediction_time is int64")
    check(pa.table({**good, "boolean_value": pa.array([True, None], pa.bool_())}), r"l.parquet:2: null boolean_value")
    with pytest.raises(ClaimsfmError, match="--labels-name"):
        label_spec(tmp_path / "l.parquet", "../x")
    same = pa.table({**good, "prediction_time": pa.array(times[[0, 0]], pa.timestamp("us")),
                     "boolean_value": [True, True]})
    pq.write_table(same, tmp_path / "l.parquet")
    assert len(build_label_cohort(store, label_spec(tmp_path / "l.parquet"), data)) == 1  # a repeat counts once


def test_labels_cli_errors_are_one_line(ingested, cli, tmp_path):
    data, _ = ingested
    proc = cli("evaluate", "--data", data, "--labels-name", "x", "--baselines", "lightgbm")
    assert proc.returncode == 2 and "--labels-name" in proc.stderr and "Traceback" not in proc.stderr
    pq.write_table(pa.table({"subject_id": pa.array([1], pa.int64())}), tmp_path / "bad.parquet")
    proc = cli("evaluate", "--data", data, "--labels", tmp_path / "bad.parquet", "--out", tmp_path / "o")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ") and "bad.parquet" in proc.stderr
