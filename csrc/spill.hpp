// The partition step of the out-of-core ingest (claimsfm/ingest/spill.py): scatter a spill file of
// SpillRow records (uke_parser.hpp) into bucket files by a per-key bucket table, keeping input order
// inside each bucket. spill.partition_numpy is the numpy twin. Plain C++17, no Python.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace claimsfm {

// bucket_of_key[k] in [0, paths.size()) for every key id k in the spill. Returns the rows per bucket.
// `bytes_done` (may be null) is advanced as the spill is read, for a progress bar.
// Throws std::runtime_error on an unreadable spill, an unwritable bucket file or a key out of range.
std::vector<int64_t> partition_spill(const std::string& spill_path, const uint16_t* bucket_of_key, int64_t n_keys,
                                     const std::vector<std::string>& bucket_paths,
                                     std::atomic<int64_t>* bytes_done = nullptr);

}  // namespace claimsfm
