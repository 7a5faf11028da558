// Bindings for store building, the sequence builder, packer and MLM masking; registered by bindings.cpp
// through bind_data().
// Arguments arrive as C-contiguous numpy arrays of the exact dtypes (claimsfm/data/*.py converts and
// validates them); the core runs without the GIL; results come back as numpy arrays that own the core's
// vectors (moved, not copied) or that the core wrote into directly.
#include <optional>
#include <vector>

#include "bind_numpy.hpp"
#include "mask.hpp"
#include "pack.hpp"
#include "sequence.hpp"
#include "store.hpp"

namespace claimsfm_bind {
namespace {

claimsfm::StoreView store_view(const carray<int64_t>& offsets, const carray<int32_t>& token,
                               const carray<int32_t>& day, const carray<int32_t>& visit,
                               const carray<int32_t>& birth_day) {
  const int64_t n = static_cast<int64_t>(offsets.size()) - 1;
  const int64_t events = static_cast<int64_t>(token.size());
  if (n < 0 || birth_day.size() != n || day.size() != events || visit.size() != events ||
      offsets.at(n) != events) {
    throw std::invalid_argument("inconsistent store arrays (offsets / token / day / visit / birth_day)");
  }
  return {offsets.data(), token.data(), day.data(), visit.data(), birth_day.data(), n, events};
}

const int32_t* cutoff_ptr(const std::optional<carray<int32_t>>& cutoff, py::ssize_t k) {
  if (!cutoff) return nullptr;
  if (cutoff->size() != k) throw std::invalid_argument("cutoff_day / reference_day need one entry per subject");
  return cutoff->data();
}

}  // namespace

void bind_data(py::module_& m) {
  m.def(
      "sequence_lengths",
      [](carray<int64_t> offsets, carray<int32_t> token, carray<int32_t> day, carray<int32_t> visit,
         carray<int32_t> birth_day, carray<int64_t> subjects, std::optional<carray<int32_t>> cutoff,
         int32_t max_len) {
        auto view = store_view(offsets, token, day, visit, birth_day);
        const int32_t* cut = cutoff_ptr(cutoff, subjects.size());
        py::array_t<int64_t> out(subjects.size());
        int64_t* dst = out.mutable_data();
        {
          py::gil_scoped_release release;
          claimsfm::sequence_lengths(view, subjects.data(), cut, subjects.size(), max_len, dst);
        }
        return out;
      },
      "Sequence length (with [CLS]) per subject. -> (k,) int64");
  m.def(
      "build_sequences",
      [](carray<int64_t> offsets, carray<int32_t> token, carray<int32_t> day, carray<int32_t> visit,
         carray<int32_t> birth_day, carray<int64_t> subjects, std::optional<carray<int32_t>> cutoff,
         std::optional<carray<int32_t>> reference, int32_t max_len) {
        auto view = store_view(offsets, token, day, visit, birth_day);
        const int32_t* cut = cutoff_ptr(cutoff, subjects.size());
        const int32_t* ref = cutoff_ptr(reference, subjects.size());
        claimsfm::Sequences seqs;
        {
          py::gil_scoped_release release;
          claimsfm::build_sequences(view, subjects.data(), cut, ref, subjects.size(), max_len, seqs);
        }
        return py::make_tuple(to_numpy(std::move(seqs.offsets)), to_numpy(std::move(seqs.input_ids)),
                              to_numpy(std::move(seqs.age_months)), to_numpy(std::move(seqs.visit)),
                              to_numpy(std::move(seqs.months)), to_numpy(std::move(seqs.segment)),
                              to_numpy(std::move(seqs.days_before)), to_numpy(std::move(seqs.gap_days)));
      },
      "(offsets, input_ids, age_months, visit, months, segment, days_before, gap_days) CSR arrays of the "
      "subjects' sequences");
  m.def(
      "pack_ffd",
      [](carray<int64_t> lengths, int64_t max_tokens) {
        py::array_t<int64_t> rows(lengths.size());
        int64_t* dst = rows.mutable_data();
        {
          py::gil_scoped_release release;
          claimsfm::pack_ffd(lengths.data(), lengths.size(), max_tokens, dst);
        }
        return rows;
      },
      "First-fit-decreasing row of each length. (n,) int64 -> (n,) int64");
  m.def(
      "order_events",
      [](carray<int64_t> subject, carray<int32_t> day, carray<int32_t> facility, carray<int32_t> code,
         carray<uint8_t> inpatient, int64_t n_subjects) {
        const py::ssize_t n = subject.size();
        if (day.size() != n || facility.size() != n || code.size() != n || inpatient.size() != n) {
          throw std::invalid_argument("order_events: arrays of different lengths");
        }
        py::array_t<int64_t> order(n);
        py::array_t<int32_t> visit(n);
        py::array_t<uint8_t> visit_inpatient(n);
        int64_t* o = order.mutable_data();
        int32_t* v = visit.mutable_data();
        uint8_t* vi = visit_inpatient.mutable_data();
        {
          py::gil_scoped_release release;
          claimsfm::order_events(subject.data(), day.data(), facility.data(), code.data(), inpatient.data(), n,
                                 n_subjects, o, v, vi);
        }
        return py::make_tuple(order, visit, visit_inpatient);
      },
      "Store build: (order (n,) int64 by (subject, day, visit, code), visit (n,) int32, visit_inpatient (n,) uint8)");
  m.def(
      "store_rows",
      [](carray<int64_t> subject, carray<int64_t> time_us, carray<int32_t> code, carray<int32_t> facility,
         carray<uint8_t> suspected, carray<float> value, carray<int64_t> code_rank, carray<int64_t> facility_rank,
         int32_t birth, int32_t death, int32_t inpatient, const std::vector<std::pair<int32_t, int8_t>>& sex_codes,
         uint8_t flag_suspected, uint8_t flag_inpatient) {
        const py::ssize_t n = subject.size();
        if (time_us.size() != n || code.size() != n || facility.size() != n || suspected.size() != n ||
            value.size() != n) {
          throw std::invalid_argument("store_rows: arrays of different lengths");
        }
        claimsfm::StoreRows r;
        {
          py::gil_scoped_release release;  // the arrays are held by this call
          r = claimsfm::store_rows(subject.data(), time_us.data(), code.data(), facility.data(), suspected.data(),
                                   value.data(), n, code_rank.data(), code_rank.size(), facility_rank.data(),
                                   facility_rank.size(), birth, death, inpatient, sex_codes, flag_suspected,
                                   flag_inpatient);
        }
        py::dict d;
        d["subject_ids"] = to_numpy(std::move(r.ids));
        d["counts"] = to_numpy(std::move(r.counts));
        d["birth_day"] = to_numpy(std::move(r.birth_day));
        d["death_day"] = to_numpy(std::move(r.death_day));
        d["sex"] = to_numpy(std::move(r.sex));
        d["code"] = to_numpy(std::move(r.code));
        d["day"] = to_numpy(std::move(r.day));
        d["visit"] = to_numpy(std::move(r.visit));
        d["flags"] = to_numpy(std::move(r.flags));
        d["value"] = to_numpy(std::move(r.value));
        d["day_range"] = py::make_tuple(r.day_min, r.day_max);
        return d;
      },
      py::arg("subject"), py::arg("time_us"), py::arg("code"), py::arg("facility"), py::arg("suspected"),
      py::arg("value"), py::arg("code_rank"), py::arg("facility_rank"), py::arg("birth"), py::arg("death"),
      py::arg("inpatient"), py::arg("sex_codes"), py::arg("flag_suspected"), py::arg("flag_inpatient"),
      "Token store rows of one sorted bucket (see csrc/store.hpp; data/stream.py StoreWriter.prepare)");
  m.def("mlm_batch_key", &claimsfm::mlm_batch_key, py::arg("seed"), py::arg("epoch"), py::arg("step"),
        "Key of the MLM draws of batch (seed, epoch, step)");
  m.def(
      "mlm_mask",
      [](carray<int32_t> input_ids, carray<int64_t> cu_seqlens, uint64_t key, int32_t vocab_size,
         double mask_prob) {
        const int64_t n_seqs = static_cast<int64_t>(cu_seqlens.size()) - 1;
        if (n_seqs < 0 || cu_seqlens.at(n_seqs) != static_cast<int64_t>(input_ids.size())) {
          throw std::invalid_argument("cu_seqlens must end at the number of tokens");
        }
        py::array_t<int32_t> ids(input_ids.size());
        py::array_t<int64_t> labels(input_ids.size());
        int32_t* ids_ptr = ids.mutable_data();
        int64_t* labels_ptr = labels.mutable_data();
        {
          py::gil_scoped_release release;
          claimsfm::mlm_mask(input_ids.data(), cu_seqlens.data(), n_seqs, key, vocab_size, mask_prob, ids_ptr,
                             labels_ptr);
        }
        return py::make_tuple(ids, labels);
      },
      "MLM masking of a flat batch: (masked input_ids (T,) int32, labels (T,) int64, -100 = no target)");
}

}  // namespace claimsfm_bind
