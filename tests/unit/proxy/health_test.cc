// Unit tests of the active health checks' room (src/proxy/health.h) without
// sockets: which probes a snapshot starts, which a new snapshot keeps and
// which it retires, and which core owns a service's checks.
#include "src/proxy/health.h"

#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "tests/unit/proxy/test_core.h"

namespace hms::proxy {
namespace {

constexpr uint8_t kOp = 9;
constexpr uint8_t kTimer = 4;

std::shared_ptr<policy::EndpointHealth> NewHealth() {
  return std::make_shared<policy::EndpointHealth>(policy::OutlierParams{});
}

// A service checked at `path` (no `health:` when path is empty), with the
// given endpoints (an "mtls://" address is an mTLS endpoint).
config::Cluster Service(const std::string& name, const std::string& path,
                        const std::vector<std::string>& addresses) {
  config::Cluster cl;
  cl.name = name;
  if (!path.empty()) {
    config::HealthCheckConfig hc;
    hc.path = path;
    hc.interval_ms = 1000;
    cl.health_check = hc;
  }
  for (const std::string& a : addresses) {
    config::Endpoint ep;
    ep.address = a;
    ep.mtls = a.starts_with("mtls://");
    ep.health = NewHealth();
    cl.endpoints.push_back(std::move(ep));
  }
  return cl;
}

// The keys of the probes in use, each with its slot.
std::set<std::string> Live(const HealthChecker& h) {
  std::set<std::string> keys;
  for (uint32_t i = 0; i < h.size(); ++i) {
    if (h.probe(i).state != HealthProbe::State::kFree) keys.insert(h.probe(i).key);
  }
  return keys;
}

TEST(HealthChecker, ReconcileStartsAProbePerPlainEndpointOfACheckedService) {
  TestCore core;
  HealthChecker h(core.ctx, kOp, kTimer);
  config::Snapshot s;
  s.clusters.push_back(
      Service("users", "/health", {"127.0.0.1:7001", "127.0.0.1:7002", "mtls://127.0.0.1:7003"}));
  s.clusters.push_back(Service("orders", "", {"127.0.0.1:7101"}));  // no health: section
  s.clusters.push_back(Service("audit", "/ready", {"127.0.0.1:7201"}));
  s.clusters.back().endpoints.push_back(config::Endpoint{});  // no shared health record
  h.Reconcile(s);
  EXPECT_EQ(Live(h),
            (std::set<std::string>{"users|127.0.0.1:7001|/health", "users|127.0.0.1:7002|/health",
                                   "audit|127.0.0.1:7201|/ready"}));
  for (uint32_t i = 0; i < h.size(); ++i) {
    const HealthProbe& p = h.probe(i);
    EXPECT_EQ(p.state, HealthProbe::State::kIdle);
    EXPECT_TRUE(p.timer.armed()) << p.key;  // the first check, within the interval
    EXPECT_EQ(p.timer.kind, kTimer);
    EXPECT_EQ(p.timer.owner, i);
    EXPECT_EQ(p.fd, -1);  // no socket until the check starts
  }
  EXPECT_EQ(h.probe(0).request,
            "GET /health HTTP/1.1\r\nhost: 127.0.0.1:7001\r\nuser-agent: hms-gateway-health\r\n"
            "connection: close\r\n\r\n");
}

TEST(HealthChecker, ANewSnapshotKeepsRetiresAndStartsProbes) {
  TestCore core;
  HealthChecker h(core.ctx, kOp, kTimer);
  config::Snapshot first;
  first.clusters.push_back(Service("users", "/health", {"127.0.0.1:7001", "127.0.0.1:7002"}));
  h.Reconcile(first);
  ASSERT_EQ(h.size(), 2u);
  const uint32_t kept_gen = h.probe(1).gen;
  // The endpoint about to go is failing its checks: once its checks stop,
  // their verdict must no longer keep it out.
  std::shared_ptr<policy::EndpointHealth> leaving = first.clusters[0].endpoints[0].health;
  leaving->SetCheckFailing(true);

  config::Snapshot second;
  second.clusters.push_back(Service("users", "/health", {"127.0.0.1:7002", "127.0.0.1:7003"}));
  second.clusters[0].health_check->unhealthy = 5;
  second.clusters[0].endpoints[0].health = first.clusters[0].endpoints[1].health;
  h.Reconcile(second);

  EXPECT_EQ(Live(h), (std::set<std::string>{"users|127.0.0.1:7002|/health",
                                            "users|127.0.0.1:7003|/health"}));
  EXPECT_FALSE(leaving->check_failing());
  EXPECT_EQ(h.probe(0).state, HealthProbe::State::kFree);
  EXPECT_FALSE(h.probe(0).timer.armed());
  // The kept probe runs on, under the new parameters.
  EXPECT_EQ(h.probe(1).key, "users|127.0.0.1:7002|/health");
  EXPECT_EQ(h.probe(1).gen, kept_gen);
  EXPECT_EQ(h.probe(1).params.unhealthy, 5u);
  // A completion for the retired check is stale; one for the kept check is not.
  EXPECT_FALSE(h.Current(0, h.probe(0).gen - 1));
  EXPECT_TRUE(h.Current(1, kept_gen));
  EXPECT_FALSE(h.Current(7, 0));  // no such probe
  // A retired probe's slot serves the next new endpoint.
  const size_t slots = h.size();
  config::Snapshot third;
  third.clusters.push_back(
      Service("users", "/health", {"127.0.0.1:7002", "127.0.0.1:7003", "127.0.0.1:7004"}));
  h.Reconcile(third);
  EXPECT_EQ(h.size(), slots);
  EXPECT_EQ(h.probe(0).key, "users|127.0.0.1:7004|/health");

  config::Snapshot none;
  h.Reconcile(none);
  EXPECT_TRUE(Live(h).empty());
  for (uint32_t i = 0; i < h.size(); ++i) EXPECT_FALSE(h.probe(i).timer.armed());
}

TEST(HealthChecker, EachServiceIsCheckedByExactlyOneCore) {
  constexpr uint32_t kCores = 3;
  config::Snapshot s;
  for (const char* name : {"a", "b", "c", "d", "e", "f", "g", "h"}) {
    s.clusters.push_back(Service(name, "/health", {"127.0.0.1:7001"}));
  }
  std::vector<std::unique_ptr<TestCore>> cores;
  std::vector<std::unique_ptr<HealthChecker>> checkers;
  std::multiset<std::string> checked;
  for (uint32_t i = 0; i < kCores; ++i) {
    cores.push_back(std::make_unique<TestCore>(i, kCores));
    checkers.push_back(std::make_unique<HealthChecker>(cores.back()->ctx, kOp, kTimer));
    checkers.back()->Reconcile(s);
    for (const std::string& key : Live(*checkers.back())) {
      checked.insert(key);
      EXPECT_EQ(HealthOwnerCore(key.substr(0, key.find('|')), kCores), i) << key;
    }
  }
  EXPECT_EQ(checked.size(), s.clusters.size());
  for (const config::Cluster& cl : s.clusters) {
    EXPECT_EQ(checked.count(cl.name + "|127.0.0.1:7001|/health"), 1u) << cl.name;
  }
}

}  // namespace
}  // namespace hms::proxy
