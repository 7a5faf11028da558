// Mutation fuzzer for the UKE and CSV parsers, for machines without clang/libFuzzer.
//
// Build with AddressSanitizer + UndefinedBehaviorSanitizer and run (see fuzz/README.md):
//   uke_fuzz <corpus dir> <seconds> [seed]
// Every .UKE/.csv file under the corpus folder is a seed input. Each iteration picks a seed (or
// a previous input that produced a new (events, rejects) outcome), applies 1-16 seeded edits
// (byte flips, UKE-meaningful bytes, deletions, duplicated or spliced lines, long fields), and
// parses it. A sanitizer report aborts the process (exit != 0); otherwise it prints the inputs
// tried as JSON when the time is up.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "csv_parser.hpp"
#include "uke_parser.hpp"

namespace fs = std::filesystem;
using namespace claimsfm;

static std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

static const std::vector<std::string> kTokens = {
    ",", "\r\n", "\n", "\x1a", "\x81", "\xff", "\xef\xbb\xbf", "RE,", "SY,", "SI,", "IY,", "TO,",
    "IR,", "GO,", "HO,", "8002", "20241301", "9550115", "43101", "99999999999999", "-1", ",,,,,,,,"};

static void mutate(std::string& s, std::mt19937_64& rng, const std::vector<std::string>& pool) {
  const int edits = 1 + static_cast<int>(rng() % 16);
  for (int k = 0; k < edits; ++k) {
    const size_t pos = s.empty() ? 0 : rng() % (s.size() + 1);
    switch (rng() % 6) {
      case 0:
        if (!s.empty() && pos < s.size()) s[pos] = static_cast<char>(rng());
        break;
      case 1:
        s.insert(pos, kTokens[rng() % kTokens.size()]);
        break;
      case 2:
        if (pos < s.size()) s.erase(pos, 1 + rng() % 64);
        break;
      case 3: {  // duplicate a line
        const size_t a = s.rfind('\n', pos == 0 ? 0 : pos - 1), b = s.find('\n', pos);
        if (a != std::string::npos && b != std::string::npos && b > a) s.insert(b + 1, s.substr(a + 1, b - a));
        break;
      }
      case 4: {  // splice a chunk of another input
        const std::string& o = pool[rng() % pool.size()];
        if (!o.empty()) {
          const size_t from = rng() % o.size();
          s.insert(pos, o.substr(from, 1 + rng() % 200));
        }
        break;
      }
      default:
        s.insert(pos, std::string(1 + rng() % 300, "0,9"[rng() % 3]));
    }
  }
}

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: uke_fuzz <corpus dir> <seconds> [seed]\n");
    return 2;
  }
  std::vector<std::string> pool;
  for (const auto& e : fs::recursive_directory_iterator(argv[1]))
    if (e.is_regular_file()) pool.push_back(slurp(e.path()));
  if (pool.empty()) return 2;
  const double seconds = std::atof(argv[2]);
  std::mt19937_64 rng(argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 1);
  std::set<std::pair<size_t, size_t>> outcomes;
  UkeOptions opt;
  opt.stop_at_first_error = false;
  const auto start = std::chrono::steady_clock::now();
  long long inputs = 0, bytes = 0;
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < seconds) {
    for (int batch = 0; batch < 64; ++batch, ++inputs) {
      std::string s = pool[rng() % pool.size()];
      mutate(s, rng, pool);
      bytes += static_cast<long long>(s.size());
      opt.link_by = rng() % 2 ? LinkBy::insurer : LinkBy::chart;
      FileResult r = parse_uke_buffer(s, 0, opt);
      for (int32_t k : r.events.key)
        if (k < 0 || static_cast<size_t>(k) >= r.keys.size()) std::abort();  // an invariant, not a style
      CsvResult c = parse_csv_buffer(s, 1 + static_cast<int>(rng() % 3), rng() % 2);
      if (c.subject.size() != c.code.size()) std::abort();
      if (outcomes.insert({r.events.size(), r.rejects.size()}).second && pool.size() < 4096 && s.size() < (1 << 20))
        pool.push_back(std::move(s));
    }
  }
  std::printf("{\"inputs\": %lld, \"bytes\": %lld, \"seconds\": %.0f, \"corpus\": %zu, \"finished_without_sanitizer_report\": true}\n",
              inputs, bytes, seconds, pool.size());
  return 0;
}
