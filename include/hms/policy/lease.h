// Fleet-scope rate limits, one core's side (docs/resilience.md, "Fleet
// scope"): tokens leased from the fleet's bucket in Redis ahead of need, spent
// locally without a shared write, refilled asynchronously. Pure functions
// over a plain value: a `CoreLease` lives in one core's per-route state and
// only that core touches it; time is given, never read.
//
// The lease adapts to the rate this core observes (smoothed per window, and
// the current window's as soon as it is higher): enough tokens to cover
// `horizon_ns` of its traffic (so a refill lands before the stock runs out),
// at most `max_lease`; at a low rate that is a single token, and then no
// stock is held at all: a request waits for Redis's answer (the engine parks
// it; the core goes on) rather than stranding a token another gateway could
// have used.
#pragma once

#include <cstdint>

#include "hms/core/clock.h"

namespace hms::policy {

struct LeaseParams {
  uint64_t horizon_ns = core::Millis(100);  // stock covers this much observed traffic
  uint32_t max_lease = 16;                  // most tokens a core holds unspent
  uint64_t hold_ns = core::Millis(1000);    // unspent leased tokens are dropped after this
  uint64_t window_ns = core::Millis(1000);  // rate sampling window
};

struct CoreLease {
  uint32_t tokens = 0;             // leased, unspent
  core::Instant tokens_until = 0;  // when they are dropped
  uint32_t waiting = 0;            // requests parked for Redis's answer
  bool asking = false;             // a lease call is in flight
  core::Instant empty_until = 0;   // Redis said no token before this
  uint64_t rate_x1000 = 0;         // observed requests/s × 1000, smoothed per window
  uint32_t window_count = 0;
  core::Instant window_start = 0;
};

enum class LeaseStep : uint8_t {
  kAdmit,   // a leased token was spent
  kWait,    // park the request until OnGrant (or OnAskFailed) answers it
  kRefuse,  // Redis said the bucket is empty until `empty_until`: 429 now
};

// Tokens worth holding at `rate_x1000`: ceil(rate × horizon), within [1, max_lease].
uint32_t LeaseSize(uint64_t rate_x1000, const LeaseParams& p) noexcept;

// One request arrives at `now`.
LeaseStep TakeToken(CoreLease& l, core::Instant now, const LeaseParams& p) noexcept;

// How many tokens to ask Redis for now (0: no call). When it returns n > 0
// the call is considered sent (`asking`): one call in flight per route and
// core. Asks for the parked requests plus the stock the rate calls for, when
// the stock is below half of it.
uint32_t StartAsk(CoreLease& l, core::Instant now, const LeaseParams& p) noexcept;

// Redis granted `granted` tokens and said the next is due in
// `retry_after_ns`. Parked requests are served first: `admit` of them are
// admitted, `refuse` refused (429 with that retry-after); the rest is stock.
struct LeaseAnswer {
  uint32_t admit = 0;
  uint32_t refuse = 0;
};
LeaseAnswer OnGrant(CoreLease& l, uint32_t granted, uint64_t retry_after_ns, core::Instant now,
                    const LeaseParams& p) noexcept;

// The lease call failed (timeout, connection lost, error): returns how many
// parked requests the fallback policy (fleet_fallback.h) must now decide.
uint32_t OnAskFailed(CoreLease& l) noexcept;

}  // namespace hms::policy
