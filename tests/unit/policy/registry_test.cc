#include "hms/policy/registry.h"

#include <gtest/gtest.h>

namespace hms::policy {
namespace {

constexpr core::Instant kSec = 1'000'000'000ull;
constexpr core::Instant kT0 = 1000 * kSec;

TEST(PolicyRegistry, SameRouteKeepsItsBucketAcrossReloads) {
  PolicyRegistry reg;
  const Limit l = Limit::Every(20, 60 * kSec, 20);
  auto first = reg.RateLimit("calc-svc GET /sum/{a}/{b}", l, 0, kT0);
  CoreRateLimiter core(first.get());
  for (int i = 0; i < 15; ++i) ASSERT_TRUE(core.TryTake(kT0).admitted);
  reg.Sweep();
  // The reload: same name, same limit.
  auto second = reg.RateLimit("calc-svc GET /sum/{a}/{b}", l, 0, kT0);
  EXPECT_EQ(first, second);
  CoreRateLimiter after(second.get());
  int admitted = 0;
  for (int i = 0; i < 20; ++i) admitted += after.TryTake(kT0).admitted;
  EXPECT_EQ(admitted, 5);
}

TEST(PolicyRegistry, ChangedLimitAppliesAtOnceChangedShapeStartsAfresh) {
  PolicyRegistry reg;
  auto a = reg.RateLimit("r", Limit::Every(20, 60 * kSec, 20), 0, kT0);
  CoreRateLimiter core(a.get());
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(core.TryTake(kT0).admitted);
  auto b = reg.RateLimit("r", Limit::Every(1000, kSec, 1000), 0, kT0);
  EXPECT_EQ(a, b);
  EXPECT_TRUE(core.TryTake(kT0 + 1'000'000).admitted);
  auto keyed = reg.RateLimit("r", Limit::Every(1000, kSec, 1000), 100, kT0);
  EXPECT_NE(keyed, a);
  EXPECT_EQ(keyed->key_capacity(), 128u);
  EXPECT_EQ(reg.RateLimit("r", Limit::Every(1000, kSec, 1000), 120, kT0), keyed);
}

TEST(PolicyRegistry, BreakersAndBudgetsByService) {
  PolicyRegistry reg;
  auto b1 = reg.GetBreaker("calc-svc", {3, 30 * kSec});
  for (int i = 0; i < 3; ++i) b1->OnFailure(kT0, false);
  auto b2 = reg.GetBreaker("calc-svc", {5, 10 * kSec});
  EXPECT_EQ(b1, b2);
  EXPECT_EQ(b2->Status(kT0).state, BreakerState::kOpen);  // state kept
  EXPECT_EQ(b2->params().failures, 5u);
  EXPECT_NE(reg.GetBreaker("other-svc", {}), b1);

  auto r1 = reg.GetRetryBudget("calc-svc", 2, {});
  EXPECT_EQ(reg.GetRetryBudget("calc-svc", 2, {}), r1);
  EXPECT_NE(reg.GetRetryBudget("calc-svc", 4, {}), r1);
}

// A re-registration with a shorter open_for reaches a breaker that is
// already open: it probes at its opening time plus the new open_for.
TEST(PolicyRegistry, ReloadWithShorterOpenForShortensAnOpenBreaker) {
  PolicyRegistry reg;
  auto b = reg.GetBreaker("calc-svc", {1, 30 * kSec});
  b->OnFailure(kT0, false);
  ASSERT_EQ(b->Status(kT0).state, BreakerState::kOpen);
  reg.Sweep();
  ASSERT_EQ(reg.GetBreaker("calc-svc", {1, 2 * kSec}), b);  // the reload at kT0 + 1 s
  EXPECT_EQ(b->Status(kT0 + kSec).next_probe_in_ns, kSec);
  EXPECT_FALSE(b->Admit(kT0 + 2 * kSec - 1).allowed);
  EXPECT_TRUE(b->Admit(kT0 + 2 * kSec).is_probe);
}

TEST(PolicyRegistry, SweepForgetsWhatTheReloadDidNotAskFor) {
  PolicyRegistry reg;
  auto kept = reg.RateLimit("kept", Limit::Every(1, kSec, 1), 0, kT0);
  auto gone = reg.RateLimit("gone", Limit::Every(1, kSec, 1), 0, kT0);
  reg.GetBreaker("svc", {});
  EXPECT_EQ(reg.Sweep(), 0u);  // everything was asked for by the first load
  reg.RateLimit("kept", Limit::Every(1, kSec, 1), 0, kT0);
  EXPECT_EQ(reg.Sweep(), 2u);
  EXPECT_EQ(reg.size(), 1u);
  EXPECT_EQ(reg.RateLimit("kept", Limit::Every(1, kSec, 1), 0, kT0), kept);
  EXPECT_NE(reg.RateLimit("gone", Limit::Every(1, kSec, 1), 0, kT0),
            gone);  // an old snapshot may still hold it
}

}  // namespace
}  // namespace hms::policy
