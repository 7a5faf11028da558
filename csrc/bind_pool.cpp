// The block pool (csrc/block_pool.hpp) seen from Python: its statistics and limit, and a NEP 49 allocator
// through which numpy takes its arrays' memory from the pool while the ingest's sort+write runs
// (claimsfm/ingest/spill.py pooled()). numpy keeps a reference to the allocator in every array made under it,
// so such an array is freed through the pool whenever and wherever it dies.
#include <Python.h>

#include <cstdint>
#include <new>

#include "bind_numpy.hpp"
#include "block_pool.hpp"

namespace claimsfm_bind {

namespace {

namespace pool = claimsfm::pool;

// numpy/ndarraytypes.h, NEP 49 (numpy >= 1.22): the version-1 handler layout.
struct PyDataMemAllocator {
  void* ctx;
  void* (*malloc)(void* ctx, size_t size);
  void* (*calloc)(void* ctx, size_t nelem, size_t elsize);
  void* (*realloc)(void* ctx, void* ptr, size_t new_size);
  void (*free)(void* ctx, void* ptr, size_t size);
};
struct PyDataMem_Handler {
  char name[127];
  uint8_t version;
  PyDataMemAllocator allocator;
};
constexpr int kSetHandlerSlot = 304;  // PyDataMem_SetHandler in numpy's C-API table (__multiarray_api.h)

void* np_malloc(void*, size_t n) {
  try {
    return pool::allocate(n);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

void* np_calloc(void*, size_t nelem, size_t elsize) {
  if (elsize && nelem > SIZE_MAX / elsize) return nullptr;
  try {
    return pool::allocate(nelem * elsize, true);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

void* np_realloc(void*, void* p, size_t n) {
  try {
    return pool::reallocate(p, n);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

void np_free(void*, void* p, size_t) { pool::release(p); }

PyDataMem_Handler handler = {"claimsfm_block_pool", 1, {nullptr, np_malloc, np_calloc, np_realloc, np_free}};

using SetHandler = PyObject* (*)(PyObject*);

SetHandler numpy_set_handler() {
  py::object umath;
  try {
    umath = py::module_::import("numpy._core._multiarray_umath");  // numpy 2
  } catch (const py::error_already_set&) {
    umath = py::module_::import("numpy.core._multiarray_umath");   // numpy 1.x
  }
  py::object api = umath.attr("_ARRAY_API");
  void** table = static_cast<void**>(PyCapsule_GetPointer(api.ptr(), nullptr));
  if (!table) throw py::error_already_set();
  return reinterpret_cast<SetHandler>(table[kSetHandlerSlot]);
}

}  // namespace

void bind_pool(py::module_& m) {
  m.def(
      "numpy_pool",
      [](bool on) {
        static PyObject* capsule = PyCapsule_New(&handler, "mem_handler", nullptr);  // kept for the process
        static SetHandler set = numpy_set_handler();
        if (!capsule) throw py::error_already_set();
        // NULL restores numpy's default handler. The setting is per context (a contextvar): each thread sets it.
        PyObject* old = set(on ? capsule : nullptr);
        if (!old) throw py::error_already_set();
        Py_DECREF(old);
      },
      py::arg("on"),
      "numpy arrays allocated from now on in this thread (context) take their memory from the block pool "
      "(on) or from numpy's default allocator (off).");
  m.def(
      "pool_stats",
      []() {
        const pool::Stats s = pool::stats();
        py::dict d;
        d["mapped_bytes"] = s.mapped_bytes;
        d["cached_bytes"] = s.cached_bytes;
        d["peak_mapped_bytes"] = s.peak_mapped_bytes;
        d["maps"] = s.maps;
        d["reuses"] = s.reuses;
        d["unmaps"] = s.unmaps;
        d["cache_limit"] = pool::cache_limit();
        return d;
      },
      "The block pool's counters: bytes mapped now (in use or cached), cached, peak mapped; maps, reuses, "
      "unmaps; the cache limit.");
  m.def("pool_trim", &pool::trim, "Unmap every cached block of the block pool.");
  m.def("pool_cache_limit", &pool::set_cache_limit, py::arg("bytes"),
        "Keep at most this many freed bytes mapped for reuse (the oldest beyond it are unmapped now).");
}

}  // namespace claimsfm_bind
