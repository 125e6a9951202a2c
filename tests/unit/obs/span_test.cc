#include "hms/obs/span.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace hms::obs {
namespace {

void Fill(SpanRecord* s, uint64_t n) {
  s->start_unix_ns = static_cast<int64_t>(n);
  s->status = static_cast<uint16_t>(n & 0xffff);
}

TEST(SpanRing, FullRingRefusesAndDrainFreesTheSlots) {
  SpanRing ring(100);
  ASSERT_EQ(ring.capacity(), 128u);  // rounded up to a power of two
  for (uint64_t i = 0; i < 128; ++i) {
    SpanRecord* s = ring.Claim();
    ASSERT_NE(s, nullptr) << i;
    Fill(s, i);
    ring.Publish();
  }
  EXPECT_EQ(ring.Claim(), nullptr);  // full: the caller counts the span dropped
  std::vector<SpanRecord> out;
  EXPECT_EQ(ring.Drain(&out, 100), 100u);
  EXPECT_EQ(ring.Drain(&out, 100), 28u);
  EXPECT_EQ(ring.Drain(&out, 100), 0u);
  ASSERT_EQ(out.size(), 128u);
  for (uint64_t i = 0; i < 128; ++i) EXPECT_EQ(out[i].start_unix_ns, static_cast<int64_t>(i));
  EXPECT_NE(ring.Claim(), nullptr);
}

TEST(SpanRing, AClaimNotPublishedIsNotDrained) {
  SpanRing ring(64);
  SpanRecord* s = ring.Claim();
  ASSERT_NE(s, nullptr);
  Fill(s, 7);
  std::vector<SpanRecord> out;
  EXPECT_EQ(ring.Drain(&out, 64), 0u);
  ring.Publish();
  EXPECT_EQ(ring.Drain(&out, 64), 1u);
}

TEST(SpanRing, ProducerAndConsumerThreadsLoseNothingThatWasPublished) {
  SpanRing ring(256);
  constexpr uint64_t kSpans = 200000;
  uint64_t published = 0;
  std::atomic<bool> done{false};
  std::thread producer([&] {
    for (uint64_t i = 0; i < kSpans; ++i) {
      SpanRecord* s = ring.Claim();
      if (s == nullptr) continue;  // dropped, as a core would
      Fill(s, published);
      ring.Publish();
      ++published;
    }
    done.store(true);
  });
  std::vector<SpanRecord> out;
  out.reserve(kSpans);
  while (!done.load()) ring.Drain(&out, 64);
  producer.join();
  ring.Drain(&out, SIZE_MAX);
  ASSERT_EQ(out.size(), published);
  for (uint64_t i = 0; i < out.size(); ++i) {
    ASSERT_EQ(out[i].start_unix_ns, static_cast<int64_t>(i));  // in order, none torn
    ASSERT_EQ(out[i].status, static_cast<uint16_t>(i & 0xffff));
  }
}

TEST(SpanRecord, TextFieldsAreTruncatedToFit) {
  SpanRecord s{};
  SpanRecord::Set(s.method, &s.method_len, "A-VERY-LONG-METHOD-NAME");
  EXPECT_EQ(s.method_len, sizeof s.method);
  EXPECT_EQ(std::string_view(s.method, s.method_len), "A-VERY-LONG-");
  SpanRecord::Set(s.host, &s.host_len, "");
  EXPECT_EQ(s.host_len, 0);
}

TEST(Sampling, Thresholds) {
  EXPECT_EQ(SampleThreshold(1.0), UINT64_MAX);
  EXPECT_EQ(SampleThreshold(2.0), UINT64_MAX);
  EXPECT_EQ(SampleThreshold(0.0), 0u);
  EXPECT_EQ(SampleThreshold(-1.0), 0u);
  EXPECT_EQ(SampleThreshold(0.5), 1ull << 63);
  // Ratio 1 samples every number, ratio 0 none.
  for (uint64_t r : {uint64_t{0}, uint64_t{1}, UINT64_MAX - 1, UINT64_MAX}) {
    EXPECT_TRUE(SampleHit(r, SampleThreshold(1.0))) << r;
    EXPECT_FALSE(SampleHit(r, SampleThreshold(0.0))) << r;
  }
}

TEST(Sampling, RatioIsHonouredOverManyDecisions) {
  uint64_t x = 0x9E3779B97F4A7C15ull;  // xorshift64, as the cores use
  const uint64_t below = SampleThreshold(0.25);
  int hits = 0;
  constexpr int kDecisions = 100000;
  for (int i = 0; i < kDecisions; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    hits += SampleHit(x, below) ? 1 : 0;
  }
  EXPECT_NEAR(hits, kDecisions / 4, kDecisions / 100);
}

}  // namespace
}  // namespace hms::obs
