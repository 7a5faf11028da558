// CTest: the UKE and CSV parsers over the hand-written fixtures (argv[1] = tests/fixtures), plus
// seeded byte damage, so that ASan/UBSan see every code path, including the error paths.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "csv_parser.hpp"
#include "uke_parser.hpp"
#include "uke_text.hpp"

#include "check.hpp"

using namespace claimsfm;

static std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

static void test_text() {
  int32_t day = 0, y = 0, m = 0;
  CHECK(parse_date("20240229", day) && day == 19782);
  CHECK(parse_date("4070208", day) && day == 9169);  // 平成7年2月8日 = 1995-02-08
  CHECK(!parse_date("20241301", day) && !parse_date("9550115", day) && !parse_date("20230229", day));
  CHECK(parse_month("43101", y, m) && y == 2019 && m == 1);
  CHECK(!parse_month("202413", y, m));
  CHECK(valid_cp932("\x8e\x8e\x8c\xb1", 4) && !valid_cp932("\x81\x20", 2) && !valid_cp932("\xff", 1));
  CHECK(valid_utf8("\xe8\xa9\xa6", 3) && !valid_utf8("\xe8\xa9", 2) && !valid_utf8("\xed\xa0\x80", 3));
  std::string_view f[8];
  CHECK(split_fields("a,,b,", f, 8) == 4 && f[0] == "a" && f[1].empty() && f[2] == "b" && f[3].empty());
  CHECK(split_fields("a,b,c", f, 2) == 3 && f[1] == "b");
  CHECK(valid_receipt_type("1112") && valid_receipt_type("1318") && valid_receipt_type("1212"));
  CHECK(!valid_receipt_type("2112") && !valid_receipt_type("1312") && !valid_receipt_type("1213") &&
        !valid_receipt_type("1162") && !valid_receipt_type("1512") && !valid_receipt_type("111"));
}

// A 0x1A in mid-file stops the file at its line; a stray comma in a name never reaches the excerpt.
static void test_eof_mark_and_excerpt() {
  const std::string head = "IR,1,13,1,1312345,,X,202406,00\r\nRE,1,1112,202405,";
  UkeOptions opt;
  opt.stop_at_first_error = false;
  FileResult r = parse_uke_buffer(head + "AB,952437,2,19800115\r\n\x1aRE,2\r\n", 0, opt);
  CHECK(r.rejects.size() == 2 && r.rejects[0].line == 2 && r.rejects[0].text == "RE,1,1112,...(8 fields)");
  CHECK(r.rejects[1].line == 3 && r.rejects[1].reason == "data after the end-of-file mark 0x1A");
  CHECK(r.rejects[0].text.find("952437") == std::string::npos);
}

