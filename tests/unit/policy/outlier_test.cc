#include "hms/policy/outlier.h"

#include "hms/policy/backoff.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace hms::policy {
namespace {

constexpr core::Instant kSec = 1'000'000'000ull;

OutlierParams Params() {
  OutlierParams p;
  p.failures = 3;
  p.base_ejection_ns = 1 * kSec;
  p.max_ejection_ns = 5 * kSec;
  return p;
}

TEST(EndpointHealth, EjectsAfterConsecutiveFailuresForGrowingIntervals) {
  EndpointHealth h(Params());
  core::Instant t = 100 * kSec;
  EXPECT_FALSE(h.OnFailure(t));
  EXPECT_FALSE(h.OnFailure(t));
  EXPECT_FALSE(h.Ejected(t));
  EXPECT_TRUE(h.OnFailure(t));  // the third
  EXPECT_TRUE(h.Ejected(t));
  EXPECT_TRUE(h.Ejected(t + kSec - 1));
  EXPECT_FALSE(h.Ejected(t + kSec));
  // Failures of attempts already out while ejected do not count.
  EXPECT_FALSE(h.OnFailure(t + 1));
  // Back, failing again: 2 s, then 4 s, then capped at 5 s.
  t += kSec;
  for (core::Instant expect : {2 * kSec, 4 * kSec, 5 * kSec, 5 * kSec}) {
    h.OnFailure(t);
    h.OnFailure(t);
    EXPECT_TRUE(h.OnFailure(t));
    EXPECT_EQ(h.ejected_until(), t + expect);
    t += expect;
  }
  EXPECT_EQ(h.ejections_total(), 5u);
}

TEST(EndpointHealth, SuccessResetsTheCountAndTheDoubling) {
  EndpointHealth h(Params());
  core::Instant t = 100 * kSec;
  h.OnFailure(t);
  h.OnFailure(t);
  h.OnSuccess();
  EXPECT_FALSE(h.OnFailure(t));  // counting starts over
  EXPECT_FALSE(h.OnFailure(t));
  EXPECT_TRUE(h.OnFailure(t));
  EXPECT_EQ(h.ejected_until(), t + kSec);
  t += kSec;
  h.OnSuccess();  // served well after coming back
  h.OnFailure(t);
  h.OnFailure(t);
  EXPECT_TRUE(h.OnFailure(t));
  EXPECT_EQ(h.ejected_until(), t + kSec);  // the base interval again
}

TEST(EndpointHealth, RacingCoresEjectOncePerThreshold) {
  EndpointHealth h(Params());
  std::atomic<int> ejections{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      for (int k = 0; k < 3; ++k) ejections += h.OnFailure(1000 * kSec) ? 1 : 0;
    });
  }
  for (auto& t : threads) t.join();
  // 12 failures at one instant: the first ejection makes the rest moot.
  EXPECT_EQ(ejections.load(), 1);
  EXPECT_EQ(h.ejections_total(), 1u);
}

TEST(RetryBackoff, ExponentialJitteredAndCapped) {
  // The extremes of the jitter for each retry: [b/2, b].
  const uint64_t caps[] = {25, 50, 100, 200, 250, 250};
  for (uint32_t n = 0; n < 6; ++n) {
    uint64_t lo = UINT64_MAX, hi = 0;
    for (uint64_t r = 0; r < 1000; ++r) {
      uint64_t d = RetryBackoffMs(n, r * 0x9E3779B97F4A7C15ull);
      lo = std::min(lo, d);
      hi = std::max(hi, d);
    }
    EXPECT_EQ(lo, caps[n] / 2) << n;
    EXPECT_EQ(hi, caps[n]) << n;
  }
  EXPECT_EQ(RetryBackoffMs(40, 7), 250 / 2 + 7);  // huge n: capped, no overflow
}

}  // namespace
}  // namespace hms::policy
