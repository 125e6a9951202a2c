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

// Monotonic milliseconds, for the control side's own intervals.
inline int64_t NowMs() noexcept { return static_cast<int64_t>(Now() / 1'000'000ull); }

// Wall-clock milliseconds since the Unix epoch (CLOCK_REALTIME): for what is
// shown or stored as a time of day, never for intervals.
inline int64_t UnixMs() noexcept {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

}  // namespace hms::core
