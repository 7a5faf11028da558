// Reading UKE files from disk, parsing them (in pieces: scan_uke_buffer) on a pool of std::threads and merging
// the pieces' results in input order, so the output depends neither on the thread count nor on the piece size.
#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

#include "flat_map.hpp"
#include "spill.hpp"
#include "uke_parser.hpp"

namespace claimsfm {

namespace {

// A file's bytes, in a buffer that is reused from file to file (uninitialised growth: a fresh buffer per file was
// zeroed and faulted in again, ~4% of the parse's CPU on files of 160 MB).
struct Buffer {
  std::unique_ptr<char[]> data;
  size_t capacity = 0, size = 0;
  Buffer() = default;
  Buffer(Buffer&& o) noexcept { *this = std::move(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    data = std::move(o.data);
    capacity = std::exchange(o.capacity, 0);
    size = std::exchange(o.size, 0);
    return *this;
  }
  std::string_view view() const { return size ? std::string_view(data.get(), size) : std::string_view(""); }
};

bool read_file(const std::string& path, Buffer& buf) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f || std::fseek(f.get(), 0, SEEK_END) != 0) return false;
  const long size = std::ftell(f.get());
  if (size < 0 || std::fseek(f.get(), 0, SEEK_SET) != 0) return false;
  if (static_cast<size_t>(size) > buf.capacity) {
    buf.data.reset(new char[static_cast<size_t>(size)]);
    buf.capacity = static_cast<size_t>(size);
  }
  buf.size = std::fread(buf.data.get(), 1, static_cast<size_t>(size), f.get());
  return buf.size == static_cast<size_t>(size) && !std::ferror(f.get());
}

// Append one file's events to `out`, translating its local ids into global ones.
struct Merger {
  UkeResult& out;
  std::unordered_map<uint64_t, int32_t> codes;
  // The same key bytes in a UTF-8 and a CP932 file are different patients: one map per encoding,
  // both over out.keys. With bucket files the keys are not kept, only their fingerprints.
  FlatTableIds keys_utf8, keys_cp932;
  std::unordered_map<std::string, int32_t> facilities;
  std::FILE* spill = nullptr;  // events go here as SpillRecords (spill.hpp) instead of into out.events
  SpillContext spill_context;  // of that file
  const SpillBuckets* spec = nullptr;  // or into these bucket files, by subject_id
  BucketFiles* buckets = nullptr;
  FlatFingerprintIds prints_utf8 = {}, prints_cp932 = {};  // with `buckets`: the keys' fingerprints, not the keys

  template <class K, class F>
  static int32_t intern(std::unordered_map<K, int32_t>& map, const K& k, F&& push) {
    auto it = map.find(k);
    if (it != map.end()) return it->second;
    const auto id = static_cast<int32_t>(map.size());
    map.emplace(k, id);
    push();
    return id;
  }

  void add(FileResult& f) {
    std::vector<int32_t> code_map, key_map, fac_map;
    for (uint64_t c : f.codes)
      code_map.push_back(intern(codes, c, [&] { out.codes.push_back(code_name(c)); }));
    FlatTableIds& ids = f.utf8 ? keys_utf8 : keys_cp932;
    FlatFingerprintIds& prints = f.utf8 ? prints_utf8 : prints_cp932;
    for (std::string& k : f.keys) {
      bool added;
      if (buckets) {  // the key's subject_id and bucket are all that is kept of it
        key_map.push_back(prints.find_or_add(k, static_cast<int32_t>(out.key_sid.size()), added));
        if (!added) continue;
        const int64_t sid = spec->subject_id(k, f.utf8);
        out.key_sid.push_back(sid);
      } else {
        key_map.push_back(ids.find_or_add(k, out.keys, added));
        if (!added) continue;
        out.keys.push_back(std::move(k));
      }
      out.key_utf8.push_back(f.utf8 ? 1 : 0);
    }
    for (const std::string& fc : f.facilities)
      fac_map.push_back(intern(facilities, fc, [&] { out.facilities.push_back(fc); }));
    const EventColumns& s = f.events;
    if (buckets) {
      // A receipt's events share a key and a facility: one bucket and context lookup per run of them.
      const size_t n = s.size();
      for (size_t i = 0; i < n;) {
        const int32_t key = s.key[i], fac = s.facility[i];
        size_t j = i + 1;
        while (j < n && s.key[j] == key && s.facility[j] == fac) ++j;
        const int32_t global = key_map[key];
        // The bucket from the subject_id, once per run: a table of each key's bucket was 4-12 bytes a patient more.
        const size_t bucket = bucket_of_subject(out.key_sid[static_cast<size_t>(global)], buckets->size());
        buckets->add_run(bucket, global, fac_map[fac], s, i, j, code_map);
        i = j;
      }
      out.spilled += static_cast<int64_t>(n);
    } else if (spill) {
      write_spill(s, code_map, key_map, fac_map);
    } else {
      append(s, code_map, key_map, fac_map);
    }
    for (Reject& r : f.rejects) out.rejects.push_back(std::move(r));
    out.stats.add(f.stats);
    f = FileResult();  // free the file's memory as soon as it is merged
  }

