"""Two processes with gloo, started the way torchrun starts them (RANK, LOCAL_RANK, WORLD_SIZE,
MASTER_ADDR, MASTER_PORT), end with identical weights; only rank 0 writes the run folder."""
import json
import socket

import torch

from claimsfm.model import Encoder, load_checkpoint

_WORKER = """
import torch
from claimsfm.train.pretrain import PretrainConfig, train
model, summary = train(PretrainConfig(data={data!r}, params="0.05M", out={out!r}, steps=6, batch_tokens=2048,
                       micro_batch_tokens=512, max_len=64, lr=3e-3, eval_batches=1, progress=False,
                       attention="sdpa"))
torch.save({{k: v.clone() for k, v in model.state_dict().items()}}, {weights!r})
print("summary" if summary is not None else "none")
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_rank_gloo_ends_with_identical_weights(store_dir, tmp_path, run_python):
    out, port = tmp_path / "ddp", _free_port()
    procs = []
    for rank in range(2):
        env = {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": str(port)}
        code = _WORKER.format(data=str(store_dir), out=str(out), weights=str(tmp_path / f"rank{rank}.pt"))
        procs.append(run_python(code, cwd=tmp_path, env=env, wait=False))
    try:
        results = [p.communicate(timeout=240) for p in procs]
    finally:
        for p in procs:  # a hung rank must not outlive the test
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_stdout, stderr) in zip(procs, results):
        assert p.returncode == 0, stderr[-3000:]
    assert [r[0].strip() for r in results] == ["summary", "none"]
    w0, w1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2))
    assert w0.keys() == w1.keys()
    for key in w0:
        assert torch.equal(w0[key], w1[key]), key
    saved, cfg = load_checkpoint(out)  # what rank 0 wrote is what both ranks hold
    for key, value in saved.state_dict().items():
        assert torch.equal(value, w0[key]), key
    torch.manual_seed(0)
    fresh = Encoder(cfg).state_dict()
    assert not torch.equal(fresh["blocks.0.mlp.c_fc.weight"], w0["blocks.0.mlp.c_fc.weight"])
    settings = json.loads((out / "config.json").read_text())["settings"]
    assert settings["world_size"] == 2 and settings["accum"] == 2
    assert json.loads((out / "summary.json").read_text())["world_size"] == 2
