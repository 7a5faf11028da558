// The bucket files of the out-of-core ingest (claimsfm/ingest/spill.py): the UKE parser's merge step
// (uke_files.cpp) scatters each event, as a SpillRow record (uke_parser.hpp), into the file of its
// subject_id range as soon as its patient key is pseudonymised, keeping input order inside each file.
// spill.partition_numpy is the numpy twin (from a single spill file and the key table's subject_ids).
// Plain C++17, no Python.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "uke_parser.hpp"

namespace claimsfm {

// On disk a spill file is a sequence of 16-byte SpillRecords (claimsfm/ingest/spill.py SPILL_RECORD, the numpy
// twins encode_spill / decode_spill): a context record {key, kSpillContext, facility, 0} opens each run of
// events of one patient key and facility, then one event record {day, code | suspected << 31, dx_start, value}
// per event. The events of one receipt share a key and a facility, so a file holds ~17 bytes per event
// against 28 for whole SpillRows (bulk corpus: 17.8 events per context), which is what the parse writes to
// the page cache and sort+write reads back.
struct SpillRecord {
  int32_t a;   // context: key; event: day
  uint32_t b;  // context: kSpillContext; event: code | suspected << 31
  int32_t c;   // context: facility; event: dx_start
  float d;     // context: 0; event: value (its bits as they are, NaN included)
};
static_assert(sizeof(SpillRecord) == 16, "SpillRecord layout is shared with claimsfm/ingest/spill.py");
constexpr uint32_t kSpillContext = 0xFFFFFFFFu;
constexpr uint32_t kSpillSuspected = 0x80000000u;

// The key and facility of the last record encoded into one file.
struct SpillContext {
  int32_t key = 0, facility = 0;
  bool open = false;
};

// The event record of one event. Throws std::runtime_error for a code id that does not fit below the suspected
// bit or would read as a context record.
inline SpillRecord spill_event(int32_t day, int32_t code, bool suspected, int32_t dx_start, float value) {
  if (code < 0 || static_cast<uint32_t>(code) >= kSpillSuspected - 1) {
    throw std::runtime_error("spill: code id " + std::to_string(code) + " out of range");
  }
  return SpillRecord{day, static_cast<uint32_t>(code) | (suspected ? kSpillSuspected : 0u), dx_start, value};
}

// push(record) for `r`: a context record first when its key or facility differs from the last row of the file.
template <class Push>
inline void encode_spill(const SpillRow& r, SpillContext& ctx, Push&& push) {
  const SpillRecord event = spill_event(r.day, r.code, r.suspected != 0, r.dx_start, r.value);
  if (!ctx.open || r.key != ctx.key || r.facility != ctx.facility) {
    push(SpillRecord{r.key, kSpillContext, r.facility, 0.0f});
    ctx = {r.key, r.facility, true};
  }
  push(event);
}

// The rows of one file's records, fed in order (in chunks); emit(row) per event. Throws std::runtime_error on
// an event record before any context record (a damaged file).
class SpillDecoder {
 public:
  template <class Emit>
  void feed(const SpillRecord* recs, size_t n, Emit&& emit) {
    for (size_t i = 0; i < n; ++i) {
      const SpillRecord& x = recs[i];
      if (x.b == kSpillContext) {
        key_ = x.a;
        facility_ = x.c;
        open_ = true;
        continue;
      }
      if (!open_) throw std::runtime_error("an event record before any context record");
      emit(SpillRow{key_, x.a, static_cast<int32_t>(x.b & ~kSpillSuspected), facility_, x.c, x.d,
                    static_cast<uint8_t>((x.b & kSpillSuspected) != 0), {0, 0, 0}});
    }
  }

 private:
  int32_t key_ = 0, facility_ = 0;
  bool open_ = false;
};

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
  void add(size_t bucket, const SpillRow& row);  // encoded and buffered; throws when a write fails (disk full)
  // Events [lo, hi) of `s`, which share one patient key and facility (global ids `key`, `facility`; codes
  // through code_map): the same records as add() of each, with the bucket and the context looked up once.
  void add_run(size_t bucket, int32_t key, int32_t facility, const EventColumns& s, size_t lo, size_t hi,
               const std::vector<int32_t>& code_map);
  void flush();                                  // everything buffered to the files; throws on failure
  const std::vector<int64_t>& rows() const { return rows_; }  // events (not records) added per bucket

 private:
  void write_out(size_t bucket);
  std::vector<std::string> paths_;
  size_t buf_records_;  // records buffered per file (buffer_records in spill.cpp)
  std::vector<int> fds_;
  std::vector<std::vector<SpillRecord>> buf_;  // up to buf_records_ per file, allocated on first use
  std::vector<SpillContext> context_;
  std::vector<int64_t> rows_;
};

}  // namespace claimsfm
