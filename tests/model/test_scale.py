"""Scale ladder: every row within ±5% on its vocabulary, arbitrary sizes, exact counts on meta."""
import pytest
import torch

from claimsfm.errors import ClaimsfmError
from claimsfm.model import Encoder, ladder_names, parse_size, resolve_scale
from claimsfm.model.scale import resolve


def _meta_count(cfg):
    with torch.device("meta"):
        return Encoder(cfg).num_params()


@pytest.mark.parametrize("ladder,vocab", [("default", 20_000), ("default", 1_000), ("demo", 1_000)])
def test_every_row_within_five_percent(ladder, vocab):
    names = ladder_names(ladder)
    assert len(names) == (5 if ladder == "default" else 3)
    previous = 0
    for name in names:
        scale = resolve(name, vocab, 512)
        counts = _meta_count(resolve_scale(name, vocab, 512))
        assert abs(counts["total_params"] - scale.target) <= 0.05 * scale.target, (name, counts)
        assert 0 < counts["non_embedding_params"] < counts["total_params"]
        assert counts["total_params"] > previous
        previous = counts["total_params"]


def test_default_names_are_the_papers():
    assert ladder_names("default") == ["2.2M", "11M", "32M", "57M", "101M"]


@pytest.mark.parametrize("size", ["50M", "3M", "0.8M", "200M", "1.5e7"])
def test_arbitrary_sizes(size):
    target = parse_size(size)
    counts = _meta_count(resolve_scale(size, 20_000, 512))
    assert abs(counts["total_params"] - target) <= 0.05 * target


def test_heads_divide_width_and_defaults_interpolate():
    lo, mid, hi = (resolve(n, 20_000, 512) for n in ("32M", "45M", "57M"))
    assert mid.d_model % mid.n_head == 0
    assert hi.lr <= mid.lr <= lo.lr
    assert lo.tokens <= mid.tokens <= hi.tokens


def test_too_small_and_unreadable_sizes_fail_cleanly():
    with pytest.raises(ClaimsfmError, match="too small"):
        resolve("0.1M", 20_000, 512)
    with pytest.raises(ClaimsfmError, match="--params"):
        parse_size("big")
    with pytest.raises(ClaimsfmError):
        ladder_names("huge")


_BLOCK_TORCH = """
import sys

class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"torch is blocked in this test ({name})")
        return None

sys.meta_path.insert(0, _NoTorch())
from claimsfm.model import ModelConfig, resolve_scale
from claimsfm.model.scale import defaults
cfg = resolve_scale("11M", 20_000, 512)
assert isinstance(cfg, ModelConfig) and cfg.d_model % cfg.n_head == 0, cfg
assert defaults("50M").tokens > defaults("11M").tokens
assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules)
print(cfg.n_layer, cfg.d_model, cfg.n_head, cfg.d_ff)
"""


def test_resolve_scale_without_torch():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _BLOCK_TORCH], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    cfg = resolve_scale("11M", 20_000, 512)
    assert done.stdout.split() == [str(cfg.n_layer), str(cfg.d_model), str(cfg.n_head), str(cfg.d_ff)]
