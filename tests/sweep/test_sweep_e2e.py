"""End to end on a tiny synthetic cohort: synth -> ingest -> sweep (2 demo scales) -> report, then a
rerun that reuses every finished pretraining run and evaluation."""
import json

import pytest

from claimsfm.sweep.demo import DemoConfig, _ingest, _synth
from claimsfm.sweep.run import SweepConfig, run

pytest.importorskip("torch")
pytest.importorskip("lightgbm")

TASKS = "statin_any_use,t2dm"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    cfg = DemoConfig(out=root, patients=400, progress=False)
    _synth(cfg, root / "synth")
    _ingest(cfg, root / "synth", root / "data")
    return root


def _config(root, **kw):
    return SweepConfig(data=root / "data", scales="demo-S,demo-M", tasks=TASKS, tokens=6_000, runs=root / "runs",
                       out=root / "sweep", max_len=64, mode="probe", n_boot=100,
                       pretrain_options={"progress": False},
                       eval_options={"max_train": 300, "max_eval": 300, "quiet": True}, **kw)


def test_sweep_writes_results_and_report_then_reuses_everything(data, capsys):
    results = run(_config(data))
    assert set(results["scales"]) == {"demo-S", "demo-M"}
    s, m = results["scales"]["demo-S"], results["scales"]["demo-M"]
    assert s["params"] < m["params"] and s["hours_kind"] == "cpu" and s["flops"] > 0
    assert results["hours_kind"] == "cpu" and results["fit"] is None  # 2 scales: not identifiable
    assert "not identifiable" in results["fit_note"]
    for task in TASKS.split(","):
        t = results["tasks"][task]
        if t["saturation"] is None:  # a split without positives in so small a cohort: reported, not scored
            continue
        assert t["saturation"]["saturation"] in ("demo-S", "demo-M", None)
        assert t["lightgbm"] is not None and 0.0 <= t["scales"]["demo-S"]["auprc"] <= 1.0
    assert any(t["saturation"] for t in results["tasks"].values())
    sweep = data / "sweep"
    assert json.loads((sweep / "results.json").read_text())["tokens"] == 6_000
    assert (sweep / "report.html").is_file() and (sweep / "figures" / "auprc_vs_params.png").is_file()
    capsys.readouterr()

    again = run(_config(data))
    log = capsys.readouterr().out
    assert log.count("reusing finished run") == 2 and log.count("reusing evaluation") == 3
    same = [json.dumps(r["tasks"], sort_keys=True) for r in (again, results)]  # strings: NaN CIs compare equal
    assert same[0] == same[1]


def test_dry_run_measures_the_store(data):
    plan = run(SweepConfig(data=data / "data", scales="2.2M,101M", dry_run=True, out=data / "plan"))
    assert [r["name"] for r in plan["scales"]] == ["2.2M", "101M"]
    assert any("measured on" in n for n in plan["notes"])
    assert any("ASSUMPTION" in n or "measured:" in n for n in plan["notes"])
    assert plan["scales"][1]["flops"] > plan["scales"][0]["flops"] > 0
    assert (data / "plan" / "plan.json").is_file()


def test_demo_keeps_only_tasks_with_enough_held_out_positives(data, monkeypatch):
    from claimsfm.data import open_store
    from claimsfm.errors import ClaimsfmError
    from claimsfm.eval.samples import subsample
    from claimsfm.splits import HELD_OUT
    from claimsfm.sweep import demo
    from claimsfm.tasks.cohort import build_cohort
    from claimsfm.tasks.spec import load_task

    store = open_store(data / "data")
    counts = {}
    for task in ("statin_any_use", "dialysis", "t2dm"):
        c = subsample(build_cohort(store, load_task(task)), demo.DEMO_MAX_TRAIN, demo.DEMO_MAX_EVAL, 0)
        counts[task] = int(c.label[c.split == HELD_OUT].sum())
    threshold = max(counts.values())  # the best-covered task stays, every task below it goes
    monkeypatch.setattr(demo, "DEMO_MIN_POSITIVES", threshold)
    config = DemoConfig(out=data, patients=400, tasks=",".join(counts), progress=False)
    kept, dropped = demo.resolvable_tasks(config, data / "data")
    assert kept == [t for t in counts if counts[t] == threshold]
    assert dropped == {t: n for t, n in counts.items() if n < threshold}
    assert f"fewer than {threshold} held-out positives" in demo.dropped_note(dropped)
    monkeypatch.setattr(demo, "DEMO_MIN_POSITIVES", threshold + 1)
    with pytest.raises(ClaimsfmError, match="--patients 400"):
        demo.resolvable_tasks(config, data / "data")
