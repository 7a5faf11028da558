"""Downstream heads on a pretrained encoder: a frozen linear probe and full (multi-task) fine-tuning.

Both read the `[CLS]` vector (hidden state at `cu_seqlens[:-1]`) of sequences built once per
(subject, prediction time) and shared by every task.
- probe: embeddings computed once with the frozen encoder, then one logistic regression per task
  (standardised inputs, L2 strength chosen on tuning AUPRC);
- finetune: one encoder copy per task group with one linear head per task, masked BCE with
  positive-class weighting, early stopping on mean tuning AUPRC. The weighting shifts the optimal
  logit by log(pos_weight), so predictions subtract it again and stay probabilities (Brier).
Deterministic on CPU: seeded torch, seeded numpy shuffles, deterministic algorithms.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from claimsfm import optional

TRAIN, TUNING = 0, 1


@dataclass(frozen=True)
class HeadConfig:
    epochs: int = 3
    patience: int = 1
    lr: float = 1e-4
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    batch_tokens: int = 8192
    max_pos_weight: float = 50.0
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


def _cls(model, seqs, idx, device):
    from claimsfm.data import collate

    batch = collate(seqs, idx, mlm=None, layout="varlen")
    batch = {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}
    h = model(batch)                                    # (T, d)
    return h[batch["cu_seqlens"][:-1].long()]           # (B, d)


def embed(model, seqs, batch_tokens: int = 8192, device="cpu", desc="embed") -> np.ndarray:
    """[CLS] vectors of every sequence with the frozen encoder.  -> (n, d_model) float32"""
    torch = optional.torch()
    lengths = np.diff(np.asarray(seqs.offsets))
    order = np.argsort(lengths, kind="stable")          # similar lengths together: fewer wasted tokens
    out = np.zeros((len(lengths), model.config.d_model), dtype=np.float32)
    model.eval()
    with torch.no_grad():
        for idx in tqdm(token_batches(lengths, batch_tokens, order), desc=desc, leave=False):
            out[idx] = _cls(model, seqs, idx, device).float().cpu().numpy()
    return out


def probe(emb: np.ndarray, y: np.ndarray, split: np.ndarray, seed: int = 0) -> np.ndarray:
    """P(label) for every row from a logistic regression on train rows, C picked on tuning AUPRC."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(emb[split == TRAIN])
    x = scaler.transform(emb)
    best = None
    for c in (0.01, 0.1, 1.0):
        clf = LogisticRegression(C=c, max_iter=500, random_state=seed).fit(x[split == TRAIN], y[split == TRAIN])
        score = average_precision_score(y[split == TUNING], clf.predict_proba(x[split == TUNING])[:, 1])
        if best is None or score > best[0]:
            best = (score, clf)
    return best[1].predict_proba(x)[:, 1]


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
            out[idx] = head(_cls(model, seqs, idx, device)).float().cpu().numpy()
    return out


def finetune(run_dir, seqs, y: np.ndarray, mask: np.ndarray, split: np.ndarray, cfg: HeadConfig = HeadConfig(),
             device="cpu", desc="finetune") -> np.ndarray:
    """Fine-tune encoder + one head per task column; P(label) for every row.

    y, mask (n, k) bool: label and whether row n is in task k's cohort; split (n,) uint8.
    """
    torch = optional.torch()
    from claimsfm.model import load_checkpoint

    torch.manual_seed(cfg.seed)
    model, mcfg = load_checkpoint(run_dir, device=device)
    head = torch.nn.Linear(mcfg.d_model, y.shape[1]).to(device)
    train = np.flatnonzero((split == TRAIN) & mask.any(axis=1))
    tune = np.flatnonzero((split == TUNING) & mask.any(axis=1))
    pos = (y & mask)[train].sum(axis=0)
    neg = (~y & mask)[train].sum(axis=0)
    pos_weight = np.clip(neg / np.maximum(pos, 1), 1.0, cfg.max_pos_weight)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight, dtype=torch.float32, device=device),
                                         reduction="none")
    opt = torch.optim.AdamW([{"params": model.parameters(), "lr": cfg.lr},
                             {"params": head.parameters(), "lr": cfg.head_lr}], weight_decay=cfg.weight_decay)
    lengths = np.diff(np.asarray(seqs.offsets))
    rng = np.random.default_rng(cfg.seed)
    best, best_state, stale = -1.0, None, 0
    for epoch in range(cfg.epochs):
        model.train()
        batches = token_batches(lengths, cfg.batch_tokens, rng.permutation(train))
        for idx in tqdm(batches, desc=f"{desc} epoch {epoch + 1}/{cfg.epochs}", leave=False):
            logits = head(_cls(model, seqs, idx, device))                     # (B, k)
            target = torch.as_tensor(y[idx], dtype=torch.float32, device=device)
            m = torch.as_tensor(mask[idx], dtype=torch.float32, device=device)
            loss = (loss_fn(logits, target) * m).sum() / m.sum().clamp(min=1.0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(model.parameters()) + list(head.parameters()), 1.0)
            opt.step()
        score = _mean_ap(y[tune], mask[tune], _predict_logits(model, head, seqs, tune, cfg, device)[tune])
        if score > best:
            best, stale = score, 0
            best_state = (copy.deepcopy(model.state_dict()), copy.deepcopy(head.state_dict()))
        else:
            stale += 1
            if stale > cfg.patience:
                break
    model.load_state_dict(best_state[0])
    head.load_state_dict(best_state[1])
    logits = _predict_logits(model, head, seqs, np.arange(len(lengths)), cfg, device)
    shifted = logits - np.log(pos_weight)[None, :].astype(np.float32)
    return 1.0 / (1.0 + np.exp(-shifted.astype(np.float64)))

