// A stable 64-bit hash of bytes (FNV-1a), for names and fingerprints that
// separate processes must compute alike (std::hash promises no such thing).
// Not for hash tables on the data path, nor against an adversary.
// Header-only; any thread.
#pragma once

#include <cstdint>
#include <string_view>

namespace hms {

inline constexpr uint64_t kFnvOffset = 14695981039346656037ull;

// Folds `bytes` into `h` (start from kFnvOffset).
inline uint64_t Fnv1a64(std::string_view bytes, uint64_t h = kFnvOffset) noexcept {
  for (unsigned char ch : bytes) h = (h ^ ch) * 1099511628211ull;
  return h;
}

}  // namespace hms
