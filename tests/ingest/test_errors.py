"""Bad input: one line `file:line: reason`, exit code 2, no traceback, nothing half-written;
`--on-error skip` quarantines receipts and lists the bad lines in rejects.txt."""
from pathlib import Path

import pytest

from claimsfm.errors import ClaimsfmError
from claimsfm.ingest import IngestConfig, run

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "uke"
BAD = FIXTURES / "bad"
ENV = {"CLAIMSFM_SALT": "errors-test"}

CASES = {
    "truncated": ":4: truncated record (no line end)",
    "field_count": ":3: wrong field count: SY has 10 fields (expected 4 to 8)",
    "bad_month": ":2: bad date in field 4 of RE",
    "bad_birth": ":2: bad date in field 7 of RE",
    "bad_era": ":2: bad date in field 7 of RE",
    "non_numeric": ":4: non-numeric count in field 16 of SI",
    "sy_before_re": ":2: SY record before any RE",
    "si_before_re": ":2: SI record before any RE",
    "bad_cp932": ":2: invalid CP932 bytes",
    "day_outside": ":4: service day outside the treatment month in field 44 of SI",
    "empty": ": empty file",
}


def check_error(res, expected):
    assert res.returncode == 2, res.stderr
    lines = [x for x in res.stderr.splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert lines[0].endswith(expected), lines[0]
    return lines[0]


@pytest.mark.parametrize("name", sorted(CASES))
def test_raise_message(tmp_path, monkeypatch, name):
    monkeypatch.setenv("CLAIMSFM_SALT", "errors-test")
    out = tmp_path / "out"
    with pytest.raises(ClaimsfmError) as err:
        run(IngestConfig(inputs=[BAD / f"{name}.UKE"], out=out, progress=False))
    assert str(err.value) == f"{BAD / name}.UKE{CASES[name]}"
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


@pytest.mark.parametrize("name", ["truncated", "bad_cp932"])
def test_raise_cli(cli, tmp_path, name):
    out = tmp_path / "out"
    res = cli("ingest", BAD / f"{name}.UKE", "--out", out, "--no-progress", env=ENV)
    line = check_error(res, CASES[name])
    assert f"{name}.UKE" in line
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_skip_writes_rejects(cli, tmp_path):
    out = tmp_path / "out"
    res = cli("ingest", BAD, FIXTURES / "good", "--out", out, "--on-error", "skip", "--no-progress",
              "--min-count", "1", env=ENV)
    assert res.returncode == 0, res.stderr
    rejects = (out / "rejects.txt").read_text(encoding="utf-8").splitlines()
    assert len(rejects) == len(CASES)  # one bad line per file
    for name, expected in CASES.items():
        assert any(f"{name}.UKE{expected}" in r for r in rejects), name
    assert next(r for r in rejects if "bad_birth" in r).endswith("\tRE,1,1112,...(38 fields)")  # codes only
    assert (out / "data").is_dir() and (out / "store" / "format.json").is_file()


def test_missing_path(cli, tmp_path):
    check_error(cli("ingest", tmp_path / "nope", "--out", tmp_path / "o", env=ENV), "nope: no such file or folder")


def test_folder_without_uke(cli, tmp_path):
    check_error(cli("ingest", BAD / "no_uke_here", "--out", tmp_path / "o", env=ENV), "no UKE files in this folder")


def test_bad_flag_value(cli, tmp_path):
    check_error(cli("ingest", FIXTURES / "good", "--out", tmp_path / "o", "--link-by", "name", env=ENV),
                "--link-by: 'name' is not one of chart, insurer")


def test_refuses_other_dataset_unless_overwrite(cli, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "something.txt").write_text("keep me")
    args = ("ingest", FIXTURES / "good", "--out", out, "--no-progress", "--min-count", "1")
    for extra in ((), ("--overwrite",)):  # not ours: refused even with --overwrite (claimsfm.outdir)
        check_error(cli(*args, *extra, env=ENV), "it never writes into such a folder, even with --overwrite: "
                                                 "choose a new or empty folder")
        assert (out / "something.txt").read_text() == "keep me"
    out = tmp_path / "ours"
    args = ("ingest", FIXTURES / "good", "--out", out, "--no-progress", "--min-count", "1")
    assert cli(*args, env=ENV).returncode == 0
    assert cli(*args, env=ENV).returncode == 0  # the same inputs again: allowed
    other = ("ingest", FIXTURES / "good" / "1312345", "--out", out, "--no-progress", "--min-count", "1")
    check_error(cli(*other, env=ENV), "settings; pass --overwrite to replace it")
    assert cli(*other, "--overwrite", env=ENV).returncode == 0


def test_failed_run_keeps_previous_output(cli, tmp_path):
    out = tmp_path / "out"
    assert cli("ingest", FIXTURES / "good", "--out", out, "--no-progress", "--min-count", "1", env=ENV).returncode == 0
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    res = cli("ingest", BAD / "truncated.UKE", "--out", out, "--overwrite", "--no-progress", env=ENV)
    check_error(res, CASES["truncated"])
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
