"""On a CUDA GPU: bf16 training picks the Triton backend, agrees with SDPA, and its loss falls."""
import pytest
import torch

from claimsfm.train.pretrain import PretrainConfig, run

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_bf16_pretraining_on_cuda_uses_triton(store_dir, tmp_path):
    summary = run(PretrainConfig(data=str(store_dir), params="0.05M", out=str(tmp_path / "gpu"), steps=30,
                                 batch_tokens=1024, max_len=64, lr=3e-3, eval_every=10, eval_batches=2,
                                 progress=False))
    assert summary["attention_backend"] == "triton"
    assert summary["gpu_hours"] > 0 and summary["peak_memory_bytes"] > 0 and summary["mfu"] > 0
    rows = [line for line in (tmp_path / "gpu" / "metrics.jsonl").read_text().splitlines() if "eval_loss" in line]
    first, last = (float(r.split('"eval_loss": ')[1].rstrip("}").split(",")[0]) for r in (rows[0], rows[-1]))
    assert last < first


def test_triton_and_sdpa_agree_in_bf16(store_dir):
    from claimsfm.data import PretrainLoader
    from claimsfm.model import Encoder, resolve_scale
    from claimsfm.train.loop import to_device

    batch = to_device(next(iter(PretrainLoader(str(store_dir), max_len=64, batch_tokens=1024))), "cuda")
    cfg = resolve_scale("0.2M", 53, 64)
    out = {}
    for backend in ("triton", "sdpa"):
        torch.manual_seed(0)
        model = Encoder(cfg, attention=backend).cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out[backend] = model(batch).float()
    torch.testing.assert_close(out["triton"], out["sdpa"], atol=3e-2, rtol=3e-2)
