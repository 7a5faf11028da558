// Byte-level helpers for UKE (レセ電) text: encoding checks, field splitting, numbers and dates.
// Plain C++17, no Python. Every check here has a twin in claimsfm/ingest/reference.py; the two
// must accept and reject exactly the same bytes, because the test suite compares their output.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace claimsfm {

constexpr int32_t kNoDay = INT32_MIN;  // "no date" in every int32 day column

// Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF), the same set Python's codec accepts.
bool valid_utf8(const char* p, size_t n);
// Structural CP932: ASCII, half-width kana A1-DF, or lead 81-9F/E0-FC + trail 40-7E/80-FC.
bool valid_cp932(const char* p, size_t n);
// True when any byte is >= 0x80.
bool has_high_bytes(const char* p, size_t n);

// Split a line at every ',' (UKE has no quoting) into out[0..cap); returns the number of fields,
// which may exceed `cap` (the extra fields are counted, not stored).
size_t split_fields(std::string_view line, std::string_view* out, size_t cap);
// Split off the first `count` fields into out[0..n); returns the offset where the rest of the
// line starts, or npos when the line has no more than `count` fields (all of them are in `out`).
size_t split_prefix(std::string_view line, size_t count, std::string_view* out, size_t& n);
// Value of a string already checked to be all digits.
uint64_t digits_value(std::string_view s);
// Trim ASCII spaces on both sides.
std::string_view trim_spaces(std::string_view s);

// The 31 day fields (算定日) of an SI/IY/TO record, read in one pass over the bytes (most are
// empty; splitting them into views first was the largest cost of the parser). Only the non-empty
// fields among the first 31 are listed, in field order: an empty field is a count of 0, which
// the parser skips anyway.
struct DayFields {
  uint8_t day[31];   // 0-based day field index of each listed field
  int64_t value[31];
  bool ok[31];       // 1-12 digits: what parse_count accepts
  size_t n_set;      // listed fields
  size_t n_fields;   // every field in the scanned text (for the field-count check)
};
void scan_days(std::string_view text, DayFields& d);

// Non-negative decimal integer made only of digits; empty -> `empty_value`. False on anything else.
bool parse_count(std::string_view s, int64_t empty_value, int64_t& out);
// Exactly `width` ASCII digits.
bool all_digits(std::string_view s, size_t width);

// Treatment month: YYYYMM (6 digits) or era GYYMM (5 digits) -> year, month. False when invalid.
bool parse_month(std::string_view s, int32_t& year, int32_t& month);
// Date: YYYYMMDD (8) or era GYYMMDD (7) -> days since 1970-01-01. False when invalid.
bool parse_date(std::string_view s, int32_t& day);
// Receipt type (レセプト種別, uke-format.md §4) in the table: 医科, insurance kind, payers, class digit.
bool valid_receipt_type(std::string_view s);

}  // namespace claimsfm
