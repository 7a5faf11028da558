// Sequence packing: first-fit-decreasing of sequence lengths into rows of max_tokens.
//
// Sequences are taken longest first (ties: lower index first) and each goes into the lowest-numbered
// row with room, opening a new row when none has room. A sequence is never split. The "lowest row
// with room" query is a max segment tree over the rows' free space, so packing n lengths costs
// O(n log n) (plus a counting sort of the lengths when max_tokens is small compared with n).
// claimsfm/data/reference.py holds the plain quadratic twin used as the test oracle.
#pragma once
#include <cstdint>

namespace claimsfm {

// rows[i] = row of sequence i. Returns the number of rows. Throws std::invalid_argument when a
// length is negative or larger than max_tokens, or max_tokens < 1.
int64_t pack_ffd(const int64_t* lengths, int64_t n, int64_t max_tokens, int64_t* rows);

}  // namespace claimsfm
