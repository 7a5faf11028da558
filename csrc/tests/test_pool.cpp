// The block pool (csrc/block_pool.hpp): both kinds of block, reuse of a freed block, zeroing, realloc across
// kinds and classes, the cache limit, trim, pool::vector, and concurrent use (run by CTest, also under ASan).
#include <atomic>
#include <cstdint>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "block_pool.hpp"

#include "check.hpp"

using namespace claimsfm;

static bool all_equal(const void* p, size_t n, unsigned char v) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) {
    if (b[i] != v) return false;
  }
  return true;
}

static void test_classes() {
  for (size_t n : {size_t{0}, size_t{1}, pool::kMinPooled - 1, pool::kMinPooled, size_t{1} << 20, (size_t{1} << 20) + 1,
                   size_t{3'000'001}, size_t{1} << 30}) {
    const size_t len = pool::class_length(n);
    CHECK(len >= n + pool::kHeader && len % 4096 == 0);
    CHECK(len <= (n + pool::kHeader) + (n + pool::kHeader) / 8 + 4096);  // at most 1/8 (or a page) over
  }
  CHECK(pool::class_length(1 << 20) == pool::class_length((1 << 20) + 100));  // one class
}

static void test_blocks() {
  pool::trim();
  const pool::Stats s0 = pool::stats();
  // Small: from malloc, no mapping.
  void* a = pool::allocate(100);
  CHECK(reinterpret_cast<uintptr_t>(a) % 16 == 0 && pool::size_of(a) == 100);
  std::memset(a, 7, 100);
  CHECK(pool::stats().maps == s0.maps);
  void* z = pool::allocate(1000, true);
  CHECK(all_equal(z, 1000, 0));
  pool::release(z);
  // Big: mapped, 64-byte aligned; freed into the cache and handed out again for the same class.
  const size_t big = 3 << 20;
  void* b = pool::allocate(big);
  CHECK(reinterpret_cast<uintptr_t>(b) % 64 == 0 && pool::size_of(b) == big);
  CHECK(pool::stats().maps == s0.maps + 1 && pool::stats().mapped_bytes == s0.mapped_bytes + pool::class_length(big));
  std::memset(b, 0xab, big);
  pool::release(b);
  CHECK(pool::stats().cached_bytes == pool::class_length(big));
  void* c = pool::allocate(big - 1000, true);  // same class: the same block, zeroed as asked
  CHECK(c == b && pool::stats().reuses == s0.reuses + 1 && pool::stats().cached_bytes == 0);
  CHECK(all_equal(c, big - 1000, 0));
  // A cached block up to twice the class serves a smaller request; a much larger one does not.
  pool::release(c);
  void* d = pool::allocate(big / 2 + 4096);
  CHECK(d == b);
  pool::release(d);
  void* e = pool::allocate(pool::kMinPooled);
  CHECK(e != b);
  pool::release(e);
  // realloc: small -> big -> bigger -> small, content kept.
  std::memset(a, 7, 100);
  a = pool::reallocate(a, big);
  CHECK(all_equal(a, 100, 7) && pool::size_of(a) == big);
  std::memset(a, 9, big);
  a = pool::reallocate(a, 4 * big);
  CHECK(all_equal(a, big, 9));
  a = pool::reallocate(a, 50);
  CHECK(all_equal(a, 50, 9) && pool::size_of(a) == 50);
  pool::release(a);
  pool::release(nullptr);
  void* fresh = pool::reallocate(nullptr, 10);
  CHECK(fresh != nullptr && pool::size_of(fresh) == 10);
  pool::release(fresh);
  // Limit: freed blocks beyond it are unmapped, oldest first; trim unmaps the rest.
  const size_t old_limit = pool::cache_limit();
  pool::set_cache_limit(2 * pool::class_length(big));
  std::vector<void*> blocks;
  for (int i = 0; i < 5; ++i) blocks.push_back(pool::allocate(big));
  for (void* p : blocks) pool::release(p);
  CHECK(pool::stats().cached_bytes == 2 * pool::class_length(big));
  void* again = pool::allocate(big);
  CHECK(again == blocks[3] || again == blocks[4]);  // the two freed last stayed
  pool::release(again);
  pool::trim();
  CHECK(pool::stats().cached_bytes == 0 && pool::stats().mapped_bytes == s0.mapped_bytes);
  pool::set_cache_limit(old_limit);
}

static void test_vector_and_threads() {
  {
    pool::vector<int64_t> v;
    for (int64_t i = 0; i < 1'000'000; ++i) v.push_back(i * 3);  // grows through malloc and pooled blocks
    bool ok = true;
    for (int64_t i = 0; i < 1'000'000; ++i) ok &= v[static_cast<size_t>(i)] == i * 3;
    CHECK(ok);
  }
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &bad] {
      std::mt19937_64 rng(static_cast<uint64_t>(t));
      std::vector<std::pair<unsigned char*, size_t>> live;
      for (int i = 0; i < 400; ++i) {
        const size_t n = rng() % (2u << 20);
        auto* p = static_cast<unsigned char*>(pool::allocate(n));
        std::memset(p, static_cast<int>(n & 0xff), n);
        live.emplace_back(p, n);
        if (live.size() > 8 || rng() % 2) {
          const size_t k = rng() % live.size();
          if (!all_equal(live[k].first, live[k].second, static_cast<unsigned char>(live[k].second & 0xff))) ++bad;
          pool::release(live[k].first);
          live.erase(live.begin() + static_cast<std::ptrdiff_t>(k));
        }
      }
      for (auto& [p, n] : live) {
        if (!all_equal(p, n, static_cast<unsigned char>(n & 0xff))) ++bad;
        pool::release(p);
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(bad == 0);
  const pool::Stats s = pool::stats();
  CHECK(s.mapped_bytes == s.cached_bytes && s.cached_bytes <= pool::cache_limit());  // nothing in use is left
  pool::trim();
  CHECK(pool::stats().mapped_bytes == 0);
}

int main() {
  test_classes();
  test_blocks();
  test_vector_and_threads();
  return failures ? 1 : 0;
}
