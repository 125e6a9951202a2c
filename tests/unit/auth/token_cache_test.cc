#include "hms/auth/token_cache.h"

#include <gtest/gtest.h>

#include <string>

namespace hms::auth {
namespace {

TEST(TokenCache, FindsWhatWasInserted) {
  TokenCache cache(100);
  EXPECT_EQ(cache.capacity(), 128u);
  const std::string a = "header.payload.signature-a";
  const uint64_t h = cache.Hash(a);
  TokenCache::Window w;
  EXPECT_FALSE(cache.Find(a, h, &w));
  cache.Insert(a, h, {10, 200}, 50);
  ASSERT_TRUE(cache.Find(a, h, &w));
  EXPECT_EQ(w.not_before, 10);
  EXPECT_EQ(w.valid_until, 200);
  cache.Clear();
  EXPECT_FALSE(cache.Find(a, h, &w));
}

TEST(TokenCache, HashMatchAloneIsNotAHit) {
  // Another token presented with the cached token's hash (a forced 64-bit
  // collision) is refused by the SHA-256 compare.
  TokenCache cache(16);
  const std::string a = "aaaa.bbbb.cccc", b = "aaaa.bbbb.cccd";
  const uint64_t h = cache.Hash(a);
  EXPECT_NE(h, cache.Hash(b));
  cache.Insert(a, h, {0, 100}, 0);
  TokenCache::Window w;
  EXPECT_FALSE(cache.Find(b, h, &w));
  EXPECT_TRUE(cache.Find(a, h, &w));
}

TEST(TokenCache, HashCoversEveryByteAndLength) {
  TokenCache cache(8);
  std::string t(100, 'x');
  const uint64_t base = cache.Hash(t);
  for (size_t i = 0; i < t.size(); ++i) {
    std::string u = t;
    u[i] = 'y';
    EXPECT_NE(cache.Hash(u), base) << i;
  }
  EXPECT_NE(cache.Hash(t.substr(0, 99)), base);
  EXPECT_NE(cache.Hash(t + '\0'), base);
}

TEST(TokenCache, FullWindowEvictsExpiredThenEarliest) {
  TokenCache cache(TokenCache::kWindow);  // one window: every token competes
  std::string tokens[TokenCache::kWindow + 2];
  for (uint32_t i = 0; i < TokenCache::kWindow; ++i) {
    tokens[i] = "token-" + std::to_string(i);
    cache.Insert(tokens[i], cache.Hash(tokens[i]), {0, 1000 + int64_t{i}}, 0);
  }
  EXPECT_EQ(cache.evictions(), 0u);
  TokenCache::Window w;
  for (uint32_t i = 0; i < TokenCache::kWindow; ++i) {
    EXPECT_TRUE(cache.Find(tokens[i], cache.Hash(tokens[i]), &w)) << i;
  }
  // Live entries only: the one expiring first (token-0) goes.
  tokens[8] = "token-8";
  cache.Insert(tokens[8], cache.Hash(tokens[8]), {0, 5000}, 0);
  EXPECT_EQ(cache.evictions(), 1u);
  EXPECT_FALSE(cache.Find(tokens[0], cache.Hash(tokens[0]), &w));
  EXPECT_TRUE(cache.Find(tokens[1], cache.Hash(tokens[1]), &w));
  // At now=1003, token-1..3 have expired: one of them is reused, no eviction.
  tokens[9] = "token-9";
  cache.Insert(tokens[9], cache.Hash(tokens[9]), {0, 5000}, 1003);
  EXPECT_EQ(cache.evictions(), 1u);
  EXPECT_TRUE(cache.Find(tokens[9], cache.Hash(tokens[9]), &w));
  for (uint32_t i = 4; i < TokenCache::kWindow; ++i) {
    EXPECT_TRUE(cache.Find(tokens[i], cache.Hash(tokens[i]), &w)) << i;
  }
  // Re-inserting a cached token refreshes it in place.
  cache.Insert(tokens[9], cache.Hash(tokens[9]), {0, 6000}, 1003);
  ASSERT_TRUE(cache.Find(tokens[9], cache.Hash(tokens[9]), &w));
  EXPECT_EQ(w.valid_until, 6000);
  EXPECT_EQ(cache.evictions(), 1u);
}

TEST(TokenCache, ZeroCapacityDisables) {
  TokenCache cache(0);
  EXPECT_FALSE(cache.enabled());
  cache.Insert("a", 1, {0, 10}, 0);
  TokenCache::Window w;
  EXPECT_FALSE(cache.Find("a", 1, &w));
}

}  // namespace
}  // namespace hms::auth
