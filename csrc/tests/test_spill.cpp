// CTest: the out-of-core ingest's C++ steps on hand-made rows (argv[1] is unused), so that ASan/UBSan see
// them: BucketFiles (scatter by bucket, input order kept), SHA-256 / HMAC known answers and the ASCII
// key rule of ascii_subject_id, and bucket_events (once-only rules, total order,
// two keys of one subject, the file and in-memory entry points, an id out of range). The numpy twins are
// compared on random rows in tests/ingest/test_spill.py.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "bucket_events.hpp"
#include "flat_map.hpp"
#include "sha256.hpp"
#include "spill.hpp"
#include "uke_parser.hpp"
#include "uke_text.hpp"

#include "check.hpp"

using namespace claimsfm;

static SpillRow row(int32_t key, int32_t day, int32_t code, int32_t facility, float value = NAN,
                    uint8_t suspected = 0, int32_t dx_start = std::numeric_limits<int32_t>::min()) {
  SpillRow r{};
  r.key = key;
  r.day = day;
  r.code = code;
  r.facility = facility;
  r.dx_start = dx_start;
  r.value = value;
  r.suspected = suspected;
  return r;
}

static void write_rows(const std::string& path, const std::vector<SpillRow>& rows) {
  std::vector<SpillRecord> records;
  SpillContext ctx;
  for (const SpillRow& r : rows) encode_spill(r, ctx, [&](const SpillRecord& x) { records.push_back(x); });
  std::FILE* f = std::fopen(path.c_str(), "wb");
  CHECK(f != nullptr);
  if (!f) return;
  CHECK(std::fwrite(records.data(), sizeof(SpillRecord), records.size(), f) == records.size());
  std::fclose(f);
}

static std::vector<SpillRecord> read_records(const std::string& path) {
  std::vector<SpillRecord> records;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return records;
  SpillRecord r;
  while (std::fread(&r, sizeof r, 1, f) == 1) records.push_back(r);
  std::fclose(f);
  return records;
}

static std::vector<SpillRow> read_rows(const std::string& path) {
  const std::vector<SpillRecord> records = read_records(path);
  std::vector<SpillRow> rows;
  SpillDecoder decoder;
  decoder.feed(records.data(), records.size(), [&](const SpillRow& r) { rows.push_back(r); });
  return rows;
}

static bool same_bits(const SpillRow& a, const SpillRow& b) { return std::memcmp(&a, &b, sizeof a) == 0; }

static void test_spill_records() {
  // A context record opens each run of one key and facility; suspected rides in the code's top bit; the value's
  // bits (NaN, -0.0) and a missing dx_start come back as they were.
  const std::vector<SpillRow> rows = {row(3, 10, 7, 1), row(3, 10, 8, 1, -0.0f, 1), row(3, 11, 7, 2, 2.5f),
                                      row(4, 11, 7, 2, NAN, 0, 9), row(3, 12, 0x7FFFFFFD, 2, 1.0f, 1)};
  std::vector<SpillRecord> records;
  SpillContext ctx;
  for (const SpillRow& r : rows) encode_spill(r, ctx, [&](const SpillRecord& x) { records.push_back(x); });
  CHECK(records.size() == rows.size() + 4);  // contexts before rows 0, 2, 3 and 4
  CHECK(records[0].b == kSpillContext && records[0].a == 3 && records[0].c == 1 && records[2].b == (8u | kSpillSuspected));
  std::vector<SpillRow> back;
  SpillDecoder decoder;
  decoder.feed(records.data(), 4, [&](const SpillRow& r) { back.push_back(r); });  // in two chunks
  decoder.feed(records.data() + 4, records.size() - 4, [&](const SpillRow& r) { back.push_back(r); });
  CHECK(back.size() == rows.size());
  for (size_t i = 0; i < rows.size() && i < back.size(); ++i) CHECK(same_bits(back[i], rows[i]));
  bool threw = false;
  try {
    SpillDecoder fresh;
    fresh.feed(records.data() + 1, 1, [](const SpillRow&) {});  // an event record first: a damaged file
  } catch (const std::runtime_error&) {
    threw = true;
  }
  CHECK(threw);
  threw = false;
  try {
    encode_spill(row(1, 1, 0x7FFFFFFF, 0), ctx, [](const SpillRecord&) {});  // would read as a context record
  } catch (const std::runtime_error&) {
    threw = true;
  }
  CHECK(threw);
}

