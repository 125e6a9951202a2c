#include "hms/obs/recent_refusals.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

namespace hms::obs {
namespace {

TEST(RefusalRing, EmptyRingHasNothing) {
  RefusalRing ring;
  Refusal out[4];
  EXPECT_EQ(ring.Latest(out, 4), 0u);
  EXPECT_EQ(ring.written(), 0u);
}

TEST(RefusalRing, KeepsEveryFieldNewestFirst) {
  struct Want {
    int64_t unix_ms;
    uint32_t route_key;
    uint16_t status;
    const char* reason;
    const char* method;
    const char* trace_id;
  };
  const Want written[] = {
      {1000, 7, 429, "rate_limited", "GET", "4bf92f3577b34da6a3ce929d0e0e4736"},
      {1001, 0xffffffffu, 404, "no_route", "DELETE", "abc"},
  };
  RefusalRing ring;
  for (const Want& w : written) {
    ring.Record(w.unix_ms, w.route_key, w.status, w.reason, w.method, w.trace_id);
  }
  Refusal out[4];
  ASSERT_EQ(ring.Latest(out, 4), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const Want& w = written[1 - i];  // newest first
    EXPECT_EQ(out[i].unix_ms, w.unix_ms) << i;
    EXPECT_EQ(out[i].route_key, w.route_key) << i;
    EXPECT_EQ(out[i].status, w.status) << i;
    EXPECT_STREQ(out[i].reason, w.reason) << i;
    EXPECT_STREQ(out[i].method, w.method) << i;
    EXPECT_STREQ(out[i].trace_id, w.trace_id) << i;
  }
  // `max` bounds the copy: the newest one alone.
  ASSERT_EQ(ring.Latest(out, 1), 1u);
  EXPECT_EQ(out[0].unix_ms, 1001);
}

TEST(RefusalRing, CutsTextsToTheirFields) {
  RefusalRing ring;
  const std::string long_reason(100, 'r'), long_method(40, 'M'), long_trace(64, 'f');
  ring.Record(1, 1, 400, long_reason, long_method, long_trace);
  Refusal out[1];
  ASSERT_EQ(ring.Latest(out, 1), 1u);
  EXPECT_EQ(std::string(out[0].reason), long_reason.substr(0, sizeof out[0].reason - 1));
  EXPECT_EQ(std::string(out[0].method), long_method.substr(0, sizeof out[0].method - 1));
  EXPECT_EQ(std::string(out[0].trace_id), long_trace.substr(0, 32));
}

TEST(RefusalRing, OverwritesTheOldestWhenFull) {
  RefusalRing ring;
  const uint32_t n = RefusalRing::kSlots * 3 + 5;
  for (uint32_t i = 0; i < n; ++i) ring.Record(i, i, 503, "circuit_open", "GET", "t");
  EXPECT_EQ(ring.written(), n);
  Refusal out[RefusalRing::kSlots + 4];
  ASSERT_EQ(ring.Latest(out, RefusalRing::kSlots + 4), RefusalRing::kSlots);
  for (uint32_t k = 0; k < RefusalRing::kSlots; ++k) {
    EXPECT_EQ(out[k].route_key, n - 1 - k) << k;  // the last kSlots, newest first
  }
}

// A reader racing the writer never sees a torn record: every field of a
// record it returns was written by the same Record() call.
TEST(RefusalRing, ReaderRacingTheWriterSeesWholeRecords) {
  RefusalRing ring;
  std::atomic<bool> done{false};
  std::thread writer([&] {
    char reason[32], trace[33];
    for (uint32_t i = 1; i <= 300000; ++i) {
      std::snprintf(reason, sizeof reason, "r%u", i);
      std::snprintf(trace, sizeof trace, "%032u", i);
      ring.Record(i, i, static_cast<uint16_t>(400 + i % 100), reason, i % 2 ? "GET" : "POST", trace);
    }
    done.store(true);
  });
  uint64_t seen = 0;
  Refusal out[RefusalRing::kSlots];
  while (!done.load()) {
    const size_t got = ring.Latest(out, RefusalRing::kSlots);
    for (size_t k = 0; k < got; ++k) {
      const Refusal& r = out[k];
      const uint32_t i = r.route_key;
      char reason[32], trace[33];
      std::snprintf(reason, sizeof reason, "r%u", i);
      std::snprintf(trace, sizeof trace, "%032u", i);
      ASSERT_EQ(r.unix_ms, static_cast<int64_t>(i));
      ASSERT_EQ(r.status, 400 + i % 100);
      ASSERT_STREQ(r.reason, reason);
      ASSERT_STREQ(r.method, i % 2 ? "GET" : "POST");
      ASSERT_STREQ(r.trace_id, trace);
      if (k > 0) ASSERT_LT(r.route_key, out[k - 1].route_key);  // newest first
      ++seen;
    }
  }
  writer.join();
  EXPECT_GT(seen, 0u);
}

}  // namespace
}  // namespace hms::obs
