#include "csv_parser.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>
#include <utility>
#include <unordered_map>

#include "common.hpp"
#include "flat_map.hpp"
#include "uke_text.hpp"

namespace claimsfm {

namespace {

bool digits_at(std::string_view s, size_t pos, size_t len, int32_t& v) {
  if (pos + len > s.size()) return false;
  v = 0;
  for (size_t i = pos; i < pos + len; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  return true;
}

bool parse_time(std::string_view s, int64_t& us) {
  if (s.empty()) {
    us = kNoTime;
    return true;
  }
  int32_t y, mo, d, h = 0, mi = 0, se = 0, frac = 0;
  if (s.size() < 10 || !digits_at(s, 0, 4, y) || s[4] != '-' || !digits_at(s, 5, 2, mo) ||
      s[7] != '-' || !digits_at(s, 8, 2, d))
    return false;
  if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo)) return false;
  if (s.size() > 10) {
    if ((s[10] != 'T' && s[10] != ' ') || !digits_at(s, 11, 2, h) || s.size() < 16 ||
        s[13] != ':' || !digits_at(s, 14, 2, mi))
      return false;
    size_t pos = 16;
    if (s.size() > 16) {
      if (s[16] != ':' || !digits_at(s, 17, 2, se)) return false;
      pos = 19;
      if (s.size() > 19) {
        const size_t nf = s.size() - 20;
        if (s[19] != '.' || nf < 1 || nf > 6 || !digits_at(s, 20, nf, frac)) return false;
        for (size_t k = nf; k < 6; ++k) frac *= 10;
        pos = s.size();
      }
    }
    if (pos != s.size() || h > 23 || mi > 59 || se > 59) return false;
  }
  const int64_t day = days_from_civil(y, mo, d);
  us = ((day * 24 + h) * 60 + mi) * 60 * 1000000LL + se * 1000000LL + frac;
  return true;
}

bool parse_subject(std::string_view s, int64_t& v) {
  if (s.empty()) return false;
  const char* end = s.data() + s.size();
  if (s[0] == '+') return false;
  auto r = std::from_chars(s.data(), end, v);
  return r.ec == std::errc() && r.ptr == end && !(s[0] == '-' && s.size() == 1);
}

bool parse_value(std::string_view s, float& v) {
  if (s.empty()) {
    v = NAN;
    return true;
  }
  size_t i = 0, mant = 0;
  if (s[i] == '+' || s[i] == '-') ++i;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++mant;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++mant;
  }
  if (mant == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    size_t exp = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++exp;
    if (exp == 0) return false;
  }
  if (i != s.size()) return false;
  // Plain integers (the common count value) skip strtod: below 2^53 the double is exact, so the
  // one rounding to float is the same as strtod's result rounded to float.
  const bool sign = s[0] == '+' || s[0] == '-';
  if (mant == s.size() - sign && mant <= 15) {
    int64_t n = 0;
    for (size_t k = sign; k < s.size(); ++k) n = n * 10 + (s[k] - '0');
    const double d = static_cast<double>(n);
    v = static_cast<float>(s[0] == '-' ? -d : d);
    return true;
  }
  // strtod (not from_chars) so that overflow gives inf and underflow 0, as Python's float() does.
  char buf[64];
  if (s.size() >= sizeof(buf)) return false;
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = '\0';
  const double d = std::strtod(buf, nullptr);
  v = static_cast<float>(d);
  return true;
}

// One chunk of whole lines, parsed by one thread with its own code table.
struct Chunk {
  std::string_view text;
  CsvResult out;
  FlatStringIds ids;
  int64_t lines = 0;
};

