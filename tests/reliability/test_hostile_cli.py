"""The hostile table: every command against broken input, in-process (fast) and a few cases by subprocess.

Each case builds its broken input inside a sandbox folder, runs `claimsfm ...` and asserts what the README
promises: exit code 2, one line `error: ...` on stderr naming the file or flag, no traceback, and nothing
changed anywhere outside `--out` (the sandbox, the shared cohort and run are snapshotted before and after).
"""
import errno
import json
import os
import pickle
import shutil
import stat
from importlib import resources
from pathlib import Path

import pytest

from claimsfm.outdir import MARKER

pytest.importorskip("torch")
pytest.importorskip("lightgbm")

#  An evaluable built-in task on this cohort (both classes in every split), cheap with the baseline alone.
TASK = "statin_any_use"
STATIN = (resources.files("claimsfm.tasks") / "builtin" / f"{TASK}.toml").read_text(encoding="utf-8")

MINIMAL_RESULTS = '{"schema": 2, "scales": {"demo-S": {"params": 200000, "hours": 0.001}}, "tasks": {}}'


def run_main(args, capsys):
    """(exit code, stdout, stderr) of `claimsfm ARGS...` run in this process."""
    from claimsfm.cli.main import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    out = capsys.readouterr()
    code = info.value.code
    return (0 if code is None else code), out.out, out.err


def assert_one_error_line(err: str, expect: str) -> None:
    """stderr is one line, `error: ...`, mentioning `expect` (the file, flag or key at fault)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], err


def snapshot(root) -> dict:
    """Every entry under `root` -> (mode, size, mtime_ns) for files and links, (mode,) for folders."""
    root = Path(root)
    found = {}
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(base) / name
            st = path.lstat()
            # A folder's own mtime moves when a command makes and removes its temporary folder beside --out;
            # what it holds is compared entry by entry.
            found[path.relative_to(root).as_posix()] = (st.st_mode,) if stat.S_ISDIR(st.st_mode) else \
                (st.st_mode, st.st_size, st.st_mtime_ns)
    return found


def copy_tree(src, dst) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return Path(dst)


def make_read_only(folder, monkeypatch) -> None:
    """Make `folder` read-only. Root ignores file modes, so for root every mkdir or file creation below it
    fails with EACCES and os.access denies writing, as the kernel answers an ordinary user (mode 0555 stays)."""
    folder = Path(folder).resolve()
    folder.chmod(0o555)
    if os.geteuid() != 0:
        return
    real_mkdir, real_open, real_access = os.mkdir, os.open, os.access

    def guard(path):
        if folder in Path(os.path.abspath(os.fsdecode(path))).parents:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))

    def mkdir(path, *args, **kwargs):
        guard(path)
        return real_mkdir(path, *args, **kwargs)

    def open_(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            guard(path)
        return real_open(path, flags, *args, **kwargs)

    def access(path, mode, *args, **kwargs):
        if mode & os.W_OK and Path(os.path.abspath(os.fsdecode(path))) == folder:
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "access", access)


class Mkdir:
    """A pickle that creates a folder when unpickled: if any reader ran it, the snapshot would show it."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path,)


def _task(sb, text, name="task.toml", encoding="utf-8") -> Path:
    path = sb / name
    path.write_bytes(text.encode(encoding))
    return path


def _statin(**replace) -> str:
    """The built-in statin task with `key = value` lines replaced (or added to the top when absent)."""
    lines = STATIN.splitlines()
    for key, value in replace.items():
        hit = [i for i, line in enumerate(lines) if line.split("=")[0].strip() == key]
        if hit:
            lines[hit[0]] = f"{key} = {value}"
        else:
            lines.insert(0, f"{key} = {value}")
    return "\n".join(lines) + "\n"


def _eval(w, sb, *extra):
    return ["evaluate", "--data", w["data"], "--task", TASK, "--baselines", "lightgbm", "--n-boot", "100",
            "--out", sb / "out", *extra]


