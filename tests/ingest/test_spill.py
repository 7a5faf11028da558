"""The out-of-core UKE ingest (claimsfm/ingest/spill.py) against its in-memory twin: the same files,
byte for byte, on the synth corpus and on the bulk corpus, with many buckets and shards cut across them."""
from pathlib import Path

import numpy as np
import pytest

from claimsfm import _native
from claimsfm.data.build import build_store
from claimsfm.errors import ClaimsfmError
from claimsfm.ingest import IngestConfig, events, meds, shards, spill, write_dataset
from claimsfm.ingest.bulk import write_bulk
from claimsfm.synth.run import SynthConfig
from claimsfm.synth.run import run as synth_run

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "uke"


checksums = spill.output_checksums  # sha256 of every file (dataset.json without its time, format.json its path)


def few_buckets(monkeypatch, buckets: int, files_per_bucket: int = 2) -> None:
    """About `buckets` buckets of `files_per_bucket` spill files each, whatever the memory limit."""
    monkeypatch.setattr(spill, "spill_file_count", lambda *a: buckets * files_per_bucket)
    monkeypatch.setattr(spill, "events_per_bucket", lambda memory, workers, shard_rows, n: max(1, -(-n // buckets)))


def both_ways(tmp_path, inputs, buckets, monkeypatch, **kw) -> tuple[dict, dict, dict]:
    salt = tmp_path / "salt.txt"
    salt.write_bytes(b"spill-test")
    few_buckets(monkeypatch, buckets)
    sums, summaries = [], []
    kw = {"min_count": 1, **kw}
    for in_memory in (True, False):
        out = tmp_path / ("memory" if in_memory else "spill") / "ds"  # the folder name is the dataset name
        cfg = IngestConfig(inputs=inputs, out=out, salt_file=salt, progress=False, threads=2, **kw)
        summaries.append(write_dataset(cfg, out, in_memory=in_memory, store=True))
        assert not (out / ".spill").exists()
        if in_memory:  # the reference: the store built from the MEDS files; the other is streamed (data/stream.py)
            build_store(out, out / "store", min_count=kw["min_count"], code_level=kw.get("code_level", "raw"))
        sums.append(checksums(out))
    return sums[0], sums[1], summaries[1]


@pytest.fixture(scope="module")
def synth_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    synth_run(SynthConfig(out=root, patients=300, hospitals=3, months=12, seed=5, background="none"))
    return root


def test_synth_corpus_identical(synth_folder, tmp_path, monkeypatch):
    ref, out, summary = both_ways(tmp_path, [synth_folder], 7, monkeypatch, shard_rows=2000, link_by="insurer")
    assert 7 <= summary["buckets"] <= summary["spill_files"] == 14
    assert sum(k.startswith("data/train/") for k in out) > 2  # shards span buckets
    assert any(k.startswith("truth/") for k in out) and sum(k.startswith("store/") for k in out) == 15
    assert ref == out
    assert set(summary["stages"]) == {"parse", "sort+write", "metadata", "store"}


def test_synth_corpus_identical_mapped_vocab(synth_folder, tmp_path, monkeypatch):
    ref, out, _ = both_ways(tmp_path, [synth_folder], 4, monkeypatch, code_level="mapped", min_count=3)
    assert ref == out and "store/vocab.json" in out


def test_bulk_corpus_identical(tmp_path, monkeypatch):
    from claimsfm.data import stream

    monkeypatch.setattr(stream, "CHUNK", 4096)  # the store's final pass in many chunks, on 2 threads
    write_bulk(tmp_path / "bulk", mb=2, seed=1, facilities=4)
    ref, out, summary = both_ways(tmp_path, [tmp_path / "bulk"], 16, monkeypatch, shard_rows=5000)
    assert 16 <= summary["buckets"] <= summary["spill_files"] == 32 and ref == out


def test_file_budget_caps_the_spill_files(synth_folder, tmp_path, monkeypatch):
    """Fewer spill files than wanted (a low open-file limit): larger buckets, the same files."""
    monkeypatch.setattr(spill, "file_budget", lambda: 5)
    ref, out, summary = both_ways(tmp_path, [synth_folder], 8, monkeypatch, shard_rows=2000)
    assert summary["spill_files"] == 5 and summary["buckets"] <= 5 and ref == out


def test_spill_file_error_is_one_error(tmp_path, monkeypatch):
    """A spill file that cannot be created (a folder in its place) stops the ingest with a ClaimsfmError (the
    CLI's one line and exit 2) naming it, not a traceback, and leaves no output folder."""
    from claimsfm.ingest import run

    made = spill.spill_folder

    def blocked(work):
        folder = made(work)
        (folder / "bucket0000.bin").mkdir(exist_ok=True)
        return folder

    monkeypatch.setattr(spill, "spill_folder", blocked)
    monkeypatch.setenv("CLAIMSFM_SALT", "blocked")
    with pytest.raises(ClaimsfmError, match=r"cannot create the spill file .*bucket0000\.bin"):
        run(IngestConfig(inputs=[FIXTURES / "good"], out=tmp_path / "o", min_count=1, progress=False))
    assert not (tmp_path / "o").exists()


def test_one_bucket_and_fixtures(tmp_path, monkeypatch):
    ref, out, summary = both_ways(tmp_path, [FIXTURES / "good"], 1, monkeypatch, shard_rows=4)
    assert summary["buckets"] == 1 and summary["spill_files"] == 2 and ref == out


def test_store_with_a_code_without_events(synth_folder, tmp_path, monkeypatch):
    """A parser code that no kept event uses: the streamed store's codes are ranks among all parser codes, so its
    final pass rewrites them into the ids of the codes seen (the rest of the time it has nothing to rewrite)."""
    from claimsfm.data import stream
    from claimsfm.ingest import pipeline

    parse = pipeline.parse_uke_with_progress

    def with_unused_code(*args, **kw):
        raw = parse(*args, **kw)
        raw["codes"] = list(raw["codes"]) + ["JPDRUG//000000000"]  # sorts before every drug code: ranks shift
        return raw

    rewrites = []
    final_pass = stream.StoreWriter._final_pass

    def recorded(self, final, *args, **kw):
        rewrites.append(final is not None)
        return final_pass(self, final, *args, **kw)

    monkeypatch.setattr(pipeline, "parse_uke_with_progress", with_unused_code)
    monkeypatch.setattr(stream.StoreWriter, "_final_pass", recorded)
    ref, out, _ = both_ways(tmp_path, [synth_folder], 3, monkeypatch, shard_rows=2000)
    assert rewrites == [True] and ref == out


def test_spill_records_round_trip(tmp_path):
    """encode_spill / decode_spill: every field's bits back (NaN, -0.0, suspected, a missing dx_start), a context per
    run of one key and facility; a file that starts with an event record is one ClaimsfmError naming it."""
    rng = np.random.default_rng(3)
    n = 5000
    rows = np.zeros(n, spill.SPILL_DTYPE)
    rows["key"] = np.repeat(rng.integers(0, 50, n // 10), 10)
    rows["facility"] = rng.integers(-1, 3, n) * (rng.random(n) < 0.2)
    rows["day"] = rng.integers(-30000, 30000, n)
    rows["code"] = rng.integers(0, (1 << 31) - 2, n)
    rows["dx_start"] = np.where(rng.random(n) < 0.5, events.NO_DAY, rng.integers(0, 20000, n))
    rows["value"] = rng.choice(np.array([np.nan, 1.5, -0.0, 0.0], np.float32), n)
    rows["suspected"] = rng.random(n) < 0.3
    records = spill.encode_spill(rows)
    runs = 1 + int(((rows["key"][1:] != rows["key"][:-1]) | (rows["facility"][1:] != rows["facility"][:-1])).sum())
    assert records.shape == (n + runs, spill.SPILL_RECORD_WORDS)
    assert spill.decode_spill(records).tobytes() == rows.tobytes()
    records[1:].tofile(tmp_path / "bucket0000.bin")
    with pytest.raises(ClaimsfmError, match="bucket0000.bin: an event record before any context record"):
        spill.read_spill([tmp_path / "bucket0000.bin"])
    with pytest.raises(ClaimsfmError, match="bucket0000.bin: an event record before any context record"):
        spill.bucket_table([tmp_path / "bucket0000.bin"], np.zeros(50, np.int64), ["A"], ["F"])


def test_spill_rows_equal_columns(tmp_path):
    """The C++ spill file holds exactly the columns parse_uke returns without one."""
    paths = sorted(str(p) for p in (FIXTURES / "good").rglob("*.UKE"))
    cols = _native.parse_uke(paths, "chart", True, 2)
    raw = _native.parse_uke(paths, "chart", True, 2, None, str(tmp_path / "s.bin"))
    rows = spill.read_spill([tmp_path / "s.bin"])
    assert raw["spilled"] == len(rows) == len(cols["day"]) and len(raw["day"]) == 0
    # Byte for byte what the numpy encoder makes of the rows; contexts are fewer than events.
    records = np.fromfile(tmp_path / "s.bin", dtype=spill.SPILL_RECORD).reshape(-1, spill.SPILL_RECORD_WORDS)
    assert np.array_equal(records, spill.encode_spill(rows)) and len(rows) < len(records) < 2 * len(rows)
    for name in ("key", "day", "code", "facility", "dx_start", "value", "suspected"):
        assert np.array_equal(rows[name], cols[name], equal_nan=name == "value"), name
    assert list(spill.blob_keys(raw["keys_blob"], raw["key_offsets"])) == cols["keys"] and raw["codes"] == cols["codes"]


def key_variants(folder: Path) -> Path:
    """The good fixtures plus copies of the CP932 file whose chart number P0001 is written with spaces around
    it (an ASCII key with whitespace) and in full-width letters (a non-ASCII key: NFKC makes it P0001)."""
    import shutil

    shutil.copytree(FIXTURES / "good", folder)
    src = FIXTURES / "good" / "1312345" / "202406.UKE"
    text = src.read_bytes().decode("cp932")
    for name, chart in (("202407.UKE", " P0001 "), ("202408.UKE", "Ｐ０００１")):
        (folder / "1312345" / name).write_bytes(text.replace(",P0001,", f",{chart},").encode("cp932"))
    return folder


@pytest.mark.parametrize("link_by", ["chart", "insurer"])
def test_parser_buckets_match_python_twin(tmp_path, link_by):
    """The parser's own scatter (parse_uke with `buckets`: subject_ids by C++ HMAC for ASCII keys, by
    pseudo.canonical_key through the callback for the others) against its twin: one spill file, the key table
    hashed by pseudo.subject_ids, then partition_numpy by spill.bucket_of. Same subject_ids, same files."""
    from claimsfm.ingest import pseudo

    paths = sorted(str(p) for p in key_variants(tmp_path / "in").rglob("*.UKE"))
    salt, n = b"twin-salt", 5
    (tmp_path / "cpp").mkdir()
    (tmp_path / "py").mkdir()
    files = [str(tmp_path / "cpp" / f"bucket{b:04d}.bin") for b in range(n)]
    calls = []

    def fallback(raw, utf8):
        calls.append(raw)
        return pseudo.key_subject_id(salt)(raw, utf8)

    got = _native.parse_uke(paths, link_by, True, 2, None, "", files, salt, fallback)
    ref = _native.parse_uke(paths, link_by, True, 2, None, str(tmp_path / "py" / "events.bin"))
    keys = list(spill.blob_keys(ref["keys_blob"], ref["key_offsets"]))
    key_sid = pseudo.subject_ids(salt, keys, ref["key_utf8"])
    assert got["key_sid"].tolist() == key_sid.tolist() and len(key_sid) >= 3
    assert not {"keys", "keys_blob", "key_offsets"} & set(got)  # with buckets no patient key reaches Python
    assert calls == [k for k in keys if not k.isascii()] and calls  # Python sees the non-ASCII keys only, once
    if link_by == "chart":  # the full-width chart number is the person of P0001 (the parser strips the spaces)
        chart = [k for k in keys if b"P0001" in k or "Ｐ０００１".encode("cp932") in k]
        assert len(chart) == 2 and len({int(key_sid[keys.index(k)]) for k in chart}) == 1
        assert any(k.isascii() for k in keys) and len(calls) < len(keys)
    twin = spill.partition_numpy(tmp_path / "py" / "events.bin", tmp_path / "py", spill.bucket_of(key_sid, n), n)
    assert [Path(f).read_bytes() for f in files] == [p.read_bytes() for p in twin]
    assert got["bucket_rows"].sum() == got["spilled"] == ref["spilled"] > 0 and (got["bucket_rows"] > 0).sum() >= 2


@pytest.mark.parametrize("threads", [1, 2])
def test_files_in_pieces_spill_the_same(synth_folder, tmp_path, threads):
    """Files parsed in pieces of a few KB (many per file, on the threads at once, merged in input order) give
    the bucket files, subject_ids and counters of whole files."""
    from claimsfm.ingest import pseudo

    paths = sorted(str(p) for p in synth_folder.rglob("*.UKE"))
    assert max(Path(p).stat().st_size for p in paths) > 20_000
    out = {}
    for piece_bytes in (0, 4096):
        folder = tmp_path / f"p{piece_bytes}"
        folder.mkdir()
        files = [str(folder / f"bucket{b:04d}.bin") for b in range(6)]
        raw = _native.parse_uke(paths, "insurer", True, threads, None, "", files, b"salt",
                                pseudo.key_subject_id(b"salt"), piece_bytes)
        out[piece_bytes] = (raw["key_sid"].tolist(), raw["stats"], raw["spilled"], raw["codes"], raw["facilities"],
                            [Path(f).read_bytes() for f in files])
    assert out[0] == out[4096] and out[0][2] > 10_000


def test_parser_callback_error_is_one_runtime_error(tmp_path):
    """A failing subject_id callback stops the parse with a RuntimeError (raised after the threads join) that
    names the exception's type but not its message, which could quote the patient key."""
    paths = sorted(str(p) for p in key_variants(tmp_path / "in").rglob("*.UKE"))

    def broken(raw, utf8):
        raise ValueError(f"no {raw!r}")

    with pytest.raises(RuntimeError, match="subject_id") as err:
        _native.parse_uke(paths, "chart", True, 2, None, "", [str(tmp_path / "b0.bin")], b"s", broken)
    assert "ValueError" in str(err.value) and "1312345" not in str(err.value)  # no key in the message


def test_shard_writer_matches_write_data(tmp_path):
    """Pieces over increasing subject ranges give the shards write_data cuts from the whole table."""
    rng = np.random.default_rng(0)
    n = 5000
    subject = np.sort(rng.integers(0, 1 << 62, 400))[rng.integers(0, 400, n)]
    subject.sort()
    t = events.EventTable(subject, rng.integers(0, 10**15, n), rng.integers(0, 3, n).astype(np.int32), ["a", "b", "c"],
                          rng.random(n).astype(np.float32), np.full(n, -1, np.int32), [], np.zeros(n, bool),
                          np.full(n, events.NO_TIME))
    meds.write_data(t, tmp_path / "a", 300)
    cuts = np.r_[0, np.flatnonzero(np.r_[True, subject[1:] != subject[:-1]])[::37], n]
    for writers in (1, 3):  # shards written on several threads at once: the same files
        writer = shards.ShardWriter(tmp_path / f"b{writers}", 300, tmp_path / "scratch", writers=writers)
        for lo, hi in zip(cuts[:-1], cuts[1:]):
            writer.add(t.take(np.arange(lo, hi)))
        writer.close()
        assert checksums(tmp_path / "a") == checksums(tmp_path / f"b{writers}") and len(checksums(tmp_path / "a")) > 10
        assert not list((tmp_path / "scratch").iterdir())  # the pending rows' files are gone


def test_shards_read_as_plain_meds_strings(tmp_path):
    """Shards are written from dictionary columns, yet every reader gets SCHEMA's strings and the same rows."""
    import pyarrow.parquet as pq

    rng = np.random.default_rng(1)
    n = 2000
    facility = rng.integers(-1, 2, n).astype(np.int32)          # -1: no facility (null)
    t = events.EventTable(np.sort(rng.integers(0, 50, n)), rng.integers(0, 10**15, n),
                          rng.integers(0, 4, n).astype(np.int32), ["a", "b", "ICD10//I48", "c"],
                          rng.random(n).astype(np.float32), facility, ["F1", "F2"], rng.random(n) < 0.1,
                          np.full(n, events.NO_TIME))
    meds.write_data(t, tmp_path, 10**6)
    back = pq.read_table([f for f in sorted((tmp_path / "data").rglob("*.parquet"))])
    assert back.schema.equals(meds.SCHEMA)
    order = np.argsort(back["subject_id"].to_numpy(), kind="stable")
    plain = meds.to_arrow(t)
    assert plain.schema.equals(meds.SCHEMA)
    for name in ("code", "facility", "suspected"):
        assert back[name].take(order).to_pylist() == plain[name].to_pylist(), name
    assert back["facility"].null_count == int((facility < 0).sum()) > 0
    f = next((tmp_path / "data").rglob("*.parquet"))
    meta = pq.ParquetFile(f).metadata
    assert b"ARROW:schema" not in (meta.metadata or {})
    assert "RLE_DICTIONARY" in meta.row_group(0).column(meds.SCHEMA.names.index("code")).encodings
    stats = {meta.schema.column(i).name: meta.row_group(0).column(i).statistics for i in range(meta.num_columns)}
    assert stats["subject_id"].min == pq.read_table(f)["subject_id"].to_numpy().min() and stats["time"].has_min_max
    assert all(stats[name] is None for name in ("code", "facility", "numeric_value"))  # meds.STATISTICS_COLUMNS


def test_memory_limit_and_buckets():
    assert spill.parse_memory("1.5G") == 3 << 29 and spill.parse_memory("800M") == 800 << 20
    assert spill.parse_memory("2GB") == 2 << 30 and spill.parse_memory(None) >= spill.MIN_MEMORY
    for bad in ("lots", "1M", "-2G"):
        with pytest.raises(ClaimsfmError, match="--memory-limit"):
            spill.parse_memory(bad)
    with pytest.raises(ClaimsfmError, match="--memory-limit"):
        IngestConfig(inputs=[Path("x")], out=Path("y"), memory_limit="big").check()
    limit = 1 << 30
    per = (limit - spill.BASE_MEMORY) // (spill.BYTES_PER_EVENT * 3)  # what the limit allows: above the cap
    assert per > spill.MAX_BUCKET_EVENTS and spill.events_per_bucket(limit, 3) == spill.MAX_BUCKET_EVENTS
    assert spill.bucket_count(per, limit, 3, cap=False) == 1 and spill.bucket_count(per + 1, limit, 3, cap=False) == 2
    cap = spill.MAX_BUCKET_EVENTS  # a larger limit is a ceiling: the buckets stay at the cap
    assert spill.bucket_count(cap, limit, 3) == 1 and spill.bucket_count(cap + 1, limit, 3) == 2
    assert spill.bucket_count(40 * cap, 8 * limit, 3) == 40
    assert spill.bucket_count(10**12, limit, 3) == spill.MAX_BUCKETS
    small = spill.BASE_MEMORY + 3 * spill.BYTES_PER_EVENT * 100_000  # a limit below the cap sets the size
    assert spill.events_per_bucket(small, 3) == 100_000 and spill.bucket_count(250_000, small, 3) == 3
    tiny = 100 << 20  # below BASE_MEMORY: buckets of MIN_BUCKET_EVENTS, not of one event
    assert spill.bucket_count(10 * spill.MIN_BUCKET_EVENTS, tiny, 3) == 10
    gb = 1 << 30  # 1 GiB of UKE: its guessed events, in SPILL_FILES_PER_BUCKET files per bucket the limit allows
    assert spill.spill_file_count(gb, limit, 3) == spill.SPILL_FILES_PER_BUCKET * spill.bucket_count(
        gb // spill.BYTES_PER_RAW_EVENT, limit, 3, cap=False) > 4
    assert spill.spill_file_count(1 << 50, limit, 3) == spill.MAX_BUCKETS and spill.spill_file_count(0, limit, 3) == 4
    # Runs of consecutive files up to the limit; a file above it alone; empty files join their neighbours.
    assert spill.group_files([3, 3, 3, 3], 6) == [[0, 1], [2, 3]]
    assert spill.group_files([2, 9, 0, 1, 0, 4], 5) == [[0], [1, 2], [3, 4, 5]]
    assert spill.group_files([0, 0], 5) == [[0, 1]] and spill.group_files([], 5) == []
    ids = np.array([0, (1 << 63) // 3 - 1, (1 << 63) // 3 + 1, (1 << 63) - 1], np.int64)
    assert spill.bucket_of(ids, 3).tolist() == [0, 0, 1, 2] and spill.bucket_of(ids, 1).tolist() == [0, 0, 0, 0]


def test_file_budget_follows_the_open_file_limit(monkeypatch):
    """The spill files fit under RLIMIT_NOFILE: the soft limit is raised towards the hard one first, and a limit
    that cannot be raised caps the file count (larger buckets) instead of failing the parse."""
    import resource

    calls = []
    monkeypatch.setattr(resource, "getrlimit", lambda which: (1024, 8192))
    monkeypatch.setattr(resource, "setrlimit", lambda which, limits: calls.append(limits))
    assert spill.file_budget() == spill.MAX_BUCKETS and calls == [(spill.MAX_BUCKETS + spill.RESERVED_FDS, 8192)]

    def refuse(which, limits):
        raise ValueError("not allowed")

    monkeypatch.setattr(resource, "getrlimit", lambda which: (256, 256))
    monkeypatch.setattr(resource, "setrlimit", refuse)
    assert spill.file_budget() == 256 - spill.RESERVED_FDS
    monkeypatch.setattr(resource, "getrlimit", lambda which: (40, 40))
    assert spill.file_budget() == 1


def test_native_sort_matches_numpy():
    """csrc/event_sort.cpp against EventTable.sorted on rows with many ties (NaN values, equal keys)."""
    rng = np.random.default_rng(3)
    n = 20000
    value = rng.choice(np.array([np.nan, 1.0, 2.0, -0.0, 0.0], np.float32), n)
    t = events.EventTable(rng.integers(0, 50, n), np.where(rng.random(n) < 0.1, events.NO_TIME, rng.integers(0, 9, n)),
                          rng.integers(0, 4, n).astype(np.int32), ["d", "a", "c", "b"], value,
                          rng.integers(-1, 3, n).astype(np.int32), ["F2", "F0", "F1"], rng.random(n) < 0.3,
                          rng.choice(np.array([events.NO_TIME, 5, 7]), n))
    a, b = t.sorted(), t.sorted_native()
    for name in ("subject", "time_us", "code", "facility", "suspected", "dx_start_us"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert np.array_equal(a.value, b.value, equal_nan=True)


def test_bucket_table_matches_numpy(tmp_path):
    """csrc/bucket_events.cpp (once-only rules + total sort of a bucket file) against the numpy twin
    (events.raw_table): many ties, NaN values, missing days, two keys that share one subject_id."""
    rng = np.random.default_rng(7)
    n = 60000
    codes = ["JPDX//I10", "SEX//M", "JPPROC//1", "MEDS_BIRTH", "JPDX//E11", "JPDRUG//6", "SEX//F", "MEDS_DEATH"]
    facilities = ["Fb", "Fa", "Fc"]
    key_sid = rng.integers(0, 1 << 62, 400)
    key_sid[7] = key_sid[8]  # e.g. a full-width and a half-width chart number: one person
    rows = np.zeros(n, spill.SPILL_DTYPE)
    rows["key"] = rng.integers(0, 400, n)
    rows["day"] = np.where(rng.random(n) < 0.05, events.NO_DAY, rng.integers(17000, 17030, n))
    rows["code"] = rng.integers(0, len(codes), n)
    rows["facility"] = rng.integers(-1, len(facilities), n)
    rows["dx_start"] = np.where(rng.random(n) < 0.5, events.NO_DAY, rng.integers(16990, 17000, n))
    rows["value"] = rng.choice(np.array([np.nan, 1.0, 2.0, -0.0, 0.0], np.float32), n)
    rows["suspected"] = rng.random(n) < 0.3
    out = {}
    for name, fn in (("cpp", spill.bucket_table), ("numpy", spill.bucket_table_numpy)):
        half = len(rows) // 2  # a bucket of two spill files, read in order
        spill.encode_spill(rows[:half]).tofile(tmp_path / f"{name}.bin")
        spill.encode_spill(rows[half:]).tofile(tmp_path / f"{name}2.bin")
        out[name] = fn([tmp_path / f"{name}.bin", tmp_path / f"{name}2.bin"], key_sid, codes, facilities)
        assert not (tmp_path / f"{name}.bin").exists() and not (tmp_path / f"{name}2.bin").exists()
    a, b = out["cpp"], out["numpy"]
    assert 0 < len(a) < n and len(np.unique(a.subject)) == 399
    for name in ("subject", "time_us", "code", "facility", "suspected", "dx_start_us"):
        assert getattr(a, name).dtype == getattr(b, name).dtype and np.array_equal(getattr(a, name), getattr(b, name))
    assert a.value.tobytes() == b.value.tobytes()  # the same NaN and -0.0 bits in the same places
    bad = rows[:1].copy()
    bad["code"] = len(codes)
    spill.encode_spill(bad).tofile(tmp_path / "bad.bin")
    with pytest.raises(ClaimsfmError, match="out of range"):
        spill.bucket_table([tmp_path / "bad.bin"], key_sid, codes, facilities)


def test_store_rows_match_numpy(tmp_path):
    """csrc/store.cpp store_rows (the streamed token store's rows of a bucket) against StoreWriter.prepare_numpy:
    static and dated rows, birth/death repeated, both sex codes in either order, inpatient visits, no facility."""
    from claimsfm.data.stream import StoreWriter

    rng = np.random.default_rng(8)
    n = 30000
    codes = ["JPDX//I10", "SEX//M", "JPPROC//1", "MEDS_BIRTH", "JPVISIT//INPATIENT", "SEX//F", "MEDS_DEATH",
             "JPDRUG//6"]
    facilities = ["Fb", "Fa", "Fc"]
    subject = np.sort(rng.integers(0, 1 << 62, 300))[np.sort(rng.integers(0, 300, n))]
    day = rng.integers(-400, 400, n)  # days before 1970 too
    t = events.EventTable(subject, np.where(rng.random(n) < 0.1, events.NO_TIME, day * events.US_PER_DAY),
                          rng.integers(0, len(codes), n).astype(np.int32), codes,
                          rng.choice(np.array([np.nan, 1.5, -0.0], np.float32), n),
                          rng.integers(-1, len(facilities), n).astype(np.int32), facilities, rng.random(n) < 0.3,
                          np.full(n, events.NO_TIME))
    t.code[(t.code == 5) & (t.subject < np.median(t.subject))] = 2  # half the subjects: SEX//M only
    splits = meds.dataset_splits(None, [], "uke")
    store = StoreWriter(tmp_path / "store", codes, events.code_ranks(codes), events.code_ranks(facilities), splits)
    a, b = store.prepare(t), store.prepare_numpy(t)
    store.abort()
    assert set(a) == set(b) and a["months"] == b["months"] and len(a["code"]) > n // 2
    for name in sorted(set(a) - {"months"}):  # the bytes StoreWriter.append writes (NaN and -0.0 bits included)
        assert a[name].shape == b[name].shape and a[name].astype(b[name].dtype).tobytes() == b[name].tobytes(), name
    assert set(a["sex"].tolist()) == {1, 2} and (a["birth_day"] >= -400).all() and (a["death_day"] >= 0).any()


def test_cli_stage_table_and_memory_flag(cli, tmp_path):
    out = tmp_path / "out"
    res = cli("ingest", FIXTURES / "good", "--out", out, "--min-count", "1", "--no-progress", "--memory-limit", "256M",
              env={"CLAIMSFM_SALT": "cli-test"})
    assert res.returncode == 0, res.stderr
    assert "ingest stages" in res.stderr and "sort+write" in res.stderr and "peak RSS MB" in res.stderr
    assert (out / "store" / "format.json").is_file() and not (out / ".spill").exists()
    res = cli("ingest", FIXTURES / "good", "--out", tmp_path / "o2", "--memory-limit", "lots")
    assert res.returncode == 2 and "--memory-limit: 'lots'" in res.stderr and "Traceback" not in res.stderr


def test_progress_bars_on_every_stage(tmp_path, monkeypatch, capsys):
    """With progress on, the out-of-core stages draw their bars (parse, sort+write)."""
    from claimsfm.ingest import run

    few_buckets(monkeypatch, 3, files_per_bucket=1)
    monkeypatch.setenv("CLAIMSFM_SALT", "bars")
    summary = run(IngestConfig(inputs=[FIXTURES / "good"], out=tmp_path / "o", min_count=1, progress=True))
    err = capsys.readouterr().err
    assert 2 <= summary["buckets"] <= 3 and summary["seconds"] > 0
    for desc in ("parse UKE", "sort+write"):
        assert desc in err, desc
