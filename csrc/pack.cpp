#include "pack.hpp"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

namespace claimsfm {
namespace {

// Indices sorted by length descending, ties by index ascending.
std::vector<int64_t> decreasing_order(const int64_t* lengths, int64_t n, int64_t max_tokens) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  if (max_tokens <= 4 * n + 65536) {
    // Counting sort: stable, linear; the common case (many sequences, rows of a few thousand tokens).
    std::vector<int64_t> start(static_cast<size_t>(max_tokens) + 2, 0);
    for (int64_t i = 0; i < n; ++i) ++start[max_tokens - lengths[i] + 1];
    for (size_t b = 1; b < start.size(); ++b) start[b] += start[b - 1];
    for (int64_t i = 0; i < n; ++i) order[start[max_tokens - lengths[i]]++] = i;
  } else {
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return lengths[a] > lengths[b]; });
  }
  return order;
}

}  // namespace

int64_t pack_ffd(const int64_t* lengths, int64_t n, int64_t max_tokens, int64_t* rows) {
  if (max_tokens < 1) throw std::invalid_argument("max_tokens must be >= 1, got " + std::to_string(max_tokens));
  for (int64_t i = 0; i < n; ++i) {
    if (lengths[i] < 0 || lengths[i] > max_tokens) {
      throw std::invalid_argument("sequence " + std::to_string(i) + " has length " + std::to_string(lengths[i]) +
                                  ", outside [0, max_tokens=" + std::to_string(max_tokens) + "]");
    }
  }
  if (n == 0) return 0;
  // Leaves are rows 0..size-1; unopened rows are full, and rows are opened left to right, so the
  // leftmost leaf with room is exactly the first fit. First fit never leaves two rows at most half
  // full (the later row's items would have fitted into the earlier one), so rows < 2*sum/max + 1.
  int64_t total = 0;
  for (int64_t i = 0; i < n; ++i) total += lengths[i];
  const int64_t max_rows = std::min<int64_t>(n, 2 * total / max_tokens + 2);
  int64_t size = 1;
  while (size < max_rows) size <<= 1;
  std::vector<int64_t> tree(static_cast<size_t>(2 * size), max_tokens);
  int64_t n_rows = 0;
  for (int64_t i : decreasing_order(lengths, n, max_tokens)) {
    const int64_t len = lengths[i];
    int64_t node = 1;
    while (node < size) node = tree[2 * node] >= len ? 2 * node : 2 * node + 1;
    const int64_t row = node - size;
    rows[i] = row;
    n_rows = std::max(n_rows, row + 1);
    tree[node] -= len;
    for (node >>= 1; node >= 1; node >>= 1) tree[node] = std::max(tree[2 * node], tree[2 * node + 1]);
  }
  return n_rows;
}

}  // namespace claimsfm
