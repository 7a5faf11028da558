"""`evaluate` end to end on a hand-built store with planted signals: LightGBM only (no torch needed)."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from claimsfm.data import build_store
from claimsfm.errors import ClaimsfmError
from claimsfm.eval.run import EvalConfig, run
from claimsfm.splits import TRAIN
from claimsfm.tasks.cohort import build_cohort
from claimsfm.tasks.spec import load_task

from helpers.storekit import planted_records, write_records


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_records(planted_records(), root)
    store = build_store(root, root / "store", min_count=1)
    # An oracle that knows the label up to noise, as truth/oracle_<task>.parquet does after ingest.
    c = build_cohort(store, load_task("statin_any_use"))
    rng = np.random.default_rng(0)
    p = np.clip(c.label * 0.8 + rng.random(len(c)) * 0.3, 0, 1)
    (root / "truth").mkdir()
    pq.write_table(pa.table({"subject_id": c.subject_id,
                             "prediction_time": pa.array(c.prediction_time, pa.timestamp("us")),
                             "p_observable": p, "p_latent": np.clip(p + 0.05, 0, 1), "label": c.label}),
                   root / "truth" / "oracle_statin_any_use.parquet")
    return root


def test_lightgbm_end_to_end_writes_metrics_and_predictions(data, tmp_path):
    out = tmp_path / "eval"
    cfg = EvalConfig(data=str(data), task="statin_any_use,t2dm", out=str(out), n_boot=200, quiet=True)
    metrics = run(cfg)
    on_disk = json.loads((out / "metrics.json").read_text())
    assert set(on_disk["tasks"]) == {"statin_any_use", "t2dm"}
    for name, t in metrics["tasks"].items():
        m = t["models"]["lightgbm"]
        assert m["auprc"] > m["prevalence"] + 0.1, (name, m)
        assert m["auprc_ci"][0] <= m["auprc"] <= m["auprc_ci"][1]
        preds = pq.read_table(out / "predictions" / name / "lightgbm.parquet")
        assert preds.column_names == ["subject_id", "prediction_time", "boolean_value", "predicted_boolean_value",
                                      "predicted_boolean_probability"]
        assert preds.num_rows == t["cohort"]["held_out"]["n"] == m["n"]
    statin = metrics["tasks"]["statin_any_use"]
    assert statin["cohort"]["oracle_matched"] == statin["cohort"]["held_out"]["n"]
    assert statin["cohort"]["oracle_label_agreement"] == 1.0
    assert statin["oracle"]["oracle_observable"]["auprc"] > 0.9
    assert (out / "config.json").is_file()


def test_caps_are_seeded_and_shared_across_tasks(data, tmp_path):
    from claimsfm.data import open_store
    from claimsfm.eval.samples import subsample

    store = open_store(data)
    a = subsample(build_cohort(store, load_task("statin_any_use")), 200, 50, seed=1)
    b = subsample(build_cohort(store, load_task("statin_new_user")), 200, 50, seed=1)
    assert np.bincount(a.split, minlength=3).tolist()[1:] == [50, 50] and (a.split == TRAIN).sum() == 200
    ka = set(zip(a.subject_id.tolist(), a.t_month.tolist()))
    kb = set(zip(b.subject_id.tolist(), b.t_month.tolist()))
    assert len(ka & kb) > 0.3 * len(kb)  # the hash keeps the same pairs when both cohorts hold them


def test_clear_errors(data, tmp_path):
    with pytest.raises(ClaimsfmError, match="unknown task 'nope'; known tasks: .*t2dm"):
        run(EvalConfig(data=str(data), task="nope", out=str(tmp_path / "x"), quiet=True))
    with pytest.raises(ClaimsfmError, match="--params: no pretraining run"):
        run(EvalConfig(data=str(data), task="t2dm", params="9M", runs=str(tmp_path), quiet=True))
    with pytest.raises(ClaimsfmError, match="nothing to evaluate"):
        run(EvalConfig(data=str(data), task="t2dm", baselines=(), quiet=True))
    with pytest.raises(ClaimsfmError, match="--features must be one of cls, cls\\+mean, cls\\+mean\\+last"):
        run(EvalConfig(data=str(data), task="t2dm", features="mean", quiet=True))


def test_a_task_without_positives_is_skipped_not_fatal(data, tmp_path):
    never = tmp_path / "never.toml"
    never.write_text('name = "never"\nkind = "incidence"\ntarget = ["ICD10//Q99"]\n[window]\nprediction_months = 12\n')
    metrics = run(EvalConfig(data=str(data), task="t2dm", task_files=(str(never),), out=str(tmp_path / "o"),
                             n_boot=100, quiet=True))
    assert set(metrics["tasks"]) == {"t2dm"} and "positives" in metrics["skipped"]["never"]["skipped"]
    with pytest.raises(ClaimsfmError, match="no selected task can be evaluated: never"):
        run(EvalConfig(data=str(data), task="", task_files=(str(never),), out=str(tmp_path / "p"), quiet=True))
