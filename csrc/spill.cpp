#include "spill.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "uke_parser.hpp"

namespace claimsfm {

namespace {
// Bytes buffered per file before a write(): kBufferBytes over all files, 7..56 KiB a file. Each write() into
// ext4's page cache has a fixed cost (inode and block bookkeeping); at 2 GB of UKE on 2 threads (484 files)
// 7 KiB writes took the parse stage to 13.0 / 14.0 CPU-s, 56 KiB ones to 10.5 / 10.6 (alternating runs);
// 224 KiB gained nothing more and held 90 MB more.
constexpr size_t kBufferBytes = size_t{32} << 20;
constexpr size_t kMinBufBytes = size_t{7} << 10, kMaxBufBytes = size_t{56} << 10;

size_t buffer_records(size_t n_files) {
  const size_t bytes = std::clamp(kBufferBytes / std::max<size_t>(n_files, 1), kMinBufBytes, kMaxBufBytes);
  return bytes / sizeof(SpillRecord);
}
}  // namespace

size_t bucket_of_subject(int64_t subject_id, size_t n_buckets) {
  if (n_buckets <= 1) return 0;
  const uint64_t width = ((uint64_t{1} << 63) + n_buckets - 1) / n_buckets;
  return static_cast<size_t>(static_cast<uint64_t>(subject_id) / width);
}

BucketFiles::BucketFiles(const std::vector<std::string>& paths)
    : paths_(paths), buf_records_(buffer_records(paths.size())), buf_(paths.size()), context_(paths.size()),
      rows_(paths.size(), 0) {
  fds_.reserve(paths.size());
  for (const std::string& p : paths) {
    const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
      const std::string why = std::strerror(errno);
      for (int f : fds_) ::close(f);
      fds_.clear();
      throw std::runtime_error("cannot create the spill file " + p + " (" + why + ")");
    }
    fds_.push_back(fd);
  }
}

BucketFiles::~BucketFiles() {
  for (int fd : fds_) ::close(fd);
}

void BucketFiles::add(size_t b, const SpillRow& row) {
  std::vector<SpillRecord>& buf = buf_[b];
  if (buf.capacity() == 0) buf.reserve(buf_records_);
  encode_spill(row, context_[b], [&](const SpillRecord& r) { buf.push_back(r); });
  ++rows_[b];
  if (buf.size() + 2 > buf_records_) write_out(b);  // room for the next row's two records
}

void BucketFiles::add_run(size_t b, int32_t key, int32_t facility, const EventColumns& s, size_t lo, size_t hi,
                          const std::vector<int32_t>& code_map) {
  std::vector<SpillRecord>& buf = buf_[b];
  if (buf.capacity() == 0) buf.reserve(buf_records_);
  SpillContext& ctx = context_[b];
  if (!ctx.open || key != ctx.key || facility != ctx.facility) {
    buf.push_back(SpillRecord{key, kSpillContext, facility, 0.0f});
    ctx = {key, facility, true};
  }
  for (size_t i = lo; i < hi;) {
    if (buf.size() + 1 > buf_records_) write_out(b);
    const size_t end = std::min(hi, i + (buf_records_ - buf.size()));
    for (; i < end; ++i) {
      buf.push_back(spill_event(s.day[i], code_map[s.code[i]], s.suspected[i] != 0, s.dx_start[i], s.value[i]));
    }
  }
  rows_[b] += static_cast<int64_t>(hi - lo);
  if (buf.size() + 2 > buf_records_) write_out(b);
}

void BucketFiles::write_out(size_t b) {
  std::vector<SpillRecord>& buf = buf_[b];
  const char* p = reinterpret_cast<const char*>(buf.data());
  size_t left = buf.size() * sizeof(SpillRecord);
  while (left > 0) {
    const ssize_t put = ::write(fds_[b], p, left);
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) {
      throw std::runtime_error("cannot write the spill file " + paths_[b] + " (" +
                               (put < 0 ? std::strerror(errno) : "no space") + ")");
    }
    p += put;
    left -= static_cast<size_t>(put);
  }
  buf.clear();
}

void BucketFiles::flush() {
  for (size_t b = 0; b < buf_.size(); ++b) {
    if (!buf_[b].empty()) write_out(b);
    std::vector<SpillRecord>().swap(buf_[b]);
  }
}

}  // namespace claimsfm
