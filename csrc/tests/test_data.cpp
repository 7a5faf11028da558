// Plain C++ checks of the sequence builder, packer and masking (CTest; also under ASan/UBSan).
// The exhaustive comparisons against the Python twins live in tests/data/.
#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <tuple>
#include <vector>

#include "common.hpp"
#include "mask.hpp"
#include "pack.hpp"
#include "sequence.hpp"
#include "store.hpp"

#include "check.hpp"

using namespace claimsfm;

static void test_sequences() {
  // One subject: visit 0 on days 10, 10; visit 1 on day 40; visit 2 on day 41.
  const int64_t offsets[] = {0, 4};
  const int32_t token[] = {10, 11, 12, 13}, day[] = {10, 10, 40, 41}, visit[] = {0, 0, 1, 2}, birth[] = {-1};
  StoreView s{offsets, token, day, visit, birth, 1, 4};
  const int64_t subjects[] = {0};
  Sequences out;
  build_sequences(s, subjects, nullptr, nullptr, 1, 512, out);
  const std::vector<int32_t> want = {kCls, 10, 11, kSep, 12, kSep, 13};
  CHECK(out.input_ids == want);
  CHECK(out.visit == (std::vector<int32_t>{0, 1, 1, 1, 2, 2, 3}));
  CHECK(out.age_months[0] == -1 && out.age_months[4] == -1);
  // Reference = end of the last event's month (day 41 = 1970-02-11 -> 1970-02-28 = day 58).
  CHECK(out.days_before == (std::vector<int32_t>{0, 48, 48, 48, 18, 18, 17}));
  CHECK(out.gap_days == (std::vector<int32_t>{17, -1, -1, -1, 30, 30, 1}));
  const int32_t cutoff[] = {40};
  build_sequences(s, subjects, cutoff, nullptr, 1, 512, out);
  CHECK(out.input_ids == (std::vector<int32_t>{kCls, 10, 11, kSep, 12}));
  CHECK(out.days_before == (std::vector<int32_t>{0, 30, 30, 30, 0}));
  const int32_t reference[] = {45};
  build_sequences(s, subjects, cutoff, reference, 1, 512, out);
  CHECK(out.days_before.back() == 5 && out.gap_days[0] == 5);
  build_sequences(s, subjects, nullptr, nullptr, 1, 4, out);  // room for 3: "12 [SEP] 13", not "[SEP] 12 [SEP] 13"
  CHECK(out.input_ids == (std::vector<int32_t>{kCls, 12, kSep, 13}));
  int64_t len = 0;
  sequence_lengths(s, subjects, nullptr, 1, 3, &len);
  CHECK(len == 2);  // "[SEP] 13" would open with a [SEP]: only "13" is kept
}

