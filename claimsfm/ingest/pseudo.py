"""Pseudonymisation: patient keys -> subject_id, facility codes -> facility labels.

subject_id is the first 63 bits of HMAC-SHA256(salt, canonical patient key). The key parts are
decoded from the file's encoding and NFKC-normalised, so `１２３` on a CP932 card and `123` in a
UTF-8 file link to the same person. The salt comes from `--salt-file`, else `CLAIMSFM_SALT`, else
a random salt file created once (mode 0600) in the output folder and reused by later runs.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import secrets
import unicodedata
from pathlib import Path

import numpy as np

from claimsfm.errors import ClaimsfmError

SALT_FILE = "salt"
SALT_ENV = "CLAIMSFM_SALT"
_SEP = "\x1f"
_EPOCH = dt.date(1970, 1, 1)


def resolve_salt(salt_file: Path | None, out_dir: Path, work_dir: Path) -> tuple[bytes, str]:
    """The salt and where it came from; a new random salt is written into `work_dir`.

    `out_dir` is the final output folder: a salt file already there (an earlier run) is reused.
    """
    if salt_file is not None:
        try:
            salt = Path(salt_file).read_bytes().strip()
        except OSError as exc:
            raise ClaimsfmError(f"--salt-file: cannot read {salt_file} ({exc.strerror})") from None
        if not salt:
            raise ClaimsfmError(f"--salt-file: {salt_file} is empty")
        return salt, "salt-file"
    env = os.environ.get(SALT_ENV, "").strip()
    if env:
        return env.encode("utf-8"), "env"
    existing = Path(out_dir) / SALT_FILE
    salt = existing.read_bytes().strip() if existing.is_file() else secrets.token_hex(32).encode()
    target = Path(work_dir) / SALT_FILE
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(salt + b"\n")
    os.chmod(target, 0o600)
    return salt, "file"


def _part(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip()


def canonical_key(raw: bytes, utf8: bool) -> str:
    """Decode a parser key (parts joined by 0x1F) and normalise each part."""
    text = raw.decode("utf-8" if utf8 else "cp932", errors="backslashreplace")
    # NFKC leaves ASCII as it is: most keys (chart numbers) skip the normaliser.
    parts = [p.strip() for p in text.split(_SEP)] if text.isascii() else [_part(p) for p in text.split(_SEP)]
    if parts[0] == "N":  # name-based key: spacing inside a name varies between systems
        parts[2] = "".join(parts[2].split())
    return _SEP.join(parts)


def chart_key(facility: str, chart_no: str) -> str:
    return _SEP.join(["C", _part(facility), _part(chart_no)])


def insurer_key(insurer: str, symbol: str, number: str, birth_day: int, sex: int) -> str:
    return _SEP.join(["I", _part(insurer), _part(symbol), _part(number), str(int(birth_day)), str(int(sex))])


def subject_id(salt: bytes, key: str) -> int:
    digest = hmac.new(salt, key.encode("utf-8"), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def subject_hasher(salt: bytes):
    """`subject_id(salt, .)` for many keys: HMAC-SHA256 from the salt's inner and outer pad states, copied
    per key (RFC 2104; hmac.new per key costs twice as much). tests/ingest/test_privacy.py checks the twin."""
    block = hashlib.sha256().block_size
    key = hashlib.sha256(salt).digest() if len(salt) > block else salt
    key = key.ljust(block, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def one(text: str) -> int:
        i = inner.copy()
        i.update(text.encode("utf-8"))
        o = outer.copy()
        o.update(i.digest())
        return int.from_bytes(o.digest()[:8], "big") >> 1

    return one


def key_subject_id(salt: bytes):
    """subject_id of one raw parser key: f(raw_key, utf8) -> int. The C++ parser hashes ASCII keys itself
    (csrc/sha256.hpp ascii_subject_id) and calls this for the others, which need NFKC."""
    one = subject_hasher(salt)
    return lambda raw, utf8: one(canonical_key(raw, utf8))


def subject_ids(salt: bytes, raw_keys, key_utf8) -> np.ndarray:
    """(n_keys,) int64 subject ids for the parser's key table."""
    one = subject_hasher(salt)
    flags = np.asarray(key_utf8).tolist()
    return np.fromiter((one(canonical_key(k, u)) for k, u in zip(raw_keys, flags)), np.int64, len(flags))


def facility_label(salt: bytes, code: str) -> str:
    digest = hmac.new(salt, ("facility" + _SEP + code).encode(), hashlib.sha256).hexdigest()
    return "F" + digest[:12]


def day_of(date: dt.date) -> int:
    return (date - _EPOCH).days
