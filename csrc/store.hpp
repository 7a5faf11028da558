// Token-store building: order one MEDS shard's events and number its visits (design.md §3.3).
//
// A visit is one month at one facility. A subject's visits are numbered 0, 1, ... in order of their
// first day, ties broken by facility id; events are then ordered by (subject, day, visit, code,
// input position). The per-subject sorts make this O(N log k) for subjects of k events.
// claimsfm/data/reference.py holds the numpy twin (lexsorts over the whole shard).
#pragma once
#include <cstdint>

namespace claimsfm {

// Inputs (n,): subject (local index in [0, n_subjects)), day (days since epoch), facility (id, -1
// when unknown), code (raw code id), inpatient (1 for a JPVISIT//INPATIENT event).
// Outputs: order (n,) the sorted permutation; visit (n,) and visit_inpatient (n,) per input event.
// Throws std::invalid_argument on a subject index out of range.
void order_events(const int64_t* subject, const int32_t* day, const int32_t* facility, const int32_t* code,
                  const uint8_t* inpatient, int64_t n, int64_t n_subjects, int64_t* order, int32_t* visit,
                  uint8_t* visit_inpatient);

}  // namespace claimsfm
