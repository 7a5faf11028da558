"""claimsfm._native: ABI_VERSION is checked on import, and _native.pyi names every binding and result key."""
import ast
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest

import claimsfm
import claimsfm.native
from claimsfm.errors import ClaimsfmError
from claimsfm.native import native

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "uke"
STUB = Path(claimsfm.__file__).parent / "_native.pyi"


def _stub():
    return ast.parse(STUB.read_text(encoding="utf-8"))


def _typed_dicts() -> dict[str, list[str]]:
    """TypedDict name -> its keys, in order, as the stub declares them."""
    out = {}
    for node in _stub().body:
        if isinstance(node, ast.ClassDef) and any(getattr(b, "id", None) == "TypedDict" for b in node.bases):
            out[node.name] = [s.target.id for s in node.body if isinstance(s, ast.AnnAssign)]
    return out


def test_versions_agree_and_a_mismatch_is_a_clear_error(monkeypatch):
    assert native().ABI_VERSION == claimsfm.native.ABI_VERSION
    monkeypatch.setattr(claimsfm.native, "ABI_VERSION", claimsfm.native.ABI_VERSION + 1)
    with pytest.raises(ClaimsfmError, match=r"ABI_VERSION \d+, but this claimsfm needs \d+; rebuild"):
        native()


def test_import_refuses_a_build_of_another_abi(tmp_path):
    code = ("import claimsfm.native as n; n.ABI_VERSION += 1\n"
            "try:\n    import claimsfm._native\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-P", "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    want = claimsfm.native.ABI_VERSION
    assert f"built with ABI_VERSION {want}, but this claimsfm needs {want + 1}; rebuild" in out.stdout


def test_stub_names_every_binding():
    declared = set()
    for node in _stub().body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name not in _typed_dicts():
            declared.add(node.name)
        elif isinstance(node, ast.AnnAssign):
            declared.add(node.target.id)
    public = {n for n in dir(native()) if not n.startswith("_")}
    assert declared == public


def test_stub_result_keys_match_the_bindings(tmp_path):
    keys = _typed_dicts()
    uke = native().parse_uke(sorted(str(p) for p in (FIXTURES / "good").rglob("*.UKE")))
    assert list(uke) == keys["UkeResult"]
    assert list(uke["stats"]) == keys["UkeStats"] == list(native().UKE_STAT_KEYS)
    csv = tmp_path / "events.csv"
    csv.write_text("subject_id,time,code\n1,2020-01-02,JPDX//1000001\n", encoding="utf-8")
    assert list(native().parse_csv(str(csv))) == keys["CsvResult"]
    assert isinstance(uke["key"], np.ndarray) and uke["key"].dtype == np.int32


def test_stub_is_valid_typing():
    namespace = {}
    exec(compile(_stub(), str(STUB), "exec"), namespace)  # the stub's annotations resolve
    assert typing.get_type_hints(namespace["UkeResult"])["stats"] is namespace["UkeStats"]
