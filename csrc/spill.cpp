#include "spill.hpp"

#include <cstdio>
#include <memory>
#include <stdexcept>

#include "uke_parser.hpp"

namespace claimsfm {

namespace {

using File = std::unique_ptr<std::FILE, int (*)(std::FILE*)>;

File open_file(const std::string& path, const char* mode) {
  File f(std::fopen(path.c_str(), mode), &std::fclose);
  if (!f) throw std::runtime_error("cannot open " + path);
  return f;
}

}  // namespace

std::vector<int64_t> partition_spill(const std::string& spill_path, const uint16_t* bucket_of_key, int64_t n_keys,
                                     const std::vector<std::string>& bucket_paths,
                                     std::atomic<int64_t>* bytes_done) {
  const size_t n_buckets = bucket_paths.size();
  File in = open_file(spill_path, "rb");
  std::vector<File> out;
  out.reserve(n_buckets);
  for (const std::string& p : bucket_paths) out.push_back(open_file(p, "wb"));
  // Rows wait in a small buffer per bucket, so that each fwrite moves a few hundred rows.
  constexpr size_t kBuf = 512, kChunk = 1 << 16;
  std::vector<std::vector<SpillRow>> buf(n_buckets);
  std::vector<int64_t> counts(n_buckets, 0);
  auto flush = [&](size_t b) {
    if (!buf[b].empty() && std::fwrite(buf[b].data(), sizeof(SpillRow), buf[b].size(), out[b].get()) != buf[b].size())
      throw std::runtime_error("cannot write " + bucket_paths[b] + " (disk full?)");
    buf[b].clear();
  };
  std::vector<SpillRow> chunk(kChunk);
  for (size_t got; (got = std::fread(chunk.data(), sizeof(SpillRow), kChunk, in.get())) > 0;) {
    for (size_t i = 0; i < got; ++i) {
      const int32_t key = chunk[i].key;
      if (key < 0 || key >= n_keys) throw std::runtime_error("spill row with a key out of range");
      const uint16_t b = bucket_of_key[key];
      if (b >= n_buckets) throw std::runtime_error("bucket out of range");
      buf[b].push_back(chunk[i]);
      ++counts[b];
      if (buf[b].size() == kBuf) flush(b);
    }
    if (bytes_done) bytes_done->fetch_add(static_cast<int64_t>(got * sizeof(SpillRow)));
  }
  if (std::ferror(in.get())) throw std::runtime_error("cannot read " + spill_path);
  for (size_t b = 0; b < n_buckets; ++b) {
    flush(b);
    if (std::fflush(out[b].get()) != 0) throw std::runtime_error("cannot write " + bucket_paths[b]);
  }
  return counts;
}

}  // namespace claimsfm
