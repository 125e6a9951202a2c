#include <gtest/gtest.h>

#include <optional>

#include "hms/config/config.h"

namespace hms::config {
namespace {

TEST(ParseDurationMs, AcceptsUnitsAndSequences) {
  EXPECT_EQ(ParseDurationMs("250ms"), 250u);
  EXPECT_EQ(ParseDurationMs("2s"), 2000u);
  EXPECT_EQ(ParseDurationMs("1m"), 60'000u);
  EXPECT_EQ(ParseDurationMs("1h"), 3'600'000u);
  EXPECT_EQ(ParseDurationMs("1d"), 86'400'000u);
  EXPECT_EQ(ParseDurationMs("1m30s"), 90'000u);
  EXPECT_EQ(ParseDurationMs(" 15s "), 15'000u);
  EXPECT_EQ(ParseDurationMs("0s"), 0u);  // callers refuse zero where it makes no sense
}

TEST(ParseDurationMs, RejectsGarbage) {
  for (const char* bad : {"", "15", "s", "ms", "2 s", "2sec", "-1s", "1.5s", "2x", "1s2",
                          "99999999999999999999ms", "18446744073709551615s"}) {
    EXPECT_EQ(ParseDurationMs(bad), std::nullopt) << bad;
  }
}

TEST(ParseDurationMs, DetectsOverflowInSums) {
  EXPECT_EQ(ParseDurationMs("18446744073709551615ms1ms"), std::nullopt);
  EXPECT_EQ(ParseDurationMs("18446744073709551615ms"), 18446744073709551615ull);
}

TEST(ParseSize, AcceptsBinaryUnits) {
  EXPECT_EQ(ParseSize("512"), 512u);
  EXPECT_EQ(ParseSize("512B"), 512u);
  EXPECT_EQ(ParseSize("64KiB"), 65536u);
  EXPECT_EQ(ParseSize("1MiB"), 1u << 20);
  EXPECT_EQ(ParseSize("1 GiB"), 1ull << 30);
  EXPECT_EQ(ParseSize("2TiB"), 2ull << 40);
  EXPECT_EQ(ParseSize("0"), 0u);
}

TEST(ParseSize, RejectsGarbageAndOverflow) {
  for (const char* bad : {"", "KiB", "64K", "1MB", "1mib", "-1", "1.5MiB", "12 34",
                          "18446744073709551616", "17179869184GiB"}) {
    EXPECT_EQ(ParseSize(bad), std::nullopt) << bad;
  }
}

TEST(ParseRateText, SeedForm) {
  std::optional<RateLimit> r = ParseRateText("20 req/min");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->burst, 20u);
  EXPECT_EQ(r->rate_per_sec_x1000, 333u);  // 20/60 s rounded
  EXPECT_EQ(r->text, "20 req/min");
  EXPECT_EQ(r->per, "");
}

TEST(ParseRateText, UnitsAndSpelling) {
  EXPECT_EQ(ParseRateText("100 req/s")->rate_per_sec_x1000, 100'000u);
  EXPECT_EQ(ParseRateText("100 req/sec")->rate_per_sec_x1000, 100'000u);
  EXPECT_EQ(ParseRateText("100req/s")->rate_per_sec_x1000, 100'000u);
  EXPECT_EQ(ParseRateText("100 requests / second")->burst, 100u);
  EXPECT_EQ(ParseRateText("5 req/h")->rate_per_sec_x1000, 1u);  // 1.39 rounds to 1
  EXPECT_EQ(ParseRateText("1 req/h")->rate_per_sec_x1000, 1u);  // never 0, which means no limit
  EXPECT_EQ(ParseRateText("36 req/hour")->rate_per_sec_x1000, 10u);
}

TEST(ParseRateText, RejectsGarbage) {
  for (const char* bad : {"", "20", "0 req/s", "20 req", "20 req/day", "20 reqs/fortnight",
                          "-5 req/s", "x req/s", "4294967296 req/s", "20 req/min extra"}) {
    EXPECT_EQ(ParseRateText(bad), std::nullopt) << bad;
  }
}

TEST(ParseHostPort, Accepts) {
  EXPECT_EQ(ParseHostPort("127.0.0.1:7001")->port, 7001);
  EXPECT_EQ(ParseHostPort("127.0.0.1:7001")->host, "127.0.0.1");
  EXPECT_EQ(ParseHostPort("[::1]:80")->host, "::1");
  EXPECT_EQ(ParseHostPort("calc-svc.internal:65535")->port, 65535);
  EXPECT_EQ(ParseHostPort("localhost:1")->host, "localhost");
  EXPECT_EQ(ParseHostPort("0.0.0.0:0", true)->port, 0);
}

TEST(ParseHostPort, Rejects) {
  for (const char* bad : {"", "127.0.0.1", ":80", "127.0.0.1:", "127.0.0.1:0", "host:65536",
                          "host:99999999", "host:-1", "host:8o", "::1:80", "[::1]80", "[zz]:80",
                          "1.2.3.400:80", "-bad.host:80", "a..b:80", "sp ace:80", "h/x:80"}) {
    EXPECT_EQ(ParseHostPort(bad), std::nullopt) << bad;
  }
}

TEST(IsValidServiceName, Rules) {
  EXPECT_TRUE(IsValidServiceName("calc-svc"));
  EXPECT_TRUE(IsValidServiceName("a"));
  EXPECT_TRUE(IsValidServiceName(std::string(63, 'a')));
  EXPECT_FALSE(IsValidServiceName(std::string(64, 'a')));
  EXPECT_FALSE(IsValidServiceName(""));
  EXPECT_FALSE(IsValidServiceName("Calc"));
  EXPECT_FALSE(IsValidServiceName("calc_svc"));
  EXPECT_FALSE(IsValidServiceName("-calc"));
  EXPECT_FALSE(IsValidServiceName("calc-"));
  EXPECT_FALSE(IsValidServiceName("../etc"));
}

}  // namespace
}  // namespace hms::config
