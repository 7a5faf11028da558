#include "uke_parser.hpp"

#include <cmath>
#include <cstring>
#include <algorithm>
#include <initializer_list>
#include <limits>

#include "common.hpp"
#include "flat_map.hpp"
#include "uke_text.hpp"

namespace claimsfm {

void EventColumns::truncate(size_t n) {
  key.resize(n), day.resize(n), code.resize(n), value.resize(n);
  facility.resize(n), suspected.resize(n), dx_start.resize(n);
}

void UkeStats::add(const UkeStats& o) {
#define CLAIMSFM_STAT_ADD(name) name += o.name;
  CLAIMSFM_UKE_STATS(CLAIMSFM_STAT_ADD)
#undef CLAIMSFM_STAT_ADD
}

std::string code_name(uint64_t packed) {
  const auto kind = static_cast<CodeKind>(packed >> 40);
  const uint64_t number = packed & ((uint64_t(1) << 40) - 1);
  auto padded = [number](const char* prefix, int width) {
    std::string digits = std::to_string(number);
    return std::string(prefix) + std::string(width - digits.size(), '0') + digits;
  };
  switch (kind) {
    case kSex: return number == 1 ? "SEX//M" : "SEX//F";
    case kBirth: return "MEDS_BIRTH";
    case kDeath: return "MEDS_DEATH";
    case kDx: return padded("JPDX//", 7);
    case kProc: return padded("JPPROC//", 9);
    case kDrug: return padded("JPDRUG//", 9);
    case kDevice: return padded("JPDEVICE//", 9);
    case kVisit: return number == 1 ? "JPVISIT//INPATIENT" : "JPVISIT//OUTPATIENT";
  }
  return "";
}

namespace {

constexpr char kSep = '\x1f';  // joins the parts of a patient key

// Record IDs as two-byte tags, so that dispatch is an integer compare.
constexpr uint16_t tag(const char* s) { return static_cast<uint16_t>((s[0] << 8) | s[1]); }
uint16_t tag_of(std::string_view id) {
  return id.size() == 2 ? static_cast<uint16_t>((static_cast<unsigned char>(id[0]) << 8) |
                                                static_cast<unsigned char>(id[1]))
                        : 0;
}
constexpr uint16_t kIR = tag("IR"), kRE = tag("RE"), kHO = tag("HO"), kSY = tag("SY"),
                   kSI = tag("SI"), kIY = tag("IY"), kTO = tag("TO"), kGO = tag("GO");

struct RecordSpec {
  uint16_t id;
  int min_fields, max_fields;
};
// Only the record types claimsfm reads are checked; their field counts follow uke-format.md §2.
const RecordSpec kSpecs[] = {{kIR, 5, 10}, {kRE, 7, 38}, {tag("HO"), 4, 15}, {tag("KO"), 3, 12},
                             {kSY, 4, 8},  {kSI, 7, 44}, {kIY, 7, 44}, {kTO, 7, 48},
                             {tag("CO"), 4, 5},  {kGO, 2, 4}};
const uint16_t kIgnored[] = {tag("SN"), tag("JD"), tag("MF"), tag("GR"),
                             tag("SJ"), tag("TI"), tag("TR"), tag("TS")};

// A reject excerpt shows, besides the record ID, only code and count fields (1-based positions)
// that come before the record's first free-text or identifying field: a stray comma inside a name,
// card number or comment shifts only the fields after it, never these. Everything else is masked.
size_t last_shown(uint16_t t) {
  if (t == kIR) return 5;  // payer, prefecture, fee table, facility code
  if (t == kRE) return 3;  // receipt number, receipt type
  if (t == kSY) return 5;  // disease code, (start date: masked), outcome, modifier codes
  if (t == kSI || t == kIY) return 7;  // category, payer split, code, quantity, points, count
  if (t == kTO) return 9;  // ... unit code, unit price
  if (t == tag("CO") || t == kGO) return 4;
  return 0;  // HO, KO and unknown records: nothing but the ID
}
bool shown(uint16_t t, size_t pos) { return pos >= 2 && pos <= last_shown(t) && !(t == kSY && pos == 3); }
constexpr size_t kExcerptMaxValue = 12;  // a longer field is masked even when it is all digits

bool record_id_ok(std::string_view id) {
  return id.size() == 2 && id[0] >= 'A' && id[0] <= 'Z' && id[1] >= 'A' && id[1] <= 'Z';
}

struct Receipt {
  bool open = false, bad = false;
  size_t first_event = 0;
  int32_t month_first = 0, month_last = 0, year = 0, month = 0;
  int32_t first_service = INT32_MAX;
  bool inpatient = false, has_ho = false;
  int32_t birth = 0;
  char sex = '1';
  std::string chart_key, insurer_key;  // cleared, not freed, between receipts

