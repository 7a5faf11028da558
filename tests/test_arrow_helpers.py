"""claimsfm.io's Arrow builders (arrow_array, arrow_strings, arrow_string_lists) against pa.array, their slow
twin: the same arrays, nulls included; and a UKE ingest that never imports pandas (pa.array would)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from claimsfm.io import arrow_array, arrow_string_lists, arrow_strings

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "uke"


@pytest.mark.parametrize("dtype,type_", [(np.int64, pa.int64()), (np.int64, pa.timestamp("us")),
                                         (np.int32, pa.int32()), (np.float32, pa.float32()), (np.int8, pa.int8())])
def test_arrow_array_matches_pa_array(dtype, type_):
    rng = np.random.default_rng(0)
    values = rng.integers(-100, 100, 1001).astype(dtype)
    for null in (None, rng.random(1001) < 0.3, np.zeros(1001, bool), np.ones(1001, bool)):
        got = arrow_array(values, type_, null)
        want = pa.array(values, type_, mask=null)
        assert got.equals(want) and got.null_count == want.null_count
    assert arrow_array(values[::2], type_).equals(pa.array(values[::2], type_))  # a strided view is copied
    with pytest.raises(ValueError):
        arrow_array(values.astype(np.int16), type_)


def test_arrow_strings_and_lists_match_pa_array():
    items = ["JPDX//I10", None, "", "日本語コード", "x" * 300, None]
    assert arrow_strings(items).equals(pa.array(items, pa.string()))
    assert arrow_strings([]).equals(pa.array([], pa.string()))
    lists = [["a", "bb"], [], ["日本"], [], ["c"]]
    assert arrow_string_lists(lists).equals(pa.array(lists, pa.list_(pa.string())))
    assert arrow_string_lists([]).equals(pa.array([], pa.list_(pa.string())))


def test_uke_ingest_does_not_import_pandas(tmp_path):
    code = ("import sys\nfrom pathlib import Path\nfrom claimsfm.ingest import IngestConfig, write_dataset\n"
            f"cfg = IngestConfig(inputs=[Path({str(FIXTURES / 'good')!r})], out=Path({str(tmp_path / 'ds')!r}), "
            "progress=False, min_count=1)\n"
            "write_dataset(cfg, cfg.out, store=True)\nprint('pandas' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env={"CLAIMSFM_SALT": "no-pandas-test", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
