// Small open-addressing hash maps for the parsers' hot paths (code interning, subject grouping).
// std::unordered_map allocates a node per key and chases pointers on every lookup; these keep
// keys and values in flat arrays with linear probing and a load factor of at most 1/2.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace claimsfm {

inline uint64_t hash_u64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  return x ^ (x >> 33);
}

// Doubles a table of slots that carry their key's hash and an id (id < 0 = empty) and reinserts
// them by linear probing; shared by the maps below whose slots remember their hash.
template <class Slot>
void grow_hashed_slots(std::vector<Slot>& slots) {
  std::vector<Slot> old(slots.size() * 2);
  old.swap(slots);
  for (const Slot& s : old) {
    if (s.id < 0) continue;
    size_t i = s.hash & (slots.size() - 1);
    while (slots[i].id >= 0) i = (i + 1) & (slots.size() - 1);
    slots[i] = s;
  }
}

// The id of the slot with hash `h` that `match` accepts, or `next_id` in a new slot `make()` (then `added` is
// true): linear probing over slots that carry their hash and an id (id < 0 = empty), at a load of at most
// kLoadNum / kLoadDen (1/2 unless a table says otherwise).
template <size_t kLoadNum = 1, size_t kLoadDen = 2, class Slot, class Match, class Make>
int32_t probe_or_add(std::vector<Slot>& slots, size_t& size, uint64_t h, int32_t next_id, bool& added, Match&& match,
                     Make&& make) {
  static_assert(kLoadNum < kLoadDen, "a linear-probing table needs an empty slot");
  if (kLoadDen * (size + 1) > kLoadNum * slots.size()) grow_hashed_slots(slots);
  size_t i = h & (slots.size() - 1);
  for (;; i = (i + 1) & (slots.size() - 1)) {
    const Slot& s = slots[i];
    if (s.id < 0) break;
    if (s.hash == h && match(s)) return added = false, s.id;
  }
  slots[i] = make();
  ++size;
  added = true;
  return next_id;
}

// Eight bytes at a time; codes are short ASCII strings.
inline uint64_t hash_bytes(std::string_view s) {
  uint64_t h = 0x9E3779B97F4A7C15ULL ^ s.size();
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = hash_u64(h ^ w);
  }
  uint64_t tail = 0;
  std::memcpy(&tail, s.data() + i, s.size() - i);
  return hash_u64(h ^ tail);
}

// A second 64-bit hash of the bytes, independent of hash_bytes (other seed, other word mixing): with it a key's
// 128-bit fingerprint (FlatFingerprintIds).
inline uint64_t hash_bytes2(std::string_view s) {
  uint64_t h = 0xC2B2AE3D27D4EB4FULL + s.size() * 0x165667B19E3779F9ULL;
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ hash_u64(w + 0x27D4EB2F165667C5ULL)) * 0x9E3779B97F4A7C15ULL;
    h = (h << 31) | (h >> 33);
  }
  uint64_t tail = 0;
  std::memcpy(&tail, s.data() + i, s.size() - i);
  return hash_u64(h ^ hash_u64(tail ^ 0x94D049BB133111EBULL));
}

// string_view -> int32 id. The views must outlive the map (they point into the parsed buffer).
class FlatStringIds {
 public:
  FlatStringIds() : slots_(256) {}
  // The id of `key`, or `next_id` after inserting it (then `added` is true).
  int32_t find_or_add(std::string_view key, int32_t next_id, bool& added) {
    const uint64_t h = hash_bytes(key);
    return probe_or_add(slots_, size_, h, next_id, added, [&](const Slot& s) { return s.key == key; },
                        [&] { return Slot{h, key, next_id}; });
  }

 private:
  struct Slot {
    uint64_t hash = 0;
    std::string_view key;
    int32_t id = -1;
  };
  std::vector<Slot> slots_;
  size_t size_ = 0;
};

// int64 -> int64 (e.g. subject_id -> rank).
class FlatI64Map {
 public:
  explicit FlatI64Map(size_t expected = 16) {
    size_t n = 16;
    while (n < 2 * expected) n *= 2;
    keys_.resize(n), vals_.resize(n), used_.assign(n, 0);
  }
  // Pointer to the value of `key`, inserting `init` first when absent.
  int64_t* get_or_insert(int64_t key, int64_t init, bool& added) {
    if (2 * (size_ + 1) > keys_.size()) grow();
    size_t i = hash_u64(static_cast<uint64_t>(key)) & (keys_.size() - 1);
    for (; used_[i]; i = (i + 1) & (keys_.size() - 1))
      if (keys_[i] == key) return added = false, &vals_[i];
    used_[i] = 1, keys_[i] = key, vals_[i] = init, ++size_, added = true;
    return &vals_[i];
  }
  int64_t* find(int64_t key) {
    size_t i = hash_u64(static_cast<uint64_t>(key)) & (keys_.size() - 1);
    for (; used_[i]; i = (i + 1) & (keys_.size() - 1))
      if (keys_[i] == key) return &vals_[i];
    return nullptr;
  }

