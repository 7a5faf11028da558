// The bucket files of the out-of-core ingest (claimsfm/ingest/spill.py): the UKE parser's merge step
// (uke_files.cpp) scatters each event, as a SpillRow record (uke_parser.hpp), into the file of its
// subject_id range as soon as its patient key is pseudonymised, keeping input order inside each file.
// spill.partition_numpy is the numpy twin (from a single spill file and the key table's subject_ids).
// Plain C++17, no Python.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace claimsfm {

struct SpillRow;

// Bucket b of n holds the subject_ids in [b * w, (b + 1) * w), w = ceil(2^63 / n): bucket order is
// subject_id order (spill.bucket_of is the numpy twin).
size_t bucket_of_subject(int64_t subject_id, size_t n_buckets);

class BucketFiles {
 public:
  // Creates (truncates) one file per path. Throws std::runtime_error when one cannot be created.
  explicit BucketFiles(const std::vector<std::string>& paths);
  ~BucketFiles();
  BucketFiles(const BucketFiles&) = delete;
  BucketFiles& operator=(const BucketFiles&) = delete;

  size_t size() const { return fds_.size(); }
  void add(size_t bucket, const SpillRow& row);  // buffered; throws when a write fails (disk full)
  void flush();                                  // everything buffered to the files; throws on failure
  const std::vector<int64_t>& rows() const { return rows_; }  // rows added per bucket

 private:
  void write_out(size_t bucket);
  std::vector<std::string> paths_;
  size_t buf_rows_;  // rows buffered per file (buffer_rows in spill.cpp)
  std::vector<int> fds_;
  std::vector<std::vector<SpillRow>> buf_;  // up to buf_rows_ rows per file, allocated on first use
  std::vector<int64_t> rows_;
};

}  // namespace claimsfm
