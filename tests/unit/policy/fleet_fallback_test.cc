#include "hms/policy/fleet_fallback.h"

#include <gtest/gtest.h>

namespace hms::policy {
namespace {

constexpr uint64_t kSec = 1'000'000'000ull;

TEST(FleetFallback, LocalShareSplitsRateAndBurst) {
  struct Row {
    Limit fleet;
    uint32_t gateways;
    Limit share;
  } rows[] = {
      {Limit::Every(20, 60 * kSec, 20), 2, Limit{6 * kSec, 10}},
      {Limit::Every(20, 60 * kSec, 20), 3, Limit{9 * kSec, 6}},  // never above the limit
      {Limit::Every(20, 60 * kSec, 20), 1, Limit::Every(20, 60 * kSec, 20)},
      {Limit::Every(20, 60 * kSec, 20), 0, Limit::Every(20, 60 * kSec, 20)},  // as one
      {Limit::Every(2, kSec, 2), 4, Limit{2 * kSec, 1}},                      // at least one token
  };
  for (const Row& r : rows) {
    EXPECT_EQ(LocalShare(r.fleet, r.gateways), r.share) << r.gateways;
  }
}

TEST(FleetFallback, PlanFollowsThePolicy) {
  const Limit fleet = Limit::Every(20, 60 * kSec, 20);
  EXPECT_EQ(PlanFallback(FleetFallback::kFailOpen, fleet, 2).verdict, FleetVerdict::kAdmit);
  EXPECT_EQ(PlanFallback(FleetFallback::kFailClosed, fleet, 2).verdict, FleetVerdict::kRefuse);
  const FallbackPlan local = PlanFallback(FleetFallback::kLocalShare, fleet, 2);
  EXPECT_EQ(local.verdict, FleetVerdict::kLocal);
  EXPECT_EQ(local.local, (Limit{6 * kSec, 10}));
}

TEST(FleetFallback, HealthDegradesAfterFailuresInARowAndRecoversOnOneSuccess) {
  RedisHealthParams p;  // 3 in a row
  RedisHealth h;
  EXPECT_FALSE(OnRedisOutcome(h, false, 1, p));
  EXPECT_FALSE(OnRedisOutcome(h, true, 2, p));  // the run is broken
  EXPECT_FALSE(OnRedisOutcome(h, false, 3, p));
  EXPECT_FALSE(OnRedisOutcome(h, false, 4, p));
  EXPECT_FALSE(h.degraded);
  EXPECT_TRUE(OnRedisOutcome(h, false, 5, p));
  EXPECT_TRUE(h.degraded);
  EXPECT_EQ(h.since, 5u);
  EXPECT_FALSE(OnRedisOutcome(h, false, 6, p));  // no change, no report
  EXPECT_TRUE(OnRedisOutcome(h, true, 7, p));
  EXPECT_FALSE(h.degraded);
  EXPECT_EQ(h.since, 7u);
}

TEST(FleetFallback, DownDegradesAtOnce) {
  RedisHealth h;
  EXPECT_TRUE(OnRedisDown(h, 9));
  EXPECT_FALSE(OnRedisDown(h, 10));
  EXPECT_EQ(h.since, 9u);
}

}  // namespace
}  // namespace hms::policy
