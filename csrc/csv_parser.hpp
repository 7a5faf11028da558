// Long CSV `subject_id,time,code[,numeric_value]` -> event columns, and the grouping of events
// into per-subject sequences. Plain C++17; the Python twin is claimsfm/ingest/csvfmt.py.
//
// Accepted values (the Python twin accepts exactly the same): subject_id `-?[0-9]+` in int64;
// time empty (static row), `YYYY-MM-DD`, or `YYYY-MM-DD[T ]HH:MM[:SS[.ffffff]]`; code non-empty,
// no '"'; numeric_value empty or `[+-]?(digits[.digits]|.digits)([eE][+-]?digits)?` whose float32
// value is finite (`1e400` is refused as out of range, as `inf` and `nan` are by the syntax). Lines
// may end in LF or CRLF; a UTF-8 byte order mark before the header is skipped.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace claimsfm {

constexpr int64_t kNoTime = INT64_MIN;  // static rows

struct CsvReject {
  int64_t line;
  std::string reason;
};

struct CsvResult {
  std::vector<int64_t> subject;
  std::vector<int64_t> time_us;  // microseconds since 1970-01-01, kNoTime for static rows
  std::vector<int32_t> code;
  std::vector<float> value;      // NaN when empty or absent
  std::vector<std::string> codes;
  std::vector<CsvReject> rejects;  // ordered by line
  int64_t rows = 0, bytes = 0;
  bool has_value_column = false;
};

// Parse a whole CSV buffer (header first) on `threads` threads; stop at the first bad line unless
// `skip_bad` (then bad lines are reported and left out).
CsvResult parse_csv_buffer(std::string_view data, int threads, bool skip_bad);
CsvResult parse_csv_file(const std::string& path, int threads, bool skip_bad);

// Group events by subject (ascending id), each subject's events ordered by time (static rows
// first, ties kept in file order). Returns the permutation; `offsets` (n_subjects+1) and
// `subjects` (n_subjects) describe the groups.
std::vector<int64_t> group_by_subject(const std::vector<int64_t>& subject,
                                      const std::vector<int64_t>& time_us,
                                      std::vector<int64_t>& offsets,
                                      std::vector<int64_t>& subjects);
// The same over `n` rows in caller-owned arrays (the binding reads numpy buffers without a copy);
// the per-subject time sorts run on `threads` threads.
std::vector<int64_t> group_by_subject(const int64_t* subject, const int64_t* time_us, size_t n,
                                      std::vector<int64_t>& offsets,
                                      std::vector<int64_t>& subjects, int threads = 1);

}  // namespace claimsfm
