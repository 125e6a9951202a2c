#include "hms/policy/lease.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace hms::policy {
namespace {

constexpr core::Instant kT0 = core::Millis(10'000);
constexpr uint64_t kMs = core::Millis(1);

TEST(Lease, SizeFollowsTheRateWithinBounds) {
  LeaseParams p;  // 100 ms horizon, at most 16
  struct Row {
    uint64_t rate_x1000;
    uint32_t size;
  } rows[] = {
      {0, 1},
      {333, 1},  // 20/min: one token, no stock
      {10'000, 1},
      {10'001, 2},  // 10/s covers exactly one per 100 ms
      {50'000, 5},
      {150'500, 16},  // 15.05 per 100 ms rounds up, then the cap
      {1'000'000'000, 16},
      {UINT64_MAX, 16},
  };
  for (const Row& r : rows) EXPECT_EQ(LeaseSize(r.rate_x1000, p), r.size) << r.rate_x1000;
  p.max_lease = 0;  // a nonsense cap still leases one
  EXPECT_EQ(LeaseSize(1'000'000, p), 1u);
}

// At a low rate a request waits for its own token: nothing is held.
TEST(Lease, LowRateWaitsForEachToken) {
  LeaseParams p;
  CoreLease l;
  EXPECT_EQ(TakeToken(l, kT0, p), LeaseStep::kWait);
  EXPECT_EQ(StartAsk(l, kT0, p), 1u);
  EXPECT_EQ(StartAsk(l, kT0, p), 0u);  // one call in flight
  EXPECT_EQ(TakeToken(l, kT0 + kMs, p), LeaseStep::kWait);
  const LeaseAnswer a = OnGrant(l, 1, 0, kT0 + 2 * kMs, p);
  EXPECT_EQ(a.admit, 1u);
  EXPECT_EQ(a.refuse, 1u);  // asked for one waiter, a second arrived meanwhile
  EXPECT_EQ(l.tokens, 0u);
  EXPECT_EQ(StartAsk(l, kT0 + 3 * kMs, p), 0u);  // nothing to ask for
}

// The rate is read from the gaps between requests: one every 150 ms is below
// the 10/s at which a 100 ms horizon holds a token, so every ask is for the
// waiting request alone; one every 50 ms (20/s) leases two after one horizon.
TEST(Lease, AskSizeFollowsTheGapsBetweenRequests) {
  struct Row {
    uint64_t gap_ms;
    uint32_t first_ask_above_one;  // the request at which an ask first exceeds 1 (0: never)
  } rows[] = {{150, 0}, {100, 0}, {50, 2}};
  for (const Row& r : rows) {
    SCOPED_TRACE(r.gap_ms);
    LeaseParams p;
    CoreLease l;
    uint32_t first = 0;
    for (uint32_t i = 0; i < 30; ++i) {
      const core::Instant now = kT0 + i * r.gap_ms * kMs;
      if (TakeToken(l, now, p) != LeaseStep::kWait) continue;
      const uint32_t ask = StartAsk(l, now, p);
      if (ask > 1 && first == 0) first = i;
      OnGrant(l, ask, 0, now, p);
    }
    EXPECT_EQ(first, r.first_ask_above_one);
  }
}

TEST(Lease, RefusalIsRememberedUntilRedisSaysATokenIsDue) {
  LeaseParams p;
  CoreLease l;
  ASSERT_EQ(TakeToken(l, kT0, p), LeaseStep::kWait);
  ASSERT_EQ(StartAsk(l, kT0, p), 1u);
  const LeaseAnswer a = OnGrant(l, 0, 3000 * kMs, kT0, p);
  EXPECT_EQ(a.refuse, 1u);
  EXPECT_EQ(l.empty_until, kT0 + 3000 * kMs);
  EXPECT_EQ(TakeToken(l, kT0 + 2999 * kMs, p), LeaseStep::kRefuse);
  EXPECT_EQ(StartAsk(l, kT0 + 2999 * kMs, p), 0u);  // no call while refusing
  EXPECT_EQ(TakeToken(l, kT0 + 3000 * kMs, p), LeaseStep::kWait);
  EXPECT_EQ(StartAsk(l, kT0 + 3000 * kMs, p), 1u);
}

// A fake clock and a fake Redis (an exact GCRA bucket): at a steady high rate
// the lease grows, requests are admitted from stock, and over any window the
// core never admits more than the bucket granted plus what it held.
TEST(Lease, HighRateLeasesAheadAndStaysWithinTheBound) {
  LeaseParams p;
  CoreLease l;
  const uint64_t interval = kMs;  // the fleet bucket: 1000/s, burst 10
  const uint32_t burst = 10;
  core::Instant tat = 0;
  auto redis = [&](uint32_t want, core::Instant now, uint64_t* retry) {
    tat = std::max(tat, now);
    const uint64_t room = (now + burst * interval - tat) / interval;
    const uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(want, room));
    tat += n * interval;
    const int64_t r = static_cast<int64_t>(tat + interval) - burst * interval - now;
    *retry = r > 0 ? static_cast<uint64_t>(r) : 0;
    return n;
  };
  uint64_t admitted = 0, waited = 0, waited_late = 0, granted_total = 0;
  uint32_t pending_ask = 0;
  core::Instant ask_at = 0;
  // 400 requests/s on this core for 5 s, Redis answering 2 ms after each ask.
  for (core::Instant now = kT0; now < kT0 + 5000 * kMs; now += 2'500'000) {
    if (pending_ask > 0 && now >= ask_at + 2 * kMs) {
      uint64_t retry = 0;
      const uint32_t n = redis(pending_ask, now, &retry);
      granted_total += n;
      admitted += OnGrant(l, n, retry, now, p).admit;
      pending_ask = 0;
    }
    switch (TakeToken(l, now, p)) {
      case LeaseStep::kAdmit:
        ++admitted;
        break;
      case LeaseStep::kWait:
        ++waited;
        if (now >= kT0 + 200 * kMs) ++waited_late;
        break;
      case LeaseStep::kRefuse:
        break;
    }
    if (pending_ask == 0) {
      pending_ask = StartAsk(l, now, p);
      ask_at = now;
    }
  }
  EXPECT_EQ(LeaseSize(l.rate_x1000, p), 16u);  // 40 per 100 ms: the cap
  EXPECT_NEAR(static_cast<double>(l.rate_x1000), 400'000.0, 4'000.0);
  // Every request is admitted; only those of the first horizon (100 ms, before
  // the rate is known) wait for Redis, batched one call per round trip.
  EXPECT_GE(admitted, 1999u);
  EXPECT_LE(waited, 45u);
  EXPECT_EQ(waited_late, 0u);
  // Admitted never exceeds granted; what was granted and not spent is held.
  EXPECT_LE(admitted, granted_total);
  EXPECT_LE(granted_total - admitted, p.max_lease);
}

TEST(Lease, UnspentTokensAreDroppedAfterTheHoldTime) {
  LeaseParams p;
  p.max_lease = 8;
  CoreLease l;
  l.rate_x1000 = 1'000'000;  // seen 1000/s before
  EXPECT_EQ(StartAsk(l, kT0, p), 8u);
  EXPECT_EQ(OnGrant(l, 8, 0, kT0, p).admit, 0u);
  EXPECT_EQ(l.tokens, 8u);
  EXPECT_EQ(TakeToken(l, kT0 + p.hold_ns - 1, p), LeaseStep::kAdmit);
  EXPECT_EQ(TakeToken(l, kT0 + p.hold_ns, p), LeaseStep::kWait);
  EXPECT_EQ(l.tokens, 0u);
}

TEST(Lease, RefillsWhenStockFallsBelowHalf) {
  LeaseParams p;
  p.max_lease = 8;
  CoreLease l;
  l.rate_x1000 = 1'000'000;
  ASSERT_EQ(StartAsk(l, kT0, p), 8u);
  OnGrant(l, 8, 0, kT0, p);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(TakeToken(l, kT0, p), LeaseStep::kAdmit);
  EXPECT_EQ(StartAsk(l, kT0, p), 0u);  // 4 of 8 left: enough
  ASSERT_EQ(TakeToken(l, kT0, p), LeaseStep::kAdmit);
  EXPECT_EQ(StartAsk(l, kT0, p), 5u);  // 3 left: top up to 8
}

TEST(Lease, FailedAskHandsTheWaitersToTheFallback) {
  LeaseParams p;
  CoreLease l;
  ASSERT_EQ(TakeToken(l, kT0, p), LeaseStep::kWait);
  ASSERT_EQ(TakeToken(l, kT0, p), LeaseStep::kWait);
  ASSERT_EQ(StartAsk(l, kT0, p), 2u);
  EXPECT_EQ(OnAskFailed(l), 2u);
  EXPECT_FALSE(l.asking);
  EXPECT_EQ(l.waiting, 0u);
}

}  // namespace
}  // namespace hms::policy
