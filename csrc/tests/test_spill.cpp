// CTest: the out-of-core ingest's C++ steps on hand-made rows (argv[1] is unused), so that ASan/UBSan see
// them: partition_spill (scatter by key, input order kept) and bucket_events (once-only rules, total order,
// two keys of one subject, the file and in-memory entry points, an id out of range). The numpy twins are
// compared on random rows in tests/ingest/test_spill.py.
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "bucket_events.hpp"
#include "spill.hpp"
#include "uke_parser.hpp"

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
  std::FILE* f = std::fopen(path.c_str(), "wb");
  CHECK(f != nullptr);
  if (!f) return;
  CHECK(std::fwrite(rows.data(), sizeof(SpillRow), rows.size(), f) == rows.size());
  std::fclose(f);
}

static std::vector<SpillRow> read_rows(const std::string& path) {
  std::vector<SpillRow> rows;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return rows;
  SpillRow r;
  while (std::fread(&r, sizeof r, 1, f) == 1) rows.push_back(r);
  std::fclose(f);
  return rows;
}

static void test_partition() {
  std::vector<SpillRow> rows;
  for (int32_t i = 0; i < 5000; ++i) rows.push_back(row(i % 7, i, 0, -1));
  write_rows("test_spill_events.bin", rows);
  const uint16_t bucket_of_key[] = {2, 0, 1, 2, 0, 1, 2};
  const std::vector<std::string> paths = {"test_spill_b0.bin", "test_spill_b1.bin", "test_spill_b2.bin"};
  const std::vector<int64_t> counts = partition_spill("test_spill_events.bin", bucket_of_key, 7, paths);
  int64_t total = 0;
  for (size_t b = 0; b < paths.size(); ++b) {
    const std::vector<SpillRow> got = read_rows(paths[b]);
    CHECK(static_cast<int64_t>(got.size()) == counts[b]);
    total += counts[b];
    for (size_t i = 0; i < got.size(); ++i) {
      CHECK(bucket_of_key[got[i].key] == b);
      if (i) CHECK(got[i].day > got[i - 1].day);  // input order kept
    }
  }
  CHECK(total == 5000);
  const uint16_t bad[] = {0, 0, 0, 0, 0, 0, 9};
  bool threw = false;
  try {
    partition_spill("test_spill_events.bin", bad, 7, paths);
  } catch (const std::runtime_error&) {
    threw = true;
  }
  CHECK(threw);
  for (const std::string& p : paths) std::remove(p.c_str());
  std::remove("test_spill_events.bin");
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
  BucketEvents f = bucket_events("test_spill_bucket.bin", tables);
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
    bucket_events("test_spill_missing.bin", tables);
  } catch (const std::runtime_error&) {
    threw = true;
  }
  CHECK(threw);
}

int main() {
  test_partition();
  test_bucket_events();
  if (failures) std::fprintf(stderr, "%d check(s) failed\n", failures);
  return failures ? 1 : 0;
}