def _eval_task(w, sb, text, encoding="utf-8"):
    return ["evaluate", "--data", w["data"], "--task", "", "--task-file", _task(sb, text, encoding=encoding),
            "--baselines", "lightgbm", "--n-boot", "100", "--out", sb / "deep" / "er" / "out"]


def _run_copy(w, sb, edit=None) -> Path:
    run = copy_tree(w["run"], sb / "run")
    if edit:
        edit(run)
    return run


def _data_copy(w, sb, edit) -> Path:
    data = copy_tree(w["data"], sb / "data")
    edit(data)
    return data


def _edit_config(run, **model):
    cfg = json.loads((run / "config.json").read_text())
    cfg["settings"]["model"].update(model)
    (run / "config.json").write_text(json.dumps(cfg))


def _torch_pickle(path, obj):
    import torch

    torch.save(obj, path)


def _regular_file(sb) -> Path:
    (sb / "plain").write_text("a user's file\n")
    return sb / "plain" / "out"


def _read_only(sb, mp) -> Path:
    (sb / "ro").mkdir()
    make_read_only(sb / "ro", mp)
    return sb / "ro" / "out"


def _no_cuda():
    import torch

    return not torch.cuda.is_available()


# (id, build(sb, world, monkeypatch) -> argv, text the one-line message must contain)
CASES = [
    # --- synth -----------------------------------------------------------------------------------------------
    ("synth-out-under-file", lambda sb, w, mp: ["synth", "--out", _regular_file(sb), "--patients", "20"], "plain"),
    ("synth-out-read-only", lambda sb, w, mp: ["synth", "--out", _read_only(sb, mp), "--patients", "20"], "ro"),
    ("synth-patients-negative", lambda sb, w, mp: ["synth", "--out", sb / "out", "--patients", "-5"], "--patients"),
    ("synth-months-zero", lambda sb, w, mp: ["synth", "--out", sb / "out", "--months", "0"], "--months"),
    ("synth-hospitals-zero", lambda sb, w, mp: ["synth", "--out", sb / "out", "--hospitals", "0"], "--hospitals"),
    ("synth-patients-not-a-number", lambda sb, w, mp: ["synth", "--out", sb / "out", "--patients", "many"],
     "--patients"),
    ("synth-seed-negative", lambda sb, w, mp: ["synth", "--out", sb / "out", "--seed", "-1"], "--seed"),
    ("synth-unknown-flag", lambda sb, w, mp: ["synth", "--out", sb / "out", "--bogus"], "--bogus"),
    # --- ingest ----------------------------------------------------------------------------------------------
    ("ingest-out-under-file", lambda sb, w, mp: ["ingest", w["synth"], "--out", _regular_file(sb)], "plain"),
    ("ingest-out-read-only", lambda sb, w, mp: ["ingest", w["synth"], "--out", _read_only(sb, mp)], "ro"),
    ("ingest-min-count-negative", lambda sb, w, mp: ["ingest", w["synth"], "--out", sb / "out", "--min-count", "-1"],
     "--min-count"),
    ("ingest-shard-rows-zero", lambda sb, w, mp: ["ingest", w["synth"], "--out", sb / "out", "--shard-rows", "0"],
     "--shard-rows"),
    ("ingest-threads-negative", lambda sb, w, mp: ["ingest", w["synth"], "--out", sb / "out", "--threads", "-2"],
     "--threads"),
    ("ingest-salt-file-is-a-folder", lambda sb, w, mp: ["ingest", w["synth"], "--out", sb / "out",
                                                        "--salt-file", w["synth"]], "synth"),
    ("ingest-meds-corrupt-codes-parquet", lambda sb, w, mp: [
        "ingest", _data_copy(w, sb, lambda d: (d / "metadata" / "codes.parquet").write_bytes(b"PAR1 not parquet")),
        "--format", "meds", "--out", sb / "out"], "codes.parquet"),
    ("ingest-meds-corrupt-shard", lambda sb, w, mp: [
        "ingest", _data_copy(w, sb, lambda d: (d / "data" / "train" / "0.parquet").write_bytes(b"\0" * 64)),
        "--format", "meds", "--out", sb / "out"], "0.parquet"),
    ("ingest-master-not-utf8", lambda sb, w, mp: [
        "ingest", w["synth"] / "uke", "--masters", _masters_cp932(w, sb), "--out", sb / "out", "--no-progress"],
        "diseases.csv"),
    # --- pretrain --------------------------------------------------------------------------------------------
    *[(f"pretrain-{flag[2:]}-{value}", (lambda f, v: lambda sb, w, mp: [
        "pretrain", "--data", w["data"], "--out", sb / "out", "--params", "demo-S", f, v])(flag, value), flag)
      for flag, value in [("--lr", "nan"), ("--lr", "inf"), ("--lr", "-1"), ("--lr", "0"), ("--tokens", "-5"),
                          ("--steps", "0"), ("--max-len", "-1"), ("--batch-tokens", "0"),
                          ("--micro-batch-tokens", "-1"), ("--checkpoint-every", "0"), ("--eval-every", "-3"),
                          ("--num-workers", "-1")]],
    ("pretrain-lr-huge-diverges", lambda sb, w, mp: [
        "pretrain", "--data", w["data"], "--out", sb / "out", *w["pretrain"], "--lr", "1e30"], "diverged"),
    ("pretrain-lr-not-a-number", lambda sb, w, mp: ["pretrain", "--data", w["data"], "--lr", "fast"], "--lr"),
    ("pretrain-out-under-file", lambda sb, w, mp: ["pretrain", "--data", w["data"], "--out", _regular_file(sb),
                                                   *w["pretrain"]], "plain"),
    ("pretrain-out-read-only", lambda sb, w, mp: ["pretrain", "--data", w["data"], "--out", _read_only(sb, mp),
                                                  *w["pretrain"]], "ro"),
    ("pretrain-vocab-not-json", lambda sb, w, mp: [
        "pretrain", "--data", _data_copy(w, sb, lambda d: (d / "store" / "vocab.json").write_text("{oops")),
        "--out", sb / "out", *w["pretrain"]], "vocab.json"),
    ("pretrain-vocab-is-a-list", lambda sb, w, mp: [
        "pretrain", "--data", _data_copy(w, sb, lambda d: (d / "store" / "vocab.json").write_text("[1, 2]")),
        "--out", sb / "out", *w["pretrain"]], "vocab.json"),
    ("pretrain-vocab-not-utf8", lambda sb, w, mp: [
        "pretrain", "--data", _data_copy(w, sb, lambda d: (d / "store" / "vocab.json").write_bytes(b'{"\x93": 0}')),
        "--out", sb / "out", *w["pretrain"]], "vocab.json"),
    ("pretrain-codes-json-truncated", lambda sb, w, mp: [
        "pretrain", "--data", _data_copy(w, sb, lambda d: (d / "store" / "codes.json").write_text('[{"code": ')),
        "--out", sb / "out", *w["pretrain"]], "codes.json"),
    ("pretrain-format-json-a-list", lambda sb, w, mp: [
        "pretrain", "--data", _data_copy(w, sb, lambda d: (d / "store" / "format.json").write_text("[]")),
        "--out", sb / "out", *w["pretrain"]], "format.json"),
    ("pretrain-format-json-missing-keys", lambda sb, w, mp: [
        "pretrain", "--data", _data_copy(w, sb, lambda d: (d / "store" / "format.json").write_text(
            '{"FORMAT_VERSION": 1}')), "--out", sb / "out", *w["pretrain"]], "format.json"),
    ("pretrain-rerun-config-not-json", lambda sb, w, mp: [
        "pretrain", "--data", w["data"], "--out", _run_copy(w, sb, lambda r: (r / "config.json").write_text("{")),
        *w["pretrain"]], "config.json"),
    ("pretrain-rerun-settings-a-list", lambda sb, w, mp: [
        "pretrain", "--data", w["data"], "--out", _run_copy(w, sb, lambda r: (r / "config.json").write_text(
            '{"settings": [1]}')), *w["pretrain"]], "config.json"),
    ("pretrain-rerun-summary-a-list", lambda sb, w, mp: [
        "pretrain", "--data", w["data"], "--out", _run_copy(w, sb, lambda r: (r / "summary.json").write_text("[]")),
        *w["pretrain"]], "summary.json"),
    ("pretrain-resume-pickle-state", lambda sb, w, mp: [
        "pretrain", "--data", w["data"], "--out", _run_copy(w, sb, lambda r: _unfinished(r, sb, "state.pt")),
        *w["pretrain"]], "state.pt"),
    ("pretrain-resume-pickle-weights", lambda sb, w, mp: [
        "pretrain", "--data", w["data"], "--out", _run_copy(w, sb, lambda r: _unfinished(r, sb, "model.safetensors")),
        *w["pretrain"]], "model.safetensors"),
    # --- evaluate --------------------------------------------------------------------------------------------
    *[(f"evaluate-{flag[2:]}-{value}", (lambda f, v: lambda sb, w, mp: _eval(w, sb, f, v))(flag, value), flag)
      for flag, value in [("--epochs", "0"), ("--batch-tokens", "-1"), ("--max-train", "0"), ("--max-eval", "-1"),
                          ("--max-len", "0"), ("--n-boot", "10"), ("--seed", "-1"), ("--seed", "4294967296")]],
    ("evaluate-device-unknown", lambda sb, w, mp: _eval(w, sb, "--model", w["run"], "--device", "gpu0"), "--device"),
    ("evaluate-out-under-file", lambda sb, w, mp: [*_eval(w, sb)[:-2], "--out", _regular_file(sb)], "plain"),
    ("evaluate-out-read-only", lambda sb, w, mp: [*_eval(w, sb)[:-2], "--out", _read_only(sb, mp)], "ro"),
    ("evaluate-store-vocab-not-json", lambda sb, w, mp: [
        "evaluate", "--data", _data_copy(w, sb, lambda d: (d / "store" / "vocab.json").write_text("nope")),
        "--task", TASK, "--n-boot", "100", "--out", sb / "out"], "vocab.json"),
    ("evaluate-model-config-not-json", lambda sb, w, mp: _eval(
        w, sb, "--model", _run_copy(w, sb, lambda r: (r / "config.json").write_text("\x00\x01"))), "config.json"),
    ("evaluate-model-summary-not-json", lambda sb, w, mp: _eval(
        w, sb, "--model", _run_copy(w, sb, lambda r: (r / "summary.json").write_text("{'a': 1}"))), "summary.json"),
    ("evaluate-model-summary-a-list", lambda sb, w, mp: _eval(
        w, sb, "--model", _run_copy(w, sb, lambda r: (r / "summary.json").write_text("[1]"))), "summary.json"),
    ("evaluate-weights-wrong-shape", lambda sb, w, mp: _eval(
        w, sb, "--model", _run_copy(w, sb, lambda r: _edit_config(r, d_ff=128))), "model.safetensors"),
    ("evaluate-weights-missing-layer", lambda sb, w, mp: _eval(
        w, sb, "--model", _run_copy(w, sb, lambda r: _edit_config(r, n_layer=3))), "model.safetensors"),
    ("evaluate-weights-are-a-pickle", lambda sb, w, mp: _eval(
        w, sb, "--model", _run_copy(w, sb, lambda r: (r / "model.safetensors").write_bytes(
            pickle.dumps(Mkdir(str(sb / "pwned")))))), "model.safetensors"),
    ("evaluate-weights-torch-save", lambda sb, w, mp: _eval(
        w, sb, "--model", _run_copy(w, sb, lambda r: _torch_pickle(r / "model.safetensors", {"x": 1}))),
     "model.safetensors"),
    ("evaluate-weights-truncated", lambda sb, w, mp: _eval(
        w, sb, "--model", _run_copy(w, sb, lambda r: _truncate(r / "model.safetensors"))), "model.safetensors"),
    ("evaluate-task-file-not-utf8", lambda sb, w, mp: _eval_task(
        w, sb, _statin(description='"高血圧"'), encoding="cp932"), "task.toml"),
    ("evaluate-task-file-not-toml", lambda sb, w, mp: _eval_task(w, sb, "name = \n"), "task.toml"),
    ("evaluate-task-file-is-a-folder", lambda sb, w, mp: [
        *_eval(w, sb), "--task-file", _mkdir(sb / "folder.toml")], "folder.toml"),
    ("evaluate-task-unknown-key", lambda sb, w, mp: _eval_task(w, sb, _statin(colour='"red"')), "colour"),
    ("evaluate-task-unknown-table-key", lambda sb, w, mp: _eval_task(
        w, sb, STATIN.replace("washout_months", "washout_monthz")), "washout_monthz"),
    ("evaluate-task-negative-min-age", lambda sb, w, mp: _eval_task(w, sb, _statin(min_age="-5")), "min_age"),
    ("evaluate-task-negative-observation", lambda sb, w, mp: _eval_task(
        w, sb, _statin(observation_months="-1")), "observation_months"),
    ("evaluate-task-negative-washout", lambda sb, w, mp: _eval_task(w, sb, _statin(washout_months="-12")),
     "washout_months"),
    ("evaluate-task-huge-window", lambda sb, w, mp: _eval_task(w, sb, _statin(prediction_months="100000")),
     "prediction_months"),
    ("evaluate-task-window-not-a-table", lambda sb, w, mp: _eval_task(w, sb, 'window = 3\n' + STATIN.split(
        "[window]")[0]), "window"),
    ("evaluate-task-name-dotdot", lambda sb, w, mp: _eval_task(w, sb, _statin(name='"../../evil"')), "name"),
    ("evaluate-task-name-absolute", lambda sb, w, mp: _eval_task(w, sb, _statin(name=f'"{sb}/abs"')), "name"),
    ("evaluate-task-name-hidden", lambda sb, w, mp: _eval_task(w, sb, _statin(name='".hidden"')), "name"),
    ("evaluate-task-name-slash", lambda sb, w, mp: _eval_task(w, sb, _statin(name='"a/b"')), "name"),
    ("evaluate-task-name-empty", lambda sb, w, mp: _eval_task(w, sb, _statin(name='""')), "name"),
    # --- sweep -----------------------------------------------------------------------------------------------
    *[(f"sweep-{flag[2:]}-{value}", (lambda f, v: lambda sb, w, mp: [
        "sweep", "--data", w["data"], "--scales", "demo-S", "--tasks", TASK, "--runs", sb / "runs",
        "--out", sb / "out", f, v])(flag, value), flag)
      for flag, value in [("--margin", "nan"), ("--margin", "inf"), ("--margin", "-0.1"), ("--margin", "2"),
                          ("--tokens", "-1"), ("--max-len", "0"), ("--n-boot", "3")]],
    ("sweep-store-format-not-json", lambda sb, w, mp: [
        "sweep", "--data", _data_copy(w, sb, lambda d: (d / "store" / "format.json").write_text("{")),
        "--scales", "demo-S", "--tasks", TASK, "--runs", sb / "runs", "--out", sb / "out"], "format.json"),
    # --- report ----------------------------------------------------------------------------------------------
    ("report-results-a-list", lambda sb, w, mp: ["report", _write(sb / "results.json", "[]"),
                                                 "--out", sb / "out"], "results.json"),
    ("report-results-not-json", lambda sb, w, mp: ["report", _write(sb / "results.json", "{\"scales\": "),
                                                   "--out", sb / "out"], "results.json"),
    ("report-results-not-utf8", lambda sb, w, mp: ["report", _write(sb / "results.json", b"\xff\xfe{}"),
                                                   "--out", sb / "out"], "results.json"),
    ("report-results-schema-a-string", lambda sb, w, mp: ["report", _write(
        sb / "results.json", MINIMAL_RESULTS.replace('"schema": 2', '"schema": "2"')), "--out", sb / "out"], "schema"),
    ("report-results-scale-not-an-object", lambda sb, w, mp: ["report", _write(
        sb / "results.json", '{"schema": 2, "scales": {"demo-S": 5}, "tasks": {}}'), "--out", sb / "out"], "demo-S"),
    ("report-out-under-file", lambda sb, w, mp: ["report", _write(sb / "r" / "results.json", MINIMAL_RESULTS),
                                                 "--out", _regular_file(sb)], "plain"),
    # --- the output-folder policy and input checks (claimsfm.outdir, ingest): inputs and user files survive ---
    ("ingest-out-is-the-input", lambda sb, w, mp: ["ingest", w["synth"], "--out", w["synth"], "--overwrite"],
     "--out"),
    ("ingest-out-is-the-inputs-parent", lambda sb, w, mp: ["ingest", w["synth"] / "uke", "--out", w["synth"],
                                                           "--overwrite"], "--out"),
    ("ingest-out-inside-the-input", lambda sb, w, mp: ["ingest", w["synth"], "--out", w["synth"] / "inner"],
     "--out"),
    ("synth-overwrite-a-users-folder", lambda sb, w, mp: ["synth", "--out", _users_folder(sb), "--overwrite",
                                                          "--patients", "5"], "did not write"),
    ("ingest-overwrite-a-users-folder", lambda sb, w, mp: ["ingest", w["synth"], "--out", _users_folder(sb),
                                                           "--overwrite"], "did not write"),
    ("report-into-a-users-folder", lambda sb, w, mp: ["report", _write(sb / "results.json", MINIMAL_RESULTS),
                                                      "--out", _users_folder(sb)], "did not write"),
    ("evaluate-out-is-the-data", lambda sb, w, mp: [*_eval(w, sb)[:-2], "--out", w["data"]], "--out"),
    ("pretrain-out-inside-the-data", lambda sb, w, mp: ["pretrain", "--data", w["data"], "--out",
                                                        w["data"] / "run", *w["pretrain"]], "--out"),
    ("ingest-csv-header-only", lambda sb, w, mp: ["ingest", _write(sb / "h.csv", "subject_id,time,code\n"),
                                                  "--format", "csv", "--out", sb / "out"], "h.csv"),
    ("ingest-meds-integer-time", lambda sb, w, mp: ["ingest", _meds_integer_time(sb), "--format", "meds",
                                                    "--out", sb / "out"], "time"),
    # --- demo ------------------------------------------------------------------------------------------------
    ("demo-patients-negative", lambda sb, w, mp: ["demo", "--out", sb / "out", "--patients", "-1"], "--patients"),
    ("demo-tokens-zero", lambda sb, w, mp: ["demo", "--out", sb / "out", "--tokens", "0"], "--tokens"),
    ("demo-mode-unknown", lambda sb, w, mp: ["demo", "--out", sb / "out", "--mode", "guess"], "--mode"),
    ("demo-tasks-unknown", lambda sb, w, mp: ["demo", "--out", sb / "out", "--tasks", "no_such_task"], "no_such_task"),
    ("demo-seed-negative", lambda sb, w, mp: ["demo", "--out", sb / "out", "--seed", "-3"], "--seed"),
    ("demo-margin-nan", lambda sb, w, mp: ["demo", "--out", sb / "out", "--margin", "nan"], "--margin"),
    ("demo-out-under-file", lambda sb, w, mp: ["demo", "--out", _regular_file(sb), "--patients", "50"], "plain"),
    ("demo-out-read-only", lambda sb, w, mp: ["demo", "--out", _read_only(sb, mp), "--patients", "50"], "ro"),
]


