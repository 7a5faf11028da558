// The module claimsfm._native: plain C++17 core in csrc/*.hpp, bindings in bind_ingest.cpp and
// bind_data.cpp (each converts arguments, releases the GIL around the core, returns numpy arrays).
// Only bindings.cpp, bind_*.cpp and bind_numpy.hpp see pybind11. claimsfm/_native.pyi describes
// every binding and its result keys.
#include <string>

#include "bind_numpy.hpp"

PYBIND11_MODULE(_native, m) {
  using claimsfm_bind::kAbiVersion;
  m.doc() = "claimsfm native core: UKE/CSV parsing, token store sequences, packing, masking";
  m.attr("ABI_VERSION") = kAbiVersion;
  // The Python side states the interface it was written against; a stale build must not load silently.
  const int expected = py::module_::import("claimsfm.native").attr("ABI_VERSION").cast<int>();
  if (expected != kAbiVersion) {
    throw py::import_error("claimsfm._native was built with ABI_VERSION " + std::to_string(kAbiVersion) +
                           ", but this claimsfm needs " + std::to_string(expected) +
                           "; rebuild it: pip install --no-build-isolation -e .");
  }
  claimsfm_bind::bind_ingest(m);
  claimsfm_bind::bind_data(m);
}
