// Monotonic time for cores. A core reads the clock once per loop pass and
// passes `Instant`s around, so one pass sees one time (and tests can feed any).
#pragma once

#include <time.h>

#include <cstdint>

namespace hms::core {

using Instant = uint64_t;  // nanoseconds on CLOCK_MONOTONIC

inline Instant Now() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<Instant>(ts.tv_sec) * 1'000'000'000ull + static_cast<Instant>(ts.tv_nsec);
}

inline constexpr Instant Millis(uint64_t ms) noexcept { return ms * 1'000'000ull; }

}  // namespace hms::core
