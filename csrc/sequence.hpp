// Sequence builder: token-store CSR events -> model input sequences (design.md §3.3).
//
// Per subject: [CLS], then its events in store order (day, visit, code) up to a cutoff day, with
// [SEP] wherever the visit changes. Truncation keeps [CLS] plus the most recent max_len-1 tokens
// and never starts the kept window with a [SEP]. Per token: age in months (-1 for [CLS] and when the
// birth day is unknown), visit number within the window (1, 2, ...; 0 for [CLS]; a [SEP] carries the visit it
// closes), months since the subject's first event, segment = visit % 2, and the time inputs:
// days_before = reference day - the token's day ([CLS] 0, a [SEP] takes the last day of the visit it
// closes) and gap_days = days from the event before a visit's first event to that first event (every
// token of the visit and its [SEP]; -1 when nothing came before), with the [CLS] carrying the gap from
// the last kept event to the reference (the prediction time as an input; -1 without events).
// The reference day is `reference[i]` when given, else the cutoff day, else the last day of the month
// of the subject's last event (docs/internals.md §4).
// No Python here; claimsfm/data/reference.py holds the pure-Python twin used as the test oracle.
#pragma once
#include <cstdint>
#include <vector>

namespace claimsfm {

constexpr int32_t kPad = 0, kCls = 1, kSep = 2, kMask = 3, kUnk = 4, kNumSpecial = 5;

// The store arrays a builder reads (borrowed, typically memory-mapped).
struct StoreView {
  const int64_t* offsets;    // (n+1,)
  const int32_t* token;      // (N,)
  const int32_t* day;        // (N,)
  const int32_t* visit;      // (N,)
  const int32_t* birth_day;  // (n,) -1 unknown
  int64_t n_subjects;
  int64_t n_events;
};

struct Sequences {
  std::vector<int64_t> offsets;  // (k+1,)
  std::vector<int32_t> input_ids, age_months, visit, months, days_before, gap_days;  // (T,)
  std::vector<int8_t> segment;   // (T,)
};

// Length (with [CLS]) of each subject's sequence. cutoff may be null (whole history).
// Throws std::invalid_argument on a subject index out of range or max_len < 2.
void sequence_lengths(const StoreView& s, const int64_t* subjects, const int32_t* cutoff, int64_t k,
                      int32_t max_len, int64_t* lengths);

// The sequences of `subjects` (k,) with per-subject cutoff days and reference days (each may be null),
// CSR in `out`.
void build_sequences(const StoreView& s, const int64_t* subjects, const int32_t* cutoff, const int32_t* reference,
                     int64_t k, int32_t max_len, Sequences& out);

}  // namespace claimsfm