const char* parse_row(std::string_view line, bool with_value, Chunk& c) {
  if (line.find('"') != std::string_view::npos) return "quoted fields are not supported";
  std::string_view f[4];
  if (split_fields(line, f, 4) != (with_value ? 4u : 3u)) return "wrong field count";
  int64_t subject, t;
  float v = NAN;
  if (!parse_subject(f[0], subject)) return "bad subject_id";
  if (!parse_time(f[1], t)) return "bad time";
  if (f[2].empty()) return "empty code";
  if (has_high_bytes(f[2].data(), f[2].size()) && !valid_utf8(f[2].data(), f[2].size()))
    return "code is not UTF-8";
  if (with_value && !parse_value(f[3], v)) return "bad numeric_value";
  if (std::isinf(v)) return "numeric_value outside the float32 range";
  bool added;
  const int32_t id = c.ids.find_or_add(f[2], static_cast<int32_t>(c.out.codes.size()), added);
  if (added) c.out.codes.emplace_back(f[2]);
  c.out.subject.push_back(subject);
  c.out.time_us.push_back(t);
  c.out.code.push_back(id);
  c.out.value.push_back(v);
  return nullptr;
}

void parse_chunk(Chunk& c, bool with_value, bool skip_bad) {
  size_t pos = 0;
  const std::string_view s = c.text;
  // About one row per 32 bytes; reserving avoids copying the columns as they grow.
  const size_t guess = s.size() / 32;
  c.out.subject.reserve(guess), c.out.time_us.reserve(guess);
  c.out.code.reserve(guess), c.out.value.reserve(guess);
  while (pos < s.size()) {
    const void* nl = std::memchr(s.data() + pos, '\n', s.size() - pos);
    const size_t end = nl ? static_cast<const char*>(nl) - s.data() : s.size();
    std::string_view line(s.data() + pos, end - pos);
    pos = end + 1;
    ++c.lines;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    if (const char* err = parse_row(line, with_value, c)) {
      c.out.rejects.push_back({c.lines, err});
      if (!skip_bad) return;
    }
  }
}

}  // namespace

CsvResult parse_csv_buffer(std::string_view data, int threads, bool skip_bad) {
  CsvResult out;
  out.bytes = static_cast<int64_t>(data.size());
  if (data.size() >= 3 && std::memcmp(data.data(), "\xEF\xBB\xBF", 3) == 0) data.remove_prefix(3);
  const size_t nl = data.find('\n');
  std::string_view header = data.substr(0, nl);
  if (!header.empty() && header.back() == '\r') header.remove_suffix(1);
  if (header == "subject_id,time,code,numeric_value") out.has_value_column = true;
  else if (header != "subject_id,time,code") {
    out.rejects.push_back({1, "header must be subject_id,time,code[,numeric_value]"});
    return out;
  }
  std::string_view body = nl == std::string_view::npos ? std::string_view() : data.substr(nl + 1);
  threads = std::max(1, threads);
  std::vector<Chunk> chunks(threads);
  size_t start = 0;
  for (int t = 0; t < threads; ++t) {
    size_t end = t == threads - 1 ? body.size() : std::max(start, body.size() * (t + 1) / threads);
    if (end < body.size()) {
      const size_t cut = body.find('\n', end);
      end = cut == std::string_view::npos ? body.size() : cut + 1;
    }
    chunks[t].text = body.substr(start, end - start);
    start = end;
  }
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t)
    pool.emplace_back([&, t] { parse_chunk(chunks[t], out.has_value_column, skip_bad); });
  parse_chunk(chunks[0], out.has_value_column, skip_bad);
  for (std::thread& t : pool) t.join();

  std::unordered_map<std::string, int32_t> global;
  int64_t line_base = 1;  // the header
  size_t rows = 0;
  for (const Chunk& c : chunks) rows += c.out.subject.size();
  out.subject.reserve(rows), out.time_us.reserve(rows), out.code.reserve(rows), out.value.reserve(rows);
  for (Chunk& c : chunks) {
    std::vector<int32_t> map;
    for (const std::string& code : c.out.codes) {
      auto it = global.emplace(code, static_cast<int32_t>(out.codes.size()));
      if (it.second) out.codes.push_back(code);
      map.push_back(it.first->second);
    }
    out.subject.insert(out.subject.end(), c.out.subject.begin(), c.out.subject.end());
    out.time_us.insert(out.time_us.end(), c.out.time_us.begin(), c.out.time_us.end());
    out.value.insert(out.value.end(), c.out.value.begin(), c.out.value.end());
    for (int32_t id : c.out.code) out.code.push_back(map[id]);
    for (CsvReject& r : c.out.rejects) out.rejects.push_back({r.line + line_base, r.reason});
    line_base += c.lines;
    if (!skip_bad && !out.rejects.empty()) break;
  }
  out.rows = static_cast<int64_t>(out.subject.size());
  return out;
}

