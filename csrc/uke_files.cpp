// Reading UKE files from disk, parsing them on a pool of std::threads and merging the per-file
// results in input order, so the output does not depend on the thread count.
#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <fstream>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "flat_map.hpp"
#include "spill.hpp"
#include "uke_parser.hpp"

namespace claimsfm {

namespace {

bool read_file(const std::string& path, std::string& buf) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) return false;
  buf.resize(static_cast<size_t>(size));
  in.seekg(0, std::ios::beg);
  in.read(buf.data(), size);
  return static_cast<bool>(in) || size == 0;
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

}  // namespace

UkeResult parse_uke_files(const std::vector<std::string>& paths, const UkeOptions& opt,
                          std::atomic<int64_t>* bytes_done, const std::string& spill_path,
                          const SpillBuckets* bucket_spec) {
  const size_t n = paths.size();
  std::vector<FileResult> results(n);
  std::vector<char> done(n, 0);
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
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
  // Files are merged in input order by whichever thread holds the merger role; the others keep parsing
  // instead of queueing behind it (a blocking merge left one of two threads idle for a fifth of the
  // parse). A thread waits only when more than kBacklog finished files per thread wait to be merged.
  constexpr size_t kBacklog = 2;
  std::mutex state_mutex;  // guards done, merged, merging, error
  std::condition_variable merged_more;
  size_t merged = 0;       // files [0, merged) are in `out`
  bool merging = false;
  const int threads = std::max(1, std::min<int>(opt.threads, static_cast<int>(n)));
  auto merge_ready = [&](std::unique_lock<std::mutex>& lock) {  // called with the lock held, returns with it
    merging = true;
    while (merged < n && done[merged] && !error) {
      const size_t i = merged;
      lock.unlock();
      std::exception_ptr failure;
      try {
        merger.add(results[i]);
      } catch (...) {
        failure = std::current_exception();
      }
      lock.lock();
      if (failure) {
        error = failure;
        failed.store(true);
      } else {
        ++merged;
      }
      merged_more.notify_all();
    }
    merging = false;
    merged_more.notify_all();
  };
  auto worker = [&] {
    std::string buf;
    for (size_t i; (i = next.fetch_add(1)) < n;) {
      // With --on-error raise, files not yet started are skipped after the first error; every
      // file before the failing one has already been claimed, so the first error is stable.
      if (!(opt.stop_at_first_error && failed.load())) {
        if (!read_file(paths[i], buf)) {
          buf.clear();
          results[i].stats.files = results[i].stats.files_rejected = 1;
          results[i].rejects.push_back({static_cast<int32_t>(i), 0, "cannot read file", ""});
        } else {
          results[i] = parse_uke_buffer(buf, static_cast<int32_t>(i), opt);
        }
        if (!results[i].rejects.empty()) failed.store(true);
        if (bytes_done) bytes_done->fetch_add(static_cast<int64_t>(buf.size()));
      }
      std::unique_lock<std::mutex> lock(state_mutex);
      done[i] = 1;
      if (!merging) {
        merge_ready(lock);
      } else {  // the merging thread will take this file; go on parsing unless too many wait
        merged_more.wait(lock, [&] { return !merging || error || i < merged + kBacklog * threads; });
        if (!merging) merge_ready(lock);
      }
    }
    std::unique_lock<std::mutex> lock(state_mutex);  // the last files: merged by a thread that is not merging now
    merged_more.wait(lock, [&] { return !merging; });
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