static void test_bucket_files() {
  const std::vector<std::string> paths = {"test_spill_b0.bin", "test_spill_b1.bin", "test_spill_b2.bin"};
  // Subject ids at the edges of 3 equal ranges of [0, 2^63): w = ceil(2^63 / 3).
  const int64_t w = static_cast<int64_t>(((uint64_t{1} << 63) + 2) / 3);
  CHECK(bucket_of_subject(0, 3) == 0 && bucket_of_subject(w - 1, 3) == 0 && bucket_of_subject(w, 3) == 1);
  CHECK(bucket_of_subject(std::numeric_limits<int64_t>::max(), 3) == 2 && bucket_of_subject(12345, 1) == 0);
  {
    BucketFiles files(paths);
    for (int32_t i = 0; i < 5000; ++i) files.add(static_cast<size_t>(i % 7) % 3, row(i % 7, i, 0, -1));
    files.flush();
    int64_t total = 0;
    for (size_t b = 0; b < paths.size(); ++b) {
      const std::vector<SpillRow> got = read_rows(paths[b]);
      CHECK(static_cast<int64_t>(got.size()) == files.rows()[b]);
      total += files.rows()[b];
      for (size_t i = 0; i < got.size(); ++i) {
        CHECK(static_cast<size_t>(got[i].key % 7) % 3 == b);
        if (i) CHECK(got[i].day > got[i - 1].day);  // input order kept
      }
    }
    CHECK(total == 5000);
  }
  {
    // add_run (the merge's fast path) writes the records add() writes row by row: runs of one key and facility,
    // long enough to cross buffer flushes, a key with another facility next, codes through a map.
    EventColumns ev;
    std::vector<size_t> bounds = {0};
    for (int32_t run = 0; run < 400; ++run) {
      const int32_t len = 1 + (run * 37) % 9000;
      for (int32_t k = 0; k < len; ++k) {
        ev.key.push_back(run / 3 % 11), ev.facility.push_back(run % 3 - 1), ev.day.push_back(run * 100 + k);
        ev.code.push_back((run + k) % 5), ev.value.push_back(k % 4 ? NAN : static_cast<float>(k));
        ev.suspected.push_back(static_cast<uint8_t>(k % 3 == 0)), ev.dx_start.push_back(k % 2 ? k : kNoDay);
      }
      bounds.push_back(ev.size());
    }
    const std::vector<int32_t> code_map = {4, 0, 3, 1, 2}, key_map = {7, 1, 9, 2, 3, 0, 5, 6, 4, 8, 10};
    const std::vector<int32_t> fac_map = {2, 0, 1};
    const std::vector<std::string> a = {"test_spill_a0.bin", "test_spill_a1.bin"}, r = {"test_spill_r0.bin",
                                                                                      "test_spill_r1.bin"};
    {
      BucketFiles rows(a), runs(r);
      for (size_t run = 0; run + 1 < bounds.size(); ++run) {
        const size_t lo = bounds[run], hi = bounds[run + 1];
        const int32_t key = key_map[ev.key[lo]], fac = fac_map[ev.facility[lo] + 1];
        for (size_t i = lo; i < hi; ++i) {
          rows.add(key % 2, SpillRow{key, ev.day[i], code_map[ev.code[i]], fac, ev.dx_start[i], ev.value[i],
                                     ev.suspected[i], {0, 0, 0}});
        }
        runs.add_run(key % 2, key, fac, ev, lo, hi, code_map);
      }
      rows.flush(), runs.flush();
      CHECK(rows.rows() == runs.rows());
    }
    for (size_t b = 0; b < a.size(); ++b) {
      const std::vector<SpillRecord> x = read_records(a[b]), y = read_records(r[b]);
      CHECK(!x.empty() && x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(SpillRecord)) == 0);
      std::remove(a[b].c_str()), std::remove(r[b].c_str());
    }
  }
  bool threw = false;
  try {
    BucketFiles bad({"test_spill_no_such_dir/b0.bin"});
  } catch (const std::runtime_error&) {
    threw = true;
  }
  CHECK(threw);
  for (const std::string& p : paths) std::remove(p.c_str());
}