def _write(path, content) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    return path


def _users_folder(sb) -> Path:
    """A folder holding only a file of the user's: no command may write into it or delete it."""
    return _write(sb / "mine" / "notes.txt", "my notes\n").parent


def _meds_integer_time(sb) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (sb / "meds" / "data" / "train").mkdir(parents=True)
    pq.write_table(pa.table({"subject_id": pa.array([1, 1], pa.int64()),
                             "time": pa.array([1_600_000_000_000_000, 1_700_000_000_000_000], pa.int64()),
                             "code": ["A", "B"], "numeric_value": pa.array([None, None], pa.float32())}),
                   sb / "meds" / "data" / "train" / "0.parquet")
    return sb / "meds"


def _mkdir(path) -> Path:
    path.mkdir()
    return path


def _truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _unfinished(run, sb, name) -> None:
    """Turn a finished run into one that resumes from its last checkpoint, with `name` there a hostile pickle."""
    (run / "summary.json").unlink()
    (run / "model.safetensors").unlink()
    step = sorted((run / "checkpoints").iterdir())[-1]
    (step / name).write_bytes(pickle.dumps(Mkdir(str(sb / "pwned"))))


def _masters_cp932(w, sb) -> Path:
    masters = copy_tree(w["synth"] / "masters", sb / "masters")
    text = (masters / "diseases.csv").read_text(encoding="utf-8")
    (masters / "diseases.csv").write_bytes(text.encode("cp932"))
    return masters


