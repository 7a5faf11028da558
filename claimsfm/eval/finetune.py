"""Downstream heads on a pretrained encoder: a frozen linear probe and full (multi-task) fine-tuning.

Both read a per-sequence vector pooled from one forward pass over sequences built once per
(subject, prediction time) and shared by every task: `features` picks the [CLS] state (hidden at
`cu_seqlens[:-1]`), plus the mean over the code tokens, plus the mean over the last visit's codes.
A briefly pretrained encoder's [CLS] alone holds little of the history; the means carry it.
- probe: vectors computed once with the frozen encoder, then one logistic regression per task
  (standardised inputs; L2 strength and class weighting chosen on tuning AUPRC);
- finetune: one encoder copy per task group with one linear head per task, started at the probe
  solution, masked BCE with positive-class weighting, early stopping on mean tuning AUPRC. The
  weighting shifts the optimal logit by log(pos_weight), so predictions subtract it again and stay
  probabilities (Brier). Its cost is bounded, not proportional to the cohort: the probe start is
  fitted on at most `probe_rows` train samples and each epoch trains on a fresh draw of `train_rows`
  (a patient contributes one sample per prediction time, and neighbouring ones are near copies).
Batches are packed like pretraining batches (collate's `seq_row` rows, the same attention path).
Deterministic on CPU: seeded torch, seeded numpy shuffles, deterministic algorithms.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from claimsfm import optional
from claimsfm.splits import TRAIN, TUNING

FEATURES = ("cls", "cls+mean", "cls+mean+last", "cls+mean+last+recent", "future", "future+cls+mean+last",
            "future+cls+mean+last+recent")
# "future": the future-codes head's vector on [CLS] (a model pretrained with that objective; the head's
# code logits are linear in it, so a linear probe can read any code's "occurs in the next months" score).
# "recent": means over the code tokens of the last 3 and 12 months before the prediction time (days_before),
# the windows of LightGBM's count features.
RECENT_DAYS = (91, 365)
PROBE_C = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
# The per-token columns of claimsfm.data.Sequences.
TOKEN_FIELDS = ("input_ids", "age_months", "visit", "months", "segment", "days_before", "gap_days")


@dataclass(frozen=True)
class HeadConfig:
    epochs: int = 3
    patience: int = 1
    lr: float = 1e-4
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    batch_tokens: int = 8192
    max_pos_weight: float = 50.0
    features: str = "cls+mean+last"
    # Sized so that `evaluate --task medication` on 1,200 patients fits in minutes on 2 cores.
    train_rows: int | None = 1024  # train samples per epoch, a fresh seeded draw each epoch (None: all)
    probe_rows: int | None = 2048  # train samples the starting head (the probe) is fitted on (None: all)
    seed: int = 0


def token_batches(lengths: np.ndarray, batch_tokens: int, order: np.ndarray) -> list[np.ndarray]:
    """Consecutive runs of `order` whose summed lengths stay within batch_tokens (at least one each)."""
    batches, start, total = [], 0, 0
    for k, i in enumerate(order):
        if k > start and total + lengths[i] > batch_tokens:
            batches.append(order[start:k])
            start, total = k, 0
        total += int(lengths[i])
    if start < len(order):
        batches.append(order[start:])
    return batches


def _segment_mean(h, seq, keep, n_seq: int):
    """Mean of the rows of h with keep set, per sequence.  h (T, d), seq/keep (T,) -> (B, d); 0 if none."""
    torch = optional.torch()
    w = keep.to(h.dtype)
    total = torch.zeros(n_seq, h.shape[1], dtype=h.dtype, device=h.device).index_add_(0, seq, h * w[:, None])
    count = torch.zeros(n_seq, dtype=h.dtype, device=h.device).index_add_(0, seq, w)
    return total / count.clamp(min=1.0)[:, None]


def n_parts(features: str) -> int:
    """How many d_model-wide parts the pooled vector of `features` has."""
    return sum(len(RECENT_DAYS) if part == "recent" else 1 for part in features.split("+"))


def pool(h, batch, features: str = "cls+mean+last", future=None):
    """Per-sequence vectors of one varlen batch.  h (T, d) -> (B, d * n_parts(features))

    future: the model's FutureHead (needed by the "future" part)."""
    torch = optional.torch()
    from claimsfm.data.format import N_SPECIAL

    cu = batch["cu_seqlens"].long()
    n_seq = len(cu) - 1
    seq = torch.repeat_interleave(torch.arange(n_seq, device=h.device), cu[1:] - cu[:-1])   # (T,)
    code = batch["input_ids"] >= N_SPECIAL              # (T,) no [CLS] / [SEP]
    parts = []
    for part in features.split("+"):
        if part == "future":
            if future is None:
                from claimsfm.errors import ClaimsfmError

                raise ClaimsfmError("--features future needs a model pretrained with --future-months > 0")
            parts.append(future(h[cu[:-1]]))
        elif part == "cls":
            parts.append(h[cu[:-1]])
        elif part == "mean":
            parts.append(_segment_mean(h, seq, code, n_seq))
        elif part == "last":
            visit = batch["visit"]
            last = torch.zeros(n_seq, dtype=visit.dtype, device=h.device).scatter_reduce(0, seq, visit, "amax")
            parts.append(_segment_mean(h, seq, code & (visit == last[seq]), n_seq))
        elif part == "recent":
            parts += [_segment_mean(h, seq, code & (batch["days_before"] <= days), n_seq) for days in RECENT_DAYS]
    return torch.cat(parts, dim=1)


