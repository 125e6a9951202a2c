// What a fleet-scope limit does while Redis is down or slow (docs/resilience.md,
// "Fleet scope"): pure functions, any thread. The engine keeps one
// `RedisHealth` per core (the core's own connection to Redis) and asks
// `PlanFallback` while it says degraded.
#pragma once

#include <cstdint>

#include "hms/core/clock.h"
#include "hms/policy/rate_limit.h"

namespace hms::policy {

enum class FleetFallback : uint8_t {
  kLocalShare,  // each gateway enforces limit / gateways on its own (default)
  kFailOpen,    // admit everything the fleet limit would have judged
  kFailClosed,  // refuse everything the fleet limit would have judged (503)
};

enum class FleetVerdict : uint8_t { kAdmit, kRefuse, kLocal };

struct FallbackPlan {
  FleetVerdict verdict = FleetVerdict::kLocal;
  Limit local;  // kLocal: the limit this gateway enforces (process-wide, exact)
};

// The gateway's share of `fleet` when `gateways` share it: the same period
// with 1/gateways of the tokens (the interval × gateways, exact), and the
// burst split likewise, at least 1. So the fleet never admits more than the
// limit while every gateway falls back, unless gateways > burst (then each
// keeps a burst of one).
Limit LocalShare(Limit fleet, uint32_t gateways) noexcept;

FallbackPlan PlanFallback(FleetFallback policy, Limit fleet, uint32_t gateways) noexcept;

// Whether Redis is usable, from the outcomes of lease calls: `failures_to_degrade`
// failures in a row (timeouts, errors, a lost connection) degrade; one
// success restores. A connection that cannot be made degrades at once
// (`OnRedisDown`).
struct RedisHealthParams {
  uint32_t failures_to_degrade = 3;
};
struct RedisHealth {
  uint32_t failures = 0;
  bool degraded = false;
  core::Instant since = 0;  // when `degraded` last changed
};
// Each returns true when `degraded` changed (for logs, /healthz and metrics).
bool OnRedisOutcome(RedisHealth& h, bool ok, core::Instant now,
                    const RedisHealthParams& p) noexcept;
bool OnRedisDown(RedisHealth& h, core::Instant now) noexcept;

}  // namespace hms::policy
