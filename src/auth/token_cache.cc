#include "hms/auth/token_cache.h"

#include <bit>
#include <cstring>
#include <random>

#include "hms/auth/sha256.h"

namespace hms::auth {
namespace {

inline uint64_t Mix(uint64_t a, uint64_t b) {
  const __uint128_t r = static_cast<__uint128_t>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}

inline uint64_t Load64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

void Digest(std::string_view token, std::array<uint8_t, 32>* out) { Sha256(token, out); }

}  // namespace

TokenCache::TokenCache(uint32_t capacity) {
  if (capacity == 0) return;
  const uint64_t n = std::bit_ceil(std::max<uint64_t>(capacity, kWindow));
  slots_.resize(n);
  mask_ = n - 1;
  // A per-cache random seed: nobody outside can aim tokens at one window.
  std::random_device rd;
  seed_ = (uint64_t{rd()} << 32) ^ rd();
}

// wyhash-style: 16 bytes per 64x64->128 multiply; ~40 ns for a 600-byte token
// (SHA-256 of the same token costs microseconds, so it runs only on a match).
uint64_t TokenCache::Hash(std::string_view token) const noexcept {
  constexpr uint64_t k0 = 0xa0761d6478bd642full, k1 = 0xe7037ed1a0b428dbull,
                     k2 = 0x8ebc6af09c88c6e3ull;
  const char* p = token.data();
  size_t n = token.size();
  uint64_t h = seed_ ^ Mix(n ^ k0, k1);
  for (; n >= 16; n -= 16, p += 16) h = Mix(Load64(p) ^ k1 ^ h, Load64(p + 8) ^ k2);
  uint64_t a = 0, b = 0;
  if (n >= 8) {
    a = Load64(p);
    char tail[8] = {};
    std::memcpy(tail, p + 8, n - 8);
    b = Load64(tail);
  } else {
    char tail[8] = {};
    std::memcpy(tail, p, n);
    a = Load64(tail);
  }
  h = Mix(a ^ k1 ^ h, b ^ k2 ^ n);
  return Mix(h ^ k0, k1);
}

bool TokenCache::Find(std::string_view token, uint64_t h, Window* window) noexcept {
  if (slots_.empty()) return false;
  std::array<uint8_t, 32> digest;
  bool have_digest = false;
  for (uint32_t i = 0; i < kWindow; ++i) {
    const Slot& s = slots_[(h + i) & mask_];
    if (s.valid_until == INT64_MIN || s.hash != h) continue;
    if (!have_digest) {
      Digest(token, &digest);
      have_digest = true;
    }
    if (s.digest != digest) continue;
    *window = Window{s.not_before, s.valid_until};
    return true;
  }
  return false;
}

void TokenCache::Insert(std::string_view token, uint64_t h, Window window, int64_t now) noexcept {
  if (slots_.empty()) return;
  std::array<uint8_t, 32> digest;
  Digest(token, &digest);
  Slot* victim = nullptr;
  for (uint32_t i = 0; i < kWindow; ++i) {
    Slot& s = slots_[(h + i) & mask_];
    if (s.valid_until != INT64_MIN && s.hash == h && s.digest == digest) {
      victim = &s;  // the same token again: refresh in place
      break;
    }
    if (s.valid_until == INT64_MIN || s.valid_until <= now) {
      if (victim == nullptr || victim->valid_until > now) victim = &s;
      continue;
    }
    if (victim == nullptr || (victim->valid_until > now && s.valid_until < victim->valid_until)) {
      victim = &s;
    }
  }
  if (victim->valid_until != INT64_MIN && victim->valid_until > now &&
      !(victim->hash == h && victim->digest == digest)) {
    ++evictions_;
  }
  victim->hash = h;
  victim->not_before = window.not_before;
  victim->valid_until = window.valid_until;
  victim->digest = digest;
}

void TokenCache::Clear() noexcept {
  for (Slot& s : slots_) s = Slot{};
}

}  // namespace hms::auth
