#include "bucket_events.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <tuple>

#include "flat_map.hpp"
#include "spill.hpp"
#include "uke_parser.hpp"

namespace claimsfm {

namespace {

constexpr int64_t kUsPerDay = 86'400'000'000LL;

int64_t day_us(int32_t day) {
  return day == std::numeric_limits<int32_t>::min() ? std::numeric_limits<int64_t>::min() : day * kUsPerDay;
}

// Calls emit(row) for each row of the files (decoded from their SpillRecords), file after file, reading
// through a small buffer (reused: the files are read twice rather than held, since the grouped copy is all
// the sort needs; reading a bucket whole into a fresh buffer instead was slower and raised the peak RSS).
template <typename Emit>
void each_row(const std::vector<std::string>& paths, Emit&& emit) {
  std::vector<SpillRecord> chunk(1 << 15);
  for (const std::string& path : paths) {
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
    if (!f) throw std::runtime_error("cannot open " + path);
    SpillDecoder decoder;
    size_t got = 0;
    while ((got = std::fread(chunk.data(), 1, chunk.size() * sizeof(SpillRecord), f.get())) > 0) {
      if (got % sizeof(SpillRecord) != 0) throw std::runtime_error(path + ": not a whole number of spill records");
      try {
        decoder.feed(chunk.data(), got / sizeof(SpillRecord), emit);
      } catch (const std::runtime_error& e) {
        throw std::runtime_error(path + ": " + e.what());
      }
    }
    if (std::ferror(f.get())) throw std::runtime_error("cannot read " + path);
  }
}

// A once-only candidate of one subject: the group (code, suspected) and what picks its first row.
struct Candidate {
  int32_t code;
  uint8_t suspected;
  int32_t day, dx_start, facility;
  int64_t i;
  bool operator<(const Candidate& o) const {
    return std::tie(code, suspected, day, dx_start, facility, i) <
           std::tie(o.code, o.suspected, o.day, o.dx_start, o.facility, o.i);
  }
};

// The sort key of a kept row inside its subject.
struct Key {
  int32_t day, dx_start;
  int64_t packed;
  float value;  // NaN as -inf
  int64_t i;
  bool operator<(const Key& o) const {
    return std::tie(day, packed, value, dx_start, i) < std::tie(o.day, o.packed, o.value, o.dx_start, o.i);
  }
};

template <typename Each>
BucketEvents bucket_events_of(Each&& each, const BucketTables& t) {
  // Pass 1: check the ids; the bucket's distinct keys (in order of appearance) and their rows. Key id -> local
  // index in a map of the bucket's keys, looked up once per run of rows of one key (a spill context): a table
  // over all of the corpus's keys, cleared per bucket, cost O(patients) per bucket, O(patients x buckets) in all.
  FlatI64Map local(4096);
  std::vector<int32_t> keys;
  std::vector<int64_t> key_rows;
  int64_t n = 0;
  int32_t last_key = -1, last_local = -1;
  auto local_of = [&](int32_t key) -> int32_t {
    if (key != last_key) {
      bool added;
      int64_t* at = local.get_or_insert(key, static_cast<int64_t>(keys.size()), added);
      if (added) {
        keys.push_back(key);
        key_rows.push_back(0);
      }
      last_key = key, last_local = static_cast<int32_t>(*at);
    }
    return last_local;
  };
  each([&](const SpillRow& r) {
    if (r.key < 0 || r.key >= t.n_keys || r.code < 0 || r.code >= t.n_codes || r.facility < -1 ||
        r.facility >= t.n_facilities) {
      throw std::runtime_error("spill row " + std::to_string(n) + ": a key, code or facility id out of range");
    }
    ++key_rows[local_of(r.key)];
    ++n;
  });
  // Subjects: the keys ordered by subject_id (two keys may share one, e.g. full-width digits).
  std::vector<int32_t> by_sid(keys.size());
  std::iota(by_sid.begin(), by_sid.end(), 0);
  std::sort(by_sid.begin(), by_sid.end(), [&](int32_t a, int32_t b) {
    return std::make_pair(t.key_sid[keys[a]], a) < std::make_pair(t.key_sid[keys[b]], b);
  });
  std::vector<int64_t> sids, start(1, 0);
  std::vector<int32_t> subject_of(keys.size());
  for (int32_t k : by_sid) {
    const int64_t sid = t.key_sid[keys[k]];
    if (sids.empty() || sids.back() != sid) {
      sids.push_back(sid);
      start.push_back(start.back());
    }
    subject_of[k] = static_cast<int32_t>(sids.size() - 1);
    start.back() += key_rows[k];
  }
  // Pass 2: rows grouped by subject, each subject's in input order (a stable counting sort).
  std::vector<SpillRow> grouped(static_cast<size_t>(n));
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    last_key = -1;
    int32_t subject = 0;
    int64_t i = 0;
    each([&](const SpillRow& r) {
      if (i++ >= n) throw std::runtime_error("a spill file changed between its two reads");
      if (r.key != last_key) {
        const int64_t* at = local.find(r.key);
        if (!at) throw std::runtime_error("a spill file changed between its two reads");
        last_key = r.key, subject = subject_of[static_cast<size_t>(*at)];
      }
      grouped[fill[subject]++] = r;
    });
  }
  const size_t m = sids.size();
  std::vector<uint8_t> drop;
  std::vector<Candidate> cand;
  std::vector<Key> kept;
  BucketEvents out;
  for (auto* v : {&out.subject, &out.time_us, &out.dx_start_us}) v->reserve(static_cast<size_t>(n));
  out.code.reserve(static_cast<size_t>(n));
  out.facility.reserve(static_cast<size_t>(n));
  out.value.reserve(static_cast<size_t>(n));
  out.suspected.reserve(static_cast<size_t>(n));
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (size_t s = 0; s < m; ++s) {
    const SpillRow* sub = grouped.data() + start[s];
    const int64_t k = start[s + 1] - start[s];
    cand.clear();
    for (int64_t j = 0; j < k; ++j) {
      const SpillRow& r = sub[j];
      const uint8_t rule = t.code_rule[r.code];
      if (rule == kKeepAll) continue;
      const uint8_t susp = rule == kFirstPerSuspected && r.suspected != 0;
      cand.push_back({r.code, susp, r.day, r.dx_start, r.facility, j});
    }
    std::sort(cand.begin(), cand.end());
    drop.assign(static_cast<size_t>(k), 0);
    for (size_t c = 1; c < cand.size(); ++c) {
      if (cand[c].code == cand[c - 1].code && cand[c].suspected == cand[c - 1].suspected) drop[cand[c].i] = 1;
    }
    kept.clear();
    for (int64_t j = 0; j < k; ++j) {
      if (drop[j]) continue;
      const SpillRow& r = sub[j];
      const int64_t fac = r.facility >= 0 ? t.fac_rank[r.facility] : -1;
      const int64_t packed = (t.code_rank[r.code] << 33) | ((fac + 1) << 1) | (r.suspected != 0 ? 1 : 0);
      kept.push_back({r.day, r.dx_start, packed, std::isnan(r.value) ? neg_inf : r.value, j});
    }
    std::sort(kept.begin(), kept.end());
    for (const Key& key : kept) {
      const SpillRow& r = sub[key.i];
      out.subject.push_back(sids[s]);
      out.time_us.push_back(day_us(r.day));
      out.dx_start_us.push_back(day_us(r.dx_start));
      out.code.push_back(r.code);
      out.facility.push_back(r.facility);
      out.value.push_back(r.value);
      out.suspected.push_back(r.suspected != 0 ? 1 : 0);
    }
  }
  return out;
}

}  // namespace

BucketEvents bucket_events(const std::vector<std::string>& paths, const BucketTables& tables) {
  return bucket_events_of([&](auto&& emit) { each_row(paths, emit); }, tables);
}

BucketEvents bucket_events(const SpillRow* rows, int64_t n, const BucketTables& tables) {
  return bucket_events_of([&](auto&& emit) { std::for_each(rows, rows + n, emit); }, tables);
}

}  // namespace claimsfm
