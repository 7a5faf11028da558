#include "store.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "common.hpp"

namespace claimsfm {
namespace {

// Events of one subject (indices into the shard, in input order) -> visits, then the final order.
void order_subject(int64_t* idx, int64_t k, const int32_t* day, const int32_t* facility, const int32_t* code,
                   const uint8_t* inpatient, int32_t* visit, uint8_t* visit_inpatient) {
  // Group by (month, facility); within a group the first day is the group's smallest day.
  struct Ev { int32_t month, fac, day; int64_t i; };
  std::vector<Ev> ev(static_cast<size_t>(k));
  for (int64_t j = 0; j < k; ++j) ev[j] = {month_index_of_day(day[idx[j]]), facility[idx[j]], day[idx[j]], idx[j]};
  std::sort(ev.begin(), ev.end(), [](const Ev& a, const Ev& b) {
    return std::tie(a.month, a.fac, a.day, a.i) < std::tie(b.month, b.fac, b.day, b.i);
  });
  struct Group { int32_t first_day, fac; int64_t begin, end; bool inpatient; };
  std::vector<Group> groups;
  for (int64_t j = 0; j < k; ++j) {
    if (j == 0 || ev[j].month != ev[j - 1].month || ev[j].fac != ev[j - 1].fac) {
      groups.push_back({ev[j].day, ev[j].fac, j, j, false});
    }
    groups.back().end = j + 1;
    groups.back().inpatient |= inpatient[ev[j].i] != 0;
  }
  std::vector<int64_t> rank(groups.size());
  for (size_t g = 0; g < groups.size(); ++g) rank[g] = static_cast<int64_t>(g);
  std::sort(rank.begin(), rank.end(), [&](int64_t a, int64_t b) {
    return std::tie(groups[a].first_day, groups[a].fac, a) < std::tie(groups[b].first_day, groups[b].fac, b);
  });
  for (size_t r = 0; r < rank.size(); ++r) {
    const Group& g = groups[rank[r]];
    for (int64_t j = g.begin; j < g.end; ++j) {
      visit[ev[j].i] = static_cast<int32_t>(r);
      visit_inpatient[ev[j].i] = g.inpatient ? 1 : 0;
    }
  }
  std::sort(idx, idx + k, [&](int64_t a, int64_t b) {
    return std::tie(day[a], visit[a], code[a], a) < std::tie(day[b], visit[b], code[b], b);
  });
}

}  // namespace

void order_events(const int64_t* subject, const int32_t* day, const int32_t* facility, const int32_t* code,
                  const uint8_t* inpatient, int64_t n, int64_t n_subjects, int64_t* order, int32_t* visit,
                  uint8_t* visit_inpatient) {
  // Counting sort by subject (stable), then each subject's slice on its own.
  std::vector<int64_t> start(static_cast<size_t>(n_subjects) + 1, 0);
  for (int64_t i = 0; i < n; ++i) {
    if (subject[i] < 0 || subject[i] >= n_subjects) {
      throw std::invalid_argument("event " + std::to_string(i) + ": subject index out of range");
    }
    ++start[subject[i] + 1];
  }
  for (int64_t s = 0; s < n_subjects; ++s) start[s + 1] += start[s];
  std::vector<int64_t> fill(start.begin(), start.end() - 1);
  for (int64_t i = 0; i < n; ++i) order[fill[subject[i]]++] = i;
  for (int64_t s = 0; s < n_subjects; ++s) {
    order_subject(order + start[s], start[s + 1] - start[s], day, facility, code, inpatient, visit, visit_inpatient);
  }
}

}  // namespace claimsfm
