// The total order of MEDS events that claimsfm.ingest writes (events.EventTable.sorted is the numpy
// twin): by subject, time (static rows, INT64_MIN, first), packed (code rank, facility rank,
// suspected), value (NaN first, as -inf), dx_start, then input position. Plain C++17, no Python.
#pragma once
#include <cstdint>

namespace claimsfm {

// Writes the sorted permutation of the n events into `order` (n,).
void sort_events(const int64_t* subject, const int64_t* time_us, const int64_t* packed, const float* value,
                 const int64_t* dx_start, int64_t n, int64_t* order);

}  // namespace claimsfm