CsvResult parse_csv_file(const std::string& path, int threads, bool skip_bad) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  CsvResult out;
  const std::streamoff size = in ? static_cast<std::streamoff>(in.tellg()) : -1;
  std::string buf(size > 0 ? static_cast<size_t>(size) : 0, '\0');
  if (size < 0 || !in.seekg(0).read(buf.data(), size)) {
    out.rejects.push_back({0, "cannot read file"});
    return out;
  }
  return parse_csv_buffer(buf, threads, skip_bad);
}

std::vector<int64_t> group_by_subject(const std::vector<int64_t>& subject,
                                      const std::vector<int64_t>& time_us,
                                      std::vector<int64_t>& offsets,
                                      std::vector<int64_t>& subjects) {
  return group_by_subject(subject.data(), time_us.data(), subject.size(), offsets, subjects);
}

std::vector<int64_t> group_by_subject(const int64_t* subject, const int64_t* time_us, size_t n,
                                      std::vector<int64_t>& offsets,
                                      std::vector<int64_t>& subjects, int threads) {
  // Counting sort on the subject's rank: linear, stable, then a small sort inside each subject.
  FlatI64Map rank(1024);
  std::vector<int64_t> row_rank(n);
  bool added;
  for (size_t i = 0; i < n; ++i) {
    int64_t* r = rank.get_or_insert(subject[i], static_cast<int64_t>(subjects.size()), added);
    if (added) subjects.push_back(subject[i]);
    row_rank[i] = *r;  // first-seen order for now
  }
  std::vector<int64_t> by_id(subjects.size());
  for (size_t i = 0; i < by_id.size(); ++i) by_id[i] = static_cast<int64_t>(i);
  std::sort(by_id.begin(), by_id.end(), [&](int64_t a, int64_t b) { return subjects[a] < subjects[b]; });
  std::vector<int64_t> sorted_rank(subjects.size());
  for (size_t i = 0; i < by_id.size(); ++i) sorted_rank[by_id[i]] = static_cast<int64_t>(i);
  std::sort(subjects.begin(), subjects.end());
  offsets.assign(subjects.size() + 1, 0);
  for (int64_t& r : row_rank) offsets[(r = sorted_rank[r]) + 1]++;
  for (size_t i = 0; i < subjects.size(); ++i) offsets[i + 1] += offsets[i];
  // Scatter (time, row) pairs, not bare row numbers: the times are read in file order here, and
  // each subject's pairs then sort contiguously, instead of gathering time_us[order[i]] at random
  // (a cache miss per row) for every comparison. Rows arrive in ascending index, so sorting the
  // pairs equals a stable sort by time (ties keep file order).
  std::vector<std::pair<int64_t, int64_t>> rows(n);
  std::vector<int64_t> fill(offsets.begin(), offsets.end() - 1);
  for (size_t i = 0; i < n; ++i) rows[fill[row_rank[i]]++] = {time_us[i], static_cast<int64_t>(i)};
  // Subjects are independent: each thread sorts a contiguous range of them.
  std::vector<int64_t> order(n);
  auto sort_subjects = [&](size_t g0, size_t g1) {
    for (size_t g = g0; g < g1; ++g) {
      const auto first = rows.begin() + offsets[g], last = rows.begin() + offsets[g + 1];
      const auto earlier = [](const auto& a, const auto& b) { return a.first < b.first; };
      if (!std::is_sorted(first, last, earlier)) std::sort(first, last);
    }
    for (auto i = static_cast<size_t>(offsets[g0]); i < static_cast<size_t>(offsets[g1]); ++i)
      order[i] = rows[i].second;
  };
  const size_t parts = std::max<size_t>(1, std::min<size_t>(std::max(threads, 1), subjects.size()));
  std::vector<std::thread> pool;
  for (size_t t = 1; t < parts; ++t)
    pool.emplace_back(sort_subjects, subjects.size() * t / parts, subjects.size() * (t + 1) / parts);
  sort_subjects(0, subjects.size() / parts);
  for (std::thread& t : pool) t.join();
  return order;
}

}  // namespace claimsfm
