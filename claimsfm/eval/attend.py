"""Attentive heads on a frozen encoder (`--mode attend`): the FM's adaptation that reads every token.

A linear probe sees one pooled vector per sequence; with a vocabulary of thousands of codes in a
d_model of ~100, a mean over ~100 token states cannot say which codes were there, nor when (a linear
classifier on the summed input embedding tells a statin token from the rest at AUPRC ~0.6 on the demo
cohort). The attentive head reads the token states themselves:
- the encoder runs once, frozen, over every needed sequence; its final token states are kept (float16);
- per task, `heads` attention-pooling heads score every token: a learned query against a projection of
  the token's state (which carries its code in context and its time before the prediction time, from the
  time inputs), plus a learned relevance of the token's code per head (a (vocab, heads) table starting
  at 0: the task's own view of the code table, what full fine-tuning would change in the embeddings);
- the pooled values, the [CLS] state and the mean state go through a LayerNorm into one logit;
- a wide part reads the same input tokens linearly: an L2 logistic regression (scikit-learn, C picked on
  tuning AUPRC) on log(1 + count) of each code in the sequence within 1, 3, 6 and 12 months and the whole
  window before the prediction time, plus the age and the days since the last event at the prediction
  time (one-hot bins of the sequence's own time inputs, `_Rows.static`). It is fitted first; the
  attentive (deep) part then learns the residual with the wide logit as a fixed offset, its output
  layers starting at 0, so training starts from the wide model and early stopping (tuning AUPRC, the
  untrained start included) only keeps what the encoder adds. On train rows the offset is out of fold
  (patient-grouped K-fold): in-sample, the wide model fits its own train rows too closely and leaves the
  deep part almost no residual to learn. `wide=False` is the attentive head alone (positive-class
  weighted BCE, the weighting's logit shift taken out again so outputs stay probabilities);
- it is trained on the task's train rows (AdamW), with early stopping on tuning AUPRC.
A frozen head over a small encoder cannot express "this code was here" as sharply as a sparse linear
model (on the 6,000-patient benchmark cohort a bag-of-codes logistic regression on the encoder's own
128-token window beat the attentive head alone by 0.02-0.2 AUPRC, and the head's result swung by 0.2
with its seed); the wide part is what full fine-tuning's embedding updates would learn, at a fraction
of the cost. What the encoder adds on top is measured by the benchmark's untrained control.
Cost: one encoder pass per row plus small head epochs, so the whole pool of train rows can be used.
Deterministic on CPU (seeded torch and numpy).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from claimsfm import optional
from claimsfm.splits import HELD_OUT, TRAIN, TUNING


@dataclass(frozen=True)
class AttendConfig:
    heads: int = 4
    key_dim: int = 16
    epochs: int = 30
    patience: int = 2
    min_delta: float = 1e-3         # a tuning-AUPRC gain below this counts as no gain (early stopping)
    lr: float = 3e-3
    relevance_lr: float = 3e-2      # the per-code relevance table: sparse rows, a larger step
    relevance_decay: float = 0.0    # its L2 penalty (mean over the batch's tokens' codes)
    weight_decay: float = 0.01
    batch_rows: int = 256
    max_pos_weight: float = 50.0
    train_rows: int | None = 8192   # train rows per task, a seeded draw (None: all); bounds the cached states
    tune_rows: int | None = 4096    # tuning rows scored after each epoch for early stopping (None: all)
    batch_tokens: int = 8192        # encoder pass
    wide: bool = True               # the linear bag-of-codes part, fitted first (module docstring)
    wide_c: tuple[float, ...] = (0.1, 1.0)  # its inverse L2 strengths, one picked on tuning AUPRC
    wide_folds: int = 5             # the deep part's train offsets come out of fold (patient-grouped); <2: in-sample
    seed: int = 0


# The wide part's count windows before the prediction time (None: the whole window): 1, 3, 6 and 12 months step
# through recency. On the 30,000-patient benchmark cohort (seed 1) they raised tuning AUPRC on every any-use task
# over 3 and 12 months only (anticoagulant 0.944 -> 0.947, statin 0.959 -> 0.963, DPP-4i 0.969 -> 0.973).
WIDE_WINDOWS_DAYS = (30, 91, 182, 365, None)
# The wide part's two one-hot readings of the sequence's own time inputs at the prediction time: the age
# (5-year bins up to 100+, then "unknown") and the days since the last event (the [CLS] gap; bins below, then "none").
WIDE_AGE_BIN_YEARS, WIDE_AGE_BINS = 5, 21
WIDE_GAP_EDGES_DAYS = (31, 92, 183, 366, 731)
WIDE_STATIC_COLUMNS = WIDE_AGE_BINS + 1 + len(WIDE_GAP_EDGES_DAYS) + 2   # age bins + unknown, gap bins + none


def _module():
    torch = optional.torch()
    nn, F = torch.nn, torch.nn.functional
    from claimsfm.model.scale import N_TIME

    class AttentiveHead(nn.Module):
        """Token states of a varlen batch -> one logit per sequence."""

        def __init__(self, d_model: int, vocab_size: int, heads: int, key_dim: int):
            super().__init__()
            self.heads, self.key_dim = heads, key_dim
            self.key = nn.Linear(d_model, heads * key_dim)
            self.value = nn.Linear(d_model, heads * key_dim)
            self.query = nn.Parameter(torch.randn(heads, key_dim) * 0.1)
            self.relevance = nn.Parameter(torch.zeros(vocab_size, heads))
            self.recency = nn.Parameter(torch.zeros(N_TIME, heads))  # score by the token's time before t
            self.sink = nn.Parameter(torch.zeros(heads))  # the score of "no token": lets a head attend to nothing
            width = heads * key_dim + 2 * d_model
            self.norm = nn.LayerNorm(width)
            self.out = nn.Linear(width, 1)
            self.out_evidence = nn.Linear(heads, 1, bias=False)  # read raw: a LayerNorm would blur it

        def zero_output(self):
            """Start at logit 0 everywhere (on top of an offset: the wide part)."""
            for p in (self.out.weight, self.out.bias, self.out_evidence.weight):
                nn.init.zeros_(p)

        def forward(self, h, input_ids, when, cu):  # h (T, d), input_ids / when (T,), cu (B+1,) -> (B,)
            n = len(cu) - 1
            lens = cu[1:] - cu[:-1]
            seq = torch.repeat_interleave(torch.arange(n, device=h.device), lens)
            k = self.key(h).view(-1, self.heads, self.key_dim)
            v = self.value(h).view(-1, self.heads, self.key_dim)
            # F.embedding, not indexing: its CPU backward accumulates in a fixed order (index_put_ does not)
            score = ((k * self.query).sum(-1) / self.key_dim ** 0.5 + F.embedding(input_ids, self.relevance)
                     + F.embedding(when, self.recency))
            top = self.sink.detach().expand(n, -1).clone()
            top = top.scatter_reduce(0, seq[:, None].expand(-1, self.heads), score.detach(), "amax")
            w = (score - top[seq]).exp()                                                        # softmax per sequence
            total = torch.zeros(n, self.heads, device=h.device, dtype=w.dtype).index_add_(0, seq, w)
            total = total + (self.sink - top).exp()                                            # + the sink
            pooled = torch.zeros(n, self.heads, self.key_dim, device=h.device, dtype=v.dtype)
            pooled = pooled.index_add_(0, seq, w[..., None] * v) / total[..., None]
            evidence = top + total.log()                # log-sum-exp of the scores: how much relevant there is
            mean = torch.zeros(n, h.shape[1], device=h.device, dtype=h.dtype).index_add_(0, seq, h) / lens[:, None]
            states = self.norm(torch.cat([pooled.reshape(n, -1), h[cu[:-1]], mean], 1))
            return (self.out(states) + self.out_evidence(evidence)).squeeze(1)

    return AttentiveHead


def token_states(model, seqs, batch_tokens: int = 8192, device="cpu", desc="token states") -> np.ndarray:
    """Final token states of every sequence with the frozen encoder, in seqs' flat order.  -> (T, d) float16"""
    torch = optional.torch()
    from claimsfm.data import collate
    from claimsfm.eval.finetune import token_batches

    lengths = np.diff(np.asarray(seqs.offsets))
    out = np.zeros((int(lengths.sum()), model.config.d_model), dtype=np.float16)
    model.eval()
    with torch.no_grad():
        for idx in tqdm(token_batches(lengths, batch_tokens, np.argsort(lengths, kind="stable")), desc=desc,
                        leave=False):
            batch = collate(seqs, idx, mlm=None, layout="varlen")
            h = model({k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}).float().cpu().numpy()
            cu = batch["cu_seqlens"].numpy().astype(np.int64)
            for j, i in enumerate(idx):
                out[seqs.offsets[i]:seqs.offsets[i + 1]] = h[cu[j]:cu[j + 1]]
    return out


