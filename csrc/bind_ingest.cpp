// Bindings for ingestion (UKE and CSV parsers); registered by bindings.cpp through bind_ingest().
#include <atomic>

#include "bind_numpy.hpp"
#include "csv_parser.hpp"
#include "uke_parser.hpp"

namespace claimsfm_bind {
namespace {

// A byte counter the parser advances from its threads while Python polls it for a progress bar.
struct Progress {
  std::atomic<int64_t> bytes{0};
};

py::dict uke_result(claimsfm::UkeResult&& r) {
  py::dict d;
  d["key"] = to_numpy(std::move(r.events.key));
  d["day"] = to_numpy(std::move(r.events.day));
  d["code"] = to_numpy(std::move(r.events.code));
  d["value"] = to_numpy(std::move(r.events.value));
  d["facility"] = to_numpy(std::move(r.events.facility));
  d["suspected"] = to_numpy(std::move(r.events.suspected));
  d["dx_start"] = to_numpy(std::move(r.events.dx_start));
  d["codes"] = py::cast(r.codes);
  py::list keys;
  for (const std::string& k : r.keys) keys.append(py::bytes(k));
  d["keys"] = keys;
  d["key_utf8"] = to_numpy(std::move(r.key_utf8));
  d["facilities"] = py::cast(r.facilities);
  py::list rejects;
  for (const claimsfm::Reject& x : r.rejects)
    rejects.append(py::make_tuple(x.file, x.line, x.reason, py::bytes(x.text)));
  d["rejects"] = rejects;
  const claimsfm::UkeStats& s = r.stats;
  py::dict st;
#define CLAIMSFM_STAT(name) st[#name] = s.name;
  CLAIMSFM_UKE_STATS(CLAIMSFM_STAT)
#undef CLAIMSFM_STAT
  d["stats"] = st;
  return d;
}

py::dict parse_uke(const std::vector<std::string>& paths, const std::string& link_by,
                   bool stop_at_first_error, int threads, Progress* progress) {
  claimsfm::UkeOptions opt;
  if (link_by != "chart" && link_by != "insurer") throw py::value_error("link_by: chart|insurer");
  opt.link_by = link_by == "insurer" ? claimsfm::LinkBy::insurer : claimsfm::LinkBy::chart;
  opt.stop_at_first_error = stop_at_first_error;
  opt.threads = threads;
  claimsfm::UkeResult r;
  {
    py::gil_scoped_release release;
    r = claimsfm::parse_uke_files(paths, opt, progress ? &progress->bytes : nullptr);
  }
  return uke_result(std::move(r));
}

py::dict parse_csv(const std::string& path, int threads, bool skip_bad) {
  claimsfm::CsvResult r;
  {
    py::gil_scoped_release release;
    r = claimsfm::parse_csv_file(path, threads, skip_bad);
  }
  py::dict d;
  d["subject_id"] = to_numpy(std::move(r.subject));
  d["time_us"] = to_numpy(std::move(r.time_us));
  d["code"] = to_numpy(std::move(r.code));
  d["value"] = to_numpy(std::move(r.value));
  d["codes"] = py::cast(r.codes);
  py::list rejects;
  for (const claimsfm::CsvReject& x : r.rejects) rejects.append(py::make_tuple(x.line, x.reason));
  d["rejects"] = rejects;
  d["rows"] = r.rows;
  d["bytes"] = r.bytes;
  d["has_value_column"] = r.has_value_column;
  return d;
}

py::tuple group_by_subject(py::array_t<int64_t, py::array::c_style | py::array::forcecast> subject,
                           py::array_t<int64_t, py::array::c_style | py::array::forcecast> time_us,
                           int threads) {
  if (subject.size() != time_us.size()) throw py::value_error("subject and time_us differ in length");
  std::vector<int64_t> order, offsets, subjects;
  {
    // The arrays are read in place (both are held by this call, so numpy cannot free them).
    py::gil_scoped_release release;
    order = claimsfm::group_by_subject(subject.data(), time_us.data(),
                                       static_cast<size_t>(subject.size()), offsets, subjects, threads);
  }
  return py::make_tuple(to_numpy(std::move(order)), to_numpy(std::move(offsets)),
                        to_numpy(std::move(subjects)));
}

}  // namespace

void bind_ingest(py::module_& m) {
#define CLAIMSFM_STAT_NAME(name) #name,
  m.attr("UKE_STAT_KEYS") = py::tuple(py::cast(std::vector<std::string>{CLAIMSFM_UKE_STATS(CLAIMSFM_STAT_NAME)}));
#undef CLAIMSFM_STAT_NAME
  py::class_<Progress>(m, "Progress", "Bytes parsed so far, advanced by the parser threads.")
      .def(py::init<>())
      .def_property_readonly("value", [](const Progress& p) { return p.bytes.load(); });
  m.def("parse_uke", &parse_uke, py::arg("paths"), py::arg("link_by") = "chart",
        py::arg("stop_at_first_error") = true, py::arg("threads") = 1,
        py::arg("progress") = nullptr,
        "Parse UKE files into raw event columns (see csrc/uke_parser.hpp).");
  m.def("parse_csv", &parse_csv, py::arg("path"), py::arg("threads") = 1,
        py::arg("skip_bad") = false, "Parse a subject_id,time,code[,numeric_value] CSV.");
  m.def("group_by_subject", &group_by_subject, py::arg("subject"), py::arg("time_us"),
        py::arg("threads") = 1,
        "Permutation grouping events by subject, time-ordered: (order, offsets, subjects).");
}

}  // namespace claimsfm_bind
