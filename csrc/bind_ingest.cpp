// Bindings for ingestion (UKE and CSV parsers); registered by bindings.cpp through bind_ingest().
#include <atomic>

#include "bind_numpy.hpp"
#include "bucket_events.hpp"
#include "csv_parser.hpp"
#include "event_sort.hpp"
#include "sha256.hpp"
#include "spill.hpp"
#include "uke_parser.hpp"

namespace claimsfm_bind {
namespace {

// A byte counter the parser advances from its threads while Python polls it for a progress bar.
struct Progress {
  std::atomic<int64_t> bytes{0};
};

// Patient keys as one bytes object and (n+1,) offsets: a list of n bytes objects costs ~60 bytes a key
// more, and the spill path (where memory must not grow with the corpus) only streams through them once.
void keys_blob(py::dict& d, std::vector<std::string>&& keys) {
  std::vector<int64_t> offsets(keys.size() + 1, 0);
  for (size_t i = 0; i < keys.size(); ++i) offsets[i + 1] = offsets[i] + static_cast<int64_t>(keys[i].size());
  py::bytes blob(nullptr, 0);
  {
    std::string all;
    all.reserve(static_cast<size_t>(offsets.back()));
    for (std::string& k : keys) {
      all += k;
      std::string().swap(k);  // free as we go
    }
    blob = py::bytes(all);
  }
  d["keys_blob"] = blob;
  d["key_offsets"] = to_numpy(std::move(offsets));
}

enum class Keys { list, blob, none };

py::dict uke_result(claimsfm::UkeResult&& r, Keys keys_as) {
  py::dict d;
  d["key"] = to_numpy(std::move(r.events.key));
  d["day"] = to_numpy(std::move(r.events.day));
  d["code"] = to_numpy(std::move(r.events.code));
  d["value"] = to_numpy(std::move(r.events.value));
  d["facility"] = to_numpy(std::move(r.events.facility));
  d["suspected"] = to_numpy(std::move(r.events.suspected));
  d["dx_start"] = to_numpy(std::move(r.events.dx_start));
  d["codes"] = py::cast(r.codes);
  if (keys_as == Keys::blob) {
    keys_blob(d, std::move(r.keys));
  } else if (keys_as == Keys::list) {
    py::list keys;
    for (const std::string& k : r.keys) keys.append(py::bytes(k));
    d["keys"] = keys;
  }
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
  d["spilled"] = r.spilled;
  d["key_sid"] = to_numpy(std::move(r.key_sid));
  d["bucket_rows"] = to_numpy(std::move(r.bucket_rows));
  return d;
}

py::dict parse_uke(const std::vector<std::string>& paths, const std::string& link_by,
                   bool stop_at_first_error, int threads, Progress* progress, const std::string& spill,
                   const std::vector<std::string>& buckets, const py::bytes& salt, py::object subject_id,
                   size_t piece_bytes) {
  claimsfm::UkeOptions opt;
  if (piece_bytes > 0) opt.piece_bytes = piece_bytes;
  if (link_by != "chart" && link_by != "insurer") throw py::value_error("link_by: chart|insurer");
  opt.link_by = link_by == "insurer" ? claimsfm::LinkBy::insurer : claimsfm::LinkBy::chart;
  opt.stop_at_first_error = stop_at_first_error;
  opt.threads = threads;
  if (!buckets.empty() && (subject_id.is_none() || !spill.empty())) {
    throw py::value_error("parse_uke: buckets need subject_id and no spill file");
  }
  const claimsfm::HmacSha256 hmac{std::string_view(salt)};
  claimsfm::SpillBuckets spec;
  spec.paths = buckets;
  // ASCII keys are hashed here, on the merging thread; any other key goes to Python's canonical_key (NFKC)
  // through `subject_id`, under the GIL.
  spec.subject_id = [&](const std::string& key, bool utf8) -> int64_t {
    if (const auto sid = claimsfm::ascii_subject_id(hmac, key)) return *sid;
    py::gil_scoped_acquire gil;
    try {
      return subject_id(py::bytes(key), utf8).cast<int64_t>();
    } catch (py::error_already_set& e) {
      // The exception's type only: its message or traceback could quote the patient key.
      throw std::runtime_error("subject_id: the pseudonymisation callback raised " +
                               py::str(e.type().attr("__name__")).cast<std::string>());
    }
  };
  claimsfm::UkeResult r;
  {
    py::gil_scoped_release release;
    r = claimsfm::parse_uke_files(paths, opt, progress ? &progress->bytes : nullptr, spill,
                                  buckets.empty() ? nullptr : &spec);
  }
  // With buckets the keys have done their work (key_sid): they never reach Python.
  return uke_result(std::move(r), !buckets.empty() ? Keys::none : !spill.empty() ? Keys::blob : Keys::list);
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

py::array_t<int64_t> sort_events(carray<int64_t> subject, carray<int64_t> time_us, carray<int64_t> packed,
                                 carray<float> value, carray<int64_t> dx_start) {
  const py::ssize_t n = subject.size();
  if (time_us.size() != n || packed.size() != n || value.size() != n || dx_start.size() != n) {
    throw py::value_error("sort_events: the columns differ in length");
  }
  std::vector<int64_t> order(static_cast<size_t>(n));
  {
    py::gil_scoped_release release;  // the arrays are held by this call
    claimsfm::sort_events(subject.data(), time_us.data(), packed.data(), value.data(), dx_start.data(), n,
                          order.data());
  }
  return to_numpy(std::move(order));
}

py::dict bucket_events(const std::vector<std::string>& paths, carray<int64_t> key_sid, carray<int64_t> code_rank,
                       carray<uint8_t> code_rule, carray<int64_t> facility_rank) {
  if (code_rank.size() != code_rule.size()) throw py::value_error("bucket_events: code_rank and code_rule differ");
  const claimsfm::BucketTables tables{key_sid.data(), key_sid.size(), code_rank.data(), code_rule.data(),
                                      code_rank.size(), facility_rank.data(), facility_rank.size()};
  claimsfm::BucketEvents e;
  {
    py::gil_scoped_release release;  // the tables are held by this call
    e = claimsfm::bucket_events(paths, tables);
  }
  py::dict d;
  d["subject"] = to_numpy(std::move(e.subject));
  d["time_us"] = to_numpy(std::move(e.time_us));
  d["code"] = to_numpy(std::move(e.code));
  d["value"] = to_numpy(std::move(e.value));
  d["facility"] = to_numpy(std::move(e.facility));
  d["suspected"] = to_numpy(std::move(e.suspected));
  d["dx_start_us"] = to_numpy(std::move(e.dx_start_us));
  return d;
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
        py::arg("progress") = nullptr, py::arg("spill") = "", py::arg("buckets") = std::vector<std::string>{},
        py::arg("salt") = py::bytes(""), py::arg("subject_id") = py::none(), py::arg("piece_bytes") = 0,
        "Parse UKE files into raw event columns (see csrc/uke_parser.hpp); with `spill`, the events go to "
        "that file as spill records (csrc/spill.hpp), the columns come back empty and the keys as keys_blob + key_offsets; "
        "with `buckets` (and the salt, and subject_id(raw_key, utf8) for non-ASCII keys) each event goes to "
        "the file of its subject_id range and key_sid / bucket_rows come back instead of the keys. Files larger than "
        "piece_bytes (0: UkeOptions' default, 8 MiB) are parsed in pieces; the result is the same.");
  m.def("parse_csv", &parse_csv, py::arg("path"), py::arg("threads") = 1,
        py::arg("skip_bad") = false, "Parse a subject_id,time,code[,numeric_value] CSV.");
  m.def("sort_events", &sort_events, py::arg("subject"), py::arg("time_us"), py::arg("packed"), py::arg("value"),
        py::arg("dx_start"), "Permutation in ingest's total event order (see csrc/event_sort.hpp).");
  m.def("bucket_events", &bucket_events, py::arg("paths"), py::arg("key_sid"), py::arg("code_rank"),
        py::arg("code_rule"), py::arg("facility_rank"),
        "Bucket files (consecutive subject_id ranges) -> their de-duplicated events in ingest's total order (see csrc/bucket_events.hpp).");
  m.def("group_by_subject", &group_by_subject, py::arg("subject"), py::arg("time_us"),
        py::arg("threads") = 1,
        "Permutation grouping events by subject, time-ordered: (order, offsets, subjects).");
}

}  // namespace claimsfm_bind
