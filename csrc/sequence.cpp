#include "sequence.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "common.hpp"

namespace claimsfm {
namespace {

// The kept event range [start, end) of one subject and its token count without [CLS].
struct Window {
  int64_t first;  // the subject's first event (for months since first event)
  int64_t start, end;
  int64_t tokens;
};

Window window_of(const StoreView& s, int64_t subject, const int32_t* cutoff, int64_t i, int32_t max_len) {
  if (subject < 0 || subject >= s.n_subjects) {
    throw std::invalid_argument("subject index " + std::to_string(subject) + " out of range [0, " +
                                std::to_string(s.n_subjects) + ")");
  }
  const int64_t lo = s.offsets[subject];
  int64_t hi = s.offsets[subject + 1];
  if (cutoff != nullptr) {
    // Events are sorted by day within a subject, so "day <= cutoff" is a prefix.
    hi = std::upper_bound(s.day + lo, s.day + hi, cutoff[i]) - s.day;
  }
  Window w{lo, hi, hi, 0};
  if (hi == lo) return w;
  // Walk back from the most recent event while the budget allows; a [SEP] is only taken together
  // with the event before it, so the window never opens with a [SEP].
  const int64_t budget = max_len - 1;
  w.start = hi - 1;
  w.tokens = 1;
  while (w.start > lo) {
    const int64_t need = s.visit[w.start - 1] != s.visit[w.start] ? 2 : 1;
    if (w.tokens + need > budget) break;
    w.tokens += need;
    --w.start;
  }
  return w;
}

// The last day of month index m (year * 12 + month - 1).
int32_t month_end_day(int32_t m) {
  const int32_t y = m / 12, mo = m % 12 + 1;
  return days_from_civil(y, mo, days_in_month(y, mo));
}

void check_max_len(int32_t max_len) {
  if (max_len < 2) throw std::invalid_argument("max_len must be >= 2, got " + std::to_string(max_len));
}

}  // namespace

void sequence_lengths(const StoreView& s, const int64_t* subjects, const int32_t* cutoff, int64_t k,
                      int32_t max_len, int64_t* lengths) {
  check_max_len(max_len);
  for (int64_t i = 0; i < k; ++i) lengths[i] = 1 + window_of(s, subjects[i], cutoff, i, max_len).tokens;
}

void build_sequences(const StoreView& s, const int64_t* subjects, const int32_t* cutoff, const int32_t* reference,
                     int64_t k, int32_t max_len, Sequences& out) {
  check_max_len(max_len);
  std::vector<Window> windows(static_cast<size_t>(k));
  out.offsets.assign(static_cast<size_t>(k) + 1, 0);
  for (int64_t i = 0; i < k; ++i) {
    windows[i] = window_of(s, subjects[i], cutoff, i, max_len);
    out.offsets[i + 1] = out.offsets[i] + 1 + windows[i].tokens;
  }
  const size_t total = static_cast<size_t>(out.offsets[k]);
  for (auto* col : {&out.input_ids, &out.age_months, &out.visit, &out.months, &out.days_before, &out.gap_days}) {
    col->resize(total);
  }
  out.segment.resize(total);
  for (int64_t i = 0; i < k; ++i) {
    const Window& w = windows[i];
    const int64_t lo = s.offsets[subjects[i]];
    const int32_t birth = s.birth_day[subjects[i]];
    const int32_t birth_month = birth >= 0 ? month_index_of_day(birth) : 0;
    const int32_t first_month = w.first < s.offsets[subjects[i] + 1] ? month_index_of_day(s.day[w.first]) : 0;
    const bool any = w.end > w.start;
    const int32_t ref = reference != nullptr ? reference[i]
                        : cutoff != nullptr  ? cutoff[i]
                        : any                ? month_end_day(month_index_of_day(s.day[w.end - 1]))
                                             : 0;
    size_t t = static_cast<size_t>(out.offsets[i]);
    auto emit = [&](int32_t id, int32_t day, int32_t visit, int32_t gap) {
      const int32_t month = month_index_of_day(day);
      out.input_ids[t] = id;
      out.age_months[t] = birth >= 0 ? std::max(0, month - birth_month) : -1;
      out.visit[t] = visit;
      out.months[t] = std::max(0, month - first_month);
      out.segment[t] = static_cast<int8_t>(visit % 2);
      out.days_before[t] = ref - day;
      out.gap_days[t] = gap;
      ++t;
    };
    out.input_ids[t] = kCls;
    out.age_months[t] = -1;
    out.visit[t] = out.months[t] = out.days_before[t] = 0;
    out.segment[t] = 0;
    out.gap_days[t] = any ? ref - s.day[w.end - 1] : -1;  // the prediction time, as time since the last event
    ++t;
    int32_t visit = 1;
    // The gap of the first kept visit reaches back past the window when the history was truncated.
    int32_t gap = w.start > lo ? s.day[w.start] - s.day[w.start - 1] : -1;
    for (int64_t e = w.start; e < w.end; ++e) {
      if (e > w.start && s.visit[e] != s.visit[e - 1]) {
        emit(kSep, s.day[e - 1], visit, gap);  // the [SEP] closes the previous visit
        ++visit;
        gap = s.day[e] - s.day[e - 1];
      }
      emit(s.token[e], s.day[e], visit, gap);
    }
  }
}

}  // namespace claimsfm
