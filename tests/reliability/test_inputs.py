"""Input accounting and input checks (issue 16, defects 5, 8 and the UKE part of 9; what-to-build 4, 6, 7).

Every case first reproduces what the hostile run saw (input silently lost or counted twice, CSV with a BOM
refused, a header-only CSV naming a deleted temporary folder, `1e400` stored as inf, UKE claim month 13 and
friends accepted), then checks the fix, with the C++ parsers and their Python twins agreeing.
"""
import json
import os
import shutil
from pathlib import Path

import pytest

from claimsfm.errors import ClaimsfmError
from claimsfm.ingest import IngestConfig, csvfmt, reference, run

GOOD = Path(__file__).resolve().parents[1] / "fixtures" / "uke" / "good"
IR = "IR,1,13,1,1312345,,テスト医院,{claim},00,03-0000-0000"
RE = "RE,1,{rtype},202405,試験　花子,2,{birth},,,,,,,P0001,,,,,,,,01,,,,,,,,,,,,,,,シケンハナコ,"
SY = "SY,8830052,20240507,1,,,01,"
SI = "SI,11,1,111000110,,288,1,,,,,,,,,,,,,1,,,,,,,,,,,,,,,,,,,,,,,,"


@pytest.fixture(autouse=True)
def _salt(monkeypatch):
    monkeypatch.setenv("CLAIMSFM_SALT", "inputs-test")


def ingest(inputs, out, **kw):
    kw.setdefault("min_count", 1)
    return run(IngestConfig(inputs=[Path(i) for i in inputs], out=Path(out), progress=False, **kw))


def uke(claim="202406", rtype="1112", birth="19800115", extra=b"") -> bytes:
    lines = [IR.format(claim=claim), RE.format(rtype=rtype, birth=birth), SY, SI, "GO,1,288,99"]
    return ("\r\n".join(lines) + "\r\n").encode("cp932") + extra


# ---- accounting -------------------------------------------------------------------------------

def test_same_input_twice_is_read_once(tmp_path):
    """Defect 5: the same folder given twice counted every receipt twice."""
    once = ingest([GOOD], tmp_path / "once")
    twice = ingest([GOOD, GOOD, GOOD / "1312345", GOOD / "1312345" / "202405.UKE"], tmp_path / "twice")
    assert twice["receipts"] == once["receipts"] and twice["events"] == once["events"]
    assert twice["files_read"] == once["files_read"] == 3
    assert twice["duplicate_inputs"] == 3 + 2 + 1 and once["duplicate_inputs"] == 0


