"""The installed command line: help, version, and that it loads no heavy library."""
import subprocess
import sys

import claimsfm


def test_version(cli):
    out = cli("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"claimsfm {claimsfm.__version__}"


def test_help_lists_every_command(cli):
    out = cli("--help")
    assert out.returncode == 0
    for cmd in ("synth", "ingest", "pretrain", "evaluate", "sweep", "report", "demo"):
        assert cmd in out.stdout


def test_import_and_help_load_no_heavy_library(tmp_path):
    code = (
        "import sys, claimsfm, claimsfm.cli.main as m\n"
        "heavy = [k for k in ('torch', 'triton', 'lightgbm') if k in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_installed_layout_has_no_top_level_cli_or_kernels():
    import importlib.util

    assert importlib.util.find_spec("claimsfm.cli") is not None
    assert importlib.util.find_spec("claimsfm.kernels") is not None
    assert importlib.util.find_spec("claimsfm._native") is not None
    for name in ("cli", "kernels"):
        spec = importlib.util.find_spec(name)
        assert spec is None or "claimsfm" not in str(spec.origin or ""), spec
