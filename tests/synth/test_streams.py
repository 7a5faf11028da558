"""Per-patient streams: a patient's history does not depend on how many others are simulated;
the CLI turns bad flags into one-line errors and writes a cohort with synth.json."""
import json
import subprocess
import sys

import numpy as np
import pytest

from claimsfm.synth.hospitals import draw_hospitals
from claimsfm.synth.population import draw_population
from claimsfm.synth.simulate import Simulation
from claimsfm.synth.streams import choice, patient_keys, uniform


def _simulate(n, months=18):
    keys = patient_keys(3, n)
    hosp = draw_hospitals(3, 3)
    pop = draw_population(keys, "census", 2015 * 12, np.array([h.weight for h in hosp]))
    sim = Simulation(keys, pop, hosp, 2015 * 12)
    for m in range(2015 * 12, 2015 * 12 + months):
        sim.step(m)
    return sim


def test_patient_history_independent_of_cohort_size():
    a, b = _simulate(120), _simulate(300)
    for field in ("onset", "dx", "dx_day", "reg_opt", "death_month", "first_claim"):
        assert np.array_equal(getattr(a, field), getattr(b, field)[:120]), field


def test_uniform_and_choice():
    keys = patient_keys(0, 20000)
    u = uniform(keys, 24000, 1)
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    assert np.corrcoef(u, uniform(keys, 24000, 2))[0, 1] < 0.03
    k = choice(u, np.tile([1.0, 3.0], (len(u), 1)))
    assert abs(k.mean() - 0.75) < 0.02


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-P", "-m", "claimsfm.cli.main", "synth", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize("args, flag", [
    (["--start", "2014-13"], "--start"), (["--patients", "0"], "--patients"), (["--profile", "nope"], "--profile"),
])
def test_cli_bad_flags(tmp_path, args, flag):
    proc = _cli("--out", str(tmp_path / "o"), *args, cwd=tmp_path)
    assert proc.returncode == 2 and flag in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_cli_writes_a_cohort(tmp_path):
    proc = _cli("--out", "c", "--patients", "120", "--hospitals", "2", "--months", "14", "--profile", "employer",
                "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "c" / "synth.json").read_text())
    assert summary["parameters"]["profile"] == "employer" and summary["counts"]["receipts"] > 0
    assert sorted(p.name for p in (tmp_path / "c" / "masters").iterdir()) == ["devices.csv", "diseases.csv",
                                                                                "drugs.csv", "procedures.csv"]
    again = _cli("--out", "c", "--patients", "120", cwd=tmp_path)
    assert again.returncode == 2 and "--overwrite" in again.stderr
