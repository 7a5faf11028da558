"""Helpers of the MEDS ecosystem tests. The MEDS tools (meds_reader, meds-evaluation, ACES,
meds-testing-helpers) are found in $CLAIMSFM_MEDS_BIN (a folder, e.g. the bin/ of a separate venv
that holds es-aces), beside this Python, or on PATH.
A test whose tool is missing skips and says which tool and how to get it."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

SALT = {"CLAIMSFM_SALT": "meds-ecosystem-test-salt"}


def find_tool(name: str) -> str | None:
    folders = [os.environ.get("CLAIMSFM_MEDS_BIN"), str(Path(sys.executable).parent)]
    for folder in filter(None, folders):
        cand = Path(folder) / name
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    return shutil.which(name)


def need_tool(name: str, package: str) -> str:
    path = find_tool(name)
    if path is None:
        pytest.skip(f"{name} not found ({package}: pip install it, or set CLAIMSFM_MEDS_BIN to its bin folder)")
    return path


def run_tool(args, cwd, timeout=300):
    """Run a MEDS tool; its own environment, so a separate venv's tool never sees claimsfm's."""
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args[0]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def write_meds_rows(folder: Path, rows: list[dict], splits: dict | None = None, meta: dict | None = None,
               schema: pa.Schema | None = None) -> Path:
    """A small foreign MEDS dataset: data/0.parquet from `rows`, optional subject_splits and dataset.json."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / "data" / "0.parquet")
    (folder / "metadata").mkdir(exist_ok=True)
    if splits is not None:
        pq.write_table(pa.table({"subject_id": pa.array(list(splits), pa.int64()),
                                 "split": pa.array(list(splits.values()), pa.string())}),
                       folder / "metadata" / "subject_splits.parquet")
    if meta is not None:
        (folder / "metadata" / "dataset.json").write_text(json.dumps(meta))
    return folder


def check_predictions(path, auprc, tmp_path):
    """MEDS-evaluation columns and types, the stated threshold rule, and the same AUPRC from its CLI."""
    from sklearn.metrics import average_precision_score

    from claimsfm.eval.report import DECISION_THRESHOLD

    t = pq.read_table(path)
    assert t.schema.field("predicted_boolean_probability").type == pa.float32()
    p = t["predicted_boolean_probability"].to_numpy()
    assert np.array_equal(t["predicted_boolean_value"].to_numpy(zero_copy_only=False), p >= DECISION_THRESHOLD)
    assert average_precision_score(t["boolean_value"].to_numpy(zero_copy_only=False), p) == auprc
    try:
        from meds_evaluation.schema import PredictionSchema
    except ImportError:
        pytest.skip("meds-evaluation is not installed")
    PredictionSchema.validate(t)  # its strict schema check: raises on a wrong column or type
    cli_tool = find_tool("meds-evaluation-cli")
    if cli_tool is None:
        pytest.skip("meds-evaluation-cli not found")
    out = tmp_path / "meds_eval.json"
    run_tool([cli_tool, f"predictions_path={path}", f"output_file={out}", f"hydra.run.dir={tmp_path / 'hydra'}"],
             tmp_path)
    assert json.loads(out.read_text())["samples_equally_weighted"]["average_precision_score"] == auprc
