"""Rejects without identifiers (issue 16, defect 3): a stray half-width comma inside an identifying or free-text
field of any record type must not shift masking so that a value leaks into rejects.txt, an error message or any
other output, in UTF-8 and CP932 files; a huge rejected line gives a short excerpt; the C++ parser and its
Python twin report the same rejects."""
import pytest

from claimsfm.errors import ClaimsfmError
from claimsfm.ingest import IngestConfig, reference, run, write_dataset

# Each identifying or free-text field, with a comma planted in its value: (record, 1-based field, value).
PLANTED = [
    ("IR", 7, "寺島総合,病院本院"),
    ("RE", 5, "寺島遥香,山田花子"), ("RE", 14, "QXZ7731,KPW9902"), ("RE", 37, "テラシマ,ハルカコ"),
    ("HO", 2, "139912,776655"), ("HO", 3, "ＡＢＣ１２,ＤＥＦ３４"), ("HO", 4, "９５２４３７,８８１９２０"),
    ("KO", 2, "54139912,77665511"), ("KO", 3, "8812345,9912345"),
    ("SY", 6, "左肺上葉,結節影疑"), ("SY", 8, "家族歴あり,母方祖父"),
    ("SI", 9, "患者希望,夜間対応"), ("IY", 9, "朝夕食後,就寝前服用"), ("TO", 11, "ＸＹＺカテ,テルＳ型"),
    ("CO", 5, "本人申告,家族同伴"),
]
CLEAN = {("IR", 7): "見本医院", ("RE", 5): "見本　太郎", ("RE", 14): "P7004411", ("RE", 37): "ミホンタロウ",
         ("HO", 2): "  133066", ("HO", 3): "７７１２３４", ("HO", 4): "４５６７８９", ("KO", 2): "12139901",
         ("KO", 3): "7781234", ("SY", 6): "", ("SY", 8): "", ("SI", 9): "", ("IY", 9): "", ("TO", 11): "",
         ("CO", 5): "朝夕食後"}
WIDTH = {"IR": 10, "RE": 38, "HO": 15, "KO": 12, "SY": 8, "SI": 44, "IY": 44, "TO": 48, "CO": 5}
BASE = {
    "IR": {2: "1", 3: "13", 4: "1", 5: "1312345", 8: "202406", 9: "00"},
    "RE": {3: "1112", 4: "202405", 6: "2", 7: "19800115", 22: "01"},
    "HO": {5: "2", 6: "487"}, "KO": {5: "1", 6: "100"},
    "SY": {2: "0000999", 3: "20240507", 4: "1", 7: "01"},
    "SI": {2: "11", 3: "1", 4: "111000110", 6: "288", 7: "1", 20: "1"},
    "IY": {2: "21", 3: "1", 4: "620000001", 5: "3", 7: "7", 20: "7"},
    "TO": {2: "40", 3: "1", 4: "700010000", 5: "1", 7: "1", 8: "006", 9: "100", 24: "1"},
    "CO": {3: "1", 4: "810000001"},
}


def record(rid: str, planted: dict, receipt_no: int, short: bool) -> str:
    """One record line; `short` cuts it right after the planted field (a legal shorter line)."""
    fields = {**BASE[rid], **{pos: v for (r, pos), v in CLEAN.items() if r == rid}, **planted}
    if rid == "RE":
        fields[2] = str(receipt_no)
    width = max(planted) if short and planted else WIDTH[rid]
    return ",".join([rid] + [fields.get(i, "") for i in range(2, width + 1)])


def claims_file(short: bool) -> str:
    """One receipt per planted value; every receipt carries all record types."""
    lines = [record("IR", {}, 0, False)]
    for n, (rid, pos, value) in enumerate(PLANTED, start=1):
        if rid == "IR":
            lines.append(record("IR", {pos: value}, 0, short))
        for r in ("RE", "HO", "KO", "SY", "SI", "IY", "TO", "CO"):
            lines.append(record(r, {pos: value} if r == rid else {}, n, short and r == rid))
    lines.append(f"GO,{len(PLANTED)},487,99")
    return "\r\n".join(lines) + "\r\n"


def needles() -> set[bytes]:
    out = set()
    for _, _, value in PLANTED:
        for part in [value, *value.split(",")]:
            for enc in ("utf-8", "cp932"):
                out.add(part.encode(enc))
    for value in CLEAN.values():
        if len(value.strip()) >= 4:
            out.update({value.strip().encode("utf-8"), value.strip().encode("cp932")})
    return out


def leaks(blob: bytes) -> list[str]:
    return sorted(n.decode("utf-8", "replace") for n in needles() if n in blob)


