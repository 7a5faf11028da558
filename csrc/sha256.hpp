// SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104) for pseudonymising patient keys in the parser
// threads (claimsfm/ingest/pseudo.py is the Python twin, tests/ingest/test_spill.py compares them).
// Plain C++17, no Python, no OpenSSL.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace claimsfm {

using Digest = std::array<uint8_t, 32>;

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n);
  Digest digest() const;  // of everything so far; the state is not consumed

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  uint64_t bytes_ = 0;
  size_t fill_ = 0;
};

// HMAC-SHA256 with the key's inner and outer pad states computed once and copied per message.
class HmacSha256 {
 public:
  explicit HmacSha256(std::string_view key);
  Digest mac(std::string_view message) const;

 private:
  Sha256 inner_, outer_;
};

// pseudo.subject_id for a parser key (parts joined by 0x1F) whose bytes are all ASCII, where decoding
// (UTF-8 or CP932) and NFKC change nothing: each part stripped of Python's ASCII whitespace, the name
// part of a name-based key ("N", facility, name, ...) with its inner whitespace removed, then the first
// 63 bits of HMAC-SHA256. std::nullopt for any other key: Python's pseudo.canonical_key decides those.
std::optional<int64_t> ascii_subject_id(const HmacSha256& hmac, std::string_view raw_key);

}  // namespace claimsfm
