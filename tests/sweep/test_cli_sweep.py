"""`claimsfm sweep | report | demo` from the command line: help, dry-run plan, one-line errors."""
from claimsfm.io import write_json

from helpers.reportkit import make_results


def test_help_texts(cli):
    for cmd, word in (("sweep", "--dry-run"), ("report", "results.json"), ("demo", "--out")):
        out = cli(cmd, "--help")
        assert out.returncode == 0 and word in out.stdout


def test_dry_run_prints_the_paper_scale_plan(cli, tmp_path):
    out = cli("sweep", "--dry-run", "--scales", "2.2M,11M,101M", "--tokens", "1000000000", "--out", tmp_path / "plan")
    assert out.returncode == 0, out.stderr
    assert "2,300,000 patients" in out.stdout and "101M" in out.stdout and "GPU-hours" in out.stdout
    assert "ASSUMED" in out.stdout or "measured" in out.stdout
    assert (tmp_path / "plan" / "plan.json").is_file()


def test_user_errors_are_one_line_exit_2(cli, tmp_path):
    for args, flag in ((("sweep", "--data", tmp_path / "nothing"), "no token store"),
                       (("sweep", "--data", tmp_path, "--scales", "big"), "--scales"),
                       (("sweep", "--data", tmp_path, "--margin", "-1"), "--margin"),
                       (("report", tmp_path), "results.json")):
        out = cli(*args)
        assert out.returncode == 2, (args, out.stderr)
        assert flag in out.stderr and "Traceback" not in out.stderr


def test_report_command_redraws_from_results_json(cli, tmp_path):
    write_json(tmp_path / "results.json", make_results())
    out = cli("report", tmp_path, "--out", tmp_path / "r")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "r" / "report.html").is_file() and (tmp_path / "r" / "figures" / "loss_vs_params.png").is_file()
