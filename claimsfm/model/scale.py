"""The scale ladder: one table of named sizes, one shape rule, exact parameter counting.

A size names the *total trainable parameters for the actual vocabulary* (embeddings included), so
the same name gives a different shape on a 1,000-code and a 20,000-code vocabulary. The shape rule:

1. d_model runs over multiples of 32 below 512 (head_dim 32) and of 64 from 512 up (head_dim 64).
2. n_layer runs over 1..48. For each (d_model, n_layer), d_ff is solved so that the count hits the
   target exactly, then rounded to a multiple of 8 (the error this leaves is far below 1%).
3. Among shapes with 2 <= d_ff / d_model <= 6, keep the one closest to d_ff = 4 d_model and
   d_model / n_layer = 64 (BERT-base's aspect), measured in squared log ratios.

Named rows add the scale-dependent defaults (learning rate, tokens per optimizer step, token
budget); any other size ("50M") takes them by log-log interpolation between rows.
This module is pure Python so that `--dry-run` and the sweep can size models without torch.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from claimsfm.errors import ClaimsfmError

# Attention backends of the encoder (claimsfm.model.model): auto = Triton on CUDA when available, else SDPA.
BACKENDS = ("auto", "triton", "sdpa")

# Age is embedded in whole years with one extra bucket for "unknown" (negative age); see model.py.
N_AGE = 121
N_SEGMENT = 2
# Time inputs (model.time_bucket): days before the reference and gaps between visits, each in
# log-spaced buckets (12 per doubling of 15 + days; bucket 0 = unknown, the last one open-ended).
N_TIME = 128

# name, target params, peak lr, tokens per optimizer step, default token budget
_LADDERS = {
    "default": [
        ("2.2M", 2.2e6, 2.0e-3, 32_768, 50_000_000),
        ("11M", 11e6, 1.0e-3, 65_536, 250_000_000),
        ("32M", 32e6, 6.0e-4, 131_072, 700_000_000),
        ("57M", 57e6, 5.0e-4, 131_072, 1_200_000_000),
        ("101M", 101e6, 4.0e-4, 262_144, 2_000_000_000),
    ],
    # Small enough that each row pretrains in about a minute on a 2-core CPU (demo vocabulary).
    "demo": [
        ("demo-S", 0.2e6, 3.0e-3, 4_096, 600_000),
        ("demo-M", 0.5e6, 2.0e-3, 4_096, 500_000),
        ("demo-L", 1.2e6, 1.5e-3, 4_096, 400_000),
    ],
}
_TOLERANCE = 0.05
# The default horizon of the future-codes objective: the built-in tasks' prediction window (3 months).
FUTURE_MONTHS = 3


@dataclass(frozen=True)
class ModelConfig:
    """The encoder's shape; `claimsfm.model.model.Encoder` is built from one of these."""

    n_layer: int
    d_model: int
    n_head: int
    d_ff: int
    vocab_size: int
    max_len: int = 512
    time_inputs: bool = True  # embed days before the reference and visit gaps (the ablation switch)
    # Horizon of the future-codes pretraining objective: from [CLS], predict which codes occur in the
    # months after the reference (0 = MLM only, the ablation switch). docs/internals.md §4.
    future_months: int = FUTURE_MONTHS

    def __post_init__(self):
        if self.d_model % self.n_head:
            raise ClaimsfmError(f"d_model {self.d_model} is not a multiple of n_head {self.n_head}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head


@dataclass(frozen=True)
class Scale:
    """A resolved size: the shape plus its training defaults."""

    name: str
    target: float
    n_layer: int
    d_model: int
    n_head: int
    d_ff: int
    lr: float
    batch_tokens: int
    tokens: int

    def config(self, vocab_size: int, max_len: int, time_inputs: bool = True,
               future_months: int = FUTURE_MONTHS) -> ModelConfig:
        return ModelConfig(self.n_layer, self.d_model, self.n_head, self.d_ff, vocab_size, max_len, time_inputs,
                           future_months)


def ladder_names(ladder: str = "default") -> list[str]:
    if ladder not in _LADDERS:
        raise ClaimsfmError(f"unknown ladder '{ladder}' (known: {', '.join(_LADDERS)})")
    return [row[0] for row in _LADDERS[ladder]]


DEFAULT_SCALES = ",".join(ladder_names("default"))  # `claimsfm sweep --scales`: the paper's ladder (2.2M ... 101M)


def embedding_params(vocab_size: int, max_len: int, d_model: int, time_inputs: bool = True) -> int:
    """Code + age + visit + segment (+ 2 time) tables (the MLM head is tied to the code table).

    Shapes are solved with the time tables counted, so a size gives the same shape with and without them.
    """
    return (vocab_size + N_AGE + max_len + N_SEGMENT + (2 * N_TIME if time_inputs else 0)) * d_model


def block_params(d_model: int, d_ff: int) -> int:
    """One pre-LN block: 2 LayerNorms, qkv + output projections, 2-layer MLP, all with biases."""
    d = d_model
    return 2 * 2 * d + (3 * d * d + 3 * d) + (d * d + d) + (d * d_ff + d_ff) + (d_ff * d + d)


def future_head_params(d_model: int, vocab_size: int) -> int:
    """The future-codes head: a d x d projection, a LayerNorm and a per-code bias (its output weights are
    the code table, tied like the MLM head). A pretraining head: not counted in non-embedding params."""
    return d_model * d_model + d_model + 2 * d_model + vocab_size


def count_params(vocab_size: int, max_len: int, n_layer: int, d_model: int, d_ff: int,
                 time_inputs: bool = True, future_months: int = FUTURE_MONTHS) -> dict:
    """Exact trainable parameter counts of `Encoder` (checked against the module in the tests).

    Shapes are solved and sizes named without the future head (it adds about d^2 + vocab)."""
    non_embedding = n_layer * block_params(d_model, d_ff) + 2 * d_model  # + final LayerNorm
    total = non_embedding + embedding_params(vocab_size, max_len, d_model, time_inputs)
    if future_months:
        total += future_head_params(d_model, vocab_size)
    return {"total_params": total, "non_embedding_params": non_embedding}


def head_dim_for(d_model: int) -> int:
    return 64 if d_model >= 512 else 32


def _widths():
    return [*range(32, 512, 32), *range(512, 4097, 64)]


def parse_size(text: str) -> float:
    """'50M' -> 5e7; accepts K/M/B suffixes and plain numbers ('1.5e6')."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kKmMbB]?)\s*", text)
    if not m:
        raise ClaimsfmError(f"--params: cannot read '{text}' (use a ladder row like 11M or a size like 50M)")
    mult = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9}[m.group(2).lower()]
    return float(m.group(1)) * mult


def solve_shape(target: float, vocab_size: int, max_len: int) -> tuple[int, int, int, int]:
    """(n_layer, d_model, n_head, d_ff) whose count is closest to `target` by the rule above."""
    best, best_score = None, math.inf
    for d in _widths():
        budget = target - embedding_params(vocab_size, max_len, d) - 2 * d
        if budget <= 0:
            break
        for n_layer in range(1, 49):
            per_layer = budget / n_layer
            # block_params is linear in d_ff: 4d^2 + 9d + d_ff * (2d + 1)
            d_ff = (per_layer - 4 * d * d - 9 * d) / (2 * d + 1)
            d_ff = int(round(d_ff / 8)) * 8
            if not 2 * d <= d_ff <= 6 * d:
                continue
            score = math.log(d_ff / (4 * d)) ** 2 + math.log((d / n_layer) / 64) ** 2
            if score < best_score:
                best, best_score = (n_layer, d, d // head_dim_for(d), d_ff), score
    if best is None:
        floor = embedding_params(vocab_size, max_len, 32)
        raise ClaimsfmError(
            f"--params {target / 1e6:.3g}M is too small for a vocabulary of {vocab_size} codes and "
            f"max_len {max_len}: the embeddings alone need about {floor / 1e6:.3g}M parameters"
        )
    return best


def _row(name: str):
    for rows in _LADDERS.values():
        for row in rows:
            if row[0] == name:
                return row
    return None


def _interpolate_defaults(target: float) -> tuple[float, int, int]:
    """lr, batch_tokens, tokens for an off-ladder size: log-log between the nearest rows."""
    rows = sorted((r for rs in _LADDERS.values() for r in rs), key=lambda r: r[1])
    if target <= rows[0][1]:
        return rows[0][2], rows[0][3], rows[0][4]
    if target >= rows[-1][1]:
        return rows[-1][2], rows[-1][3], rows[-1][4]
    for lo, hi in zip(rows, rows[1:]):
        if lo[1] <= target <= hi[1]:
            w = math.log(target / lo[1]) / math.log(hi[1] / lo[1])
            lr = math.exp((1 - w) * math.log(lo[2]) + w * math.log(hi[2]))
            batch = 2 ** round((1 - w) * math.log2(lo[3]) + w * math.log2(hi[3]))
            tokens = int(math.exp((1 - w) * math.log(lo[4]) + w * math.log(hi[4])))
            return lr, batch, tokens
    raise AssertionError("unreachable: rows cover the range")


@dataclass(frozen=True)
class Defaults:
    """What a size name fixes before the vocabulary is known: its target count and training defaults."""

    target: float
    lr: float
    batch_tokens: int
    tokens: int


def defaults(name: str) -> Defaults:
    """A ladder row's target and defaults, or those interpolated for any size ('50M'); no shape solved."""
    row = _row(name)
    if row is not None:
        return Defaults(*row[1:])
    target = parse_size(name)
    return Defaults(target, *_interpolate_defaults(target))


def resolve(name: str, vocab_size: int, max_len: int) -> Scale:
    """A ladder row ('11M', 'demo-S') or any size ('50M') -> Scale with shape and defaults."""
    d = defaults(name)
    target, lr, batch_tokens, tokens = d.target, d.lr, d.batch_tokens, d.tokens
    n_layer, d_model, n_head, d_ff = solve_shape(target, vocab_size, max_len)
    total = count_params(vocab_size, max_len, n_layer, d_model, d_ff, future_months=0)["total_params"]
    if abs(total - target) > _TOLERANCE * target:
        raise ClaimsfmError(
            f"--params {name}: the closest shape has {total:,} parameters, more than 5% from the target "
            f"for a vocabulary of {vocab_size} codes"
        )
    return Scale(name, target, n_layer, d_model, n_head, d_ff, lr, batch_tokens, tokens)


def resolve_scale(params: str, vocab_size: int, max_len: int = 512, time_inputs: bool = True,
                  future_months: int = FUTURE_MONTHS) -> ModelConfig:
    """ModelConfig for a ladder row ('11M', 'demo-S') or any size ('50M') on this vocabulary."""
    return resolve(params, vocab_size, max_len).config(vocab_size, max_len, time_inputs, future_months)
