"""The foundation-model path of `evaluate` on a tiny checkpoint: probe and fine-tuning run, are
deterministic, learn a planted signal, and read no token after the prediction time."""
import numpy as np
import pytest

from helpers.storekit import planted_records, write_records

torch = pytest.importorskip("torch")

from claimsfm.data import build_sequences, build_store  # noqa: E402
from claimsfm.eval.finetune import FEATURES  # noqa: E402
from claimsfm.eval.run import EvalConfig, run  # noqa: E402
from claimsfm.eval.samples import Pool, subsample  # noqa: E402
from claimsfm.tasks.cohort import build_cohort, count_le  # noqa: E402
from claimsfm.tasks.spec import load_task  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from claimsfm.model import Encoder, ModelConfig, save_checkpoint

    root = tmp_path_factory.mktemp("fm")
    write_records(planted_records(n=300, seed=1), root)
    store = build_store(root, root / "store", min_count=1)
    torch.manual_seed(0)
    model = Encoder(ModelConfig(n_layer=1, d_model=32, n_head=2, d_ff=64, vocab_size=store.vocab_size, max_len=64))
    run_dir = root / "runs" / "pretrain" / "tiny"
    save_checkpoint(run_dir, model)
    return root, store, run_dir


def _run(root, out, mode, baselines=(), features="cls+mean+last"):
    cfg = EvalConfig(data=str(root), task="statin_any_use,t2dm", params="tiny", runs=str(root / "runs"),
                     baselines=baselines, mode=mode, features=features, out=str(out), n_boot=100, epochs=2,
                     max_train=400, max_eval=200, batch_tokens=1024, quiet=True)
    return run(cfg)


@pytest.mark.parametrize("mode", ["attend", "probe", "finetune"])
def test_fm_modes_learn_and_are_deterministic(setup, tmp_path, mode):
    import pyarrow.parquet as pq

    root, _, _ = setup
    # The probe run also fits LightGBM: both models must be scored on the very same rows.
    a = _run(root, tmp_path / "a", mode, baselines=("lightgbm",) if mode == "probe" else ())
    b = _run(root, tmp_path / "b", mode)
    statin = a["tasks"]["statin_any_use"]["models"]["fm:tiny"]
    assert statin["auprc"] > statin["prevalence"] + 0.1
    if mode == "attend":   # what the head kept is reported: deep epochs 0 means the FM is its wide part
        head = statin["head"]
        assert head["wide"] is True and 0 <= head["deep_epochs"] <= head["epochs_run"]
        assert 0 < head["tuning_auprc"] <= 1
    else:
        assert "head" not in statin
    for task in ("statin_any_use", "t2dm"):
        assert a["tasks"][task]["models"]["fm:tiny"] == b["tasks"][task]["models"]["fm:tiny"]
    if mode == "probe":
        for task in ("statin_any_use", "t2dm"):
            fm = pq.read_table(tmp_path / "a" / "predictions" / task / "fm:tiny.parquet")
            gbm = pq.read_table(tmp_path / "a" / "predictions" / task / "lightgbm.parquet")
            for col in ("subject_id", "prediction_time", "boolean_value"):
                assert fm[col].equals(gbm[col])
            assert "fm:tiny - lightgbm" in a["tasks"][task]["paired"]


def test_sequences_hold_only_events_up_to_the_prediction_time(setup):
    _, store, _ = setup
    cohort = build_cohort(store, load_task("statin_any_use"))
    pool = Pool.of([cohort])
    seqs = build_sequences(store, pool.subject_idx, cutoff_day=pool.t_day, max_len=10_000)
    first, last = store.offsets[pool.subject_idx], store.offsets[pool.subject_idx + 1]
    n_events = count_le(np.asarray(store.day), first, last, pool.t_day)
    n_special = np.array([np.sum(seqs.tokens(i) <= 4) for i in range(len(pool))])  # [CLS] + [SEP]s
    assert np.array_equal(seqs.lengths - n_special, n_events)


