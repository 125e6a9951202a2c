#include "hms/policy/token_bucket.h"

#include <gtest/gtest.h>

namespace hms::policy {
namespace {

constexpr core::Instant kSec = 1'000'000'000ull;
constexpr core::Instant kT0 = 1000 * kSec;

TEST(TokenBucket, StartsFullAndRefusesWhenEmpty) {
  TokenBucket b(20, 20'000 / 60);  // 20 req/min as the config writes it
  int admitted = 0;
  for (int i = 0; i < 100; ++i) admitted += b.TryTake(kT0);
  EXPECT_EQ(admitted, 20);
  EXPECT_EQ(b.Available(kT0), 0u);
  EXPECT_EQ(b.SecondsUntilToken(kT0), 4u);  // 333 milli-tokens/s: 3.003 s, rounded up
}

TEST(TokenBucket, RefillsAtRateAndCapsAtBurst) {
  TokenBucket b(10, 1'000'000);  // 1000/s
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(b.TryTake(kT0));
  EXPECT_FALSE(b.TryTake(kT0));
  EXPECT_EQ(b.Available(kT0 + 5'000'000), 5u);
  EXPECT_EQ(b.Available(kT0 + 100 * kSec), 10u);
}

TEST(TokenBucket, NoFractionLostOverManySmallSteps) {
  // 3 tokens/s polled every 1 ms for 10 s must earn exactly 30 (a burst of 2
  // so that the bucket never overflows between a token and its poll).
  TokenBucket b(2, 3'000);
  ASSERT_TRUE(b.TryTake(kT0));
  ASSERT_TRUE(b.TryTake(kT0));
  int admitted = 0;
  for (int i = 1; i <= 10'000; ++i) admitted += b.TryTake(kT0 + i * 1'000'000ull);
  EXPECT_EQ(admitted, 30);
}

}  // namespace
}  // namespace hms::policy
