#include "hms/policy/binding.h"

#include <algorithm>
#include <string>

#include "hms/policy/fleet_fallback.h"

namespace hms::policy {

void BindPolicies(PolicyRegistry& registry, const config::Interner& route_keys, uint32_t cores,
                  core::Instant now, config::Snapshot* s) {
  for (auto& cl : s->clusters) {
    if (cl.local) continue;  // a sidecar's own service: its callers' breakers guard it
    BreakerParams p;
    p.failures = cl.breaker.failures;
    p.open_for_ns = core::Millis(cl.breaker.open_for_ms);
    if (cl.breaker.failures > 0) cl.breaker_state = registry.GetBreaker(cl.name, p);
    for (auto& ep : cl.endpoints) {
      ep.health = registry.GetEndpointHealth(cl.name + "|" + ep.address, OutlierParams{});
    }
    if (cl.retries > 0)
      cl.retry_budget = registry.GetRetryBudget(cl.name, cores, RetryBudgetParams{});
  }
  for (auto& r : s->routes) {
    if (!r.rate_limit || r.rate_limit->rate_per_sec_x1000 == 0) continue;
    auto limit = Limit::PerSecondX1000(r.rate_limit->rate_per_sec_x1000,
                                       std::max<uint32_t>(1, r.rate_limit->burst));
    // A fleet limit's bucket is in Redis; the one here is this gateway's
    // local share of it, which serves only while Redis cannot be reached
    // (fleet_fallback.h), so it is kept, warm, across the outage.
    if (r.fleet && s->gateway.redis) limit = LocalShare(limit, s->gateway.redis->gateways);
    uint32_t keys = r.rate_limit->per.empty() ? 0 : kKeyedLimitCapacity;
    r.limiter = registry.RateLimit(route_keys.Name(r.key), limit, keys, now);
  }
  registry.Sweep();
}

}  // namespace hms::policy
