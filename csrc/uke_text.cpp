#include "uke_text.hpp"

#include <cstring>

#include "common.hpp"

namespace claimsfm {

bool has_high_bytes(const char* p, size_t n) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  size_t i = 0;
  // Eight bytes at a time: most of a claims file is ASCII.
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, u + i, 8);
    if (w & 0x8080808080808080ULL) return true;
  }
  for (; i < n; ++i)
    if (u[i] & 0x80) return true;
  return false;
}

// Index of the first byte >= 0x80 at or after i (n when none); u[i] itself is ASCII. Claims
// text is mostly ASCII, so the validators below skip it eight bytes at a time.
static size_t skip_ascii(const unsigned char* u, size_t i, size_t n) {
  ++i;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, u + i, 8);
    if (w & 0x8080808080808080ULL) break;
  }
  while (i < n && u[i] < 0x80) ++i;
  return i;
}

bool valid_utf8(const char* p, size_t n) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  size_t i = 0;
  while (i < n) {
    const unsigned c = u[i];
    if (c < 0x80) {
      i = skip_ascii(u, i, n);
      continue;
    }
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;  // no overlongs
      if (c == 0xED) hi = 0x9F;  // no surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;  // <= U+10FFFF
    } else {
      return false;
    }
    if (i + len > n) return false;
    if (u[i + 1] < lo || u[i + 1] > hi) return false;
    for (size_t k = 2; k < len; ++k)
      if (u[i + k] < 0x80 || u[i + k] > 0xBF) return false;
    i += len;
  }
  return true;
}

bool valid_cp932(const char* p, size_t n) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  size_t i = 0;
  while (i < n) {
    const unsigned c = u[i];
    if (c < 0x80) {
      i = skip_ascii(u, i, n);
      continue;
    }
    if (c >= 0xA1 && c <= 0xDF) {
      ++i;
      continue;
    }
    if (!((c >= 0x81 && c <= 0x9F) || (c >= 0xE0 && c <= 0xFC))) return false;
    if (i + 1 >= n) return false;
    const unsigned t = u[i + 1];
    if (!((t >= 0x40 && t <= 0x7E) || (t >= 0x80 && t <= 0xFC))) return false;
    i += 2;
  }
  return true;
}

// SWAR over eight bytes: a lane mask with the high bit set in every byte of `p[0..8)` that is a
// comma (exact, no carries between lanes), in memory order from the low bits up.
static uint64_t comma_bits(const char* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  w = __builtin_bswap64(w);
#endif
  constexpr uint64_t kLow7 = 0x7F7F7F7F7F7F7F7FULL;
  const uint64_t x = w ^ 0x2C2C2C2C2C2C2C2CULL;  // zero bytes where the commas are
  return ~(((x & kLow7) + kLow7) | x | kLow7);
}

static uint64_t non_comma_bits(const char* p) { return ~comma_bits(p) & 0x8080808080808080ULL; }

static size_t lane(uint64_t bits) { return static_cast<size_t>(__builtin_ctzll(bits)) >> 3; }

// Field splitting finds the commas eight bytes at a time: UKE lines are short fields separated by
// commas, and a byte loop paid a branch per byte.
size_t split_fields(std::string_view line, std::string_view* out, size_t cap) {
  const char* base = line.data();
  const size_t size = line.size();
  size_t start = 0, n = 0, i = 0;
  auto field_end = [&](size_t c) {
    if (n < cap) out[n] = std::string_view(base + start, c - start);
    ++n, start = c + 1;
  };
  for (; i + 8 <= size; i += 8)
    for (uint64_t m = comma_bits(base + i); m; m &= m - 1) field_end(i + lane(m));
  for (; i < size; ++i)
    if (base[i] == ',') field_end(i);
  if (n < cap) out[n] = std::string_view(base + start, size - start);
  return n + 1;
}

size_t split_prefix(std::string_view line, size_t count, std::string_view* out, size_t& n) {
  const char* base = line.data();
  const size_t size = line.size();
  size_t start = 0, i = 0;
  n = 0;
  for (; i + 8 <= size; i += 8) {
    for (uint64_t m = comma_bits(base + i); m; m &= m - 1) {
      const size_t c = i + lane(m);
      out[n++] = std::string_view(base + start, c - start);
      start = c + 1;
      if (n == count) return start;
    }
  }
  for (; i < size; ++i) {
    if (base[i] != ',') continue;
    out[n++] = std::string_view(base + start, i - start);
    start = i + 1;
    if (n == count) return start;
  }
  out[n++] = std::string_view(base + start, size - start);
  return std::string_view::npos;
}

