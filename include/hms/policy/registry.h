// The process's resilience state across reloads (DESIGN §4: stateful per-core
// objects live outside the snapshot, keyed by stable names). Owned and called
// by the control thread only; the objects it hands out are shared with the
// cores through the snapshot being compiled.
//
// A reload asks for every route's limit, every service's breaker and retry
// budget and every endpoint's health record by name. The same name with the same shape (keyed or not,
// same key capacity) returns the same object, so its state carries over; a
// changed limit or breaker threshold is applied to it at once. A new shape,
// or a retry budget with other parameters or another core count, starts a
// fresh object. Sweep() then forgets the names the reload did
// not ask for; objects still held by an older snapshot live until it is freed.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "hms/core/clock.h"
#include "hms/policy/breaker.h"
#include "hms/policy/outlier.h"
#include "hms/policy/rate_limit.h"
#include "hms/policy/retry_budget.h"

namespace hms::policy {

class PolicyRegistry {
 public:
  // `seed` keys the client-key hash of every keyed limit.
  explicit PolicyRegistry(uint64_t seed = 0x9e3779b97f4a7c15ull) : seed_(seed) {}

  // `name`: the route's stable key (service + route template, or the
  // service's for a service-wide limit). `key_capacity` 0: one bucket.
  std::shared_ptr<RateLimitState> RateLimit(std::string_view name, Limit limit,
                                            uint32_t key_capacity, core::Instant now);
  std::shared_ptr<Breaker> GetBreaker(std::string_view service, BreakerParams params);
  std::shared_ptr<RetryBudget> GetRetryBudget(std::string_view service, uint32_t cores,
                                              RetryBudgetParams params);
  // `name`: "SERVICE|HOST:PORT", one record per endpoint of each service.
  std::shared_ptr<EndpointHealth> GetEndpointHealth(std::string_view name, OutlierParams params);

  // Forgets every name not asked for since the previous Sweep; returns how
  // many were forgotten.
  size_t Sweep();

  size_t size() const noexcept {
    return limits_.size() + breakers_.size() + budgets_.size() + endpoints_.size();
  }

 private:
  template <typename T>
  struct Entry {
    std::shared_ptr<T> object;
    bool used = true;
  };
  template <typename T>
  static size_t SweepMap(std::map<std::string, Entry<T>, std::less<>>& m);

  uint64_t seed_;
  std::map<std::string, Entry<RateLimitState>, std::less<>> limits_;
  std::map<std::string, Entry<Breaker>, std::less<>> breakers_;
  std::map<std::string, Entry<RetryBudget>, std::less<>> budgets_;
  std::map<std::string, Entry<EndpointHealth>, std::less<>> endpoints_;
};

}  // namespace hms::policy
