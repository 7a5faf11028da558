// Big blocks for bucket-sized arrays: mapped from the OS in size classes and kept for reuse, so that the
// out-of-core ingest's buckets (claimsfm/ingest/spill.py) allocate the same few block sizes over and over
// without fragmenting the heap. In glibc's heap, bucket arrays of varying sizes interleaved with longer-lived
// ones left free holes that grew with the number of buckets (peak RSS +10-17% from 0.4 to 2 GB of UKE); given
// to mmap instead (M_MMAP_THRESHOLD 256 KiB) the growth went but every bucket faulted its pages in afresh
// (+8 system CPU-s at 2 GB). Here a freed block waits in a cache of its size class for the next bucket's
// request of that class (its pages stay resident: no fault, no zeroing), up to a cache limit beyond which the
// least recently freed blocks are unmapped.
//
// Every block starts with a header (kHeader bytes) holding its requested size and mapping, so that one
// `release` frees either kind: below kMinPooled bytes a block comes from malloc (with the header in front),
// at and above it from the pool. The C++ side uses pool::vector for bucket-sized vectors; numpy uses the
// same pool through a NEP 49 allocator (csrc/bind_numpy.hpp) while the ingest's sort+write runs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace claimsfm::pool {

inline constexpr size_t kHeader = 64;             // bytes before each block's data (keeps it 16-/64-byte aligned)
inline constexpr size_t kMinPooled = 64 << 10;    // smaller requests go to malloc
inline constexpr size_t kDefaultCacheLimit = 96u << 20;  // freed bytes kept mapped for reuse, at most

// n bytes (n may be 0), 16-byte aligned; with `zero` all n are 0. Throws std::bad_alloc when out of memory.
void* allocate(size_t n, bool zero = false);
// realloc: the first min(old, n) bytes are kept; p may be null.
void* reallocate(void* p, size_t n);
// Frees a block from allocate/reallocate (null: nothing). Aborts on a pointer that is not one.
void release(void* p) noexcept;
// The requested size of a block.
size_t size_of(const void* p) noexcept;

struct Stats {
  uint64_t mapped_bytes = 0;   // held from the OS now, in use or cached
  uint64_t cached_bytes = 0;   // of which freed and waiting for reuse
  uint64_t peak_mapped_bytes = 0;
  uint64_t maps = 0, reuses = 0, unmaps = 0;
};
Stats stats();
void trim() noexcept;                // unmaps every cached block
void set_cache_limit(size_t bytes);  // and unmaps the oldest cached blocks beyond it
size_t cache_limit();
size_t class_length(size_t n);       // the mapping length of a pooled request of n bytes (header included)

template <typename T>
struct Allocator {
  using value_type = T;
  Allocator() noexcept = default;
  template <typename U>
  Allocator(const Allocator<U>&) noexcept {}
  T* allocate(size_t n) {
    if (n > SIZE_MAX / sizeof(T)) throw std::bad_alloc();
    return static_cast<T*>(pool::allocate(n * sizeof(T)));
  }
  void deallocate(T* p, size_t) noexcept { pool::release(p); }
  template <typename U>
  bool operator==(const Allocator<U>&) const noexcept { return true; }
  template <typename U>
  bool operator!=(const Allocator<U>&) const noexcept { return false; }
};

template <typename T>
using vector = std::vector<T, Allocator<T>>;

}  // namespace claimsfm::pool
