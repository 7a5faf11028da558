"""Pure-Python twins of the C++ builder, packer and masking: slow, obvious, the test oracles.

Each function has the signature and the exact output of its fast counterpart (csrc/sequence.cpp,
csrc/pack.cpp, csrc/mask.cpp); tests compare them on random data.
"""
from __future__ import annotations

import datetime as dt

import numpy as np

from claimsfm.data.format import CLS, MASK, N_SPECIAL, SEP, month_of_day
from claimsfm.data.sequences import Sequences, check_request

_EPOCH = dt.date(1970, 1, 1).toordinal()
_M64 = (1 << 64) - 1


def _month(day: int) -> int:
    d = dt.date.fromordinal(_EPOCH + int(day))
    return d.year * 12 + d.month - 1


def _window(visits: list[int], max_len: int) -> int:
    """Index of the first kept event (visits = the subject's events up to the cutoff)."""
    if not visits:
        return 0
    start, used = len(visits) - 1, 1
    while start > 0:
        need = 2 if visits[start - 1] != visits[start] else 1
        if used + need > max_len - 1:
            break
        used += need
        start -= 1
    return start


def _month_end_day(day: int) -> int:
    d = dt.date.fromordinal(_EPOCH + int(day))
    nxt = dt.date(d.year + d.month // 12, d.month % 12 + 1, 1)
    return nxt.toordinal() - 1 - _EPOCH


def _one_sequence(store, row: int, cutoff, reference, max_len: int) -> list[tuple]:
    lo, hi = int(store.offsets[row]), int(store.offsets[row + 1])
    events = [(int(store.token[k]), int(store.day[k]), int(store.visit[k])) for k in range(lo, hi)]
    first_month = _month(events[0][1]) if events else 0
    if cutoff is not None:
        events = [e for e in events if e[1] <= cutoff]
    if reference is None:
        reference = cutoff if cutoff is not None else _month_end_day(events[-1][1]) if events else 0
    birth = int(store.birth_day[row])
    age = (lambda m: max(0, m - _month(birth))) if birth >= 0 else (lambda m: -1)

    def token(tok, day, visit, gap):  # (id, age, visit, months, days_before, gap_days)
        m = _month(day)
        return (tok, age(m), visit, max(0, m - first_month), reference - day, gap)

    out = [(CLS, -1, 0, 0, 0, reference - events[-1][1] if events else -1)]
    start = _window([e[2] for e in events], max_len)
    visit = 1
    gap = events[start][1] - events[start - 1][1] if start > 0 else -1
    for k in range(start, len(events)):
        tok, day, v = events[k]
        if k > start and v != events[k - 1][2]:
            out.append(token(SEP, events[k - 1][1], visit, gap))
            visit += 1
            gap = day - events[k - 1][1]
        out.append(token(tok, day, visit, gap))
    return out


def build_sequences(store, subjects, cutoff_day=None, max_len: int = 512, reference_day=None) -> Sequences:
    """Twin of claimsfm.data.build_sequences."""
    subjects, cutoff_day = check_request(store, subjects, cutoff_day, max_len)
    ref = check_request(store, subjects, reference_day, max_len)[1]
    seqs = [_one_sequence(store, int(r), None if cutoff_day is None else int(cutoff_day[i]),
                          None if ref is None else int(ref[i]), max_len)
            for i, r in enumerate(subjects)]
    flat = [tok for s in seqs for tok in s]
    cols = [np.array(c, dtype=np.int32) for c in zip(*flat)] if flat else [np.zeros(0, np.int32)] * 6
    return Sequences(
        offsets=np.concatenate([[0], np.cumsum([len(s) for s in seqs])]).astype(np.int64),
        input_ids=cols[0], age_months=cols[1], visit=cols[2], months=cols[3], segment=(cols[2] % 2).astype(np.int8),
        days_before=cols[4], gap_days=cols[5], subjects=subjects, max_len=int(max_len), vocab_size=store.vocab_size)


def pack_lengths(lengths, max_tokens: int) -> np.ndarray:
    """Twin of claimsfm.data.pack_lengths: first fit over a plain list of rows, longest first."""
    lengths = [int(x) for x in np.asarray(lengths).reshape(-1)]
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    free: list[int] = []
    rows = np.zeros(len(lengths), dtype=np.int64)
    for i in order:
        row = next((r for r, f in enumerate(free) if f >= lengths[i]), len(free))
        if row == len(free):
            free.append(max_tokens)
        free[row] -= lengths[i]
        rows[i] = row
    return rows


def splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def mlm_batch_key(seed: int, epoch: int, step: int) -> int:
    return splitmix64(splitmix64(splitmix64(seed & _M64) ^ (epoch & _M64)) ^ (step & _M64))


def mlm_mask(input_ids, cu_seqlens, key: int, vocab_size: int, mask_prob: float = 0.15):
    """Twin of claimsfm._native.mlm_mask -> (masked ids (T,) int32, labels (T,) int64)."""
    ids = np.array(input_ids, dtype=np.int32)
    labels = np.full(len(ids), -100, dtype=np.int64)
    select = int(np.floor(mask_prob * 2.0**53))
    to_mask, to_random = int(np.floor(0.8 * 2.0**53)), int(np.floor(0.9 * 2.0**53))
    n_codes = max(vocab_size - N_SPECIAL, 1)
    draws = {}
    for j in range(len(cu_seqlens) - 1):
        for t in range(int(cu_seqlens[j]), int(cu_seqlens[j + 1])):
            if ids[t] >= N_SPECIAL:
                draws[t] = splitmix64(key ^ ((j << 32) | (t - int(cu_seqlens[j]))))
    chosen = [t for t, h in draws.items() if (h >> 11) < select]
    if not chosen and draws:
        chosen = [min(draws, key=lambda t: (draws[t] >> 11, t))]
    for t in chosen:
        h2 = splitmix64(draws[t])
        labels[t] = input_ids[t]
        if (h2 >> 11) < to_mask:
            ids[t] = MASK
        elif (h2 >> 11) < to_random:
            ids[t] = N_SPECIAL + splitmix64(h2) % n_codes
    return ids, labels


def order_events(sid, day, fac, code, inpatient, n_subjects: int):
    """Twin of claimsfm._native.order_events, with whole-shard numpy lexsorts.

    -> (order (N,) int64 by (subject, day, visit, code, position), visit (N,) int32, visit_inpatient (N,) uint8)
    """
    sid, day, fac, code = (np.asarray(a) for a in (sid, day, fac, code))
    n = len(sid)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.uint8)
    month = month_of_day(day)
    o = np.lexsort((day, fac, month, sid))  # groups = (subject, month, facility) runs
    s, m, f = sid[o], month[o], fac[o]
    new = np.ones(n, bool)
    new[1:] = (s[1:] != s[:-1]) | (m[1:] != m[:-1]) | (f[1:] != f[:-1])
    gid_sorted = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    g_sid, g_first, g_fac = s[starts], day[o][starts], f[starts]
    g_inp = np.bincount(gid_sorted, weights=np.asarray(inpatient)[o].astype(np.float64), minlength=len(starts)) > 0
    go = np.lexsort((g_fac, g_first, g_sid))  # a subject's groups by first day, then facility
    first_of_subject = np.ones(len(go), bool)
    first_of_subject[1:] = g_sid[go][1:] != g_sid[go][:-1]
    pos = np.arange(len(go))
    g_rank = np.empty(len(go), np.int64)
    g_rank[go] = pos - np.maximum.accumulate(np.where(first_of_subject, pos, 0))
    gid = np.empty(n, np.int64)
    gid[o] = gid_sorted
    visit = g_rank[gid].astype(np.int32)
    return np.lexsort((code, visit, day, sid)).astype(np.int64), visit, g_inp[gid].astype(np.uint8)