class _Rows:
    """Varlen batches of cached token states."""

    def __init__(self, states, seqs):
        torch = optional.torch()
        self.states = torch.from_numpy(np.asarray(states, dtype=np.float32))
        self.ids = torch.from_numpy(np.asarray(seqs.input_ids, dtype=np.int64))
        from claimsfm.model.model import time_bucket

        self.when = time_bucket(torch.from_numpy(np.asarray(seqs.days_before, dtype=np.int64)))
        self.offsets = np.asarray(seqs.offsets)
        self.days_before = np.asarray(seqs.days_before)
        self.vocab_size = int(seqs.vocab_size)
        self.subjects = np.asarray(seqs.subjects)
        self.age_months = np.asarray(seqs.age_months)
        self.gap_days = np.asarray(seqs.gap_days)
        self._wide = None

    def wide(self):
        """(rows, len(WIDE_WINDOWS_DAYS) * vocab + WIDE_STATIC_COLUMNS) CSR: log(1 + count) of each code per
        window before t, then the one-hot age and last-event gap at t (`static`)."""
        if self._wide is None:
            import scipy.sparse as sp

            ids = self.ids.numpy()
            n, V = len(self.offsets) - 1, self.vocab_size
            row = np.repeat(np.arange(n), np.diff(self.offsets))
            blocks = []
            for days in WIDE_WINDOWS_DAYS:
                m = (self.days_before >= 0) & (True if days is None else self.days_before <= days)
                blocks.append(sp.csr_matrix((np.ones(int(m.sum())), (row[m], ids[m])), shape=(n, V)).log1p())
            static = self.static()
            blocks.append(sp.csr_matrix((np.ones(2 * n), (np.repeat(np.arange(n), 2), static.ravel())),
                                        shape=(n, WIDE_STATIC_COLUMNS)))
            self._wide = sp.hstack(blocks, format="csr")
        return self._wide

    def static(self) -> np.ndarray:
        """(rows, 2) int: the age bin at the prediction time (from the last token's age and days before t;
        WIDE_AGE_BINS = unknown) and the gap bin of the [CLS] token's days since the last event (offset past
        the age bins; the last = no event)."""
        first, last = self.offsets[:-1], self.offsets[1:] - 1
        months = self.age_months[last] + self.days_before[last] / (365.25 / 12)
        known = (last > first) & (self.age_months[last] >= 0)
        age = np.where(known, np.minimum(np.maximum(months, 0) // (12 * WIDE_AGE_BIN_YEARS), WIDE_AGE_BINS - 1),
                       WIDE_AGE_BINS).astype(np.int64)
        gap = self.gap_days[first]
        gap_bin = np.where(gap >= 0, np.searchsorted(WIDE_GAP_EDGES_DAYS, gap, side="right"),
                           len(WIDE_GAP_EDGES_DAYS) + 1)
        return np.stack([age, WIDE_AGE_BINS + 1 + gap_bin], axis=1)

    def batch(self, rows):
        torch = optional.torch()
        lens = self.offsets[rows + 1] - self.offsets[rows]
        cu = np.r_[0, np.cumsum(lens)]
        flat = torch.from_numpy(np.repeat(self.offsets[rows] - cu[:-1], lens) + np.arange(int(cu[-1])))
        return self.states[flat], self.ids[flat], self.when[flat], torch.from_numpy(cu)


def _logits(head, data: _Rows, rows, batch_rows=512) -> np.ndarray:
    torch = optional.torch()
    head.eval()
    out = []
    with torch.no_grad():
        for a in range(0, len(rows), batch_rows):
            out.append(head(*data.batch(rows[a:a + batch_rows])).numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def _fit_wide(X, y, train, tune, cs, groups=None, folds: int = 0) -> np.ndarray:
    """Logit of the wide part for every row of X: the L2 logistic regression whose C scores best on tuning.

    With `folds` >= 2 and `groups` (a patient per row), the train rows' logits are out of fold instead
    (GroupKFold over the train rows at the chosen C): the deep part then learns the residual the wide model
    leaves on unseen patients, not on the rows it was fitted to, which it fits too closely."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score
    from sklearn.model_selection import GroupKFold

    def fit(c, rows):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return LogisticRegression(C=c, max_iter=1000).fit(X[rows], y[rows])

    best, best_c, best_logit = -1.0, None, None
    for c in cs:
        logit = fit(c, train).decision_function(X)
        score = average_precision_score(y[tune], logit[tune]) if y[tune].any() else 0.0
        if score > best:
            best, best_c, best_logit = score, c, logit
    n_groups = 0 if groups is None else len(np.unique(groups[train]))
    if folds >= 2 and n_groups >= folds:
        for fit_idx, out_idx in GroupKFold(n_splits=folds).split(train, groups=groups[train]):
            if np.unique(y[train[fit_idx]]).size == 2:   # a fold without both classes keeps the in-sample logit
                best_logit[train[out_idx]] = fit(best_c, train[fit_idx]).decision_function(X[train[out_idx]])
    return best_logit


def fit_predict(data: _Rows, d_model: int, vocab_size: int, y: np.ndarray, split: np.ndarray, rows: np.ndarray,
                cfg: AttendConfig, info: dict | None = None) -> np.ndarray:
    """P(label) of `rows` (pool rows into data) for one task; NaN for train rows that were not drawn.

    y, split: the task's labels and splits, aligned with rows. `info`, when given, receives what was kept:
    wide (bool), deep_epochs (epochs of the deep part kept; 0 = none: the output is the wide model's or, without
    it, the untrained head's), epochs_run and tuning_auprc."""
    torch = optional.torch()
    from sklearn.metrics import average_precision_score

    from claimsfm.eval.finetune import _draw

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    train = _draw(np.flatnonzero(split == TRAIN), cfg.train_rows, rng)
    tune = _draw(np.flatnonzero(split == TUNING), cfg.tune_rows, rng)   # early stopping reads a seeded draw
    head = _module()(d_model, vocab_size, cfg.heads, cfg.key_dim)
    rest = [p for name, p in head.named_parameters() if name != "relevance"]
    opt = torch.optim.AdamW([{"params": rest, "lr": cfg.lr},
                             {"params": [head.relevance], "lr": cfg.relevance_lr, "weight_decay": 0.0}],
                            weight_decay=cfg.weight_decay)
    if cfg.wide:      # the deep part learns the residual of the wide model, unweighted, from logit 0
        offset = _fit_wide(data.wide()[rows], y, train, tune, cfg.wide_c, data.subjects[rows], cfg.wide_folds)
        head.zero_output()
        pos_weight = 1.0
    else:
        offset = np.zeros(len(rows))
        n_pos = max(int(y[train].sum()), 1)
        pos_weight = float(np.clip((len(train) - n_pos) / n_pos, 1.0, cfg.max_pos_weight))
    weight = torch.tensor(pos_weight)
    target = torch.from_numpy(y.astype(np.float32))
    shift = torch.from_numpy(offset.astype(np.float32))

    def tune_score():
        if not y[tune].any():
            return 0.0
        return average_precision_score(y[tune], _logits(head, data, rows[tune]) + offset[tune])

    best, best_state, stale = tune_score(), copy.deepcopy(head.state_dict()), 0
    kept = ran = 0
    for epoch in range(1, cfg.epochs + 1):
        ran = epoch
        head.train()
        order = rng.permutation(train)
        for a in range(0, len(order), cfg.batch_rows):
            idx = order[a:a + cfg.batch_rows]
            logit = head(*data.batch(rows[idx])) + shift[idx]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, target[idx], pos_weight=weight)
            if cfg.relevance_decay:
                loss = loss + cfg.relevance_decay * head.relevance.pow(2).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        score = tune_score()
        if score > best + cfg.min_delta:
            best, best_state, stale, kept = score, copy.deepcopy(head.state_dict()), 0, epoch
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    head.load_state_dict(best_state)
    if info is not None:
        info.update(wide=cfg.wide, deep_epochs=kept, epochs_run=ran, tuning_auprc=float(best))
    out = np.full(len(rows), np.nan)
    scored = np.flatnonzero(split != TRAIN)
    logit = _logits(head, data, rows[scored]).astype(np.float64) + offset[scored] - np.log(pos_weight)
    out[scored] = 1.0 / (1.0 + np.exp(-logit))
    return out


def attend(model, seqs, tasks: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], cfg: AttendConfig = AttendConfig(),
           device="cpu", info: dict | None = None) -> dict[str, np.ndarray]:
    """Per task (name, rows into seqs, labels, splits): P(label) for each of its rows (NaN on train rows).
    `info`, when given, receives {task: fit_predict's info}.

    The frozen encoder runs once over the union of the rows each task uses (its drawn train rows and all
    tuning and held-out rows). The train draws are coordinated: every pool row gets one seeded random key
    and each task keeps its cfg.train_rows train rows of smallest key, so each draw is uniform within its
    task while tasks over the same prediction times draw the same rows and the union (the encoder's work)
    stays small."""
    from claimsfm.eval.finetune import take_sequences

    key = np.random.default_rng(cfg.seed).random(len(seqs))
    drawn, used = [], []
    for _, rows, _, split in tasks:
        train = rows[split == TRAIN]
        if cfg.train_rows is not None and len(train) > cfg.train_rows:
            train = np.sort(train[np.argsort(key[train], kind="stable")[:cfg.train_rows]])
        drawn.append(train)
        used.append(np.concatenate([train, rows[(split == TUNING) | (split == HELD_OUT)]]))
    needed = np.unique(np.concatenate(used)) if used else np.zeros(0, np.int64)
    sub = take_sequences(seqs, needed)
    data = _Rows(token_states(model, sub, cfg.batch_tokens, device), sub)
    where = np.full(len(seqs), -1, dtype=np.int64)
    where[needed] = np.arange(len(needed))
    out = {}
    for (name, rows, y, split), train in tqdm(list(zip(tasks, drawn)), desc="attentive heads", leave=False):
        keep = (split != TRAIN) | np.isin(rows, train)   # train rows outside the task's draw stay NaN
        p = np.full(len(rows), np.nan)
        task_info = {}
        p[keep] = fit_predict(data, model.config.d_model, model.config.vocab_size, y[keep], split[keep],
                              where[rows[keep]], cfg, task_info)
        if info is not None:
            info[name] = task_info
        out[name] = p
    return out
