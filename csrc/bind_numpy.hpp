// What the binding files (csrc/bindings.cpp, csrc/bind_*.cpp, the only code that sees pybind11) share:
// the interface version, numpy argument and result conversion, and each area's registration function.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <vector>

namespace py = pybind11;

namespace claimsfm_bind {

// The interface of claimsfm._native (names, arguments, result keys). Bump it with any such change,
// together with ABI_VERSION in claimsfm/native.py: importing the module checks that the two agree.
inline constexpr int kAbiVersion = 5;

// A numpy argument: converted to a C-contiguous array of T (a no-op when it already is one).
template <typename T>
using carray = py::array_t<T, py::array::c_style | py::array::forcecast>;

// Hand a vector to numpy without copying: the array owns the moved vector through a capsule.
template <typename T>
py::array_t<T> to_numpy(std::vector<T>&& v) {
  auto* heap = new std::vector<T>(std::move(v));
  py::capsule owner(heap, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>({static_cast<py::ssize_t>(heap->size())}, {sizeof(T)}, heap->data(), owner);
}

void bind_ingest(py::module_& m);  // bind_ingest.cpp: UKE and CSV parsers
void bind_data(py::module_& m);    // bind_data.cpp: store building, sequences, packing, masking

}  // namespace claimsfm_bind
