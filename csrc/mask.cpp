#include "mask.hpp"

#include <cmath>
#include <limits>

#include "common.hpp"
#include "sequence.hpp"

namespace claimsfm {
namespace {

constexpr double kTwo53 = 9007199254740992.0;  // draws compare the top 53 bits against thresholds

uint64_t threshold(double p) { return static_cast<uint64_t>(std::floor(p * kTwo53)); }

}  // namespace

uint64_t mlm_batch_key(uint64_t seed, uint64_t epoch, uint64_t step) {
  return splitmix64(splitmix64(splitmix64(seed) ^ epoch) ^ step);
}

int64_t mlm_mask(const int32_t* input_ids, const int64_t* cu_seqlens, int64_t n_seqs, uint64_t key,
                 int32_t vocab_size, double mask_prob, int32_t* out_ids, int64_t* labels) {
  const uint64_t select = threshold(mask_prob), to_mask = threshold(0.8), to_random = threshold(0.9);
  const uint64_t n_codes = vocab_size > kNumSpecial ? static_cast<uint64_t>(vocab_size - kNumSpecial) : 1;
  int64_t n_targets = 0, best = -1;
  uint64_t best_draw = std::numeric_limits<uint64_t>::max();
  auto apply = [&](int64_t t, uint64_t h1) {
    const uint64_t h2 = splitmix64(h1);
    labels[t] = input_ids[t];
    if ((h2 >> 11) < to_mask) {
      out_ids[t] = kMask;
    } else if ((h2 >> 11) < to_random) {
      out_ids[t] = kNumSpecial + static_cast<int32_t>(splitmix64(h2) % n_codes);
    }
    ++n_targets;
  };
  for (int64_t j = 0; j < n_seqs; ++j) {
    for (int64_t t = cu_seqlens[j]; t < cu_seqlens[j + 1]; ++t) {
      out_ids[t] = input_ids[t];
      labels[t] = -100;
      if (input_ids[t] < kNumSpecial) continue;
      const uint64_t p = static_cast<uint64_t>(t - cu_seqlens[j]);
      const uint64_t h1 = splitmix64(key ^ ((static_cast<uint64_t>(j) << 32) | p));
      if ((h1 >> 11) < select) {
        apply(t, h1);
      } else if (n_targets == 0 && (h1 >> 11) < best_draw) {
        best_draw = h1 >> 11;
        best = t;
      }
    }
  }
  if (n_targets == 0 && best >= 0) {
    int64_t j = 0;
    while (cu_seqlens[j + 1] <= best) ++j;
    const uint64_t p = static_cast<uint64_t>(best - cu_seqlens[j]);
    apply(best, splitmix64(key ^ ((static_cast<uint64_t>(j) << 32) | p)));
  }
  return n_targets;
}

}  // namespace claimsfm
