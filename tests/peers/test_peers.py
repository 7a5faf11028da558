"""The peer benchmarks' own logic (benchmarks/peers_*.py, issue 14): what their numbers rest on.

- The Hugging Face model built by peers_pretrain has our encoder's block shapes (same per-layer parameter
  count, heads, d_ff), so "same shapes" holds; its total differs only by the parts each design adds.
- Both sides' eval losses are paired target by target: the padded batches the BERT side scores list the
  MLM targets in the varlen order claimsfm scores them, with the same masks.
- peers_tabular's MEDS label export reads back (through claimsfm.tasks.labels, as MEDS-Tab reads it) as the
  task engine's cohort: same rows, labels and splits.
"""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from claimsfm.data import PretrainLoader, build_store

from helpers.storekit import planted_records, write_records

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("peers")
    write_records(planted_records(120, seed=4), root)
    build_store(root, root / "store", min_count=1)
    return root


@pytest.mark.parametrize("size", ["2.2M", "11M"])
def test_bert_config_has_our_block_shapes(size):
    pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    from transformers import BertForMaskedLM

    from claimsfm.model import Encoder

    pp = _load("peers_pretrain")
    cfg = pp.claimsfm_config(size, 8000, 512)
    ours, bert = Encoder(cfg), BertForMaskedLM(pp.bert_config(cfg))
    assert bert.config._attn_implementation == "sdpa"
    assert (bert.config.num_hidden_layers, bert.config.hidden_size, bert.config.num_attention_heads,
            bert.config.intermediate_size, bert.config.vocab_size) == (cfg.n_layer, cfg.d_model, cfg.n_head,
                                                                      cfg.d_ff, cfg.vocab_size)
    per_layer = [sum(p.numel() for p in layer.parameters()) for layer in bert.bert.encoder.layer]
    assert per_layer == [sum(p.numel() for p in b.parameters()) for b in ours.blocks]
    # The totals differ only by design (our age/visit/time tables vs BERT's positions, MLM transform and bias).
    total_ours = ours.num_params()["total_params"]
    total_bert = sum(p.numel() for p in bert.parameters())
    assert abs(total_bert - total_ours) / total_ours < 0.03
    assert bert.get_output_embeddings().weight is bert.get_input_embeddings().weight  # tied, like ours
    with torch.no_grad():
        out = bert(input_ids=torch.tensor([[1, 7, 9, 2, 0]]), attention_mask=torch.tensor([[1, 1, 1, 1, 0]]))
    assert out.logits.shape == (1, 5, cfg.vocab_size)


def test_eval_targets_pair_up_across_layouts(store_dir):
    opts = {"max_len": 64, "batch_tokens": 256, "seed": 3, "eval_batches": 2}
    common = dict(split="tuning", max_len=64, batch_tokens=256, seed=3)
    varlen, padded = PretrainLoader(store_dir, **common), PretrainLoader(store_dir, layout="padded", **common)
    assert len(varlen) >= 2
    n = 0
    for k in range(2):
        v, p = varlen.batch(0, k), padded.batch(0, k)
        keep = p["labels"] != -100
        assert np.array_equal(p["labels"][keep].numpy(), v["labels"][v["labels"] != -100].numpy())
        assert np.array_equal(p["input_ids"][p["attention_mask"]].numpy(), v["input_ids"].numpy())
        n += int(keep.sum())
    seq = _load("peers_pretrain").eval_sequence_ids(store_dir, opts)
    assert len(seq) == n and np.all(np.diff(seq) >= 0)


def test_paired_loss_difference_and_interval():
    pp = _load("peers_pretrain")
    rng = np.random.default_rng(0)
    seq = np.repeat(np.arange(200), 5)
    b = rng.normal(6.0, 1.0, len(seq))
    same = pp.paired_loss(b, b, seq, n_boot=200, seed=0)
    assert same["diff"] == 0.0 and same["ci"] == [0.0, 0.0]
    better = pp.paired_loss(b - 0.3 + rng.normal(0, 0.1, len(seq)), b, seq, n_boot=200, seed=0)
    assert better["ci"][0] < -0.3 < better["ci"][1] < 0
    assert better["sequences"] == 200 and better["targets"] == len(seq)


def test_label_export_reads_back_as_the_cohort(store_dir, tmp_path):
    from claimsfm.data import open_store
    from claimsfm.tasks.cohort import build_cohort
    from claimsfm.tasks.labels import build_label_cohort, label_spec
    from claimsfm.tasks.spec import load_task

    pt = _load("peers_tabular")
    counts = pt.write_labels(store_dir, ["statin_any_use"], tmp_path)
    store = open_store(store_dir)
    want = build_cohort(store, load_task("statin_any_use"))
    got = build_label_cohort(store, label_spec(tmp_path / "statin_any_use", "statin_any_use"), store_dir)
    assert want.label.any() and len(got) == len(want)
    def key(c):
        return sorted(zip(c.subject_id.tolist(), c.prediction_time.tolist(), c.label.tolist(), c.split.tolist(),
                          c.t_day.tolist()))

    assert key(got) == key(want)
    assert sum(v["n_pos"] for v in counts["statin_any_use"].values()) == int(want.label.sum())


def test_budget_batches_cover_every_sequence_once_within_the_budget():
    pp = _load("peers_pretrain")
    lengths = np.random.default_rng(1).integers(1, 300, 500)
    batches = pp.budget_batches(lengths, 1024, np.random.default_rng(0))
    assert sorted(np.concatenate(batches).tolist()) == list(range(500))
    sums = [int(lengths[b].sum()) for b in batches]
    assert max(sums) <= 1024
    # each cut is forced: the next batch's first sequence would not have fitted
    assert all(s + int(lengths[b[0]]) > 1024 for s, b in zip(sums[:-1], batches[1:]))
    again = pp.budget_batches(lengths, 1024, np.random.default_rng(0))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))
