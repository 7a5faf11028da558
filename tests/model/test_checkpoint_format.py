"""Checkpoints carry their format; one written before the time inputs is refused in one line."""
import json

import pytest
import torch

from claimsfm.errors import ClaimsfmError
from claimsfm.model import Encoder, ModelConfig, load_checkpoint, save_checkpoint
from claimsfm.model.checkpoint import CHECKPOINT_FORMAT

CFG = ModelConfig(n_layer=1, d_model=32, n_head=2, d_ff=64, vocab_size=40, max_len=16)


@pytest.mark.parametrize("time_inputs", [True, False])
def test_round_trip_keeps_the_time_inputs_switch(tmp_path, time_inputs):
    from dataclasses import replace

    torch.manual_seed(0)
    model = Encoder(replace(CFG, time_inputs=time_inputs))
    save_checkpoint(tmp_path, model)
    assert json.loads((tmp_path / "config.json").read_text())["checkpoint_format"] == CHECKPOINT_FORMAT
    loaded, cfg = load_checkpoint(tmp_path)
    assert cfg.time_inputs is time_inputs and hasattr(loaded, "wbefore") is time_inputs


@pytest.mark.parametrize("fmt", [None, 1, 99])
def test_other_formats_are_refused_in_one_line(tmp_path, fmt):
    save_checkpoint(tmp_path, Encoder(CFG))
    path = tmp_path / "config.json"
    data = json.loads(path.read_text())
    if fmt is None:  # written before checkpoints carried a format: format 1
        del data["checkpoint_format"]
        del data["settings"]["model"]["time_inputs"]
    else:
        data["checkpoint_format"] = fmt
    path.write_text(json.dumps(data))
    with pytest.raises(ClaimsfmError, match=f"checkpoint format {fmt or 1}, but this claimsfm reads format") as err:
        load_checkpoint(tmp_path)
    assert "\n" not in str(err.value)
