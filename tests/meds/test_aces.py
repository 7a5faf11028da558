"""ACES labels in: the shipped ACES config (examples/aces/t2dm.yaml) runs on ingest output, its labels
follow claimsfm's own t2dm rule (ICD-10 parents reached through receipt codes, confirmed diagnoses
only), and `claimsfm evaluate --labels` scores them; the predictions pass MEDS-evaluation.
Skips when es-aces (aces-cli, expand_shards) is not found: it pins polars < 2, so CI keeps it in a
separate venv named by $CLAIMSFM_MEDS_BIN."""
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from claimsfm.data import open_store
from claimsfm.tasks.cohort import target_events
from claimsfm.tasks.spec import load_task

from helpers.medstools import check_predictions, need_tool, run_tool

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "aces"
US_DAY = 86_400_000_000


def _icd10_codes():
    spec = importlib.util.spec_from_file_location("icd10_codes", EXAMPLES / "icd10_codes.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow  # ACES (three shards) plus one LightGBM evaluation: ~30 s on a busy 2-core machine
def test_aces_labels_follow_the_builtin_rule_and_evaluate(ingested, cli, tmp_path):
    aces = need_tool("aces-cli", "es-aces")
    expand = need_tool("expand_shards", "es-aces")
    data, _ = ingested
    config = (EXAMPLES / "t2dm.yaml").read_text()
    listed = set(re.search(r"any: \[([^\]]*)\]", config).group(1).replace(" ", "").split(","))
    present = set(_icd10_codes().matching_codes(data, ["ICD10//E11", "ICD10//E14"]))
    assert present and present <= listed  # the example's receipt codes cover every E11/E14 code in the data

    shards = run_tool([expand, data / "data"], tmp_path).stdout.strip()
    run_tool([aces, "data=sharded", "data.standard=meds", f"data.root={data / 'data'}", f"data.shard={shards}",
              f"cohort_dir={EXAMPLES}", "cohort_name=t2dm", f"log_dir={tmp_path / 'logs'}",
              f"output_filepath={tmp_path}/labels/${{data.shard}}.parquet", "-m"], tmp_path)
    labels = pq.read_table(tmp_path / "labels")
    sid = labels["subject_id"].to_numpy()
    day = labels["prediction_time"].cast("int64").to_numpy() // US_DAY
    y = labels["boolean_value"].to_numpy(zero_copy_only=False)
    assert len(y) > 1000 and 0 < y.sum() < len(y)

    # claimsfm's own t2dm target (confirmed codes whose ICD-10 parent is E11/E14) at the ACES times.
    store = open_store(data)
    target = target_events(store, load_task("t2dm"))
    rows = store.rows_of(sid)
    assert (rows >= 0).all()
    assert np.array_equal(target.count(rows, day, day + 365) > 0, y)  # label window (t, t + 365 d]
    assert (target.count(rows, np.full(len(rows), -10**6), day) == 0).all()  # washout: none at or before t

    proc = cli("evaluate", "--data", data, "--labels", tmp_path / "labels", "--labels-name", "t2dm_aces",
               "--out", tmp_path / "eval", "--max-train", "3000", "--max-eval", "1500", "--n-boot", "100")
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())["tasks"]["t2dm_aces"]
    check_predictions(tmp_path / "eval" / "predictions" / "t2dm_aces" / "lightgbm.parquet",
                      metrics["models"]["lightgbm"]["auprc"], tmp_path)
