"""The C++ UKE parser and the pure-Python reference agree event for event, and on every reject."""
from pathlib import Path

import numpy as np
import pytest

from claimsfm import _native
from claimsfm.ingest import reference, ukewriter

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "uke"
COLUMNS = ("key", "day", "code", "value", "facility", "suspected", "dx_start")


def fixture_files(kind):
    return sorted(str(p) for p in (FIXTURES / kind).rglob("*.UKE"))


def assert_same(a, b):
    for k in COLUMNS:
        assert a[k].dtype == b[k].dtype, k
        assert np.array_equal(a[k], b[k], equal_nan=k == "value"), k
    for k in ("codes", "keys", "facilities", "rejects", "stats"):
        assert a[k] == b[k], k
    assert np.array_equal(a["key_utf8"], b["key_utf8"])


@pytest.mark.parametrize("link_by", ["chart", "insurer"])
@pytest.mark.parametrize("path", fixture_files("good") + fixture_files("bad"), ids=lambda p: Path(p).name)
def test_each_fixture_identical(path, link_by):
    for stop in (True, False):
        assert_same(_native.parse_uke([path], link_by, stop, 1), reference.parse_files([path], link_by, stop))


@pytest.mark.parametrize("link_by", ["chart", "insurer"])
def test_all_fixtures_together_identical(link_by):
    paths = fixture_files("good") + fixture_files("bad")
    ref = reference.parse_files(paths, link_by, False)
    for threads in (1, 2, 3):
        assert_same(_native.parse_uke(paths, link_by, False, threads), ref)


def test_generated_corpus_identical(tmp_path):
    files = [str(p) for p in ukewriter.write_corpus(tmp_path, seed=7, facilities=4, months=5, patients=40)]
    for link_by in ("chart", "insurer"):
        ref = reference.parse_files(files, link_by, True)
        assert ref["rejects"] == [] and ref["stats"]["receipts"] > 300
        assert_same(_native.parse_uke(files, link_by, True, 2), ref)


def test_corrupted_corpus_identical(tmp_path):
    """Seeded byte damage: both parsers reject the same lines and keep the same events."""
    rng = np.random.default_rng(3)
    files = ukewriter.write_corpus(tmp_path, seed=8, facilities=2, months=3, patients=30)
    for f in files:
        data = bytearray(f.read_bytes())
        for pos in rng.integers(0, len(data), size=6):
            data[pos] = int(rng.choice([0x2C, 0x0A, 0x81, 0xFF, 0x39, 0x41, 0x20]))
        f.write_bytes(bytes(data))
    paths = [str(f) for f in files]
    ref = reference.parse_files(paths, "chart", False)
    assert ref["rejects"], "the damage should produce rejects"
    assert_same(_native.parse_uke(paths, "chart", False, 2), ref)


def test_first_error_is_stable_across_threads():
    paths = fixture_files("good") + fixture_files("bad")
    firsts = {tuple(_native.parse_uke(paths, "chart", True, t)["rejects"][0]) for t in (1, 2, 4)}
    assert firsts == {tuple(reference.parse_files(paths, "chart", True)["rejects"][0])}


def test_progress_counter_reaches_total():
    paths = fixture_files("good")
    progress = _native.Progress()
    _native.parse_uke(paths, "chart", True, 2, progress)
    assert progress.value == sum(Path(p).stat().st_size for p in paths)


@pytest.mark.parametrize("text,day", [(b"20240229", 19782), (b"4070208", 9169), (b"3560418", 4125),
                                      (b"5060101", 19723)])
def test_dates(text, day):
    assert reference.parse_date(text) == day


@pytest.mark.parametrize("text", [b"20241301", b"20230229", b"9550115", b"0550115", b"400011", b"2024011", b""])
def test_bad_dates(text):
    assert reference.parse_date(text) is None


def test_era_months():
    assert reference.parse_month(b"43101") == (2019, 1)
    assert reference.parse_month(b"50110") == (2019, 10)
    assert reference.parse_month(b"202413") is None