def _outside(before: dict, after: dict, out) -> list[str]:
    """Paths that changed, other than new entries inside `out` and claimsfm's own marker there: a failed command
    may leave its new files (a diverged run keeps its checkpoints), but never deletes or alters one that was
    there before."""
    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    if out is not None:
        inside = {p for p in changed if p == out or p.startswith(out + "/")}
        changed -= {p for p in inside if p not in before or p == f"{out}/{MARKER}"}
    return sorted(changed)


def _out_of(args, root) -> str | None:
    if "--out" not in args:
        return None
    out = Path(args[args.index("--out") + 1])
    try:
        return out.relative_to(root).as_posix()
    except ValueError:
        return None


@pytest.mark.parametrize("build, expect", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_input_gives_one_line_and_touches_nothing(build, expect, world, tmp_path, monkeypatch, capsys):
    sb = tmp_path / "sb"
    sb.mkdir()
    monkeypatch.chdir(sb)  # a default such as ./runs would land here, and the snapshot would see it
    args = build(sb, world, monkeypatch)
    before, world_before = snapshot(tmp_path), snapshot(world["root"])
    code, _, err = run_main(args, capsys)
    assert code == 2 and "Traceback" not in err, err
    assert_one_error_line(err, expect)
    assert _outside(before, snapshot(tmp_path), _out_of(args, tmp_path)) == []
    assert snapshot(world["root"]) == world_before


@pytest.mark.skipif(not _no_cuda(), reason="a GPU is present")
def test_device_cuda_without_a_gpu_says_so(world, tmp_path, capsys):
    code, _, err = run_main(_eval(world, tmp_path, "--model", world["run"], "--device", "cuda"), capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--device cuda" in err and "cannot read weights" not in err, err
    assert not (tmp_path / "out").exists()


def test_diverged_pretraining_is_never_marked_finished(world, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["pretrain", "--data", world["data"], "--out", out, *world["pretrain"], "--lr", "1e30"]
    code, _, err = run_main(args, capsys)
    assert code == 2 and "diverged at step" in err and "Traceback" not in err
    assert not (out / "summary.json").exists() and not (out / "model.safetensors").exists()
    code, _, err = run_main(args, capsys)  # a rerun resumes from the last finite checkpoint and stops again
    assert code == 2 and "diverged" in err and not (out / "summary.json").exists()


SUBPROCESS = [c for c in CASES if c[0] in ("pretrain-lr-nan", "evaluate-task-name-dotdot", "report-results-a-list",
                                          "synth-patients-not-a-number", "evaluate-weights-are-a-pickle")]


@pytest.mark.parametrize("build, expect", [c[1:] for c in SUBPROCESS], ids=[c[0] for c in SUBPROCESS])
def test_installed_command_answers_the_same(build, expect, world, tmp_path, cli):
    """The same promise from the installed `claimsfm` in its own process (where a stray print or warning shows)."""
    sb = tmp_path / "sb"
    sb.mkdir()
    args = build(sb, world, None)
    before, world_before = snapshot(tmp_path), snapshot(world["root"])
    proc = cli(*args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert_one_error_line(proc.stderr, expect)
    assert _outside(before, snapshot(tmp_path), _out_of(args, tmp_path)) == []
    assert snapshot(world["root"]) == world_before
