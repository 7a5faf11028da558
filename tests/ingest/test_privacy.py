"""No name, kana name, chart number or insurer/card number reaches any output byte or message;
the salt is handled as the issue says."""
import json
import os
import stat
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from claimsfm.errors import ClaimsfmError
from claimsfm.ingest import IngestConfig, write_dataset

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "uke"
NAMES = ["試験", "花子", "見本", "太郎", "シケンハナコ", "ミホンタロウ"]
NUMBERS = ["P0001", "06139999", "133066", "771234", "456789", "XQZ88", "987654",
           "７７１２３４", "４５６７８９", "ＸＱＺ８８", "９８７６５４"]


def needles():
    out = []
    for text in NAMES + NUMBERS:
        out.append(text.encode("utf-8"))
        out.append(json.dumps(text).strip('"').encode())  # \\uXXXX escapes in JSON
        try:
            out.append(text.encode("cp932"))
        except UnicodeEncodeError:
            pass
    return set(out)


def test_no_identifier_in_any_output(cli, tmp_path):
    out = tmp_path / "out"
    res = cli("ingest", FIXTURES / "good", FIXTURES / "bad", "--out", out, "--on-error", "skip",
              "--min-count", "1", "--no-progress", env={"CLAIMSFM_SALT": "privacy"})
    assert res.returncode == 0, res.stderr
    res_ins = cli("ingest", FIXTURES / "good", "--out", tmp_path / "ins", "--link-by", "insurer",
                  "--min-count", "1", env={"CLAIMSFM_SALT": "privacy"})
    assert res_ins.returncode == 0, res_ins.stderr
    files = [p for p in list(out.rglob("*")) + list((tmp_path / "ins").rglob("*")) if p.is_file()]
    assert len(files) > 10 and any(p.name == "rejects.txt" for p in files)
    blobs = {str(p): p.read_bytes() for p in files}
    blobs["stdout+stderr"] = (res.stdout + res.stderr + res_ins.stdout + res_ins.stderr).encode()
    bad_files = sorted((FIXTURES / "bad").glob("*.UKE"))
    for bad in bad_files:  # the error messages of --on-error raise (in-process: same code path)
        work = tmp_path / f"x_{bad.stem}"
        work.mkdir()
        with pytest.raises(ClaimsfmError) as err:
            write_dataset(IngestConfig(inputs=[bad], out=work, progress=False), work)
        blobs[f"error {bad.name}"] = str(err.value).encode()
    assert bad_files
    for where, data in blobs.items():
        for n in needles():
            assert n not in data, (where, n.decode("utf-8", "replace"))


def test_salt_file_created_once_with_mode_0600(cli, tmp_path):
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "CLAIMSFM_SALT"}
    env["CLAIMSFM_SALT"] = ""
    args = ("ingest", FIXTURES / "good", "--out", out, "--min-count", "1", "--no-progress")
    assert cli(*args, env=env).returncode == 0
    salt = out / "salt"
    assert stat.S_IMODE(salt.stat().st_mode) == 0o600
    first = salt.read_bytes()
    ids = pq.read_table(out / "metadata" / "subject_splits.parquet").column("subject_id").to_pylist()
    assert cli(*args, env=env).returncode == 0
    assert (out / "salt").read_bytes() == first
    assert pq.read_table(out / "metadata" / "subject_splits.parquet").column("subject_id").to_pylist() == ids


def test_salt_sources_change_ids(cli, tmp_path):
    salt_file = tmp_path / "secret"
    salt_file.write_text("abc\n")
    runs = {
        "file": ("--salt-file", salt_file),
        "env_same": (),
        "env_other": (),
    }
    envs = {"file": {"CLAIMSFM_SALT": "zzz"}, "env_same": {"CLAIMSFM_SALT": "abc"},
            "env_other": {"CLAIMSFM_SALT": "xyz"}}
    ids = {}
    for name, extra in runs.items():
        out = tmp_path / name
        assert cli("ingest", FIXTURES / "good", "--out", out, *extra, "--min-count", "1",
                   env=envs[name]).returncode == 0
        assert not (out / "salt").exists()
        ids[name] = sorted(pq.read_table(out / "metadata" / "subject_splits.parquet").column("subject_id").to_pylist())
    assert ids["file"] == ids["env_same"] != ids["env_other"]
    assert all(0 <= i < 2**63 for i in ids["file"])


def test_subject_hasher_matches_hmac_and_ascii_fast_path():
    """pseudo.subject_hasher (copied pad states) is HMAC-SHA256 as pseudo.subject_id computes it, for short and
    long salts; canonical_key's ASCII shortcut gives what NFKC gives."""
    import unicodedata

    from claimsfm.ingest import pseudo

    keys = [b"C\x1f1300001\x1f K0001 ", "C\x1f1300001\x1f１２３".encode("cp932"),
            b"N\x1f19800101\x1fSATO  TARO\x1f1", "I\x1f０６１３９９９９\x1f記号\x1f７７\x1f3652\x1f2".encode("utf-8"),
            b"C\x1f\x1f"]
    utf8 = [0, 0, 0, 1, 0]
    for salt in (b"s", b"x" * 64, b"long-salt-" * 20):
        one = pseudo.subject_hasher(salt)
        texts = [pseudo.canonical_key(k, u) for k, u in zip(keys, utf8)]
        assert [one(t) for t in texts] == [pseudo.subject_id(salt, t) for t in texts]
        assert pseudo.subject_ids(salt, keys, utf8).tolist() == [pseudo.subject_id(salt, t) for t in texts]
    for k, u in zip(keys, utf8):
        text = k.decode("utf-8" if u else "cp932")
        parts = [unicodedata.normalize("NFKC", p).strip() for p in text.split("\x1f")]
        if parts[0] == "N":
            parts[2] = "".join(parts[2].split())
        assert pseudo.canonical_key(k, u) == "\x1f".join(parts)
