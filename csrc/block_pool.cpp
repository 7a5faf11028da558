#include "block_pool.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

namespace claimsfm::pool {

namespace {

constexpr uint64_t kMagic = 0x6c6f6f706d66636cULL;  // "lcfmpool"
constexpr size_t kPage = 4096;

struct Header {
  uint64_t magic;
  uint64_t size;    // requested bytes
  uint64_t length;  // mapping length (header included); 0: from malloc
  uint64_t pad[5];
};
static_assert(sizeof(Header) == kHeader, "the header is kHeader bytes");

struct Cached {
  char* base;
  uint64_t stamp;  // when it was freed: the oldest go first past the limit
};

struct State {
  std::mutex mu;
  std::multimap<size_t, Cached> cache;  // mapping length -> freed blocks of that length
  Stats stats;
  size_t limit = kDefaultCacheLimit;
  uint64_t clock = 0;
};

State& state() {
  static State* s = new State();  // never destroyed: numpy arrays may be freed during interpreter exit
  return *s;
}

Header* header_of(const void* p) {
  auto* h = reinterpret_cast<Header*>(static_cast<char*>(const_cast<void*>(p)) - kHeader);
  if (h->magic != kMagic) {
    std::fprintf(stderr, "claimsfm block pool: %p is not a pool block\n", p);
    std::abort();
  }
  return h;
}

// Unmaps the oldest cached blocks until at most `limit` bytes are cached (called with the lock held).
void evict_to(State& s, size_t limit) {
  while (s.stats.cached_bytes > limit) {
    auto oldest = std::min_element(s.cache.begin(), s.cache.end(),
                                   [](const auto& a, const auto& b) { return a.second.stamp < b.second.stamp; });
    munmap(oldest->second.base, oldest->first);
    s.stats.cached_bytes -= oldest->first;
    s.stats.mapped_bytes -= oldest->first;
    ++s.stats.unmaps;
    s.cache.erase(oldest);
  }
}

}  // namespace

size_t class_length(size_t n) {
  size_t need = n + kHeader;
  if (need < n) throw std::bad_alloc();
  // 8 classes per doubling: a step of 1/8 of the largest power of two not above the need (at least a page).
  size_t top = size_t{1} << (63 - __builtin_clzll(static_cast<unsigned long long>(need)));
  size_t step = std::max(kPage, top >> 3);
  if (need > SIZE_MAX - step) throw std::bad_alloc();
  return (need + step - 1) / step * step;
}

void* allocate(size_t n, bool zero) {
  if (n + kHeader < kMinPooled) {
    void* base = zero ? std::calloc(1, n + kHeader) : std::malloc(n + kHeader);
    if (!base) throw std::bad_alloc();
    *static_cast<Header*>(base) = Header{kMagic, n, 0, {}};
    return static_cast<char*>(base) + kHeader;
  }
  size_t length = class_length(n);
  State& s = state();
  char* base = nullptr;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    // The smallest cached block of this class or larger, up to twice the class: its extra pages are resident
    // already whether it serves here or waits in the cache, and the next bucket's sizes differ by a class or two.
    auto it = s.cache.lower_bound(length);
    if (it != s.cache.end() && it->first <= 2 * length) {
      base = it->second.base;
      length = it->first;
      s.cache.erase(it);
      s.stats.cached_bytes -= length;
      ++s.stats.reuses;
    }
  }
  if (base) {
    if (zero) std::memset(base + kHeader, 0, n);
  } else {  // fresh pages are zero
    void* m = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) throw std::bad_alloc();
    base = static_cast<char*>(m);
    std::lock_guard<std::mutex> lock(s.mu);
    ++s.stats.maps;
    s.stats.mapped_bytes += length;
    s.stats.peak_mapped_bytes = std::max(s.stats.peak_mapped_bytes, s.stats.mapped_bytes);
  }
  *reinterpret_cast<Header*>(base) = Header{kMagic, n, length, {}};
  return base + kHeader;
}

void release(void* p) noexcept {
  if (!p) return;
  Header* h = header_of(p);
  char* base = reinterpret_cast<char*>(h);
  if (h->length == 0) {
    h->magic = 0;
    std::free(base);
    return;
  }
  const size_t length = h->length;
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (length > s.limit) {
    munmap(base, length);
    s.stats.mapped_bytes -= length;
    ++s.stats.unmaps;
    return;
  }
  s.cache.emplace(length, Cached{base, ++s.clock});
  s.stats.cached_bytes += length;
  evict_to(s, s.limit);
}

void* reallocate(void* p, size_t n) {
  if (!p) return allocate(n);
  Header* h = header_of(p);
  if (h->length == 0 && n + kHeader < kMinPooled) {
    void* base = std::realloc(h, n + kHeader);
    if (!base) throw std::bad_alloc();
    static_cast<Header*>(base)->size = n;
    return static_cast<char*>(base) + kHeader;
  }
  if (h->length != 0 && n + kHeader <= h->length && 2 * class_length(n) >= h->length) {
    h->size = n;  // fits, and the block is at most twice its class (as a reuse may give): nothing moves
    return p;
  }
  void* q = allocate(n);
  std::memcpy(q, p, std::min<size_t>(h->size, n));
  release(p);
  return q;
}

size_t size_of(const void* p) noexcept { return header_of(p)->size; }

Stats stats() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  return s.stats;
}

void trim() noexcept {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  evict_to(s, 0);
}

void set_cache_limit(size_t bytes) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.limit = bytes;
  evict_to(s, bytes);
}

size_t cache_limit() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  return s.limit;
}

}  // namespace claimsfm::pool