  void start(size_t first) {
    open = true, bad = false, first_event = first;
    month_first = month_last = year = month = 0;
    first_service = INT32_MAX;
    inpatient = has_ho = false;
    birth = 0, sex = '1';
    chart_key.clear(), insurer_key.clear();
  }
};

// Append the parts of a patient key, each followed by the separator except the last.
void key_parts(std::string& key, std::initializer_list<std::string_view> parts) {
  bool first = true;
  for (std::string_view p : parts) {
    if (!first) key += kSep;
    key.append(p.data(), p.size());
    first = false;
  }
}

class Parser {
 public:
  Parser(int32_t file_index, const UkeOptions& opt, FileResult& out)
      : file_(file_index), opt_(opt), out_(out) {}
  bool line(std::string_view text, int64_t lineno);  // false: stop the file
  bool reject(std::string_view text, int64_t lineno, const std::string& reason);
  void finish() { close_receipt(); }
  // The facility of the last good IR record so far (null before one), and entering it in another parser.
  const std::string* facility() const { return facility_ >= 0 ? &facility_code_ : nullptr; }
  void enter_facility(const std::string& code) {
    facility_code_ = code;
    facility_ = static_cast<int32_t>(out_.facilities.size());
    out_.facilities.push_back(code);
  }

 private:
  std::string mask(std::string_view text);
  int32_t intern_code(CodeKind kind, uint64_t number);
  void emit(CodeKind kind, uint64_t number, int32_t day, float value, bool suspected, int32_t start);
  void emit_id(int32_t code, int32_t day, float value, bool suspected, int32_t start);
  void close_receipt();
  const char* open_receipt();
  const char* record_ir();
  const char* record_re();
  const char* record_ho();
  const char* record_sy();
  const char* record_detail(std::string_view id);
  int split_record(uint16_t t, std::string_view text);