def _features(model, seqs, idx, device, features):
    from claimsfm.data import collate

    batch = collate(seqs, idx, mlm=None, layout="varlen")
    batch = {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}
    return pool(model(batch), batch, features, getattr(model, "future", None))   # (B, k * d)


def embed(model, seqs, batch_tokens: int = 8192, device="cpu", features: str = "cls+mean+last",
          desc="embed") -> np.ndarray:
    """Pooled vectors of every sequence with the frozen encoder.  -> (n, k * d_model) float32"""
    torch = optional.torch()
    lengths = np.diff(np.asarray(seqs.offsets))
    order = np.argsort(lengths, kind="stable")          # similar lengths together: fewer wasted tokens
    out = np.zeros((len(lengths), model.config.d_model * n_parts(features)), dtype=np.float32)
    model.eval()
    with torch.no_grad():
        for idx in tqdm(token_batches(lengths, batch_tokens, order), desc=desc, leave=False):
            out[idx] = _features(model, seqs, idx, device, features).float().cpu().numpy()
    return out


def probe_fit(emb: np.ndarray, y: np.ndarray, split: np.ndarray, seed: int = 0) -> tuple[np.ndarray, float]:
    """(w (f,), b) of a logistic regression on train rows: P(label) = sigmoid(emb @ w + b).

    Fitted on standardised inputs, with C and the class weighting (none / balanced) picked on tuning
    AUPRC, then folded back to raw inputs. Balanced weights move the optimal logit by
    log(n_neg / n_pos); b subtracts it again so the predictions stay probabilities. One BLAS thread:
    on a shared 2-core machine threaded BLAS made these small fits ~30x slower (and run-dependent).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _probe_fit(emb, y, split, seed)


def _probe_fit(emb, y, split, seed):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score
    from sklearn.preprocessing import StandardScaler

    tr, tu = split == TRAIN, split == TUNING
    scaler = StandardScaler().fit(emb[tr])
    x = scaler.transform(emb)
    n_pos = max(int(y[tr].sum()), 1)
    shift = {None: 0.0, "balanced": float(np.log(max(int(tr.sum()) - n_pos, 1) / n_pos))}
    best = None
    for weight in (None, "balanced"):
        for c in PROBE_C:
            clf = LogisticRegression(C=c, class_weight=weight, max_iter=1000, random_state=seed).fit(x[tr], y[tr])
            score = average_precision_score(y[tu], clf.decision_function(x[tu])) if y[tu].any() else 0.0
            score = round(score, 6)                     # float-noise ties go to the stronger L2 / no weights
            if best is None or score > best[0]:
                best = (score, clf, shift[weight])
    w = best[1].coef_[0] / scaler.scale_
    return w, float(best[1].intercept_[0] - w @ scaler.mean_ - best[2])


def probe(emb: np.ndarray, y: np.ndarray, split: np.ndarray, seed: int = 0) -> np.ndarray:
    """P(label) for every row from `probe_fit`."""
    w, b = probe_fit(emb, y, split, seed)
    return 1.0 / (1.0 + np.exp(-(emb.astype(np.float64) @ w + b)))


def _mean_ap(y, mask, p) -> float:
    from sklearn.metrics import average_precision_score

    scores = [average_precision_score(y[mask[:, k], k], p[mask[:, k], k])
              for k in range(y.shape[1]) if y[mask[:, k], k].any()]
    return float(np.mean(scores)) if scores else 0.0


def _predict_logits(model, head, seqs, rows, cfg, device) -> np.ndarray:
    torch = optional.torch()
    lengths = np.diff(np.asarray(seqs.offsets))
    out = np.zeros((len(lengths), head.out_features), dtype=np.float32)
    model.eval()
    with torch.no_grad():
        for idx in token_batches(lengths, cfg.batch_tokens, rows[np.argsort(lengths[rows], kind="stable")]):
            out[idx] = head(_features(model, seqs, idx, device, cfg.features)).float().cpu().numpy()
    return out


def finetune(run_dir, seqs, y: np.ndarray, mask: np.ndarray, split: np.ndarray, cfg: HeadConfig = HeadConfig(),
             device="cpu", desc="finetune") -> np.ndarray:
    """Fine-tune encoder + one head per task column; P(label) (n, k) for every tuning and held-out row.

    y, mask (n, k) bool: label and whether row n is in task k's cohort; split (n,) uint8. Train rows,
    which are never scored, get NaN (predicting them would cost a forward pass over most of the pool).
    """
    torch = optional.torch()
    from claimsfm.model import load_checkpoint

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model, mcfg = load_checkpoint(run_dir, device=device)
    head = torch.nn.Linear(mcfg.d_model * n_parts(cfg.features), y.shape[1]).to(device)
    train = np.flatnonzero((split == TRAIN) & mask.any(axis=1))
    tune = np.flatnonzero((split == TUNING) & mask.any(axis=1))
    pos = (y & mask)[train].sum(axis=0)
    neg = (~y & mask)[train].sum(axis=0)
    pos_weight = np.clip(neg / np.maximum(pos, 1), 1.0, cfg.max_pos_weight)
    tune_logits = _init_head_from_probe(model, head, seqs, y, mask, split, train, tune, np.log(pos_weight), cfg,
                                        device, rng)
    best_state, tune_logits = _train(model, head, seqs, y, mask, train, tune, tune_logits, pos_weight, cfg, device,
                                     desc, rng)
    model.load_state_dict(best_state[0])
    head.load_state_dict(best_state[1])
    logits = np.full((len(split), y.shape[1]), np.nan, dtype=np.float32)
    logits[tune] = tune_logits
    rest = np.setdiff1d(np.flatnonzero(split != TRAIN), tune)
    logits[rest] = _predict_logits(model, head, seqs, rest, cfg, device)[rest]
    shifted = logits - np.log(pos_weight)[None, :].astype(np.float32)
    return 1.0 / (1.0 + np.exp(-shifted.astype(np.float64)))


def _draw(rows: np.ndarray, n: int | None, rng) -> np.ndarray:
    """At most n of rows (all when n is None), a seeded draw, in their original order."""
    return rows if n is None or len(rows) <= n else np.sort(rng.choice(rows, n, replace=False))


def _init_head_from_probe(model, head, seqs, y, mask, split, train, tune, log_pos_weight, cfg, device, rng):
    """Start each task's head at its probe solution on the frozen encoder (epoch 0 = the probe).

    The probe is fitted on at most cfg.probe_rows train rows and chosen on every tuning row. The
    weighted loss's optimum sits log(pos_weight) above the calibrated logit, hence the bias shift.
    Returns the starting head's tuning logits (len(tune), k), so epoch 0 needs no second pass.
    """
    torch = optional.torch()
    used = np.concatenate([_draw(train, cfg.probe_rows, rng), tune])
    emb = np.zeros((len(split), head.in_features), dtype=np.float32)
    emb[used] = embed(model, take_sequences(seqs, used), cfg.batch_tokens, device, cfg.features, desc="probe init")
    with torch.no_grad():
        for k in range(y.shape[1]):
            rows = used[mask[used, k]]
            fit = y[rows[split[rows] == TRAIN], k]
            if not fit.any() or fit.all():              # one class: keep the random head
                continue
            w, b = probe_fit(emb[rows], y[rows, k], split[rows], cfg.seed)
            head.weight[k] = torch.as_tensor(w, dtype=head.weight.dtype)
            head.bias[k] = float(b + log_pos_weight[k])
        return head(torch.as_tensor(emb[tune], device=device)).float().cpu().numpy()


def take_sequences(seqs, idx):
    """The sequences `idx` as their own Sequences (CSR rebuilt, the same fields)."""
    from dataclasses import replace

    starts, ends = seqs.offsets[idx], seqs.offsets[idx + 1]
    lens = ends - starts
    flat = np.repeat(starts - np.r_[0, np.cumsum(lens)[:-1]], lens) + np.arange(int(lens.sum()))
    cols = {name: np.asarray(getattr(seqs, name))[flat] for name in TOKEN_FIELDS}
    return replace(seqs, offsets=np.r_[0, np.cumsum(lens)].astype(np.int64), subjects=seqs.subjects[idx], **cols)


def make_optimizer(model, head, pos_weight, cfg: HeadConfig, device):
    """(AdamW over encoder and head, masked positive-weighted BCE loss) of fine-tuning."""
    torch = optional.torch()
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight, dtype=torch.float32, device=device),
                                         reduction="none")
    opt = torch.optim.AdamW([{"params": model.parameters(), "lr": cfg.lr},
                             {"params": head.parameters(), "lr": cfg.head_lr}], weight_decay=cfg.weight_decay)
    return opt, loss_fn


def train_step(model, head, opt, loss_fn, seqs, y, mask, idx, cfg: HeadConfig, device) -> float:
    """One optimizer step on sequences idx (one packed varlen batch); returns the loss."""
    torch = optional.torch()
    logits = head(_features(model, seqs, idx, device, cfg.features))      # (B, k)
    target = torch.as_tensor(y[idx], dtype=torch.float32, device=device)
    m = torch.as_tensor(mask[idx], dtype=torch.float32, device=device)
    loss = (loss_fn(logits, target) * m).sum() / m.sum().clamp(min=1.0)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(list(model.parameters()) + list(head.parameters()), 1.0)
    opt.step()
    return float(loss.detach())


def _train(model, head, seqs, y, mask, train, tune, tune_logits, pos_weight, cfg, device, desc, rng):
    """Epochs of masked, positive-weighted BCE on cfg.train_rows fresh train rows each; returns the
    (encoder, head) states with the best mean tuning AUPRC, the starting point (scored by its
    `tune_logits`) included, and their tuning logits. Stops after `patience` epochs without a gain."""
    opt, loss_fn = make_optimizer(model, head, pos_weight, cfg, device)
    lengths = np.diff(np.asarray(seqs.offsets))
    best, best_state, best_logits, stale = -1.0, None, None, 0
    for epoch in range(cfg.epochs + 1):
        if epoch > 0:
            model.train()
            rows = rng.permutation(_draw(train, cfg.train_rows, rng))
            for idx in tqdm(token_batches(lengths, cfg.batch_tokens, rows), desc=f"{desc} epoch {epoch}/{cfg.epochs}",
                            leave=False):
                train_step(model, head, opt, loss_fn, seqs, y, mask, idx, cfg, device)
            tune_logits = _predict_logits(model, head, seqs, tune, cfg, device)[tune]
        score = _mean_ap(y[tune], mask[tune], tune_logits)
        if score > best:
            best, best_logits, stale = score, tune_logits, 0
            best_state = (copy.deepcopy(model.state_dict()), copy.deepcopy(head.state_dict()))
        else:
            stale += 1
            if stale > cfg.patience:
                break
    return best_state, best_logits