@pytest.mark.parametrize("features", FEATURES)
def test_pool_matches_a_per_sequence_loop(setup, features):
    from claimsfm.data import collate
    from claimsfm.data.format import N_SPECIAL
    from claimsfm.eval.finetune import RECENT_DAYS, pool

    _, store, _ = setup
    cohort = build_cohort(store, load_task("statin_any_use"))
    p = Pool.of([cohort])
    seqs = build_sequences(store, p.subject_idx[:40], cutoff_day=p.t_day[:40], max_len=64)
    batch = collate(seqs, np.arange(40), mlm=None, layout="varlen")
    h = torch.randn(len(batch["input_ids"]), 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    future = torch.nn.Linear(8, 8).double()   # stands in for the model's future-codes head
    got = pool(h, batch, features, future)
    cu, ids, visit = batch["cu_seqlens"].tolist(), batch["input_ids"].numpy(), batch["visit"].numpy()
    before = batch["days_before"].numpy()
    for b in range(40):
        s, e = cu[b], cu[b + 1]
        parts = features.split("+")
        want = [future(h[s])] if parts[0] == "future" else []
        want += [h[s]] if "cls" in parts else []
        code = np.flatnonzero(ids[s:e] >= N_SPECIAL) + s
        if "mean" in parts:
            want.append(h[code].mean(0) if len(code) else torch.zeros(8, dtype=h.dtype))
        if "last" in parts:
            last = code[visit[code] == visit[s:e].max()]
            want.append(h[last].mean(0) if len(last) else torch.zeros(8, dtype=h.dtype))
        if features.endswith("recent"):
            for days in RECENT_DAYS:
                recent = code[before[code] <= days]
                want.append(h[recent].mean(0) if len(recent) else torch.zeros(8, dtype=h.dtype))
        torch.testing.assert_close(got[b], torch.cat(want))


def test_finetuning_starts_from_the_probe_solution(setup):
    """With zero learning rates fine-tuning must return exactly the probe's probabilities (same rows,
    same pooled features): the head is initialised from the probe and its pos_weight shift undone."""
    from claimsfm.eval import finetune as ft
    from claimsfm.model import load_checkpoint

    _, store, run_dir = setup
    cohort = subsample(build_cohort(store, load_task("statin_any_use")), 200, 100)
    p = Pool.of([cohort])
    seqs = build_sequences(store, p.subject_idx, cutoff_day=p.t_day, max_len=64)
    y = np.zeros((len(p), 1), dtype=bool)
    y[p.rows(cohort), 0] = cohort.label
    model, _ = load_checkpoint(run_dir)
    # The head is fitted on the train + tuning vectors, embedded as their own batches (as fine-tuning does).
    used = np.flatnonzero(p.split < 2)
    w, b = ft.probe_fit(ft.embed(model, ft.take_sequences(seqs, used), 1024), y[used, 0], p.split[used])
    want = 1.0 / (1.0 + np.exp(-(ft.embed(model, seqs, 1024).astype(np.float64) @ w + b)))
    cfg = ft.HeadConfig(epochs=1, lr=0.0, head_lr=0.0, batch_tokens=1024, probe_rows=None)
    got = ft.finetune(run_dir, seqs, y, np.ones_like(y), p.split, cfg)[:, 0]
    assert 0.0 < y.mean() < 1.0
    scored = p.split > 0  # train rows are never scored: fine-tuning does not predict them
    assert np.isnan(got[~scored]).all()
    np.testing.assert_allclose(got[scored], want[scored], rtol=1e-4, atol=1e-5)


def test_finetuning_cost_is_bounded_by_the_row_budgets(setup, monkeypatch):
    """Each epoch trains on a fresh draw of train_rows train samples; the probe start embeds probe_rows."""
    from claimsfm.eval import finetune as ft

    _, store, run_dir = setup
    cohort = build_cohort(store, load_task("statin_any_use"))
    p = Pool.of([cohort])
    seqs = build_sequences(store, p.subject_idx, cutoff_day=p.t_day, max_len=64)
    y = np.zeros((len(p), 1), dtype=bool)
    y[p.rows(cohort), 0] = cohort.label
    seen, embedded = [], []
    step, embed = ft.train_step, ft.embed
    monkeypatch.setattr(ft, "train_step", lambda *a: seen.append(np.asarray(a[7]).copy()) or step(*a))
    monkeypatch.setattr(ft, "embed", lambda m, s, *a, **k: embedded.append(len(s)) or embed(m, s, *a, **k))
    cfg = ft.HeadConfig(epochs=2, patience=5, batch_tokens=1024, train_rows=60, probe_rows=80)
    got = ft.finetune(run_dir, seqs, y, np.ones_like(y), p.split, cfg)[:, 0]
    rows = np.concatenate(seen)
    assert len(rows) == 120 and (p.split[rows] == 0).all() and len(np.unique(rows)) > 60
    assert embedded == [80 + int((p.split == 1).sum())]
    assert np.isfinite(got[p.split > 0]).all() and np.isnan(got[p.split == 0]).all()


def _attend_data(setup, n=None):
    from claimsfm.eval import attend as A
    from claimsfm.model import load_checkpoint

    _, store, run_dir = setup
    cohort = subsample(build_cohort(store, load_task("statin_any_use")), 400, 200)
    p = Pool.of([cohort])
    seqs = build_sequences(store, p.subject_idx, cutoff_day=p.t_day, max_len=64)
    model, _ = load_checkpoint(run_dir)
    data = A._Rows(A.token_states(model, seqs, 1024), seqs)
    return A, model, data, seqs, cohort, p.rows(cohort)


def test_wide_counts_match_a_loop(setup):
    A, _, data, seqs, _, _ = _attend_data(setup)
    X = data.wide().toarray()
    V = seqs.vocab_size
    assert X.shape == (len(seqs.lengths), len(A.WIDE_WINDOWS_DAYS) * V + A.WIDE_STATIC_COLUMNS)
    for i in range(0, len(seqs.lengths), 7):
        s, e = seqs.offsets[i], seqs.offsets[i + 1]
        want = np.zeros(len(A.WIDE_WINDOWS_DAYS) * V)
        for tok, before in zip(seqs.input_ids[s:e], seqs.days_before[s:e]):
            for w, days in enumerate(A.WIDE_WINDOWS_DAYS):
                if before >= 0 and (days is None or before <= days):
                    want[w * V + tok] += 1
        np.testing.assert_allclose(X[i, :len(want)], np.log1p(want))
        assert X[i, len(want):].sum() == 2    # one age bin and one gap bin


def test_wide_age_and_gap_at_the_prediction_time_match_the_store(setup):
    """The wide part's age bin (from the tokens' ages and days before t) is the store's age at t, up to
    the tokens' month resolution; its gap bin is t minus the subject's last event day on or before t."""
    _, store, _ = setup
    cohort = subsample(build_cohort(store, load_task("statin_any_use")), 400, 200)
    p = Pool.of([cohort])
    seqs = build_sequences(store, p.subject_idx, cutoff_day=p.t_day, max_len=64)
    from claimsfm.eval import attend as A

    static = A._Rows(np.zeros((int(seqs.offsets[-1]), 1), np.float32), seqs).static()
    birth = np.asarray(store.birth_day)[p.subject_idx]
    years = (p.t_day - birth) / 365.25
    want_age = np.where(birth >= 0, np.minimum(years // A.WIDE_AGE_BIN_YEARS, A.WIDE_AGE_BINS - 1), A.WIDE_AGE_BINS)
    near = np.abs(years / A.WIDE_AGE_BIN_YEARS - np.round(years / A.WIDE_AGE_BIN_YEARS)) < 0.05
    assert (static[:, 0] == want_age)[~near].all() and (np.abs(static[:, 0] - want_age) <= 1).all()
    offsets, day = np.asarray(store.offsets), np.asarray(store.day)
    for k, (row, t) in enumerate(zip(p.subject_idx, p.t_day)):
        days = day[offsets[row]:offsets[row + 1]]
        days = days[days <= t]
        gap_bin = np.searchsorted(A.WIDE_GAP_EDGES_DAYS, t - days.max(), side="right") if len(days) else \
            len(A.WIDE_GAP_EDGES_DAYS) + 1
        assert static[k, 1] == A.WIDE_AGE_BINS + 1 + gap_bin


def test_attend_keeps_the_wide_model_unless_the_encoder_adds_on_tuning(setup):
    """The deep part starts at logit 0 on top of the wide model: with no epochs the output is the wide
    model's; with training, tuning AUPRC can only rise (early stopping counts the untrained start)."""
    import dataclasses

    from sklearn.metrics import average_precision_score

    from claimsfm.splits import TRAIN, TUNING

    A, model, data, _, cohort, rows = _attend_data(setup)
    cfg = A.AttendConfig(tune_rows=None, train_rows=None, seed=3)
    d, v = model.config.d_model, model.config.vocab_size
    wide = A.fit_predict(data, d, v, cohort.label, cohort.split, rows, dataclasses.replace(cfg, epochs=0))
    full = A.fit_predict(data, d, v, cohort.label, cohort.split, rows, cfg)
    alone = A.fit_predict(data, d, v, cohort.label, cohort.split, rows, dataclasses.replace(cfg, wide=False))
    tune = cohort.split == TUNING
    assert cohort.label[tune].any()
    assert average_precision_score(cohort.label[tune], full[tune]) >= average_precision_score(
        cohort.label[tune], wide[tune])
    for p in (wide, full, alone):
        assert np.isnan(p[cohort.split == TRAIN]).all() and ((p[~np.isnan(p)] > 0) & (p[~np.isnan(p)] < 1)).all()
    assert not np.allclose(alone[tune], wide[tune])


def test_wide_train_offsets_are_out_of_fold_by_patient():
    """Train rows get logits from models fitted without their patient (each patient's rows in one fold);
    tuning and held-out rows keep the full fit's; out of fold, the train rows look as hard as new ones."""
    import scipy.sparse as sp
    from sklearn.metrics import average_precision_score

    from claimsfm.eval.attend import _fit_wide

    rng = np.random.default_rng(0)
    n_pat, d = 300, 400
    Xp = sp.random(n_pat, d, density=0.03, random_state=1, format="csr")
    w = rng.normal(size=d) * 3
    yp = (rng.random(n_pat) < 1 / (1 + np.exp(-(Xp @ w - 2)))).astype(np.int8)
    X, y, groups = sp.vstack([Xp, Xp], format="csr"), np.r_[yp, yp], np.r_[np.arange(n_pat), np.arange(n_pat)]
    train = np.r_[np.arange(200), n_pat + np.arange(200)]     # both rows of patients 0-199
    tune = np.r_[200:250, n_pat + 200:n_pat + 250]
    inside = _fit_wide(X, y, train, tune, (1.0,))
    oof = _fit_wide(X, y, train, tune, (1.0,), groups, folds=5)
    rest = np.setdiff1d(np.arange(len(y)), train)
    np.testing.assert_array_equal(oof[rest], inside[rest])
    assert not np.allclose(oof[train], inside[train])
    np.testing.assert_allclose(oof[:200], oof[n_pat:n_pat + 200])   # a patient's two rows share their fold
    assert average_precision_score(y[train], inside[train]) > average_precision_score(y[train], oof[train])