  int32_t file_;
  const UkeOptions& opt_;
  FileResult& out_;
  static constexpr size_t kMaxFields = 64;  // more than any record type has
  std::string_view f_[kMaxFields];
  size_t nf_ = 0;
  DayFields days_;
  std::string reason_;
  int32_t facility_ = -1;
  std::string facility_code_;
  Receipt rc_;
  FlatU64Ids code_ids_;
  FlatTableIds key_ids_;  // over out_.keys
};

bool Parser::reject(std::string_view text, int64_t lineno, const std::string& reason) {
  out_.rejects.push_back({file_, lineno, reason, mask(text)});
  out_.stats.lines_rejected++;
  if (rc_.open) rc_.bad = true;
  return !opt_.stop_at_first_error;
}

std::string Parser::mask(std::string_view text) {
  if (text.empty()) return "";
  const std::string_view id = text.substr(0, text.find(','));
  const uint16_t t = record_id_ok(id) ? tag_of(id) : 0;
  std::string out = t ? std::string(id) : "?";
  size_t n = 1;
  for (const char c : text) n += c == ',';
  const size_t last = last_shown(t);
  size_t pos = id.size() < text.size() ? id.size() + 1 : text.size();
  for (size_t i = 2; i <= last && i <= n; ++i) {
    const size_t comma = text.find(',', pos);
    const size_t end = comma == std::string_view::npos ? text.size() : comma;
    const std::string_view field = text.substr(pos, end - pos);
    out += ',';
    if (shown(t, i) && field.size() <= kExcerptMaxValue && all_digits(field, field.size())) out.append(field);
    else if (!field.empty()) out += "***";
    pos = end + 1;
  }
  if (n > last && n > 1) out += ",...(" + std::to_string(n) + " fields)";
  return out;
}

int32_t Parser::intern_code(CodeKind kind, uint64_t number) {
  const uint64_t packed = (uint64_t(kind) << 40) | number;
  bool added;
  const int32_t id = code_ids_.find_or_add(packed, static_cast<int32_t>(out_.codes.size()), added);
  if (added) out_.codes.push_back(packed);
  return id;
}

void Parser::emit(CodeKind kind, uint64_t number, int32_t day, float value, bool suspected,
                  int32_t start) {
  emit_id(intern_code(kind, number), day, value, suspected, start);
}

void Parser::emit_id(int32_t code, int32_t day, float value, bool suspected, int32_t start) {
  EventColumns& e = out_.events;
  e.key.push_back(-1);  // filled when the receipt closes
  e.day.push_back(day);
  e.code.push_back(code);
  e.value.push_back(value);
  e.facility.push_back(facility_);
  e.suspected.push_back(suspected ? 1 : 0);
  e.dx_start.push_back(start);
}

void Parser::close_receipt() {
  if (!rc_.open) return;
  rc_.open = false;
  if (rc_.bad) {
    out_.events.truncate(rc_.first_event);
    out_.stats.receipts_rejected++;
    return;
  }
  const int32_t visit_day = rc_.first_service == INT32_MAX ? rc_.month_first : rc_.first_service;
  emit(kVisit, rc_.inpatient ? 1 : 0, visit_day, NAN, false, kNoDay);
  const std::string& key =
      opt_.link_by == LinkBy::insurer && rc_.has_ho ? rc_.insurer_key : rc_.chart_key;
  bool added;
  const int32_t id = key_ids_.find_or_add(key, out_.keys, added);
  if (added) out_.keys.push_back(key);
  for (size_t i = rc_.first_event; i < out_.events.size(); ++i) out_.events.key[i] = id;
  out_.stats.receipts++;
}

const char* Parser::record_ir() {
  std::string_view code = f_[4];
  if (!all_digits(code, 7)) return "bad facility code in field 5 of IR";
  int32_t year, month;
  if (nf_ > 7 && !f_[7].empty() && !parse_month(f_[7], year, month)) return "bad date in field 8 of IR";
  facility_code_.assign(code.data(), code.size());
  facility_ = -1;
  for (size_t i = 0; i < out_.facilities.size(); ++i)
    if (out_.facilities[i] == facility_code_) facility_ = static_cast<int32_t>(i);
  if (facility_ < 0) {
    facility_ = static_cast<int32_t>(out_.facilities.size());
    out_.facilities.push_back(facility_code_);
  }
  return nullptr;
}

const char* Parser::record_re() {
  if (facility_ < 0) return "RE record before any IR";
  if (!all_digits(f_[2], 4)) return "bad receipt type in field 3 of RE";
  if (!valid_receipt_type(f_[2])) return "unknown receipt type in field 3 of RE";
  if (!parse_month(f_[3], rc_.year, rc_.month)) return "bad date in field 4 of RE";
  if (f_[5] != "1" && f_[5] != "2") return "bad sex in field 6 of RE";
  if (!parse_date(f_[6], rc_.birth)) return "bad date in field 7 of RE";
  rc_.month_first = days_from_civil(rc_.year, rc_.month, 1);
  rc_.month_last = rc_.month_first + days_in_month(rc_.year, rc_.month) - 1;
  if (rc_.birth > rc_.month_last) return "birth date after the treatment month in field 7 of RE";
  rc_.inpatient = (f_[2][3] - '0') % 2 == 1;
  rc_.sex = f_[5][0];
  const std::string birth = std::to_string(rc_.birth);
  const std::string_view sex(&rc_.sex, 1);
  std::string_view chart = nf_ > 13 ? trim_spaces(f_[13]) : std::string_view();
  if (!chart.empty())
    key_parts(rc_.chart_key, {"C", facility_code_, chart});
  else
    key_parts(rc_.chart_key, {"N", facility_code_, trim_spaces(f_[4]), birth, sex});
  emit(kSex, rc_.sex == '1' ? 1 : 2, kNoDay, NAN, false, kNoDay);
  emit(kBirth, 0, rc_.birth, NAN, false, kNoDay);
  return nullptr;
}

const char* Parser::record_ho() {
  if (rc_.has_ho) return nullptr;  // the first HO is the insurance of the receipt
  std::string_view insurer = trim_spaces(f_[1]);
  if (insurer.empty()) return nullptr;
  rc_.has_ho = true;
  key_parts(rc_.insurer_key, {"I", insurer, trim_spaces(f_[2]), trim_spaces(f_[3]),
                              std::to_string(rc_.birth), std::string_view(&rc_.sex, 1)});
  return nullptr;
}

const char* Parser::record_sy() {
  if (!all_digits(f_[1], 7)) return "bad code in field 2 of SY";
  int32_t start = kNoDay;
  if (!f_[2].empty() && !parse_date(f_[2], start)) return "bad date in field 3 of SY";
  std::string_view outcome = f_[3];
  if (!(outcome.empty() || (outcome.size() == 1 && outcome[0] >= '1' && outcome[0] <= '4')))
    return "bad outcome in field 4 of SY";
  bool suspected = false;
  if (nf_ > 4) {
    std::string_view mods = f_[4];
    if (mods.size() % 4 != 0 || !all_digits(mods, mods.size()))
      return "bad modifier codes in field 5 of SY";
    for (size_t i = 0; i < mods.size(); i += 4) suspected |= mods.substr(i, 4) == "8002";
  }
  const uint64_t number = digits_value(f_[1]);
  const bool inside = start != kNoDay && start >= rc_.month_first && start <= rc_.month_last;
  emit(kDx, number, inside ? start : rc_.month_first, NAN, suspected, start);
  if (outcome == "3") emit(kDeath, 0, rc_.month_last, NAN, false, kNoDay);
  return nullptr;
}

const char* Parser::record_detail(std::string_view id) {
  if (!all_digits(f_[3], 9)) {
    reason_ = "bad code in field 4 of " + std::string(id);
    return reason_.c_str();
  }
  int64_t count;
  if (!parse_count(f_[6], 0, count)) {
    reason_ = "non-numeric count in field 7 of " + std::string(id);
    return reason_.c_str();
  }
  const uint16_t t = tag_of(id);
  const CodeKind kind = t == kSI ? kProc : t == kIY ? kDrug : kDevice;
  const size_t first = t == kTO ? 17 : 13;
  const int32_t code = intern_code(kind, digits_value(f_[3]));
  const int32_t month_days = rc_.month_last - rc_.month_first + 1;
  for (size_t j = 0; j < days_.n_set; ++j) {
    const size_t k = days_.day[j];
    const int64_t n = days_.value[j];
    if (!days_.ok[j]) {
      reason_ = "non-numeric count in field " + std::to_string(first + k + 1) + " of " + std::string(id);
      return reason_.c_str();
    }
    if (n == 0) continue;
    if (static_cast<int32_t>(k) >= month_days) {
      reason_ = "service day outside the treatment month in field " + std::to_string(first + k + 1) +
                " of " + std::string(id);
      return reason_.c_str();
    }
    const int32_t day = rc_.month_first + static_cast<int32_t>(k);
    if (day < rc_.first_service) rc_.first_service = day;
    emit_id(code, day, static_cast<float>(n), false, kNoDay);
  }
  return nullptr;
}

int Parser::split_record(uint16_t t, std::string_view text) {
  if (t != kSI && t != kIY && t != kTO) {
    nf_ = split_fields(text, f_, kMaxFields);
    return static_cast<int>(nf_);
  }
  // Split the leading fields only; the 31 day fields are scanned in one pass.
  const size_t rest = split_prefix(text, t == kTO ? 17 : 13, f_, nf_);
  days_.n_fields = days_.n_set = 0;
  if (rest != std::string_view::npos) scan_days(text.substr(rest), days_);
  return static_cast<int>(nf_ + days_.n_fields);
}

bool Parser::line(std::string_view text, int64_t lineno) {
  out_.stats.records++;
  const std::string_view id = text.substr(0, text.find(','));
  const uint16_t t = tag_of(id);
  // A receipt ends where the next RE, IR or GO starts, even when that line turns out bad; a bad
  // RE still opens its (quarantined) receipt so that its detail lines go with it.
  if (t == kIR || t == kGO || t == kRE) close_receipt();
  if (t == kRE) {
    rc_.start(out_.events.size());
  }
  if (!out_.utf8 && !out_.cp932 && has_high_bytes(text.data(), text.size()) &&
      !valid_cp932(text.data(), text.size()))
    return reject(text, lineno, "invalid CP932 bytes");
  const RecordSpec* spec = nullptr;
  for (const RecordSpec& s : kSpecs)
    if (t == s.id) spec = &s;
  if (!spec) {
    bool ignored = false;
    for (uint16_t s : kIgnored) ignored |= t == s;
    (ignored ? out_.stats.records_ignored : out_.stats.records_unknown)++;
    return true;
  }
  const int n = split_record(t, text);
  if (n < spec->min_fields || n > spec->max_fields)
    return reject(text, lineno, "wrong field count: " + std::string(id) + " has " +
                                    std::to_string(n) + " fields (expected " +
                                    std::to_string(spec->min_fields) + " to " +
                                    std::to_string(spec->max_fields) + ")");
  const char* err = nullptr;
  if (t == kIR) {
    err = record_ir();
  } else if (t == kRE) {
    err = record_re();
  } else if (t == kGO) {
    // end of the claim; the receipt was closed above
  } else if (!rc_.open) {
    err = (reason_ = std::string(id) + " record before any RE").c_str();
  } else if (rc_.bad) {
    return true;  // the rest of a quarantined receipt
  } else if (t == kHO) {
    err = record_ho();
  } else if (t == kSY) {
    err = record_sy();
  } else if (t == kSI || t == kIY || t == kTO) {
    err = record_detail(id);
  }
  return err ? reject(text, lineno, err) : true;
}

}  // namespace

namespace {

// `needle` in `data` from `from` on (glibc's memmem: string_view::find stops at each first byte of the needle,
// here at every line end).
size_t find(std::string_view data, std::string_view needle, size_t from) {
  if (from >= data.size()) return std::string_view::npos;
  const void* at = memmem(data.data() + from, data.size() - from, needle.data(), needle.size());
  return at ? static_cast<size_t>(static_cast<const char*>(at) - data.data()) : std::string_view::npos;
}

}  // namespace

UkeScan scan_uke_buffer(std::string_view data, size_t piece_bytes) {
  UkeScan s;
  s.bytes = static_cast<int64_t>(data.size());
  if (data.size() >= 3 && std::memcmp(data.data(), "\xEF\xBB\xBF", 3) == 0) data.remove_prefix(3);
  while (!data.empty() && data.back() == '\x1a') data.remove_suffix(1);
  // The end-of-file mark 0x1A ends the data; records after one in mid-file (two files joined, a
  // damaged copy) are an error at the line that holds the mark. Parse only the lines before it.
  if (const void* eof = std::memchr(data.data(), '\x1a', data.size())) {
    const size_t at = static_cast<const char*>(eof) - data.data();
    size_t start = at;
    while (start > 0 && data[start - 1] != '\n') --start;
    s.eof_line = 1 + std::count(data.data(), data.data() + start, '\n');
    data = data.substr(0, start);
  }
  s.data = data;
  if (data.empty() && s.eof_line == 0) {
    s.empty = true;
    s.pieces.push_back({0, 0, 0});
    return s;
  }
  s.utf8 = has_high_bytes(data.data(), data.size()) && valid_utf8(data.data(), data.size());
  // CP932 units never contain '\r' or '\n', so a buffer that is valid as a whole is valid line
  // by line: one pass here replaces the per-line check in the common (clean) case.
  s.cp932 = !s.utf8 && valid_cp932(data.data(), data.size());
  size_t begin = 0;
  int64_t line = 0;
  piece_bytes = std::max<size_t>(piece_bytes, 1);  // the search below starts inside the piece: never empty
  while (data.size() - begin > piece_bytes) {
    const size_t nl = find(data, "\nRE,", begin + piece_bytes - 1);  // the next receipt after ~piece_bytes
    if (nl == std::string_view::npos) break;
    s.pieces.push_back({begin, nl + 1, line});
    line += std::count(data.data() + begin, data.data() + nl + 1, '\n');
    begin = nl + 1;
  }
  s.pieces.push_back({begin, data.size(), line});
  if (s.pieces.size() > 1) {
    if (data.substr(0, 3) == "IR,") s.ir_lines.push_back(0);
    for (size_t at = find(data, "\nIR,", 0); at != std::string_view::npos; at = find(data, "\nIR,", at + 1))
      s.ir_lines.push_back(at + 1);
  }
  return s;
}

namespace {

// The line of `data` that starts at `at`, without its line end.
std::string_view line_at(std::string_view data, size_t at) {
  const size_t nl = data.find('\n', at);
  std::string_view text = data.substr(at, nl == std::string_view::npos ? std::string_view::npos : nl - at);
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  return text;
}

}  // namespace

FileResult parse_uke_piece(const UkeScan& scan, size_t k, int32_t file_index, const UkeOptions& opt) {
  FileResult out;
  if (k == 0) {
    out.stats.files = 1;
    out.stats.bytes = scan.bytes;
  }
  if (scan.empty) {
    out.rejects.push_back({file_index, 0, "empty file", ""});
    out.stats.files_rejected = 1;
    return out;
  }
  out.utf8 = scan.utf8;
  out.cp932 = scan.cp932;
  const UkePiece& piece = scan.pieces[k];
  const std::string_view data = scan.data.substr(0, piece.end);
  const size_t guess = (piece.end - piece.begin) / 24;  // about one event per 24 bytes of claims text
  for (auto* v : {&out.events.key, &out.events.day, &out.events.code, &out.events.facility,
                  &out.events.dx_start})
    v->reserve(guess);
  out.events.value.reserve(guess);
  out.events.suspected.reserve(guess);
  Parser parser(file_index, opt, out);
  if (piece.begin > 0) {  // the facility the IR records before the piece leave, parsed the same way
    FileResult scratch;
    scratch.utf8 = out.utf8, scratch.cp932 = out.cp932;
    Parser before(file_index, opt, scratch);
    for (size_t at : scan.ir_lines) {
      if (at >= piece.begin) break;
      before.line(line_at(data, at), 0);
    }
    if (const std::string* facility = before.facility()) parser.enter_facility(*facility);
  }
  int64_t eof_line = k + 1 == scan.pieces.size() ? scan.eof_line : 0;
  size_t pos = piece.begin;
  int64_t lineno = piece.first_line;
  while (pos < data.size()) {
    ++lineno;
    const void* nl = std::memchr(data.data() + pos, '\n', data.size() - pos);
    if (!nl) {
      parser.reject(std::string_view(), lineno, "truncated record (no line end)");
      break;
    }
    const size_t end = static_cast<const char*>(nl) - data.data();
    std::string_view text(data.data() + pos, end - pos);
    pos = end + 1;
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
    if (text.empty()) continue;
    if (!parser.line(text, lineno)) {
      eof_line = 0;  // stopped at an earlier error
      break;
    }
  }
  if (eof_line > 0) parser.reject(std::string_view(), eof_line, "data after the end-of-file mark 0x1A");
  parser.finish();
  return out;
}

FileResult parse_uke_buffer(std::string_view data, int32_t file_index, const UkeOptions& opt) {
  const UkeScan scan = scan_uke_buffer(data, std::numeric_limits<size_t>::max());
  return parse_uke_piece(scan, 0, file_index, opt);
}

}  // namespace claimsfm
