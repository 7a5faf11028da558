// The only translation unit that sees pybind11. It converts arguments, releases the GIL around
// the plain C++17 core in csrc/*.hpp, and returns numpy arrays. The binding code of each area
// lives in a bind_*.inc fragment included below (textually part of this file) so that areas
// can be read separately; none of them includes pybind11 itself.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

namespace py = pybind11;

#include "bind_ingest.inc"
#include "bind_data.inc"

PYBIND11_MODULE(_native, m) {
  m.doc() = "claimsfm native core: UKE/CSV parsing, token store sequences, packing, masking";
  m.attr("ABI_VERSION") = 1;
  bind_ingest(m);
  bind_data(m);
}
