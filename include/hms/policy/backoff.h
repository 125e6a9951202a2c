// Backoff between retries (DESIGN §5 "jittered backoff"; docs/resilience.md).
//
// Retry n (0 for the first) waits a uniform time in [b/2, b] with
// b = min(base << n, max): exponential, and jittered so that the retries of
// many requests that failed together do not arrive together.
#pragma once

#include <algorithm>
#include <cstdint>

namespace hms::policy {

inline constexpr uint64_t kBackoffBaseMs = 25;
inline constexpr uint64_t kBackoffMaxMs = 250;

// Attempt n (0 for the first) of any backoff: uniform in [b/2, b] with
// b = min(base << n, max). `random`: any uniformly distributed 64-bit value
// (the caller's generator).
constexpr uint64_t JitteredBackoffMs(uint32_t n, uint64_t base_ms, uint64_t max_ms,
                                     uint64_t random) noexcept {
  const uint64_t cap = std::min<uint64_t>(base_ms << std::min<uint32_t>(n, 16), max_ms);
  return cap / 2 + random % (cap - cap / 2 + 1);
}

constexpr uint64_t RetryBackoffMs(uint32_t retry, uint64_t random) noexcept {
  return JitteredBackoffMs(retry, kBackoffBaseMs, kBackoffMaxMs, random);
}

}  // namespace hms::policy
