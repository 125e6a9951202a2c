#include "hms/policy/fleet_fallback.h"

#include <algorithm>

namespace hms::policy {

Limit LocalShare(Limit fleet, uint32_t gateways) noexcept {
  const uint32_t n = std::max<uint32_t>(gateways, 1);
  Limit share = fleet;
  share.interval_ns = fleet.interval_ns * n;
  share.burst = std::max<uint32_t>(fleet.burst / n, 1);
  return share;
}

FallbackPlan PlanFallback(FleetFallback policy, Limit fleet, uint32_t gateways) noexcept {
  FallbackPlan plan;
  switch (policy) {
    case FleetFallback::kFailOpen:
      plan.verdict = FleetVerdict::kAdmit;
      break;
    case FleetFallback::kFailClosed:
      plan.verdict = FleetVerdict::kRefuse;
      break;
    case FleetFallback::kLocalShare:
      plan.verdict = FleetVerdict::kLocal;
      plan.local = LocalShare(fleet, gateways);
      break;
  }
  return plan;
}

bool OnRedisOutcome(RedisHealth& h, bool ok, core::Instant now,
                    const RedisHealthParams& p) noexcept {
  const bool was = h.degraded;
  if (ok) {
    h.failures = 0;
    h.degraded = false;
  } else {
    ++h.failures;
    if (h.failures >= std::max<uint32_t>(p.failures_to_degrade, 1)) h.degraded = true;
  }
  if (h.degraded != was) h.since = now;
  return h.degraded != was;
}

bool OnRedisDown(RedisHealth& h, core::Instant now) noexcept {
  const bool was = h.degraded;
  h.degraded = true;
  if (!was) h.since = now;
  return !was;
}

}  // namespace hms::policy