static void test_fixtures(const std::string& root) {
  const std::string good = root + "/uke/good/";
  std::vector<std::string> paths = {good + "1312345/202405.UKE", good + "1312345/202406.UKE",
                                    good + "2723456/202406.UKE"};
  UkeOptions opt;
  opt.threads = 2;
  UkeResult r = parse_uke_files(paths, opt, nullptr);
  CHECK(r.rejects.empty());
  CHECK(r.stats.receipts == 4 && r.stats.records_unknown == 1 && r.stats.files == 3);
  CHECK(r.keys.size() == 3 && r.facilities.size() == 2);
  size_t deaths = 0, suspected = 0;
  for (size_t i = 0; i < r.events.size(); ++i) {
    deaths += r.codes[r.events.code[i]] == "MEDS_DEATH";
    suspected += r.events.suspected[i];
  }
  CHECK(deaths == 1 && suspected == 2);
  opt.link_by = LinkBy::insurer;
  CHECK(parse_uke_files(paths, opt, nullptr).keys.size() == 3);  // one per file encoding/insurer

  const char* bad[][2] = {{"truncated", "truncated record"}, {"field_count", "wrong field count"},
                          {"bad_month", "bad date in field 4"}, {"bad_birth", "bad date in field 7"},
                          {"bad_era", "bad date in field 7"}, {"non_numeric", "non-numeric count"},
                          {"sy_before_re", "SY record before any RE"}, {"bad_cp932", "invalid CP932"},
                          {"si_before_re", "SI record before any RE"}, {"empty", "empty file"},
                          {"day_outside", "outside the treatment month"}};
  for (auto& b : bad) {
    UkeResult e = parse_uke_files({root + "/uke/bad/" + b[0] + ".UKE"}, UkeOptions(), nullptr);
    CHECK(e.rejects.size() == 1);
    if (!e.rejects.empty()) CHECK(e.rejects[0].reason.find(b[1]) != std::string::npos);
  }
  // Files in pieces on two threads: the same result as whole files.
  opt.link_by = LinkBy::chart;
  paths.push_back(root + "/no/such/file.UKE");
  opt.stop_at_first_error = false;
  const UkeResult whole = parse_uke_files(paths, opt, nullptr);
  opt.piece_bytes = 50;
  const UkeResult cut = parse_uke_files(paths, opt, nullptr);
  CHECK(cut.events.key == whole.events.key && cut.events.day == whole.events.day &&
        cut.events.code == whole.events.code && cut.events.facility == whole.events.facility &&
        cut.events.dx_start == whole.events.dx_start && cut.events.suspected == whole.events.suspected);
  CHECK(cut.keys == whole.keys && cut.codes == whole.codes && cut.facilities == whole.facilities);
  CHECK(cut.rejects.size() == 1 && whole.rejects.size() == 1 && cut.stats.receipts == whole.stats.receipts &&
        cut.stats.files == 4 && cut.stats.records == whole.stats.records && cut.stats.bytes == whole.stats.bytes);
  // Many small files in many pieces on 2-4 threads, over and over: every schedule ends, with the same result (a
  // file cut before an earlier one once left that one's pieces untaken while the backlog was full: a livelock).
  std::vector<std::string> many;
  for (int copy = 0; copy < 12; ++copy) many.insert(many.end(), paths.begin(), paths.end() - 1);
  opt.piece_bytes = std::numeric_limits<size_t>::max();
  const UkeResult reference = parse_uke_files(many, opt, nullptr);
  for (int round = 0; round < 150; ++round) {
    opt.threads = 2 + round % 3;
    opt.piece_bytes = 1 + static_cast<size_t>(round % 7) * 40;
    const UkeResult again = parse_uke_files(many, opt, nullptr);
    CHECK(again.events.key == reference.events.key && again.events.code == reference.events.code &&
          again.keys == reference.keys && again.stats.records == reference.stats.records);
  }
  UkeResult missing = parse_uke_files({root + "/no/such/file.UKE"}, UkeOptions(), nullptr);
  CHECK(missing.rejects.size() == 1 && missing.rejects[0].reason == "cannot read file");
}

// What merging a file's results gives (ids resolved to their strings), with --on-error raise's rule that a file
// stops at its first error: pieces after the first one with a reject are dropped, as parse_uke_files does.
struct Merged {
  std::vector<std::string> rows, rejects;
  UkeStats stats;
  bool stopped = false;
  void add(const FileResult& r, bool stop_at_first_error) {
    if (stopped) return;
    for (size_t i = 0; i < r.events.size(); ++i) {
      uint32_t bits;
      std::memcpy(&bits, &r.events.value[i], 4);
      const int32_t f = r.events.facility[i];
      rows.push_back(r.keys[r.events.key[i]] + "|" + std::to_string(r.events.day[i]) + "|" +
                     code_name(r.codes[r.events.code[i]]) + "|" + std::to_string(bits) + "|" +
                     (f >= 0 ? r.facilities[f] : "-") + "|" + std::to_string(r.events.suspected[i]) + "|" +
                     std::to_string(r.events.dx_start[i]) + (r.utf8 ? "|u" : "|c"));
    }
    for (const Reject& x : r.rejects) rejects.push_back(std::to_string(x.line) + " " + x.reason + " " + x.text);
    stats.add(r.stats);
    stopped = stop_at_first_error && !r.rejects.empty();
  }
  bool operator==(const Merged& o) const {
    bool same = rows == o.rows && rejects == o.rejects;
#define CLAIMSFM_STAT_SAME(name) same = same && stats.name == o.stats.name;
    CLAIMSFM_UKE_STATS(CLAIMSFM_STAT_SAME)
#undef CLAIMSFM_STAT_SAME
    return same;
  }
};

static Merged in_pieces(const std::string& data, size_t piece_bytes, const UkeOptions& opt, size_t* pieces = nullptr) {
  const UkeScan scan = scan_uke_buffer(data, piece_bytes);
  if (pieces) *pieces = scan.pieces.size();
  Merged m;
  for (size_t k = 0; k < scan.pieces.size(); ++k) m.add(parse_uke_piece(scan, k, 0, opt), opt.stop_at_first_error);
  return m;
}