void scan_days(std::string_view text, DayFields& d) {
  d.n_set = 0;
  const char* p = text.data();
  const char* end = p + text.size();
  size_t k = 0;  // index of the field that starts at p
  while (p != end) {
    // Most day fields are empty: jump over a run of commas to the next non-comma byte.
    uint64_t m = 0;
    while (end - p >= 8 && (m = non_comma_bits(p)) == 0) p += 8, k += 8;
    if (m) {
      p += lane(m), k += lane(m);
    } else {
      for (; p != end && *p == ','; ++p) ++k;
      if (p == end) break;
    }
    int64_t v = 0;
    size_t len = 0;
    bool digits = true;
    for (; p != end && *p != ','; ++p, ++len) {
      const unsigned dgt = static_cast<unsigned>(*p - '0');
      digits &= dgt < 10;
      if (dgt < 10 && len < 12) v = v * 10 + dgt;  // 12 digits cannot overflow int64
    }
    if (k < 31) {
      d.day[d.n_set] = static_cast<uint8_t>(k), d.value[d.n_set] = v;
      d.ok[d.n_set++] = digits && len <= 12;
    }
    if (p != end) ++p, ++k;  // the comma closing this field
  }
  d.n_fields = k + 1;
}

uint64_t digits_value(std::string_view s) {
  uint64_t v = 0;
  for (char c : s) v = v * 10 + static_cast<uint64_t>(c - '0');
  return v;
}

std::string_view trim_spaces(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

bool parse_count(std::string_view s, int64_t empty_value, int64_t& out) {
  if (s.empty()) {
    out = empty_value;
    return true;
  }
  if (s.size() > 12) return false;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  out = v;
  return true;
}

bool all_digits(std::string_view s, size_t width) {
  if (s.size() != width) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

static int32_t digits(std::string_view s, size_t from, size_t len) {
  int32_t v = 0;
  for (size_t i = from; i < from + len; ++i) v = v * 10 + (s[i] - '0');
  return v;
}

// Start year of each legacy era code 1..5 (明治 大正 昭和 平成 令和).
static const int32_t kEraStart[6] = {0, 1868, 1912, 1926, 1989, 2019};

static bool year_month(std::string_view s, bool era, int32_t& y, int32_t& m) {
  if (era) {
    const int32_t g = s[0] - '0', yy = digits(s, 1, 2);
    if (g < 1 || g > 5 || yy < 1) return false;
    y = kEraStart[g] + yy - 1;
    m = digits(s, 3, 2);
  } else {
    y = digits(s, 0, 4);
    m = digits(s, 4, 2);
  }
  return y >= 1850 && y <= 2199 && m >= 1 && m <= 12;
}

bool parse_month(std::string_view s, int32_t& year, int32_t& month) {
  if (all_digits(s, 6)) return year_month(s, false, year, month);
  if (all_digits(s, 5)) return year_month(s, true, year, month);
  return false;
}

bool parse_date(std::string_view s, int32_t& day) {
  int32_t y, m, d;
  if (all_digits(s, 8)) {
    if (!year_month(s, false, y, m)) return false;
    d = digits(s, 6, 2);
  } else if (all_digits(s, 7)) {
    if (!year_month(s, true, y, m)) return false;
    d = digits(s, 5, 2);
  } else {
    return false;
  }
  if (d < 1 || d > days_in_month(y, m)) return false;
  day = days_from_civil(y, m, d);
  return true;
}

// Receipt types (レセプト種別, uke-format.md §4): 医科 (1), then insurance kind 1-4, payer count and
// the patient class digit within the limits of that kind.
bool valid_receipt_type(std::string_view s) {
  if (!all_digits(s, 4) || s[0] != '1' || s[1] < '1' || s[1] > '4') return false;
  const char payers = s[2], cls = s[3];
  if (s[1] == '2') return payers >= '1' && payers <= '4' && (cls == '1' || cls == '2');
  if (payers < '1' || payers > '5') return false;
  if (s[1] == '3') return cls == '7' || cls == '8' || cls == '9' || cls == '0';
  if (s[1] == '4') return cls >= '1' && cls <= '6';
  return true;
}

}  // namespace claimsfm