 private:
  void grow() {
    FlatI64Map bigger(keys_.size());
    bool added;
    for (size_t i = 0; i < keys_.size(); ++i)
      if (used_[i]) *bigger.get_or_insert(keys_[i], vals_[i], added) = vals_[i];
    *this = std::move(bigger);
  }
  std::vector<int64_t> keys_, vals_;
  std::vector<uint8_t> used_;
  size_t size_ = 0;
};

// uint64 -> int32 id (packed UKE codes -> local code id; the lookup runs on every detail line).
class FlatU64Ids {
 public:
  FlatU64Ids() : slots_(1024, kEmpty), ids_(1024, 0) {}
  int32_t find_or_add(uint64_t key, int32_t next_id, bool& added) {
    if (2 * (size_ + 1) > slots_.size()) grow();
    size_t i = mix(key) & (slots_.size() - 1);
    while (slots_[i] != kEmpty) {
      if (slots_[i] == key) return added = false, ids_[i];
      i = (i + 1) & (slots_.size() - 1);
    }
    slots_[i] = key, ids_[i] = next_id, ++size_, added = true;
    return next_id;
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  static size_t mix(uint64_t k) { return static_cast<size_t>((k * 0x9E3779B97F4A7C15ULL) >> 20); }
  void grow() {
    std::vector<uint64_t> old_slots(slots_.size() * 2, kEmpty);
    std::vector<int32_t> old_ids(ids_.size() * 2, 0);
    old_slots.swap(slots_), old_ids.swap(ids_);
    for (size_t j = 0; j < old_slots.size(); ++j) {
      if (old_slots[j] == kEmpty) continue;
      size_t i = mix(old_slots[j]) & (slots_.size() - 1);
      while (slots_[i] != kEmpty) i = (i + 1) & (slots_.size() - 1);
      slots_[i] = old_slots[j], ids_[i] = old_ids[j];
    }
  }
  std::vector<uint64_t> slots_;
  std::vector<int32_t> ids_;
  size_t size_ = 0;
};

// string -> int32 id where the strings live in a caller's table (id -> string): the map keeps
// only (hash, id), so the table may reallocate and move its strings without invalidating it,
// and a lookup allocates nothing (unlike std::unordered_map<std::string, int32_t>).
class FlatTableIds {
 public:
  FlatTableIds() : slots_(1024) {}
  // The id of `key` in `table`, or table.size() after the caller appends `key` (`added` true).
  int32_t find_or_add(std::string_view key, const std::vector<std::string>& table, bool& added) {
    const uint64_t h = hash_bytes(key);
    const auto id = static_cast<int32_t>(table.size());
    return probe_or_add(slots_, size_, h, id, added,
                        [&](const Slot& s) { return table[static_cast<size_t>(s.id)] == key; },
                        [&] { return Slot{h, id}; });
  }

 private:
  struct Slot {
    uint64_t hash = 0;
    int32_t id = -1;
  };
  std::vector<Slot> slots_;
  size_t size_ = 0;
};

// Key bytes -> int32 id by a 128-bit fingerprint (hash_bytes, hash_bytes2) instead of the bytes themselves: the
// out-of-core merge's patient keys, of which there is one per distinct patient of the whole corpus, so this
// table is what the parse's memory grows with. Slots of 20 bytes (packed: no padding after the id) at a load
// of at most 3/4: 27-53 bytes a key, and 80 while the table doubles (old and new together), against 48-96
// and 144 with padded 24-byte slots at a load of at most 1/2 (2.3M patients: 302 -> 126 MB at the last
// doubling), and ~130 with the key strings kept (FlatTableIds and its table). The keys are 128-bit hashes,
// so a linear probe at 3/4 stays short (~2.5 slots for a key seen before, ~8.5 for a new one). Two different
// keys get one id only if both hashes collide: about n^2 / 2^129, 4e-25 for 17M keys.
class FlatFingerprintIds {
 public:
  FlatFingerprintIds() : slots_(1024) {}
  // The id of `key`, or `next_id` after inserting it (then `added` is true).
  int32_t find_or_add(std::string_view key, int32_t next_id, bool& added) {
    const uint64_t h = hash_bytes(key), h2 = hash_bytes2(key);
    return probe_or_add<3, 4>(slots_, size_, h, next_id, added, [&](const Slot& s) { return s.hash2 == h2; },
                              [&] { return Slot{h, h2, next_id}; });
  }
  size_t size() const { return size_; }
  size_t slot_count() const { return slots_.size(); }

 private:
#pragma pack(push, 4)
  struct Slot {
    uint64_t hash = 0, hash2 = 0;
    int32_t id = -1;
  };
#pragma pack(pop)
  static_assert(sizeof(Slot) == 20, "FlatFingerprintIds::Slot is packed");
  std::vector<Slot> slots_;
  size_t size_ = 0;
};

}  // namespace claimsfm
