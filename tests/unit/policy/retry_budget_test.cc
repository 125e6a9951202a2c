#include "hms/policy/retry_budget.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace hms::policy {
namespace {

constexpr core::Instant kSec = 1'000'000'000ull;
constexpr core::Instant kT0 = 1000 * kSec;

TEST(RetryBudget, QuietServiceGetsThreeRetriesPerSecond) {
  RetryBudget budget(1, {});
  CoreRetryBudget core(&budget, 0);
  int allowed = 0;
  for (int i = 0; i < 10; ++i) allowed += core.TryRetry(kT0);
  EXPECT_EQ(allowed, 3);
  allowed = 0;
  for (int i = 0; i < 10; ++i) allowed += core.TryRetry(kT0 + kSec);
  EXPECT_EQ(allowed, 3);
  EXPECT_EQ(budget.refused_total(), 14u);
  EXPECT_EQ(budget.RetriesInWindow(kT0 + kSec), 6u);
}

TEST(RetryBudget, TwentyPercentOfTheWindowsRequests) {
  RetryBudget budget(1, {});
  CoreRetryBudget core(&budget, 0);
  for (int i = 0; i < 500; ++i) core.OnRequest(kT0 + i * (kSec / 100));  // 5 s of traffic
  const core::Instant now = kT0 + 5 * kSec;
  EXPECT_EQ(budget.RequestsInWindow(now), 500u);
  int allowed = 0;
  for (int i = 0; i < 1000; ++i) allowed += core.TryRetry(now);
  EXPECT_EQ(allowed, 100);
}

TEST(RetryBudget, WindowSlides) {
  RetryBudget budget(1, {});
  CoreRetryBudget core(&budget, 0);
  for (int i = 0; i < 100; ++i) core.OnRequest(kT0);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(core.TryRetry(kT0));
  EXPECT_FALSE(core.TryRetry(kT0));
  // Nine seconds later the requests and retries still count: only the floor.
  int allowed = 0;
  for (int i = 0; i < 10; ++i) allowed += core.TryRetry(kT0 + 9 * kSec);
  EXPECT_EQ(allowed, 3);
  // Ten seconds later both have left the window.
  EXPECT_EQ(budget.RequestsInWindow(kT0 + 10 * kSec), 0u);
  EXPECT_EQ(budget.RetriesInWindow(kT0 + 10 * kSec), 3u);
  EXPECT_EQ(budget.RetriesInWindow(kT0 + 19 * kSec), 0u);
}

TEST(RetryBudget, RequestsOfAllCoresCountAndRetriesNeverOverrun) {
  for (int threads : {2, 4}) {
    RetryBudget budget(threads, {});
    std::atomic<int> retried{0};
    std::atomic<int> counted{0};
    std::vector<std::thread> ts;
    // Every core counts its requests; then all race for retries.
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&, t] {
        CoreRetryBudget core(&budget, t);
        for (int i = 0; i < 1000; ++i) core.OnRequest(kT0);
        counted.fetch_add(1);
        while (counted.load() < threads) std::this_thread::yield();
        int mine = 0;
        for (int i = 0; i < 1000; ++i) mine += core.TryRetry(kT0);
        retried += mine;
      });
    }
    for (auto& th : ts) th.join();
    EXPECT_EQ(budget.RequestsInWindow(kT0), threads * 1000u);
    EXPECT_EQ(retried.load(), threads * 200) << threads;
  }
}

TEST(RetryBudget, OtherParameters) {
  RetryBudget budget(1, {50, 0, 2});
  CoreRetryBudget core(&budget, 0);
  EXPECT_FALSE(core.TryRetry(kT0));  // no floor
  for (int i = 0; i < 10; ++i) core.OnRequest(kT0);
  for (int i = 0; i < 10; ++i) core.OnRequest(kT0 + kSec);
  int allowed = 0;
  for (int i = 0; i < 100; ++i) allowed += core.TryRetry(kT0 + kSec);
  EXPECT_EQ(allowed, 10);
  EXPECT_EQ(budget.RequestsInWindow(kT0 + 2 * kSec), 10u);  // a 2 s window
}

}  // namespace
}  // namespace hms::policy
