// The sort step of the out-of-core ingest (claimsfm/ingest/spill.py): a bucket of SpillRow records
// (uke_parser.hpp), in one or more files of consecutive subject_id ranges -> its de-duplicated events in
// ingest's total order, with no Python.
// The numpy twin is events.raw_table (first_observations, then EventTable.sorted).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace claimsfm {

// Per code id: how the once-only rules of design.md §3.1 treat it.
enum OnceRule : uint8_t { kKeepAll = 0, kFirstPerSuspected = 1, kFirstPerSubject = 2 };

struct BucketTables {
  const int64_t* key_sid;    // (n_keys,) subject_id of each parser key id
  int64_t n_keys;
  const int64_t* code_rank;  // (n_codes,) rank of each code name in sorted order
  const uint8_t* code_rule;  // (n_codes,) OnceRule: 1 for a diagnosis, 2 for sex, birth and death
  int64_t n_codes;
  const int64_t* fac_rank;   // (n_facilities,) rank of each facility label in sorted order
  int64_t n_facilities;
};

struct SpillRow;

// The columns of events.EventTable; a missing day (INT32_MIN in a SpillRow) is INT64_MIN microseconds.
struct BucketEvents {
  std::vector<int64_t> subject, time_us, dx_start_us;
  std::vector<int32_t> code, facility;
  std::vector<float> value;
  std::vector<uint8_t> suspected;  // 0 or 1
};

// The rows of a bucket, read from `paths` in order: keep the first diagnosis per (subject, code, suspected) and one
// row per (subject, code) of a once-per-subject code (earliest day, then dx_start, facility id, input
// position), then order by (subject, day, code rank, facility rank, suspected, value with NaN first,
// dx_start, input position). Throws std::runtime_error on an unreadable file or an id out of range.
BucketEvents bucket_events(const std::vector<std::string>& paths, const BucketTables& tables);

// The same on rows already in memory (tests, and the C++ test executable).
BucketEvents bucket_events(const SpillRow* rows, int64_t n, const BucketTables& tables);

}  // namespace claimsfm
