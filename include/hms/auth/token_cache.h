// The per-core cache of verified tokens: once a token's signature and
// iss/aud have been checked, the same token skips the signature (tens of
// microseconds for RS256/ES256) until it expires. Owned by one JwtVerifier,
// so by one core's thread. The table is allocated once at construction;
// lookups and inserts never allocate.
//
// Open addressing over a power-of-two table: a token's 64-bit seeded hash
// picks a window of kWindow slots. A slot matches only when the hash and the
// stored SHA-256 of the whole token both match, so a hit is never another
// token. Inserting into a full window replaces an expired entry, else the
// one expiring first.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace hms::auth {

class TokenCache {
 public:
  static constexpr uint32_t kWindow = 8;

  // `capacity` is rounded up to a power of two (at least kWindow); 0 disables
  // the cache (every Find misses, Insert does nothing).
  explicit TokenCache(uint32_t capacity);

  bool enabled() const noexcept { return !slots_.empty(); }
  size_t capacity() const noexcept { return slots_.size(); }

  // The time window a cached token was admitted for: valid while
  // not_before <= now < valid_until (leeway already applied).
  struct Window {
    int64_t not_before;
    int64_t valid_until;
  };

  // Cheap seeded hash of the whole token (the probe key).
  uint64_t Hash(std::string_view token) const noexcept;

  // True and *window when `token` (with hash `h`) is cached.
  bool Find(std::string_view token, uint64_t h, Window* window) noexcept;

  // Records a verified token; `now` decides which entries are expired.
  void Insert(std::string_view token, uint64_t h, Window window, int64_t now) noexcept;

  void Clear() noexcept;

  uint64_t evictions() const noexcept { return evictions_; }

 private:
  struct Slot {
    uint64_t hash = 0;
    int64_t not_before = 0;
    int64_t valid_until = INT64_MIN;  // INT64_MIN: empty
    std::array<uint8_t, 32> digest{};
  };

  std::vector<Slot> slots_;
  uint64_t mask_ = 0;
  uint64_t seed_ = 0;
  uint64_t evictions_ = 0;
};

}  // namespace hms::auth