  // Event i of a file as a SpillRow with global ids.
  static SpillRow spill_row(const EventColumns& s, size_t i, const std::vector<int32_t>& code_map,
                            const std::vector<int32_t>& key_map, const std::vector<int32_t>& fac_map) {
    return SpillRow{key_map[s.key[i]], s.day[i], code_map[s.code[i]], fac_map[s.facility[i]], s.dx_start[i],
                    s.value[i], s.suspected[i], {0, 0, 0}};
  }

  void write_spill(const EventColumns& s, const std::vector<int32_t>& code_map, const std::vector<int32_t>& key_map,
                   const std::vector<int32_t>& fac_map) {
    std::vector<SpillRecord> records;
    records.reserve(s.size() + s.size() / 8);
    for (size_t i = 0; i < s.size(); ++i) {
      encode_spill(spill_row(s, i, code_map, key_map, fac_map), spill_context,
                   [&](const SpillRecord& r) { records.push_back(r); });
    }
    if (!records.empty() &&
        std::fwrite(records.data(), sizeof(SpillRecord), records.size(), spill) != records.size()) {
      throw std::runtime_error("cannot write the spill file (disk full?)");
    }
    out.spilled += static_cast<int64_t>(s.size());
  }

  void append(const EventColumns& s, const std::vector<int32_t>& code_map, const std::vector<int32_t>& key_map,
              const std::vector<int32_t>& fac_map) {
    EventColumns& e = out.events;
    for (size_t i = 0; i < s.size(); ++i) {
      e.key.push_back(key_map[s.key[i]]);
      e.code.push_back(code_map[s.code[i]]);
      e.facility.push_back(fac_map[s.facility[i]]);
    }
    e.day.insert(e.day.end(), s.day.begin(), s.day.end());
    e.value.insert(e.value.end(), s.value.begin(), s.value.end());
    e.suspected.insert(e.suspected.end(), s.suspected.begin(), s.suspected.end());
    e.dx_start.insert(e.dx_start.end(), s.dx_start.begin(), s.dx_start.end());
  }
};

// Reserve the output columns from the total input size (the same events-per-byte guess as the
// per-file buffers): growing them by doubling copied every column several times and touched
// fresh pages on each copy. Untouched reserved pages cost only address space.
void reserve_events(EventColumns& e, const std::vector<std::string>& paths) {
  uintmax_t total = 0;
  for (const std::string& p : paths) {
    std::error_code err;
    const uintmax_t size = std::filesystem::file_size(p, err);
    if (!err) total += size;
  }
  const size_t guess = static_cast<size_t>(total / 24);
  for (auto* v : {&e.key, &e.day, &e.code, &e.facility, &e.dx_start}) v->reserve(guess);
  e.value.reserve(guess);
  e.suspected.reserve(guess);
}

// One input file's work: read and cut into pieces (scan_uke_buffer) by one thread, its pieces parsed by any.
struct FileWork {
  Buffer buf;                       // the file's bytes, back to the spare buffers once its last piece is parsed
  UkeScan scan;                     // views into buf
  std::vector<FileResult> results;  // one per piece, freed as each is merged
  std::vector<char> done;
  size_t taken = 0;                 // pieces handed out, in order
  size_t left = 0;                  // pieces not yet parsed
  bool scanned = false;             // read and cut (or unreadable, or skipped after an error)
  bool stopped = false;             // an error stopped the file (--on-error raise): its later pieces are dropped
};

int64_t piece_bytes_of(const UkeScan& scan, size_t k) {  // progress: the pieces' shares add up to the file size
  const UkePiece& p = scan.pieces[k];
  return static_cast<int64_t>(p.end - p.begin) + (k == 0 ? scan.bytes - static_cast<int64_t>(scan.data.size()) : 0);
}

}  // namespace

