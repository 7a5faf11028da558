"""Schedule, step planning and FLOP accounting (pure functions, no training)."""
import math

import pytest
import torch

from claimsfm.errors import ClaimsfmError
from claimsfm.model import Encoder, ModelConfig
from claimsfm.train.accounting import matmul_weights, step_flops
from claimsfm.train.optim import lr_at
from claimsfm.train.pretrain import PretrainConfig, make_plan


def test_warmup_then_cosine_to_a_tenth():
    peak, total, warm = 1e-3, 100, 10
    lrs = [lr_at(s, total, warm, peak) for s in range(total)]
    assert lrs[0] == pytest.approx(peak / warm)
    assert lrs[warm - 1] == pytest.approx(peak)
    assert all(a >= b for a, b in zip(lrs[warm:], lrs[warm + 1:]))
    assert lr_at(total, total, warm, peak) == pytest.approx(0.1 * peak)


def test_plan_splits_the_global_batch_over_ranks_and_micro_batches():
    cfg = PretrainConfig(data="unused", params="2.2M", batch_tokens=65_536, micro_batch_tokens=8_192, tokens=10**6)
    one = make_plan(cfg, vocab_size=20_000, world_size=1)
    four = make_plan(cfg, vocab_size=20_000, world_size=4)
    assert (one.accum, one.micro_batch_tokens, one.batch_tokens) == (8, 8_192, 65_536)
    assert (four.accum, four.batch_tokens) == (2, 65_536)
    assert one.total_steps == math.ceil(10**6 / 65_536)
    assert make_plan(PretrainConfig(data="unused", params="2.2M", steps=7), 20_000).total_steps == 7
    with pytest.raises(ClaimsfmError, match="--lr"):
        make_plan(PretrainConfig(data="unused", lr=-1.0), 20_000)
    with pytest.raises(ClaimsfmError, match="--micro-batch-tokens"):
        make_plan(PretrainConfig(data="unused", micro_batch_tokens=100), 20_000)


def test_flops_formula_follows_the_modules():
    cfg = ModelConfig(n_layer=3, d_model=64, n_head=2, d_ff=200, vocab_size=500, max_len=128)
    model = Encoder(cfg)
    linear = sum(m.weight.numel() for m in model.blocks.modules() if isinstance(m, torch.nn.Linear))
    assert matmul_weights(cfg) == linear
    assert sum(isinstance(m, torch.nn.Linear) for m in model.modules()) == 4 * 3 + 1  # + the future head
    f = step_flops(cfg, real_tokens=1000, masked_tokens=150, sum_len_sq=40_000)
    assert f["flops"] == 6 * linear * 1000 + 6 * 500 * 64 * 150 + f["flops_attention"]
    assert f["flops_attention"] == 12 * 3 * 64 * 40_000