static std::string hex(const Digest& d) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (uint8_t b : d) {
    s += digits[b >> 4];
    s += digits[b & 15];
  }
  return s;
}

static void test_sha256() {
  Sha256 empty;
  CHECK(hex(empty.digest()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  Sha256 abc;
  abc.update("a", 1);
  abc.update("bc", 2);
  CHECK(hex(abc.digest()) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string million(1000000, 'a');  // FIPS 180-2 example 3, fed in uneven pieces
  Sha256 m;
  for (size_t at = 0; at < million.size(); at += 997) m.update(million.data() + at, std::min<size_t>(997, million.size() - at));
  CHECK(hex(m.digest()) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // RFC 4231 test cases 2 and 6 (a key longer than the block).
  CHECK(hex(HmacSha256("Jefe").mac("what do ya want for nothing?")) ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  CHECK(hex(HmacSha256(std::string(131, '\xaa')).mac("Test Using Larger Than Block-Size Key - Hash Key First")) ==
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  // Keys: non-ASCII bytes are Python's to canonicalise; whitespace is stripped as str.strip() does.
  const HmacSha256 h("salt");
  const auto id = [&](std::string key) {  // '|' stands for the 0x1F part separator
    std::replace(key.begin(), key.end(), '|', '\x1f');
    return ascii_subject_id(h, key);
  };
  CHECK(!id("C|1234567|\x82\x50").has_value());
  CHECK(id("C|1234567| 42\x1c") == id("C|1234567|42") && id("C|1234567| 42\t").has_value());
  CHECK(id("N|1234567|TARO  YAMADA|19700101") == id("N|1234567|TAROYAMADA|19700101"));
  CHECK(id("C|1234567|TARO YAMADA") != id("C|1234567|TAROYAMADA"));
  CHECK(*id("C|1|2") >= 0 && !id("N|x").has_value());
}

static void test_bucket_events() {
  // Codes: 0 "JPDX//B" (rank 1), 1 "JPPROC//A" (rank 2), 2 "SEX//M" (rank 3), 3 "JPDX//A" (rank 0).
  const int64_t code_rank[] = {1, 2, 3, 0};
  const uint8_t code_rule[] = {kFirstPerSuspected, kKeepAll, kFirstPerSubject, kFirstPerSuspected};
  const int64_t fac_rank[] = {1, 0};
  const int64_t key_sid[] = {50, 10, 50};  // keys 0 and 2 are one subject
  const BucketTables tables{key_sid, 3, code_rank, code_rule, 4, fac_rank, 2};
  const int32_t none = std::numeric_limits<int32_t>::min();
  const std::vector<SpillRow> rows = {
      row(0, 20, 0, 0), row(2, 10, 0, 1),          // subject 50: JPDX//B twice; day 10 (key 2) is first
      row(0, 12, 0, 0, NAN, 1),                    // ... suspected: a group of its own
      row(0, 12, 1, 1, 2.0f), row(2, 12, 1, 0, 1.0f), row(0, 12, 1, 0, NAN),  // ties on day: fac rank, value
      row(0, none, 2, -1), row(2, none, 2, -1),    // SEX//M twice: once per subject, first in input order
      row(1, 30, 3, 0), row(1, 30, 3, 0, NAN, 0, 29),  // subject 10: the same JPDX//A, dx_start decides
  };
  BucketEvents e = bucket_events(rows.data(), static_cast<int64_t>(rows.size()), tables);
  const int64_t us = 86'400'000'000LL, nt = std::numeric_limits<int64_t>::min();
  const std::vector<int64_t> subject = {10, 50, 50, 50, 50, 50, 50};
  const std::vector<int64_t> time = {30 * us, nt, 10 * us, 12 * us, 12 * us, 12 * us, 12 * us};
  const std::vector<int32_t> code = {3, 2, 0, 0, 1, 1, 1};
  const std::vector<int32_t> facility = {0, -1, 1, 0, 1, 0, 0};
  CHECK(e.subject == subject && e.time_us == time && e.code == code && e.facility == facility);
  CHECK(e.dx_start_us.size() == 7 && e.dx_start_us[0] == nt);  // NO_TIME sorts before day 29
  CHECK(e.suspected.size() == 7 && e.suspected[3] == 1 && e.suspected[2] == 0);
  // JPPROC//A on day 12: facility rank 0 (fac 1) first, then fac 0 (rank 1) with NaN before 1.0.
  CHECK(e.value.size() == 7 && e.value[4] == 2.0f && std::isnan(e.value[5]) && e.value[6] == 1.0f);
  write_rows("test_spill_bucket.bin", rows);
  BucketEvents f = bucket_events({"test_spill_bucket.bin"}, tables);
  CHECK(f.subject == e.subject && f.time_us == e.time_us && f.code == e.code && f.facility == e.facility &&
        f.suspected == e.suspected && f.dx_start_us == e.dx_start_us);
  std::remove("test_spill_bucket.bin");
  std::vector<SpillRow> bad = rows;
  bad[3].code = 4;
  bool threw = false;
  try {
    bucket_events(bad.data(), static_cast<int64_t>(bad.size()), tables);
  } catch (const std::runtime_error&) {
    threw = true;
  }
  CHECK(threw);
  threw = false;
  try {
    bucket_events({"test_spill_bucket.bin", "test_spill_missing.bin"}, tables);
  } catch (const std::runtime_error&) {
    threw = true;
  }
  CHECK(threw);
}

static void test_fingerprint_ids() {
  // The merge's patient key map (bucket mode): one id per distinct key, the same id on every later lookup, keys
  // of every length 0..40 and keys that differ in one byte anywhere (the bulk corpus's keys share long prefixes).
  FlatFingerprintIds ids;
  std::vector<std::string> keys;
  for (int32_t n = 0; n < 200000; ++n) keys.push_back("I\x1f" + std::to_string(10000000 + n % 97) + "\x1f" +
                                                         std::to_string(n) + "\x1f" "19" + std::to_string(n % 89));
  for (size_t len = 0; len <= 40; ++len) keys.push_back(std::string(len, 'x'));
  for (size_t at = 0; at < 40; ++at) {
    std::string k(40, 'x');
    k[at] = 'y';
    keys.push_back(k);
  }
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  bool added = false;
  for (size_t i = 0; i < keys.size(); ++i) {
    CHECK(ids.find_or_add(keys[i], static_cast<int32_t>(i), added) == static_cast<int32_t>(i) && added);
  }
  size_t same = 0;
  for (size_t i = 0; i < keys.size(); ++i) same += ids.find_or_add(keys[i], -7, added) == static_cast<int32_t>(i) && !added;
  CHECK(same == keys.size() && ids.size() == keys.size());
  // The table doubles past a load of 3/4, so after its growths the load is in (3/8, 3/4].
  CHECK(4 * ids.size() <= 3 * ids.slot_count() && 8 * ids.size() > 3 * ids.slot_count());
  CHECK(hash_bytes("abc") != hash_bytes2("abc") && hash_bytes2("abc") != hash_bytes2("abd"));
}

int main() {
  test_spill_records();
  test_fingerprint_ids();
  test_bucket_files();
  test_sha256();
  test_bucket_events();
  if (failures) std::fprintf(stderr, "%d check(s) failed\n", failures);
  return failures ? 1 : 0;
}