// A file cut into pieces parses as the whole: receipts, IR records between them (a second facility, a bad IR
// that leaves the facility as it was), a BOM, an end-of-file mark, rejects and their line numbers.
static void test_pieces(const std::string& root) {
  const std::string good = slurp(root + "/uke/good/1312345/202405.UKE");
  const std::string other = slurp(root + "/uke/good/2723456/202406.UKE");
  const std::string bad_ir = "IR,1,13,1,13X2345,,X,202406,00\r\n";
  std::string moved = good;  // the same receipts from a second facility
  moved.replace(moved.find("1312345"), 7, "1399999");
  const std::string cases[] = {good, good + moved + good.substr(good.find("RE,")), "\xEF\xBB\xBF" + good + other,
                               good + bad_ir + good.substr(good.find("RE,")), good + other + "\x1a" + good,
                               other + good + "RE,1\r\n" + other + "\x1a\x1a"};
  for (const std::string& data : cases) {
    for (const bool stop : {false, true}) {
      UkeOptions opt;
      opt.stop_at_first_error = stop;
      Merged whole;
      whole.add(parse_uke_buffer(data, 0, opt), stop);
      CHECK(stop || !whole.rows.empty());
      for (const size_t piece_bytes : {size_t(1), size_t(40), size_t(300), size_t(1) << 20}) {
        size_t pieces = 0;
        CHECK(in_pieces(data, piece_bytes, opt, &pieces) == whole);
        if (piece_bytes == 1) CHECK(pieces >= 3);
      }
    }
  }
}

static void test_damage(const std::string& root) {
  // Seeded damage of a good fixture: whatever happens, no crash and the counts add up.
  const std::string data = slurp(root + "/uke/good/1312345/202405.UKE");
  std::mt19937_64 rng(12345);
  const char alphabet[] = {',', '\n', '\r', '\x1a', '\x81', '\xff', '0', '9', 'R', 'E', ' '};
  UkeOptions opt;
  opt.stop_at_first_error = false;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string s = data;
    const int edits = 1 + static_cast<int>(rng() % 8);
    for (int k = 0; k < edits && !s.empty(); ++k) {
      const size_t pos = rng() % s.size();
      switch (rng() % 3) {
        case 0: s[pos] = alphabet[rng() % sizeof(alphabet)]; break;
        case 1: s.erase(pos, 1 + rng() % 20); break;
        default: s.insert(pos, 1, alphabet[rng() % sizeof(alphabet)]); break;
      }
    }
    FileResult r = parse_uke_buffer(s, 0, opt);
    CHECK(r.events.key.size() == r.events.size() && r.events.dx_start.size() == r.events.size());
    if (iter % 10 == 0) {  // the same damage parsed in pieces merges to the same
      UkeOptions o = opt;
      o.stop_at_first_error = iter % 20 == 0;
      Merged whole;
      whole.add(parse_uke_buffer(s, 0, o), o.stop_at_first_error);
      CHECK(in_pieces(s, 1 + rng() % 200, o) == whole);
    }
    for (int32_t k : r.events.key) CHECK(k >= 0 && static_cast<size_t>(k) < r.keys.size());
    CsvResult c = parse_csv_buffer("subject_id,time,code,numeric_value\n" + s.substr(0, 300), 2, true);
    CHECK(c.subject.size() == c.code.size());
  }
}

static void test_csv() {
  CsvResult r = parse_csv_buffer(
      "subject_id,time,code,numeric_value\r\n1,2020-01-02,A,1.5\n-2,,B,\n1,2020-01-01T00:00:01.5,A,3e2\n", 2, false);
  CHECK(r.rejects.empty() && r.subject.size() == 3 && r.codes.size() == 2);
  CHECK(r.time_us[1] == kNoTime && std::isnan(r.value[1]) && r.value[2] == 300.0f);
  CHECK(r.time_us[2] == 18262LL * 86400000000LL + 1500000);
  std::vector<int64_t> offsets, subjects;
  std::vector<int64_t> order = group_by_subject(r.subject, r.time_us, offsets, subjects);
  CHECK(subjects.size() == 2 && subjects[0] == -2 && order[1] == 2 && order[2] == 0);
  CsvResult bad = parse_csv_buffer("subject_id,time,code\n1,2020-02-30,A\n", 1, false);
  CHECK(bad.rejects.size() == 1 && bad.rejects[0].line == 2 && bad.rejects[0].reason == "bad time");
  CHECK(parse_csv_buffer("a,b\n", 1, false).rejects.size() == 1);
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: test_uke <tests/fixtures>\n");
    return 2;
  }
  test_text();
  test_eof_mark_and_excerpt();
  test_fixtures(argv[1]);
  test_pieces(argv[1]);
  test_damage(argv[1]);
  test_csv();
  if (failures) std::fprintf(stderr, "%d failures\n", failures);
  return failures ? 1 : 0;
}
