"""The output-folder policy (claimsfm.outdir): claimsfm deletes only what it provably created.

Regression tests for issue 16 defects 1 (`--overwrite` deleted the input), 2 (user files deleted) and
9 (killed ingests' temporary folders, holding the salt, never cleaned). Every case snapshots the folder
around `--out` before and after.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from claimsfm import outdir
from claimsfm.errors import ClaimsfmError
from claimsfm.ingest import IngestConfig, run

GOOD = Path(__file__).resolve().parents[1] / "fixtures" / "uke" / "good"


@pytest.fixture(autouse=True)
def _salt(monkeypatch):
    monkeypatch.setenv("CLAIMSFM_SALT", "outdir-test")


def snapshot(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


def ingest(inputs, out, **kw):
    return run(IngestConfig(inputs=[Path(i) for i in inputs], out=Path(out), progress=False, min_count=1, **kw))


@pytest.fixture
def claims(tmp_path):
    """A copy of the good fixtures: tmp/claims/{1312345,2723456}/*.UKE."""
    shutil.copytree(GOOD, tmp_path / "claims")
    return tmp_path / "claims"


@pytest.mark.parametrize("where", ["same", "parent", "inside", "link"])
def test_out_overlapping_the_input_is_refused(claims, tmp_path, where):
    """Defect 1: `--out` equal to the input or its parent, with --overwrite, removed every .UKE file."""
    out = {"same": claims, "parent": tmp_path, "inside": claims / "1312345" / "out", "link": tmp_path / "ln"}[where]
    if where == "link":
        os.symlink(claims, out)
    before = snapshot(tmp_path)
    with pytest.raises(ClaimsfmError, match=r"^--out: .* (is the input|contains the input|lies inside the input)"):
        ingest([claims], out, overwrite=True)
    assert snapshot(tmp_path) == before


def test_salt_file_and_masters_count_as_inputs(claims, tmp_path):
    out = tmp_path / "out"
    (out).mkdir()
    (out / "my.salt").write_text("secret\n")
    with pytest.raises(ClaimsfmError, match="contains the input"):
        ingest([claims], out, salt_file=out / "my.salt", overwrite=True)
    assert (out / "my.salt").read_text() == "secret\n"


def test_user_folder_is_never_overwritten(claims, tmp_path):
    """Defect 2: a folder holding only the user's files was 'a different dataset', and --overwrite deleted it."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("keep me")
    (out / "metadata").mkdir()
    (out / "metadata" / "dataset.json").write_text("{}")
    before = snapshot(tmp_path)
    for overwrite in (False, True):
        with pytest.raises(ClaimsfmError, match="holds files claimsfm did not write"):
            ingest([claims], out, overwrite=overwrite)
        assert snapshot(tmp_path) == before


def test_rerun_keeps_user_files_and_old_sibling(claims, tmp_path, monkeypatch):
    """Defect 2: an identical rerun deleted files added inside --out and a sibling `.<out>.old`."""
    monkeypatch.setenv("CLAIMSFM_SALT", "")  # a random salt kept in <out>/salt, reused by the rerun
    out = tmp_path / "out"
    ingest([claims], out)
    marker = json.loads((out / outdir.MARKER).read_text())
    assert marker["command"] == "ingest" and "metadata/dataset.json" in marker["files"] and "salt" in marker["files"]
    (out / "notes.txt").write_text("mine")
    (out / "empty").mkdir()
    (out / "data" / "mine").mkdir()
    (out / "data" / "mine" / "x.csv").write_text("1,2\n")
    (tmp_path / ".out.old").mkdir()
    (tmp_path / ".out.old" / "precious").write_text("mine too")
    salt = (out / "salt").read_bytes()
    ingest([claims], out)  # same inputs: rebuilt in place, no flag needed
    assert (out / "notes.txt").read_text() == "mine" and (out / "empty").is_dir()
    assert (out / "data" / "mine" / "x.csv").read_text() == "1,2\n"
    assert (tmp_path / ".out.old" / "precious").read_text() == "mine too"
    assert (out / "salt").read_bytes() == salt
    assert (out / "store" / "format.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.old", "claims", "out"]  # no temp folder left


def test_overwrite_replaces_only_our_files(claims, tmp_path):
    out = tmp_path / "out"
    ingest([claims], out, on_error="skip")  # writes rejects.txt
    assert (out / "rejects.txt").is_file()
    (out / "keep.md").write_text("mine")
    with pytest.raises(ClaimsfmError, match="pass --overwrite"):
        ingest([claims / "2723456"], out)  # other inputs: a different dataset
    ingest([claims / "2723456"], out, overwrite=True)
    assert (out / "keep.md").read_text() == "mine"
    assert not (out / "rejects.txt").exists()  # ours, from the old build, not written by the new one
    files = set(json.loads((out / outdir.MARKER).read_text())["files"])
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert on_disk - files == {outdir.MARKER, "keep.md"}
    assert json.loads((out / outdir.MARKER).read_text())["complete"] is True


def test_user_file_in_the_way_stops_before_any_change(claims, tmp_path):
    out = tmp_path / "out"
    ingest([claims], out)
    (out / "rejects.txt").write_text("my own notes")  # a name the next (skip) build writes
    before = snapshot(tmp_path)
    with pytest.raises(ClaimsfmError, match="rejects.txt was not written by claimsfm"):
        ingest([claims], out, on_error="skip", overwrite=True)
    assert snapshot(tmp_path) == before


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temp_folders_cleaned_or_reported(claims, tmp_path, capsys):
    """Defect 9: killed ingests left hidden .tmp folders holding the salt that no rerun cleaned."""
    stale = tmp_path / ".out.claimsfm-dead.tmp"
    (stale / "new").mkdir(parents=True)
    (stale / "new" / "salt").write_text("s3cret\n")
    (stale / outdir.TMP_TAG).write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname()}))
    live = tmp_path / ".out.claimsfm-live.tmp"  # a concurrent run (this process): left alone, silently
    live.mkdir()
    (live / outdir.TMP_TAG).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    legacy = tmp_path / ".out.x1y2z3w4.tmp"  # an older claimsfm's temp folder: no tag, so only reported
    legacy.mkdir()
    (legacy / "salt").write_text("old\n")
    ingest([claims], tmp_path / "out")
    assert not stale.exists() and live.is_dir() and (legacy / "salt").is_file()
    err = capsys.readouterr().err
    assert str(legacy) in err and str(live) not in err


def test_failed_build_leaves_nothing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with outdir.build(out, "ingest") as work:
            (work / "half.parquet").write_text("x")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_claim_and_remove_owned(tmp_path):
    run_dir = tmp_path / "run"
    outdir.claim(run_dir, "pretrain")
    (run_dir / "checkpoints" / "step_1").mkdir(parents=True)
    (run_dir / "checkpoints" / "step_1" / "state.pt").write_text("ours")
    (run_dir / "checkpoints" / "step_1" / "mine.txt").write_text("user")
    (run_dir / "checkpoints" / "step_0").mkdir()
    (run_dir / "checkpoints" / "step_0" / "state.pt").write_text("copied in by hand")
    outdir.record(run_dir, run_dir / "checkpoints" / "step_1" / "state.pt")
    assert outdir.owns(run_dir, run_dir / "checkpoints" / "step_1" / "state.pt")
    assert not outdir.remove_owned(run_dir, run_dir / "checkpoints" / "step_0")
    assert outdir.remove_owned(run_dir, run_dir / "checkpoints" / "step_1")
    assert sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file()) == [
        outdir.MARKER, "checkpoints/step_0/state.pt", "checkpoints/step_1/mine.txt"]
    assert outdir.claim(run_dir, "pretrain") == run_dir  # a rerun resumes in its own folder
    with pytest.raises(ClaimsfmError, match="output of `claimsfm pretrain`"):
        outdir.claim(run_dir, "evaluate")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "a").write_text("x")
    with pytest.raises(ClaimsfmError, match="did not write"):
        outdir.claim(foreign, "pretrain")
    with pytest.raises(ClaimsfmError, match="not a folder"):
        outdir.claim(foreign / "a", "pretrain")


@pytest.mark.parametrize("name,ok", [("t2dm", True), ("a.b-c_1", True), ("../x", False), ("/abs", False),
                                     (".hidden", False), ("", False), ("a/b", False), ("名前", False)])
def test_check_name(name, ok):
    if ok:
        assert outdir.check_name(name, "task name") == name
    else:
        with pytest.raises(ClaimsfmError, match="cannot be used as a file name"):
            outdir.check_name(name, "task name")


def test_synth_follows_the_policy(tmp_path):
    from claimsfm.synth.run import SynthConfig
    from claimsfm.synth.run import run as synth

    def cfg(**kw):
        return SynthConfig(out=tmp_path / "s", patients=40, hospitals=2, months=2, background="none",
                           progress=False, **kw)

    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "mine.txt").write_text("keep")
    with pytest.raises(ClaimsfmError, match="holds files claimsfm did not write"):
        synth(cfg(overwrite=True))
    (tmp_path / "s" / "mine.txt").unlink()
    synth(cfg())
    assert json.loads((tmp_path / "s" / outdir.MARKER).read_text())["command"] == "synth"
    with pytest.raises(ClaimsfmError, match="pass --overwrite"):
        synth(cfg())
    (tmp_path / "s" / "notes.md").write_text("mine")
    synth(cfg(overwrite=True))
    assert (tmp_path / "s" / "notes.md").read_text() == "mine" and (tmp_path / "s" / "synth.json").is_file()
    with pytest.raises(ClaimsfmError, match="lies inside the input"):
        ingest([tmp_path / "s"], tmp_path / "s" / "uke" / "x")
    with pytest.raises(ClaimsfmError, match="output of `claimsfm synth`"):
        outdir.claim(tmp_path / "s", "pretrain")


def test_cli_out_is_input_one_line_exit_2(cli, claims, tmp_path):
    before = snapshot(tmp_path)
    res = cli("ingest", claims, "--out", claims, "--overwrite", "--no-progress", env={"CLAIMSFM_SALT": "x"})
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert [x for x in res.stderr.splitlines() if x.startswith("error:")] == [
        f"error: --out: {claims} is the input {claims}; choose another output folder"]
    assert snapshot(tmp_path) == before