def test_linked_folder_read_once_and_not_lost(tmp_path):
    claims = tmp_path / "claims"
    shutil.copytree(GOOD / "1312345", claims / "a")
    shutil.copytree(GOOD / "2723456", tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", claims / "b")  # a linked sub-folder is read, not skipped
    os.symlink(claims / "a", claims / "a_again")      # and the same folder twice through a link, once
    s = ingest([claims], tmp_path / "out")
    assert s["files_read"] == 3 and s["duplicate_inputs"] == 0 and s["inputs_skipped"] == 0


def _broken_input(tmp_path) -> Path:
    claims = tmp_path / "claims"
    shutil.copytree(GOOD, claims)
    os.symlink(tmp_path / "gone.UKE", claims / "2723456" / "202407.UKE")  # a dangling link: unreadable
    return claims


def test_unreadable_file_is_an_error_or_counted(tmp_path):
    claims = _broken_input(tmp_path)
    with pytest.raises(ClaimsfmError, match=r"202407.UKE: cannot read file .*pass --on-error skip"):
        ingest([claims], tmp_path / "out")
    assert not (tmp_path / "out").exists()
    s = ingest([claims], tmp_path / "out", on_error="skip")
    assert s["inputs_skipped"] == 1 and s["files_read"] == 3
    rejects = (tmp_path / "out" / "rejects.txt").read_text().splitlines()
    assert rejects[0].startswith(f"{claims / '2723456' / '202407.UKE'}: cannot read file")


def test_unreadable_folder_is_an_error_or_counted(tmp_path, monkeypatch):
    """Defect 5: an unreadable sub-folder was skipped and the run exited 0. The folder is made unreadable
    by permissions where that works (not as root), else by an injected PermissionError from os.scandir."""
    claims = tmp_path / "claims"
    shutil.copytree(GOOD, claims)
    locked = claims / "2723456"
    if os.geteuid() != 0:
        locked.chmod(0)
    else:
        real_scandir = os.scandir

        def scandir(path="."):
            if Path(path) == locked:
                raise PermissionError(13, "Permission denied", str(path))
            return real_scandir(path)

        monkeypatch.setattr(os, "scandir", scandir)
    try:
        with pytest.raises(ClaimsfmError, match=r"2723456: cannot read folder \(Permission denied\)"):
            ingest([claims], tmp_path / "out")
        s = ingest([claims], tmp_path / "out", on_error="skip")
    finally:
        locked.chmod(0o755)
    assert s["inputs_skipped"] == 1 and s["files_read"] == 2
    assert "2723456: cannot read folder" in (tmp_path / "out" / "rejects.txt").read_text()


def test_summary_stays_short(tmp_path):
    """Defect 9: one summary line per code (71,408 lines for integer codes)."""
    rows = "".join(f"{i % 50},2020-01-{1 + i % 28:02d},{i}\n" for i in range(3000))
    (tmp_path / "in.csv").write_text("subject_id,time,code\n" + rows)
    s = ingest([tmp_path / "in.csv"], tmp_path / "out", format="csv")
    assert s["codes"] == 3000 and len(s["events_by_kind"]) == 11 and len(s["top_codes"]) == 10
    assert s["events_by_kind"]["(other 2990)"] == 2990 and sum(s["events_by_kind"].values()) == s["events"]
    assert len(json.dumps(s)) < 3000


# ---- CSV --------------------------------------------------------------------------------------

@pytest.mark.parametrize("form", ["crlf", "bom", "bom+crlf"])
def test_csv_crlf_and_bom_accepted(tmp_path, form):
    """Defect 8: CRLF line ends or a UTF-8 BOM failed with a 'header' error."""
    text = "subject_id,time,code,numeric_value\n1,2020-01-01,A,1\n2,2020-02-01,B,2.5\n3,2020-03-01,A,\n"
    data = text.replace("\n", "\r\n") if "crlf" in form else text
    data = ("\ufeff" if "bom" in form else "") + data
    path = tmp_path / "in.csv"
    path.write_bytes(data.encode("utf-8"))
    s = ingest([path], tmp_path / "out", format="csv")
    assert s["events"] == 3 and s["rows"] == 3
    from claimsfm import _native

    a, b = _native.parse_csv(str(path), 2, False), csvfmt.parse_reference(path)
    assert a["rejects"] == b["rejects"] == [] and a["codes"] == b["codes"] == ["A", "B"]


def test_header_only_csv_names_the_input(tmp_path):
    """Defect 8: a header-only CSV got an error naming a deleted temporary folder."""
    path = tmp_path / "empty.csv"
    path.write_text("subject_id,time,code\n")
    with pytest.raises(ClaimsfmError) as err:
        ingest([path], tmp_path / "out", format="csv")
    assert str(err.value).startswith(f"{path}: no valid events") and ".tmp" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.csv"]


@pytest.mark.parametrize("value,reason", [("1e400", "numeric_value outside the float32 range"),
                                          ("-3.5e38", "numeric_value outside the float32 range"),
                                          ("inf", "bad numeric_value"), ("nan", "bad numeric_value")])
def test_csv_non_finite_values_refused_alike(tmp_path, value, reason):
    """Defect 8: `1e400` was stored as inf while a literal `inf` was refused."""
    from claimsfm import _native

    path = tmp_path / "in.csv"
    path.write_text(f"subject_id,time,code,numeric_value\n1,2020-01-01,A,3.4e38\n1,2020-01-02,A,{value}\n")
    assert _native.parse_csv(str(path), 1, True)["rejects"] == csvfmt.parse_reference(path, True)["rejects"] \
        == [(3, reason)]
    with pytest.raises(ClaimsfmError, match=f"in.csv:3: {reason}$"):
        ingest([path], tmp_path / "out", format="csv")


# ---- UKE checks -------------------------------------------------------------------------------

@pytest.mark.parametrize("data,message", [
    (uke(claim="202413"), ":1: bad date in field 8 of IR"),
    (uke(claim="2024xx"), ":1: bad date in field 8 of IR"),
    (uke(birth="20240601"), ":2: birth date after the treatment month in field 7 of RE"),
    (uke(rtype="2112"), ":2: unknown receipt type in field 3 of RE"),   # dental, not 医科
    (uke(rtype="1512"), ":2: unknown receipt type in field 3 of RE"),   # no insurance kind 5
    (uke(rtype="1312"), ":2: unknown receipt type in field 3 of RE"),   # 後期高齢 uses 7/8/9/0 only
    (uke(rtype="1213"), ":2: unknown receipt type in field 3 of RE"),   # 公費単独 uses 1/2 only
    (uke(rtype="1162"), ":2: unknown receipt type in field 3 of RE"),   # at most 5 payers
    (uke(extra=b"\x1a" + uke()), ":6: data after the end-of-file mark 0x1A"),
    (uke()[:40] + b"\x1a" + uke()[40:], ":1: data after the end-of-file mark 0x1A"),
])
def test_uke_checks(tmp_path, data, message):
    """Defect 9: claim month 13, a birth after the claim, an unknown receipt type and records after a
    mid-file 0x1A were accepted."""
    from claimsfm import _native

    path = tmp_path / "x.UKE"
    path.write_bytes(data)
    with pytest.raises(ClaimsfmError) as err:
        ingest([path], tmp_path / "out")
    assert str(err.value) == f"{path}{message}"
    for stop in (True, False):
        a, b = _native.parse_uke([str(path)], "chart", stop, 1), reference.parse_files([str(path)], "chart", stop)
        assert [tuple(r) for r in a["rejects"]] == [tuple(r) for r in b["rejects"]] and a["stats"] == b["stats"]


@pytest.mark.parametrize("data", [uke(), uke(rtype="1318"), uke(rtype="1212"), uke(rtype="1151"),
                                  uke(claim=""), uke(claim="50607"), uke(birth="20240531"),
                                  uke(extra=b"\x1a\x1a")])
def test_uke_checks_accept_valid(tmp_path, data):
    path = tmp_path / "x.UKE"
    path.write_bytes(data)
    assert ingest([path], tmp_path / "out")["receipts"] == 1
