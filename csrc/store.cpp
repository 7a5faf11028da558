#include "store.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "common.hpp"

namespace claimsfm {
namespace {

struct Ev { int32_t month, fac, day; int64_t i; };
struct Group { int32_t first_day, fac; int64_t begin, end; bool inpatient; };

struct MonthGroup { int32_t first_day, fac; bool inpatient; int32_t visit; };

// Scratch space reused across the subjects of one call (no allocation per subject).
struct Scratch {
  std::vector<Ev> ev;
  std::vector<Group> groups;
  std::vector<int64_t> rank;
  std::vector<MonthGroup> month;
};

// The month of a day, recomputed only when the day changes (a subject's days mostly repeat or ascend).
struct MonthOf {
  int32_t day = 0, month = month_index_of_day(0);
  int32_t operator()(int32_t d) {
    if (d != day) month = month_index_of_day(day = d);
    return month;
  }
};

constexpr size_t kMaxMonthGroups = 16;  // facilities in one month of one subject, beyond which the sorted path gives up

// Whether a subject's events (in input order) are in (day, code) order, as ingest's total order leaves them.
bool day_code_sorted(const int64_t* idx, int64_t k, const int32_t* day, const int32_t* code) {
  for (int64_t j = 1; j < k; ++j) {
    const int32_t d0 = day[idx[j - 1]], d1 = day[idx[j]];
    if (d1 < d0 || (d1 == d0 && code[idx[j]] < code[idx[j - 1]])) return false;
  }
  return true;
}

// order_subject for (day, code)-ordered events, with what that order gives for free: a visit is a (month,
// facility) group, numbered by (first day, facility) within each month in turn (a later month's groups start
// later); within a day the events are in (code, input) order already, so the final (day, visit, code, input)
// order only needs each day with several visits stably ordered by visit. False (nothing to undo: the general
// path rewrites every output) when a month has more than kMaxMonthGroups facilities.
bool order_subject_sorted(int64_t* idx, int64_t k, const int32_t* day, const int32_t* facility,
                          const uint8_t* inpatient, int32_t* visit, uint8_t* visit_inpatient, Scratch& scratch) {
  std::vector<MonthGroup>& gs = scratch.month;
  auto group_of = [&gs](int32_t fac) -> MonthGroup* {
    for (MonthGroup& g : gs) {
      if (g.fac == fac) return &g;
    }
    return nullptr;
  };
  int32_t next_visit = 0;
  MonthOf month_of;
  for (int64_t a = 0, b; a < k; a = b) {
    const int32_t month = month_of(day[idx[a]]);
    gs.clear();
    for (b = a; b < k && month_of(day[idx[b]]) == month; ++b) {
      const int64_t i = idx[b];
      MonthGroup* g = group_of(facility[i]);
      if (!g) {
        if (gs.size() == kMaxMonthGroups) return false;
        gs.push_back({day[i], facility[i], false, 0});
        g = &gs.back();
      }
      g->inpatient |= inpatient[i] != 0;
    }
    std::sort(gs.begin(), gs.end(), [](const MonthGroup& x, const MonthGroup& y) {
      return std::tie(x.first_day, x.fac) < std::tie(y.first_day, y.fac);
    });
    for (MonthGroup& g : gs) g.visit = next_visit++;
    for (int64_t j = a; j < b; ++j) {
      const MonthGroup* g = group_of(facility[idx[j]]);
      visit[idx[j]] = g->visit;
      visit_inpatient[idx[j]] = g->inpatient ? 1 : 0;
    }
  }
  for (int64_t a = 0, b; a < k; a = b) {
    bool several = false;
    for (b = a + 1; b < k && day[idx[b]] == day[idx[a]]; ++b) several |= visit[idx[b]] != visit[idx[a]];
    if (several) {
      std::stable_sort(idx + a, idx + b, [visit](int64_t x, int64_t y) { return visit[x] < visit[y]; });
    }
  }
  return true;
}

// Events of one subject (indices into the shard, in input order) -> visits, then the final order.
void order_subject(int64_t* idx, int64_t k, const int32_t* day, const int32_t* facility, const int32_t* code,
                   const uint8_t* inpatient, int32_t* visit, uint8_t* visit_inpatient, Scratch& scratch,
                   bool allow_sorted) {
  if (allow_sorted && day_code_sorted(idx, k, day, code) &&
      order_subject_sorted(idx, k, day, facility, inpatient, visit, visit_inpatient, scratch)) {
    return;
  }
  // Group by (month, facility); within a group the first day is the group's smallest day.
  std::vector<Ev>& ev = scratch.ev;
  ev.resize(static_cast<size_t>(k));
  MonthOf month_of;
  for (int64_t j = 0; j < k; ++j) {
    const int32_t d = day[idx[j]];
    ev[j] = {month_of(d), facility[idx[j]], d, idx[j]};
  }
  std::sort(ev.begin(), ev.end(), [](const Ev& a, const Ev& b) {
    return std::tie(a.month, a.fac, a.day, a.i) < std::tie(b.month, b.fac, b.day, b.i);
  });
  std::vector<Group>& groups = scratch.groups;
  groups.clear();
  for (int64_t j = 0; j < k; ++j) {
    if (j == 0 || ev[j].month != ev[j - 1].month || ev[j].fac != ev[j - 1].fac) {
      groups.push_back({ev[j].day, ev[j].fac, j, j, false});
    }
    groups.back().end = j + 1;
    groups.back().inpatient |= inpatient[ev[j].i] != 0;
  }
  std::vector<int64_t>& rank = scratch.rank;
  rank.resize(groups.size());
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
                  uint8_t* visit_inpatient, bool allow_sorted) {
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
  Scratch scratch;
  for (int64_t s = 0; s < n_subjects; ++s) {
    order_subject(order + start[s], start[s + 1] - start[s], day, facility, code, inpatient, visit, visit_inpatient,
                  scratch, allow_sorted);
  }
}

namespace {

int64_t floor_day(int64_t us) {
  constexpr int64_t kUsPerDay = 86'400'000'000LL;
  return us >= 0 ? us / kUsPerDay : -((-us + kUsPerDay - 1) / kUsPerDay);
}

}  // namespace

StoreRows store_rows(const int64_t* subject, const int64_t* time_us, const int32_t* code, const int32_t* facility,
                     const uint8_t* suspected, const float* value, int64_t n, const int64_t* code_rank,
                     int64_t n_codes, const int64_t* fac_rank, int64_t n_facilities, int32_t birth, int32_t death,
                     int32_t inpatient, const std::vector<std::pair<int32_t, int8_t>>& sex_codes,
                     uint8_t flag_suspected, uint8_t flag_inpatient) {
  constexpr int64_t kNoTime = std::numeric_limits<int64_t>::min();
  StoreRows r;
  std::vector<int64_t> sid, ev;  // per event: local subject index and row
  std::vector<int32_t> day, fac, rank;
  std::vector<uint8_t> inp;
  std::vector<int64_t> sex_pair;  // per subject: the last sex_codes pair seen, -1 none
  for (int64_t i = 0; i < n; ++i) {
    if (code[i] < 0 || code[i] >= n_codes || facility[i] < -1 || facility[i] >= n_facilities) {
      throw std::invalid_argument("event " + std::to_string(i) + ": code or facility id out of range");
    }
    if (i == 0 || subject[i] != subject[i - 1]) {
      if (i && subject[i] < subject[i - 1]) throw std::invalid_argument("store_rows: subjects are not sorted");
      r.ids.push_back(subject[i]);
      r.counts.push_back(0);
      r.birth_day.push_back(std::numeric_limits<int32_t>::max());
      r.death_day.push_back(std::numeric_limits<int32_t>::max());
      r.sex.push_back(0);
      sex_pair.push_back(-1);
    }
    const size_t s = r.ids.size() - 1;
    // The last matching pair wins, whatever the order of the rows.
    for (auto p = static_cast<size_t>(sex_pair[s] + 1); p < sex_codes.size(); ++p) {
      if (code[i] == sex_codes[p].first) sex_pair[s] = static_cast<int64_t>(p);
    }
    if (time_us[i] == kNoTime) continue;
    const auto d = static_cast<int32_t>(floor_day(time_us[i]));
    if (code[i] == birth) r.birth_day[s] = std::min(r.birth_day[s], d);
    if (code[i] == death) r.death_day[s] = std::min(r.death_day[s], d);
    if (code[i] == birth) continue;
    sid.push_back(static_cast<int64_t>(s));
    ev.push_back(i);
    day.push_back(d);
    fac.push_back(facility[i] >= 0 ? static_cast<int32_t>(fac_rank[facility[i]]) : -1);
    rank.push_back(static_cast<int32_t>(code_rank[code[i]]));
    inp.push_back(code[i] == inpatient ? 1 : 0);
    ++r.counts[s];
    if (ev.size() == 1 || d < r.day_min) r.day_min = d;
    if (ev.size() == 1 || d > r.day_max) r.day_max = d;
  }
  for (size_t s = 0; s < r.ids.size(); ++s) {
    if (r.birth_day[s] == std::numeric_limits<int32_t>::max()) r.birth_day[s] = -1;
    if (r.death_day[s] == std::numeric_limits<int32_t>::max()) r.death_day[s] = -1;
    if (sex_pair[s] >= 0) r.sex[s] = sex_codes[sex_pair[s]].second;
  }
  const auto k = static_cast<int64_t>(ev.size());
  std::vector<int64_t> order(static_cast<size_t>(k));
  std::vector<int32_t> visit(static_cast<size_t>(k));
  std::vector<uint8_t> visit_inpatient(static_cast<size_t>(k));
  order_events(sid.data(), day.data(), fac.data(), rank.data(), inp.data(), k, static_cast<int64_t>(r.ids.size()),
               order.data(), visit.data(), visit_inpatient.data());
  r.code.resize(k);
  r.day.resize(k);
  r.visit.resize(k);
  r.flags.resize(k);
  r.value.resize(k);
  for (int64_t j = 0; j < k; ++j) {
    const int64_t e = order[j], i = ev[e];
    r.code[j] = rank[e];
    r.day[j] = day[e];
    r.visit[j] = visit[e];
    r.flags[j] = static_cast<uint8_t>((suspected[i] ? flag_suspected : 0) | (visit_inpatient[e] ? flag_inpatient : 0));
    r.value[j] = value[i];
  }
  return r;
}

}  // namespace claimsfm
