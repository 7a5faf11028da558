// Token-store building: order one MEDS shard's events and number its visits (design.md §3.3).
//
// A visit is one month at one facility. A subject's visits are numbered 0, 1, ... in order of their
// first day, ties broken by facility id; events are then ordered by (subject, day, visit, code,
// input position). The per-subject sorts make this O(N log k) for subjects of k events; a subject whose events
// come in (day, code) order, as ingest's total order leaves them, takes a path without them (one pass per month
// for the visits, a stable sort only of days with several visits), compared with the general one in
// csrc/tests/test_data.cpp.
// claimsfm/data/reference.py holds the numpy twin (lexsorts over the whole shard).
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

namespace claimsfm {

// Inputs (n,): subject (local index in [0, n_subjects)), day (days since epoch), facility (id, -1
// when unknown), code (raw code id), inpatient (1 for a JPVISIT//INPATIENT event).
// Outputs: order (n,) the sorted permutation; visit (n,) and visit_inpatient (n,) per input event.
// Throws std::invalid_argument on a subject index out of range.
// `allow_sorted` false: every subject through the general path (sorts by (month, facility, day) and by
// (day, visit, code)), the twin of the path for subjects whose events are in (day, code) order already.
void order_events(const int64_t* subject, const int32_t* day, const int32_t* facility, const int32_t* code,
                  const uint8_t* inpatient, int64_t n, int64_t n_subjects, int64_t* order, int32_t* visit,
                  uint8_t* visit_inpatient, bool allow_sorted = true);

// The token store rows of one bucket of the out-of-core ingest (claimsfm/data/stream.py; its numpy twin is
// StoreWriter.prepare_numpy). Inputs (n,) are an events.EventTable sorted by subject: subject ids, time_us
// (INT64_MIN = no time), code (parser id), facility (-1 = none), suspected (0/1), value; per code its rank in
// sorted order, per facility its rank; the parser ids of MEDS_BIRTH, MEDS_DEATH and the inpatient visit (-1 =
// absent), and sex codes with their `sex` values (a later pair wins). Events are the dated rows other than
// birth, ordered and numbered into visits by order_events; flags are flag_suspected | flag_inpatient; each
// event's code is written as its code's rank (which is the store's final code id when every code has events).
struct StoreRows {
  std::vector<int64_t> ids, counts;                 // per subject (m,)
  std::vector<int32_t> birth_day, death_day;        // per subject, -1 = unknown
  std::vector<int8_t> sex;                          // per subject, 0 = unknown
  std::vector<int32_t> code, day, visit;            // per event (k,), in store order; code: its rank
  std::vector<uint8_t> flags;
  std::vector<float> value;
  int32_t day_min = 0, day_max = -1;               // over the events (day_max < day_min: none)
};

StoreRows store_rows(const int64_t* subject, const int64_t* time_us, const int32_t* code, const int32_t* facility,
                     const uint8_t* suspected, const float* value, int64_t n, const int64_t* code_rank,
                     int64_t n_codes, const int64_t* fac_rank, int64_t n_facilities, int32_t birth, int32_t death,
                     int32_t inpatient, const std::vector<std::pair<int32_t, int8_t>>& sex_codes,
                     uint8_t flag_suspected, uint8_t flag_inpatient);

}  // namespace claimsfm
