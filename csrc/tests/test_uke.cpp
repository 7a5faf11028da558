// CTest: the UKE and CSV parsers over the hand-written fixtures (argv[1] = tests/fixtures), plus
// seeded byte damage, so that ASan/UBSan see every code path, including the error paths.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
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
  UkeResult missing = parse_uke_files({root + "/no/such/file.UKE"}, UkeOptions(), nullptr);
  CHECK(missing.rejects.size() == 1 && missing.rejects[0].reason == "cannot read file");
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
  test_damage(argv[1]);
  test_csv();
  if (failures) std::fprintf(stderr, "%d failures\n", failures);
  return failures ? 1 : 0;
}
