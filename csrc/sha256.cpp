#include "sha256.hpp"

#include <cstring>
#include <string>
#include <vector>

namespace claimsfm {

namespace {

constexpr uint32_t kRound[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

// Python's str.isspace() on ASCII: \t \n \v \f \r, the separators 0x1C-0x1F, and the space.
inline bool py_space(unsigned char c) { return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20); }

std::string_view strip(std::string_view s) {
  while (!s.empty() && py_space(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && py_space(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace

Sha256::Sha256() : h_{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19} {}

void Sha256::block(const uint8_t* p) {
  uint32_t w[64];
  for (int i = 0; i < 16; ++i) {
    w[i] = (uint32_t{p[4 * i]} << 24) | (uint32_t{p[4 * i + 1]} << 16) | (uint32_t{p[4 * i + 2]} << 8) | p[4 * i + 3];
  }
  for (int i = 16; i < 64; ++i) {
    const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6], h = h_[7];
  for (int i = 0; i < 64; ++i) {
    const uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + kRound[i] + w[i];
    const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  h_[0] += a; h_[1] += b; h_[2] += c; h_[3] += d; h_[4] += e; h_[5] += f; h_[6] += g; h_[7] += h;
}

void Sha256::update(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  bytes_ += n;
  if (fill_) {
    const size_t take = std::min(n, sizeof buf_ - fill_);
    std::memcpy(buf_ + fill_, p, take);
    fill_ += take;
    p += take;
    n -= take;
    if (fill_ < sizeof buf_) return;
    block(buf_);
    fill_ = 0;
  }
  for (; n >= 64; p += 64, n -= 64) block(p);
  std::memcpy(buf_, p, n);
  fill_ = n;
}

Digest Sha256::digest() const {
  Sha256 s = *this;
  const uint64_t bits = bytes_ * 8;
  const uint8_t one = 0x80, zero[64] = {};
  s.update(&one, 1);
  s.update(zero, (s.fill_ <= 56 ? 56 - s.fill_ : 120 - s.fill_));
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(bits >> (56 - 8 * i));
  s.update(len, 8);
  Digest out;
  for (int i = 0; i < 8; ++i) {
    for (int j = 0; j < 4; ++j) out[4 * i + j] = static_cast<uint8_t>(s.h_[i] >> (24 - 8 * j));
  }
  return out;
}

HmacSha256::HmacSha256(std::string_view key) {
  uint8_t pad[64] = {};
  if (key.size() > sizeof pad) {
    Sha256 k;
    k.update(key.data(), key.size());
    const Digest d = k.digest();
    std::memcpy(pad, d.data(), d.size());
  } else {
    std::memcpy(pad, key.data(), key.size());
  }
  uint8_t in[64], out[64];
  for (int i = 0; i < 64; ++i) {
    in[i] = pad[i] ^ 0x36;
    out[i] = pad[i] ^ 0x5C;
  }
  inner_.update(in, sizeof in);
  outer_.update(out, sizeof out);
}

Digest HmacSha256::mac(std::string_view message) const {
  Sha256 i = inner_;
  i.update(message.data(), message.size());
  const Digest d = i.digest();
  Sha256 o = outer_;
  o.update(d.data(), d.size());
  return o.digest();
}

std::optional<int64_t> ascii_subject_id(const HmacSha256& hmac, std::string_view raw) {
  for (char c : raw) {
    if (static_cast<unsigned char>(c) >= 0x80) return std::nullopt;
  }
  std::vector<std::string_view> parts;
  for (size_t at = 0;;) {
    const size_t sep = raw.find('\x1f', at);
    parts.push_back(strip(raw.substr(at, sep == std::string_view::npos ? std::string_view::npos : sep - at)));
    if (sep == std::string_view::npos) break;
    at = sep + 1;
  }
  const bool by_name = parts[0] == "N";
  if (by_name && parts.size() < 3) return std::nullopt;  // not a key the parser makes: Python's rules decide
  std::string key;
  key.reserve(raw.size());
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) key += '\x1f';
    if (by_name && i == 2) {
      for (char c : parts[i]) {
        if (!py_space(static_cast<unsigned char>(c))) key += c;
      }
    } else {
      key += parts[i];
    }
  }
  const Digest d = hmac.mac(key);
  uint64_t head = 0;
  for (int i = 0; i < 8; ++i) head = (head << 8) | d[i];
  return static_cast<int64_t>(head >> 1);
}

}  // namespace claimsfm