@pytest.mark.parametrize("encoding", ["utf-8", "cp932"])
@pytest.mark.parametrize("short", [False, True])
def test_no_planted_value_in_rejects_or_any_output(tmp_path, monkeypatch, capsys, encoding, short):
    monkeypatch.setenv("CLAIMSFM_SALT", "rejects-test")
    src = tmp_path / "in" / "RECEIPTC.UKE"
    src.parent.mkdir()
    src.write_bytes(claims_file(short).encode(encoding) + b"\x1a")
    out = tmp_path / "out"
    summary = run(IngestConfig(inputs=[src.parent], out=out, on_error="skip", min_count=1, progress=False))
    rejects = (out / "rejects.txt").read_bytes()
    # Full-width lines overflow their field count; shortened ones mostly parse, with the values shifted
    # into fields claimsfm does not read (they still must not surface anywhere).
    assert summary["rejects"] == (5 if short else len(PLANTED)), rejects.decode()
    for line in rejects.decode("ascii").splitlines():
        where, excerpt = line.split("\t")
        assert where.startswith(f"{src}:") and len(excerpt) <= 60, line
    blobs = {str(p): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    captured = capsys.readouterr()
    blobs["stdout+stderr"] = (captured.out + captured.err).encode()
    assert len(blobs) > 10
    for where, blob in blobs.items():
        assert not leaks(blob), (where, leaks(blob))
    with pytest.raises(ClaimsfmError) as err:  # --on-error raise: the first bad line's message
        write_dataset(IngestConfig(inputs=[src], out=tmp_path / "x", progress=False), tmp_path)
    assert not leaks(str(err.value).encode())


@pytest.mark.parametrize("encoding", ["utf-8", "cp932"])
def test_native_and_reference_rejects_are_identical(tmp_path, encoding):
    from claimsfm import _native

    paths = []
    for short in (False, True):
        p = tmp_path / f"{short}.UKE"
        p.write_bytes(claims_file(short).encode(encoding))
        paths.append(str(p))
    a = _native.parse_uke(paths, "chart", True, 2)  # --on-error raise: the first reject is the message
    b = reference.parse_files(paths, "chart", True)
    assert tuple(a["rejects"][0]) == tuple(b["rejects"][0])
    a = _native.parse_uke(paths, "chart", False, 2)
    b = reference.parse_files(paths, "chart", False)
    assert [tuple(r) for r in a["rejects"]] == [tuple(r) for r in b["rejects"]] and len(b["rejects"]) == 20
    assert a["stats"] == b["stats"]
    for r in b["rejects"]:
        assert not leaks(r[3]) and not leaks(r[2].encode())


def test_huge_rejected_line_gives_a_short_excerpt(tmp_path, monkeypatch):
    from claimsfm import _native

    monkeypatch.setenv("CLAIMSFM_SALT", "rejects-test")
    head = [record("IR", {}, 0, False), record("RE", {}, 1, False)]
    huge = "HO," + "９５２４３７," * 700_000 + "x"  # ~10 MB, and the card number in every field
    src = tmp_path / "in" / "big.UKE"
    src.parent.mkdir()
    tail = [record(r, {}, 2, False) for r in ("RE", "HO", "SY", "SI")]  # a good receipt after it
    src.write_bytes("\r\n".join([*head, huge, record("SY", {}, 1, False), *tail, "GO,2,0,99", ""]).encode("cp932"))
    raw = _native.parse_uke([str(src)], "chart", False, 1)
    assert [tuple(r[1:]) for r in raw["rejects"]] == [
        (3, "wrong field count: HO has 700002 fields (expected 4 to 15)", b"HO,...(700002 fields)")]
    assert reference.mask(huge.encode("cp932")) == raw["rejects"][0][3]
    out = tmp_path / "out"
    run(IngestConfig(inputs=[src], out=out, on_error="skip", min_count=1, progress=False))
    assert (out / "rejects.txt").stat().st_size < 2000


@pytest.mark.parametrize("text,excerpt", [
    (b"RE,1,1112,202405,X,1,19800115", b"RE,1,1112,...(7 fields)"),
    (b"SY,8830052,20240507,1,8002,,01,", b"SY,8830052,***,1,8002,...(8 fields)"),
    (b"SI,11,1,111000110,,288,1,", b"SI,11,1,111000110,,288,1,...(8 fields)"),
    (b"SI,11,1,1110001100000000,,288", b"SI,11,1,***,,288"),
    (b"IY,21,1,620000001,1.5,15,7", b"IY,21,1,620000001,***,15,7"),
    (b"\x82\xa0\x82\xa2,1", b"?,...(2 fields)"),
    (b"HO", b"HO"),
    (b"", b""),
])
def test_excerpt_rule(text, excerpt):
    """The rule itself (the C++ twin is held to it by the identity test above)."""
    assert reference.mask(text) == excerpt
