#include "hms/policy/rate_limit.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "hms/policy/token_bucket.h"

namespace hms::policy {
namespace {

constexpr core::Instant kSec = 1'000'000'000ull;
constexpr core::Instant kT0 = 1000 * kSec;

const Limit k20PerMin = Limit::Every(20, 60 * kSec, 20);

// Runs `body(thread_index)` on `n` threads released together.
template <typename F>
void RunThreads(int n, F body) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> ts;
  for (int t = 0; t < n; ++t) {
    ts.emplace_back([&, t] {
      ready.fetch_add(1);
      while (!go.load()) std::this_thread::yield();
      body(t);
    });
  }
  while (ready.load() < n) std::this_thread::yield();
  go.store(true);
  for (auto& th : ts) th.join();
}

TEST(RateLimit, LimitFromConfigRoundsTowardsSlower) {
  EXPECT_EQ(Limit::PerSecondX1000(1'000'000, 5).interval_ns, 1'000'000u);
  EXPECT_EQ(Limit::PerSecondX1000(333, 20).interval_ns, 3'003'003'004u);
  EXPECT_EQ(Limit::Every(20, 60 * kSec, 20).interval_ns, 3 * kSec);
  EXPECT_EQ(Limit::Every(3, kSec, 0).burst, 1u);  // a bucket holds at least one token
}

TEST(RateLimit, HundredRequestsAtTwentyPerMinuteAdmitTwenty) {
  RateLimitState state(k20PerMin);
  CoreRateLimiter core(&state);
  int admitted = 0;
  for (int i = 0; i < 100; ++i) admitted += core.TryTake(kT0 + i * 1000).admitted;
  EXPECT_EQ(admitted, 20);
}

TEST(RateLimit, DecisionCarriesTheHeaderValues) {
  RateLimitState state(k20PerMin);
  CoreRateLimiter core(&state);
  RateDecision d = core.TryTake(kT0);
  EXPECT_TRUE(d.admitted);
  EXPECT_EQ(d.limit, 20u);
  EXPECT_EQ(d.remaining, 19u);
  EXPECT_EQ(d.reset_s, 3u);  // one token missing: full again in one interval
  EXPECT_EQ(d.retry_after_s, 0u);
  for (int i = 1; i < 19; ++i) ASSERT_TRUE(core.TryTake(kT0).admitted);
  d = core.TryTake(kT0);
  EXPECT_TRUE(d.admitted);
  EXPECT_EQ(d.remaining, 0u);
  EXPECT_EQ(d.reset_s, 60u);
  d = core.TryTake(kT0);
  EXPECT_FALSE(d.admitted);
  EXPECT_EQ(d.remaining, 0u);
  EXPECT_EQ(d.reset_s, 60u);
  EXPECT_EQ(d.retry_after_s, 3u);
  // Half a second later, from the core's remembered refusal.
  d = core.TryTake(kT0 + kSec / 2);
  EXPECT_FALSE(d.admitted);
  EXPECT_EQ(d.retry_after_s, 3u);  // 2.5 s, rounded up
  EXPECT_EQ(d.reset_s, 60u);       // 59.5 s, rounded up
  // The next token is due three seconds after the burst.
  EXPECT_FALSE(core.TryTake(kT0 + 3 * kSec - 1).admitted);
  d = core.TryTake(kT0 + 3 * kSec);
  EXPECT_TRUE(d.admitted);
  EXPECT_EQ(d.remaining, 0u);
  EXPECT_EQ(state.Available(kT0 + 3 * kSec), 0u);
  EXPECT_EQ(state.Available(kT0 + 63 * kSec), 20u);
}

TEST(RateLimit, RefusalSeenOnOneCoreDoesNotHideTokensFromAnother) {
  RateLimitState state(Limit::Every(1, kSec, 1));
  CoreRateLimiter a(&state), b(&state);
  ASSERT_TRUE(a.TryTake(kT0).admitted);
  EXPECT_FALSE(a.TryTake(kT0).admitted);
  EXPECT_FALSE(b.TryTake(kT0 + kSec / 2).admitted);
  EXPECT_TRUE(b.TryTake(kT0 + kSec).admitted);  // the token due at +1 s goes to b
  EXPECT_FALSE(a.TryTake(kT0 + kSec).admitted);
  EXPECT_TRUE(a.TryTake(kT0 + 2 * kSec).admitted);
}

// 100 requests at a 20 req/min route spread over 2 and 4 cores: exactly 20.
TEST(RateLimit, SharedAcrossThreadsAdmitsExactlyTheBurst) {
  for (int threads : {2, 4}) {
    for (int round = 0; round < 50; ++round) {
      RateLimitState state(k20PerMin);
      std::atomic<int> admitted{0};
      RunThreads(threads, [&](int) {
        CoreRateLimiter core(&state);
        for (int i = 0; i < 100 / threads; ++i) admitted += core.TryTake(kT0).admitted;
      });
      ASSERT_EQ(admitted.load(), 20) << threads << " threads, round " << round;
    }
  }
}

// A 1,000 req/s route driven at 3,000 req/s for 5 s (simulated clock) over 2
// and 4 cores: within ±2% of 5,000 + burst, never above burst + rate × elapsed,
// and at most one refusal per core more than a single global bucket.
TEST(RateLimit, OverloadAdmitsTheRateOverCores) {
  constexpr uint32_t kBurst = 100;
  constexpr uint64_t kRequests = 15'000;
  constexpr uint64_t kStep = kSec / 3000;  // 333,333 ns between requests
  TokenBucket reference(kBurst, 1'000'000);
  uint64_t ref_admitted = 0;
  for (uint64_t i = 0; i < kRequests; ++i) ref_admitted += reference.TryTake(kT0 + i * kStep);

  for (int threads : {2, 4}) {
    RateLimitState state(Limit::PerSecondX1000(1'000'000, kBurst));
    std::atomic<uint64_t> next{0};
    std::atomic<uint64_t> admitted{0};
    std::atomic<uint64_t> last_time{0};
    RunThreads(threads, [&](int) {
      CoreRateLimiter core(&state);
      uint64_t mine = 0;
      // Each request takes the next slot of the schedule, so cores interleave
      // as the scheduler pleases while the offered load stays 3,000/s.
      for (uint64_t i; (i = next.fetch_add(1)) < kRequests;) {
        const core::Instant now = kT0 + i * kStep;
        mine += core.TryTake(now).admitted;
        uint64_t seen = last_time.load();
        while (seen < now && !last_time.compare_exchange_weak(seen, now)) {
        }
      }
      admitted += mine;
    });
    const double expected = 5000.0 + kBurst;
    const double elapsed_s = static_cast<double>(last_time.load() - kT0) / kSec;
    EXPECT_LE(static_cast<double>(admitted.load()), kBurst + 1000.0 * elapsed_s + 1) << threads;
    EXPECT_NEAR(static_cast<double>(admitted.load()), expected, expected * 0.02) << threads;
    EXPECT_GE(admitted.load() + threads, ref_admitted) << threads;
  }
  EXPECT_NEAR(static_cast<double>(ref_admitted), 5000.0 + kBurst, 2.0);
}

// The same on the real clock, for about one second on two threads. The upper
// bound is strict; the lower one is loose, as a loaded machine may leave both
// threads off-CPU long enough for the bucket to overflow.
TEST(RateLimit, RealClockNeverExceedsBurstPlusRate) {
  constexpr uint32_t kBurst = 50;
  RateLimitState state(Limit::PerSecondX1000(1'000'000, kBurst));
  std::atomic<uint64_t> admitted{0};
  const core::Instant start = core::Now();
  const core::Instant stop = start + kSec;
  RunThreads(2, [&](int) {
    CoreRateLimiter core(&state);
    uint64_t mine = 0;
    for (core::Instant now; (now = core::Now()) < stop;) mine += core.TryTake(now).admitted;
    admitted += mine;
  });
  const double elapsed_s = static_cast<double>(stop - start) / kSec;
  EXPECT_LE(static_cast<double>(admitted.load()), kBurst + 1000.0 * elapsed_s + 1);
  EXPECT_GE(admitted.load(), 500u);
}

TEST(RateLimit, ReconfigureTakesEffectAtOnce) {
  RateLimitState state(k20PerMin);
  CoreRateLimiter core(&state);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(core.TryTake(kT0).admitted);
  ASSERT_FALSE(core.TryTake(kT0).admitted);  // remembered until kT0 + 3 s
  // Raised to 1,000/s: the empty bucket refills at the new rate from now.
  state.Reconfigure(Limit::PerSecondX1000(1'000'000, 1000), kT0);
  EXPECT_EQ(state.limit().burst, 1000u);
  EXPECT_FALSE(core.TryTake(kT0).admitted);
  EXPECT_TRUE(core.TryTake(kT0 + 1'000'000).admitted);
  EXPECT_EQ(state.Available(kT0 + 2 * kSec), 1000u);
  // Lowered again: a full bucket keeps only the new burst.
  state.Reconfigure(k20PerMin, kT0 + 2 * kSec);
  int admitted = 0;
  for (int i = 0; i < 100; ++i) admitted += core.TryTake(kT0 + 2 * kSec).admitted;
  EXPECT_EQ(admitted, 20);
}

TEST(RateLimit, ReconfigureKeepsPartlyUsedTokens) {
  RateLimitState state(Limit::Every(10, kSec, 10));
  CoreRateLimiter core(&state);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(core.TryTake(kT0).admitted);
  state.Reconfigure(Limit::Every(1, kSec, 20), kT0);  // 6 tokens stay
  int admitted = 0;
  for (int i = 0; i < 50; ++i) admitted += core.TryTake(kT0).admitted;
  EXPECT_EQ(admitted, 6);
}

TEST(RateLimit, HashKeyIsSeededAndNeverReserved) {
  EXPECT_EQ(HashKey("10.0.0.1", 1), HashKey(std::string("10.0.0.1"), 1));
  EXPECT_NE(HashKey("10.0.0.1", 1), HashKey("10.0.0.2", 1));
  EXPECT_NE(HashKey("10.0.0.1", 1), HashKey("10.0.0.1", 2));
  EXPECT_NE(HashKey("", 1), HashKey(std::string_view("\0", 1), 1));
  for (int i = 0; i < 10'000; ++i) EXPECT_GE(HashKey(std::to_string(i), 7), 2u);
}

TEST(RateLimit, KeysHaveTheirOwnBuckets) {
  RateLimitState state(Limit::Every(5, 60 * kSec, 5), 1024);
  EXPECT_TRUE(state.keyed());
  EXPECT_EQ(state.key_capacity(), 1024u);
  CoreRateLimiter core(&state);
  for (const char* key : {"alice", "bob", "carol"}) {
    int admitted = 0;
    for (int i = 0; i < 20; ++i) admitted += core.TryTake(kT0, key).admitted;
    EXPECT_EQ(admitted, 5) << key;
  }
  const RateDecision d = core.TryTake(kT0, "alice");
  EXPECT_FALSE(d.admitted);
  EXPECT_EQ(d.retry_after_s, 12u);
  EXPECT_TRUE(core.TryTake(kT0, "dave").admitted);
  EXPECT_EQ(state.evictions(), 0u);
}

TEST(RateLimit, LeastRecentlyUsedKeyIsEvicted) {
  RateLimitState state(Limit::Every(1, 60 * kSec, 1), RateLimitState::kWays);  // one set
  CoreRateLimiter core(&state);
  for (int k = 0; k < 8; ++k) {
    ASSERT_TRUE(core.TryTake(kT0 + k, "client-" + std::to_string(k)).admitted);
  }
  // client-0 used again, so client-1 is now the least recently used.
  EXPECT_FALSE(core.TryTake(kT0 + 10, "client-0").admitted);
  EXPECT_TRUE(core.TryTake(kT0 + 11, "client-8").admitted);
  EXPECT_EQ(state.evictions(), 1u);
  EXPECT_FALSE(core.TryTake(kT0 + 12, "client-0").admitted);  // kept, still empty
  EXPECT_FALSE(core.TryTake(kT0 + 13, "client-2").admitted);  // kept
  // client-1 was forgotten: it comes back with a full bucket (evicting client-3).
  EXPECT_TRUE(core.TryTake(kT0 + 14, "client-1").admitted);
  EXPECT_EQ(state.evictions(), 2u);
}

TEST(RateLimit, KeyedBucketsAreSharedAcrossThreads) {
  for (int threads : {2, 4}) {
    for (int round = 0; round < 20; ++round) {
      RateLimitState state(Limit::Every(5, 60 * kSec, 5), 1024);
      std::atomic<int> admitted[16] = {};
      RunThreads(threads, [&](int t) {
        CoreRateLimiter core(&state);
        for (int i = 0; i < 20; ++i) {
          for (int k = 0; k < 16; ++k) {
            const int key = (k + t * 5) % 16;  // cores meet on the same new keys
            admitted[key] += core.TryTake(kT0, "user-" + std::to_string(key)).admitted;
          }
        }
      });
      for (int k = 0; k < 16; ++k) ASSERT_EQ(admitted[k].load(), 5) << threads << " key " << k;
    }
  }
}

TEST(RateLimit, ReconfigureReachesKeyedBuckets) {
  RateLimitState state(Limit::Every(2, 60 * kSec, 2), 64);
  CoreRateLimiter core(&state);
  ASSERT_TRUE(core.TryTake(kT0, "k").admitted);
  ASSERT_TRUE(core.TryTake(kT0, "k").admitted);
  ASSERT_FALSE(core.TryTake(kT0, "k").admitted);
  state.Reconfigure(Limit::Every(1000, kSec, 10), kT0);
  EXPECT_FALSE(core.TryTake(kT0, "k").admitted);
  EXPECT_TRUE(core.TryTake(kT0 + 1'000'000, "k").admitted);
}

}  // namespace
}  // namespace hms::policy