static void test_pack() {
  std::vector<int64_t> lengths;
  uint64_t x = 1;
  for (int i = 0; i < 5000; ++i) lengths.push_back(static_cast<int64_t>((x = splitmix64(x)) % 200));
  std::vector<int64_t> rows(lengths.size());
  const int64_t n_rows = pack_ffd(lengths.data(), static_cast<int64_t>(lengths.size()), 256, rows.data());
  std::vector<int64_t> fill(static_cast<size_t>(n_rows), 0);
  for (size_t i = 0; i < lengths.size(); ++i) fill[rows[i]] += lengths[i];
  for (int64_t f : fill) CHECK(f <= 256);
  bool threw = false;
  try {
    const int64_t bad[] = {300};
    pack_ffd(bad, 1, 256, rows.data());
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  CHECK(threw);
}

static void test_mask() {
  std::vector<int32_t> ids(4000);
  for (size_t t = 0; t < ids.size(); ++t) ids[t] = t % 10 == 0 ? kCls : static_cast<int32_t>(5 + t % 40);
  const int64_t cu[] = {0, 1000, 4000};
  std::vector<int32_t> a(ids.size()), b(ids.size());
  std::vector<int64_t> la(ids.size()), lb(ids.size());
  const uint64_t key = mlm_batch_key(1, 2, 3);
  const int64_t n = mlm_mask(ids.data(), cu, 2, key, 45, 0.15, a.data(), la.data());
  mlm_mask(ids.data(), cu, 2, key, 45, 0.15, b.data(), lb.data());
  CHECK(a == b && la == lb);
  CHECK(n > 400 && n < 680);  // ~15% of 3600 code tokens
  for (size_t t = 0; t < ids.size(); t += 10) CHECK(a[t] == kCls && la[t] == -100);
}

static void test_order_events() {
  // Subject 0: facility 2 on Jan 5 and Jan 20, facility 1 on Jan 9, Feb 1; subject 1 first in input.
  const int32_t jan5 = days_from_civil(2020, 1, 5), jan9 = jan5 + 4, jan20 = jan5 + 15, feb1 = jan5 + 27;
  const int64_t subject[] = {1, 0, 0, 0, 0};
  const int32_t day[] = {jan5, jan20, jan9, jan5, feb1}, fac[] = {0, 2, 1, 2, 1}, code[] = {7, 3, 4, 5, 6};
  const uint8_t inpatient[] = {0, 0, 1, 0, 0};
  int64_t order[5];
  int32_t visit[5];
  uint8_t inp[5];
  order_events(subject, day, fac, code, inpatient, 5, 2, order, visit, inp);
  const int64_t want[] = {3, 2, 1, 4, 0};  // by (subject, day, visit, code)
  for (int i = 0; i < 5; ++i) CHECK(order[i] == want[i]);
  CHECK(visit[3] == 0 && visit[1] == 0 && visit[2] == 1 && visit[4] == 2 && visit[0] == 0);
  CHECK(inp[2] == 1 && inp[1] == 0 && inp[4] == 0);
}

// The path for (day, code)-ordered subjects against the general one (allow_sorted = false), on subjects in that
// order: several facilities in a month and on one day, inpatient flags, months of up to 20 facilities (beyond
// kMaxMonthGroups the sorted path falls back), subjects interleaved in the input, and unordered subjects.
static void test_order_events_sorted_path() {
  std::mt19937_64 rng(11);
  for (int round = 0; round < 200; ++round) {
    const int64_t n_subjects = 1 + static_cast<int64_t>(rng() % 6);
    std::vector<std::vector<std::array<int32_t, 4>>> per(static_cast<size_t>(n_subjects));  // day, fac, code, inp
    for (auto& ev : per) {
      const int n_fac = 1 + static_cast<int>(rng() % (round % 10 == 0 ? 24 : 4));
      const int k = static_cast<int>(rng() % 60);
      for (int j = 0; j < k; ++j) {
        ev.push_back({18000 + static_cast<int32_t>(rng() % 90), static_cast<int32_t>(rng() % n_fac) - 1,
                      static_cast<int32_t>(rng() % 7), static_cast<int32_t>(rng() % 5 == 0)});
      }
      if (rng() % 8) {
        std::sort(ev.begin(), ev.end(), [](const auto& a, const auto& b) {
          return std::tie(a[0], a[2]) < std::tie(b[0], b[2]);
        });
      }
    }
    std::vector<int64_t> subject;
    std::vector<int32_t> day, fac, code;
    std::vector<uint8_t> inp;
    std::vector<size_t> next(per.size(), 0);
    for (bool left = true; left;) {  // interleave the subjects, each in its own order
      left = false;
      for (size_t s = 0; s < per.size(); ++s) {
        if (next[s] < per[s].size() && rng() % 2) {
          const auto& e = per[s][next[s]++];
          subject.push_back(static_cast<int64_t>(s));
          day.push_back(e[0]), fac.push_back(e[1]), code.push_back(e[2]), inp.push_back(static_cast<uint8_t>(e[3]));
        }
        left |= next[s] < per[s].size();
      }
    }
    const int64_t n = static_cast<int64_t>(subject.size());
    std::vector<int64_t> o1(subject.size()), o2(subject.size());
    std::vector<int32_t> v1(subject.size()), v2(subject.size());
    std::vector<uint8_t> i1(subject.size()), i2(subject.size());
    order_events(subject.data(), day.data(), fac.data(), code.data(), inp.data(), n, n_subjects, o1.data(),
                 v1.data(), i1.data(), true);
    order_events(subject.data(), day.data(), fac.data(), code.data(), inp.data(), n, n_subjects, o2.data(),
                 v2.data(), i2.data(), false);
    CHECK(o1 == o2 && v1 == v2 && i1 == i2);
  }
}

static void test_store_rows() {
  // Codes: 0 MEDS_BIRTH, 1 SEX//M, 2 SEX//F, 3 JPVISIT//INPATIENT, 4 JPDX (rank order 4 < 3 < 0 < 2 < 1).
  const int64_t us = 86'400'000'000LL, none = INT64_MIN;
  const int64_t subject[] = {3, 3, 3, 3, 3, 9, 9, 9};
  const int64_t time[] = {none, none, 5 * us, 5 * us, -2 * us, none, 7 * us, 7 * us};
  const int32_t code[] = {2, 1, 0, 4, 3, 1, 4, 0};
  const int32_t fac[] = {-1, -1, -1, 0, 0, -1, 1, -1};
  const uint8_t susp[] = {0, 0, 0, 1, 0, 0, 0, 0};
  const float value[] = {0, 0, 0, 1.5f, 2.5f, 0, 3.5f, 0};
  const int64_t code_rank[] = {2, 4, 3, 1, 0}, fac_rank[] = {1, 0};
  const std::vector<std::pair<int32_t, int8_t>> sex = {{1, 1}, {2, 2}};
  StoreRows r = store_rows(subject, time, code, fac, susp, value, 8, code_rank, 5, fac_rank, 2, 0, -1, 3, sex, 1, 2);
  CHECK((r.ids == std::vector<int64_t>{3, 9}) && (r.counts == std::vector<int64_t>{2, 1}));
  CHECK(r.sex[0] == 2 && r.sex[1] == 1);  // SEX//F (the later pair) wins although its row comes first
  CHECK(r.birth_day[0] == 5 && r.birth_day[1] == 7 && r.death_day[0] == -1);
  CHECK((r.day == std::vector<int32_t>{-2, 5, 7}) && (r.code == std::vector<int32_t>{1, 0, 0}));  // ranks
  CHECK((r.flags == std::vector<uint8_t>{2, 1, 0}) && r.value[0] == 2.5f && r.day_min == -2 && r.day_max == 7);
  bool threw = false;
  try {
    const int64_t unsorted[] = {9, 3, 3, 3, 3, 3, 3, 3};
    store_rows(unsorted, time, code, fac, susp, value, 8, code_rank, 5, fac_rank, 2, 0, -1, 3, sex, 1, 2);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  CHECK(threw);
}

int main() {
  test_order_events();
  test_order_events_sorted_path();
  test_store_rows();
  test_sequences();
  test_pack();
  test_mask();
  if (failures) std::fprintf(stderr, "%d failures\n", failures);
  return failures ? 1 : 0;
}
