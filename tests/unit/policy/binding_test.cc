#include "hms/policy/binding.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "hms/policy/fleet_fallback.h"

namespace hms::policy {
namespace {

constexpr core::Instant kNow = 1'000'000'000;

// A snapshot of one service with a breaker, one endpoint and retries, a
// sidecar's local service, and two routes: one rate-limited, one not.
std::unique_ptr<config::Snapshot> MakeSnapshot(config::Interner& keys, const std::string& service,
                                               const std::string& per = "") {
  auto s = std::make_unique<config::Snapshot>();
  config::Cluster cl;
  cl.name = service;
  cl.breaker.failures = 3;
  cl.breaker.open_for_ms = 30'000;
  cl.retries = 2;
  config::Endpoint ep;
  ep.address = "127.0.0.1:7001";
  cl.endpoints.push_back(ep);
  s->clusters.push_back(cl);
  config::Cluster local;
  local.name = "self";
  local.local = true;
  local.endpoints.push_back(ep);
  s->clusters.push_back(local);
  config::Route limited;
  limited.key = keys.Intern(service + "|GET||/sum/{a}/{b}");
  limited.rate_limit = config::RateLimit{20'000, 5, per, "20 req/s"};
  s->routes.push_back(limited);
  config::Route open;
  open.key = keys.Intern(service + "|GET||/hello");
  s->routes.push_back(open);
  return s;
}

TEST(BindPolicies, GivesEachServiceAndRouteItsObjects) {
  PolicyRegistry registry;
  config::Interner keys;
  auto s = MakeSnapshot(keys, "calc-svc");
  BindPolicies(registry, keys, 2, kNow, s.get());
  const config::Cluster& cl = s->clusters[0];
  EXPECT_NE(cl.breaker_state, nullptr);
  EXPECT_NE(cl.retry_budget, nullptr);
  EXPECT_NE(cl.endpoints[0].health, nullptr);
  EXPECT_NE(s->routes[0].limiter, nullptr);
  EXPECT_FALSE(s->routes[0].limiter->keyed());
  EXPECT_EQ(s->routes[1].limiter, nullptr);
  // A sidecar's own service: its callers' breakers guard it.
  const config::Cluster& local = s->clusters[1];
  EXPECT_EQ(local.breaker_state, nullptr);
  EXPECT_EQ(local.retry_budget, nullptr);
  EXPECT_EQ(local.endpoints[0].health, nullptr);
}

TEST(BindPolicies, KeepsStateAcrossAReloadAndFreesWhatWentAway) {
  PolicyRegistry registry;
  config::Interner keys;
  auto first = MakeSnapshot(keys, "calc-svc");
  BindPolicies(registry, keys, 2, kNow, first.get());
  const size_t held = registry.size();
  auto second = MakeSnapshot(keys, "calc-svc");
  BindPolicies(registry, keys, 2, kNow, second.get());
  EXPECT_EQ(second->clusters[0].breaker_state, first->clusters[0].breaker_state);
  EXPECT_EQ(second->clusters[0].retry_budget, first->clusters[0].retry_budget);
  EXPECT_EQ(second->clusters[0].endpoints[0].health, first->clusters[0].endpoints[0].health);
  EXPECT_EQ(second->routes[0].limiter, first->routes[0].limiter);
  EXPECT_EQ(registry.size(), held);
  // The service renamed: new objects, and the old names are forgotten.
  auto third = MakeSnapshot(keys, "sum-svc");
  BindPolicies(registry, keys, 2, kNow, third.get());
  EXPECT_NE(third->clusters[0].breaker_state, first->clusters[0].breaker_state);
  EXPECT_EQ(registry.size(), held);
}

TEST(BindPolicies, KeyedLimitsGetAKeyTable) {
  PolicyRegistry registry;
  config::Interner keys;
  auto s = MakeSnapshot(keys, "calc-svc", "client_ip");
  BindPolicies(registry, keys, 2, kNow, s.get());
  ASSERT_NE(s->routes[0].limiter, nullptr);
  EXPECT_TRUE(s->routes[0].limiter->keyed());
}

// A fleet-scope route's own bucket is this gateway's local share of the
// limit (the fallback while Redis is away): 1/gateways of the rate and burst.
TEST(BindPolicies, AFleetRouteGetsItsLocalShare) {
  PolicyRegistry registry;
  config::Interner keys;
  auto s = MakeSnapshot(keys, "calc-svc");
  s->routes[0].fleet = true;
  s->gateway.redis = config::RedisConfig{};
  s->gateway.redis->gateways = 5;
  BindPolicies(registry, keys, 2, kNow, s.get());
  ASSERT_NE(s->routes[0].limiter, nullptr);
  const Limit whole = Limit::PerSecondX1000(20'000, 5);
  EXPECT_EQ(s->routes[0].limiter->limit(), LocalShare(whole, 5));
  EXPECT_EQ(s->routes[0].limiter->limit().burst, 1u);
}

TEST(BindPolicies, NoBreakerWithoutAThresholdAndNoBudgetWithoutRetries) {
  PolicyRegistry registry;
  config::Interner keys;
  auto s = MakeSnapshot(keys, "calc-svc");
  s->clusters[0].breaker.failures = 0;  // breaker: off
  s->clusters[0].retries = 0;
  BindPolicies(registry, keys, 2, kNow, s.get());
  EXPECT_EQ(s->clusters[0].breaker_state, nullptr);
  EXPECT_EQ(s->clusters[0].retry_budget, nullptr);
  EXPECT_NE(s->clusters[0].endpoints[0].health, nullptr);
}

}  // namespace
}  // namespace hms::policy
