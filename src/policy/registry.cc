#include "hms/policy/registry.h"

namespace hms::policy {

std::shared_ptr<RateLimitState> PolicyRegistry::RateLimit(std::string_view name, Limit limit,
                                                          uint32_t key_capacity,
                                                          core::Instant now) {
  auto it = limits_.find(name);
  if (it != limits_.end()) {
    RateLimitState& s = *it->second.object;
    if (s.key_capacity() == RateLimitState::RoundedCapacity(key_capacity)) {
      s.Reconfigure(limit, now);  // no-op when unchanged
      it->second.used = true;
      return it->second.object;
    }
    limits_.erase(it);
  }
  auto s = std::make_shared<RateLimitState>(limit, key_capacity, seed_);
  limits_.emplace(std::string(name), Entry<RateLimitState>{s, true});
  return s;
}

std::shared_ptr<Breaker> PolicyRegistry::GetBreaker(std::string_view service,
                                                    BreakerParams params) {
  auto it = breakers_.find(service);
  if (it != breakers_.end()) {
    it->second.object->Reconfigure(params);
    it->second.used = true;
    return it->second.object;
  }
  auto b = std::make_shared<Breaker>(params);
  breakers_.emplace(std::string(service), Entry<Breaker>{b, true});
  return b;
}

std::shared_ptr<RetryBudget> PolicyRegistry::GetRetryBudget(std::string_view service,
                                                            uint32_t cores,
                                                            RetryBudgetParams params) {
  auto it = budgets_.find(service);
  if (it != budgets_.end() && it->second.object->cores() == cores &&
      it->second.object->params() == params) {
    it->second.used = true;
    return it->second.object;
  }
  if (it != budgets_.end()) budgets_.erase(it);  // new shape: counts restart
  auto b = std::make_shared<RetryBudget>(cores, params);
  budgets_.emplace(std::string(service), Entry<RetryBudget>{b, true});
  return b;
}

std::shared_ptr<EndpointHealth> PolicyRegistry::GetEndpointHealth(std::string_view name,
                                                                  OutlierParams params) {
  auto it = endpoints_.find(name);
  if (it != endpoints_.end() && it->second.object->params() == params) {
    it->second.used = true;
    return it->second.object;
  }
  if (it != endpoints_.end()) endpoints_.erase(it);  // new thresholds: a fresh record
  auto h = std::make_shared<EndpointHealth>(params);
  endpoints_.emplace(std::string(name), Entry<EndpointHealth>{h, true});
  return h;
}

template <typename T>
size_t PolicyRegistry::SweepMap(std::map<std::string, Entry<T>, std::less<>>& m) {
  size_t n = 0;
  for (auto it = m.begin(); it != m.end();) {
    if (!it->second.used) {
      it = m.erase(it);
      ++n;
    } else {
      it->second.used = false;
      ++it;
    }
  }
  return n;
}

size_t PolicyRegistry::Sweep() {
  return SweepMap(limits_) + SweepMap(breakers_) + SweepMap(budgets_) + SweepMap(endpoints_);
}

}  // namespace hms::policy