UkeResult parse_uke_files(const std::vector<std::string>& paths, const UkeOptions& opt,
                          std::atomic<int64_t>* bytes_done, const std::string& spill_path,
                          const SpillBuckets* bucket_spec) {
  const size_t n = paths.size();
  std::vector<FileWork> files(n);
  // With --on-error raise: the first piece (in input order) known to hold an error. Only pieces after it are
  // skipped, so no piece before the first error is ever skipped, and the first error does not depend on timing.
  std::atomic<uint64_t> failed_at{UINT64_MAX};
  auto order = [](size_t file, size_t piece) { return (uint64_t(file) << 32) | uint64_t(piece); };
  auto failed = [&](size_t file, size_t piece) {
    uint64_t at = order(file, piece), seen = failed_at.load();
    while (at < seen && !failed_at.compare_exchange_weak(seen, at)) {
    }
  };
  auto skipped = [&](size_t file, size_t piece) {
    return opt.stop_at_first_error && order(file, piece) > failed_at.load();
  };
  UkeResult out;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> spill(nullptr, &std::fclose);
  std::unique_ptr<BucketFiles> buckets;
  if (bucket_spec) {
    if (!bucket_spec->subject_id || bucket_spec->paths.empty()) throw std::runtime_error("SpillBuckets: no paths or callback");
    buckets = std::make_unique<BucketFiles>(bucket_spec->paths);
  } else if (spill_path.empty()) {
    reserve_events(out.events, paths);
  } else {
    spill.reset(std::fopen(spill_path.c_str(), "wb"));
    if (!spill) throw std::runtime_error("cannot create the spill file " + spill_path);
  }
  Merger merger{out, {}, {}, {}, {}, spill.get(), {}, bucket_spec, buckets.get()};
  std::exception_ptr error;  // a spill write failure, re-thrown after the threads have joined
  // Files are read and cut into pieces (UkeOptions::piece_bytes) by one thread each; the pieces are parsed by any
  // thread and merged in input order by whichever thread holds the merger role, while the others keep parsing
  // instead of queueing behind it (a blocking merge left one of two threads idle for a fifth of the parse). A
  // thread waits only when more than kBacklog parsed pieces per thread wait to be merged: memory is bounded by
  // pieces, and by the files being read and parsed (their bytes), not by the size of the largest files' events.
  constexpr size_t kBacklog = 2;
  std::mutex state_mutex;  // guards the scheduling fields of `files` and the counters below
  std::condition_variable changed;
  size_t next_file = 0;                     // files [0, next_file) are read or being read
  size_t merge_file = 0, merge_piece = 0;   // the next piece to merge
  size_t unmerged = 0;                      // pieces parsed and not yet merged
  int reading = 0;                          // files being read and cut
  size_t progress = 0;                      // pieces parsed, pieces merged and files cut: what a waiting thread awaits
  std::vector<Buffer> spare;                // file buffers not in use
  bool merging = false;
  const int threads = n == 0 ? 1 : std::max(1, opt.threads);
  auto merge_ready = [&](std::unique_lock<std::mutex>& lock) {  // called with the lock held, returns with it
    merging = true;
    while (merge_file < n && !error) {
      FileWork& w = files[merge_file];
      if (!w.scanned) break;
      if (merge_piece == w.results.size()) {
        ++merge_file, merge_piece = 0;
        continue;
      }
      if (!w.done[merge_piece]) break;
      FileResult& r = w.results[merge_piece];
      const bool skip = w.stopped;
      const bool stops = opt.stop_at_first_error && !r.rejects.empty();
      lock.unlock();
      std::exception_ptr failure;
      try {
        if (skip) r = FileResult();
        else merger.add(r);
      } catch (...) {
        failure = std::current_exception();
      }
      lock.lock();
      if (failure) {
        error = failure;
      } else {
        w.stopped = w.stopped || stops;  // a file stops at its first error, as if parsed whole
        ++merge_piece;
        --unmerged;
        ++progress;
      }
      changed.notify_all();
    }
    merging = false;
    changed.notify_all();
  };
  // The piece the merge waits for is not handed out yet (or its file not claimed): a thread must go and parse it
  // whatever the backlog, or every thread could wait for it (a file cut before an earlier one, whose first piece
  // then filled the backlog, left the rest of the earlier file untaken: a livelock of notifying waiters).
  auto frontier_open = [&] {
    return merge_file < n && (merge_file >= next_file ||
                              (files[merge_file].scanned && files[merge_file].taken <= merge_piece));
  };
  auto next_piece = [&]() -> std::pair<size_t, size_t> {  // the first piece not handed out, in input order
    for (size_t f = merge_file; f < next_file; ++f) {
      FileWork& w = files[f];
      if (w.scanned && w.taken < w.results.size()) return {f, w.taken++};
    }
    return {n, 0};
  };
  auto worker = [&] {
    std::unique_lock<std::mutex> lock(state_mutex);
    while (!error) {
      const auto [f, k] = next_piece();
      if (f < n) {
        FileWork& w = files[f];
        lock.unlock();
        FileResult r;
        if (!skipped(f, k)) {
          r = parse_uke_piece(w.scan, k, static_cast<int32_t>(f), opt);
          if (!r.rejects.empty()) failed(f, k);
        }
        if (bytes_done) bytes_done->fetch_add(piece_bytes_of(w.scan, k));
        lock.lock();
        w.results[k] = std::move(r);
        w.done[k] = 1;
        ++unmerged;
        ++progress;
        if (--w.left == 0) spare.push_back(std::move(w.buf));  // the scan's views die with it: no piece is left
        changed.notify_all();
      } else if (next_file < n) {
        const size_t i = next_file++;
        FileWork& w = files[i];
        ++reading;
        const bool skip = skipped(i, 0);
        if (!spare.empty()) {
          w.buf = std::move(spare.back());
          spare.pop_back();
        }
        lock.unlock();
        const bool ok = skip || read_file(paths[i], w.buf);
        if (!skip && ok) w.scan = scan_uke_buffer(w.buf.view(), opt.piece_bytes);
        lock.lock();
        --reading;
        if (skip || !ok) {  // nothing to parse: one piece, done
          spare.push_back(std::move(w.buf));
          w.results.resize(1);
          w.done.assign(1, 1);
          w.taken = 1;
          ++unmerged;
          if (!ok) {
            failed(i, 0);
            w.results[0].stats.files = w.results[0].stats.files_rejected = 1;
            w.results[0].rejects.push_back({static_cast<int32_t>(i), 0, "cannot read file", ""});
          }
        } else {
          w.results.resize(w.scan.pieces.size());
          w.done.assign(w.scan.pieces.size(), 0);
          w.left = w.scan.pieces.size();
        }
        w.scanned = true;
        ++progress;
        changed.notify_all();
        continue;  // go and parse its first piece
      } else if (reading > 0) {
        const size_t seen = progress;  // a file being read may bring pieces for this thread too
        changed.wait(lock, [&] { return error || progress != seen || reading == 0; });
        continue;
      } else {
        break;
      }
      // Merge what is ready, unless another thread is at it; wait while too many parsed pieces wait.
      for (;;) {
        if (!merging) merge_ready(lock);
        if (error || unmerged < kBacklog * static_cast<size_t>(threads) || frontier_open()) break;
        const size_t seen = progress;
        changed.wait(lock, [&] { return error || progress != seen; });
      }
    }
    changed.wait(lock, [&] { return !merging; });  // the last pieces: merged by a thread that is not merging now
    merge_ready(lock);
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (std::thread& t : pool) t.join();
  if (error) std::rethrow_exception(error);
  if (spill && std::fflush(spill.get()) != 0) throw std::runtime_error("cannot write the spill file " + spill_path);
  if (buckets) {
    buckets->flush();
    out.bucket_rows = buckets->rows();
  }
  return out;
}

}  // namespace claimsfm
