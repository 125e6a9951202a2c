#include "hms/obs/metrics.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <thread>
#include <utility>

namespace hms::obs {
namespace {

using Counts = std::map<std::pair<uint32_t, uint16_t>, uint64_t>;

Counts Snapshot(const RequestTable& t) {
  Counts c;
  t.ForEach([&c](uint32_t route, uint16_t status, uint64_t n) {
    auto [it, inserted] = c.emplace(std::make_pair(route, status), n);
    EXPECT_TRUE(inserted) << "pair visited twice: " << route << "/" << status;
  });
  return c;
}

TEST(RequestTable, CountsByRouteAndStatus) {
  RequestTable t(16);
  t.Count(0, 404);
  t.Count(3, 200);
  t.Count(3, 200);
  t.Count(3, 503);
  t.Count(7, 200, 5);
  Counts c = Snapshot(t);
  EXPECT_EQ(c.size(), 4u);
  EXPECT_EQ((c[{0, 404}]), 1u);
  EXPECT_EQ((c[{3, 200}]), 2u);
  EXPECT_EQ((c[{3, 503}]), 1u);
  EXPECT_EQ((c[{7, 200}]), 5u);
  EXPECT_EQ(t.overflow(), 0u);
  EXPECT_EQ(t.size(), 4u);
}

TEST(RequestTable, ExtremeKeysRoundTrip) {
  RequestTable t(8);
  t.Count(UINT32_MAX, 0xffff);
  t.Count(0, 0);
  Counts c = Snapshot(t);
  EXPECT_EQ((c[{UINT32_MAX, 0xffff}]), 1u);
  EXPECT_EQ((c[{0, 0}]), 1u);
}

TEST(RequestTable, FullTableCountsIntoOverflow) {
  RequestTable t(8);
  ASSERT_EQ(t.max_keys(), 7u);
  for (uint32_t r = 0; r < 7; ++r) t.Count(r, 200);
  EXPECT_EQ(t.overflow(), 0u);
  t.Count(100, 200);
  t.Count(101, 500, 3);
  EXPECT_EQ(t.overflow(), 4u);
  // Keys already present still count normally.
  t.Count(2, 200);
  Counts c = Snapshot(t);
  EXPECT_EQ(c.size(), 7u);
  EXPECT_EQ((c[{2, 200}]), 2u);
  EXPECT_EQ(c.count({100, 200}), 0u);
  EXPECT_EQ(t.overflow(), 4u);
}

TEST(RequestTable, ManyKeysAllFoundAgain) {
  RequestTable t(4096);
  for (int round = 0; round < 3; ++round) {
    for (uint32_t r = 0; r < 1000; ++r) t.Count(r, static_cast<uint16_t>(200 + r % 4));
  }
  Counts c = Snapshot(t);
  EXPECT_EQ(c.size(), 1000u);
  for (const auto& [k, n] : c) EXPECT_EQ(n, 3u) << k.first;
  EXPECT_EQ(t.overflow(), 0u);
}

// One writer counts while a reader scrapes over and over: every row the reader
// sees must be a real key (no torn key), counts never go down between scrapes,
// and the final totals are exact.
TEST(RequestTable, ConcurrentReaderSeesMonotonicCounts) {
  RequestTable t(64);
  constexpr uint32_t kRoutes = 40;  // fills well past half the table
  constexpr uint64_t kRounds = 20000;
  std::atomic<bool> done{false};
  std::atomic<bool> reader_ok{true};
  std::atomic<uint64_t> scrapes{0};

  std::thread reader([&] {
    Counts last;
    while (true) {
      const bool finished = done.load(std::memory_order_acquire);
      Counts now;
      t.ForEach([&](uint32_t route, uint16_t status, uint64_t n) {
        if (route >= kRoutes || status != static_cast<uint16_t>(200 + route) || n == 0 ||
            n > kRounds) {
          reader_ok = false;
        }
        now[{route, status}] = n;
      });
      for (const auto& [k, n] : last) {
        auto it = now.find(k);
        if (it == now.end() || it->second < n) reader_ok = false;
      }
      last = std::move(now);
      scrapes.fetch_add(1, std::memory_order_relaxed);
      if (finished) break;
    }
  });

  // The writer works in phases and, after each, waits for a scrape that
  // started after it: reader and writer meet kPhases times whatever the
  // scheduler does, so the reader always sees counts grow mid-run.
  constexpr uint64_t kPhases = 20;
  for (uint64_t phase = 0; phase < kPhases; ++phase) {
    for (uint64_t i = 0; i < kRounds / kPhases; ++i) {
      for (uint32_t r = 0; r < kRoutes; ++r) t.Count(r, static_cast<uint16_t>(200 + r));
    }
    const uint64_t seen = scrapes.load(std::memory_order_relaxed);
    while (scrapes.load(std::memory_order_relaxed) < seen + 2) std::this_thread::yield();
  }
  done.store(true, std::memory_order_release);
  reader.join();

  EXPECT_TRUE(reader_ok.load());
  EXPECT_GT(scrapes.load(), 2 * kPhases);
  Counts c = Snapshot(t);
  ASSERT_EQ(c.size(), kRoutes);
  for (const auto& [k, n] : c) EXPECT_EQ(n, kRounds);
  EXPECT_EQ(t.overflow(), 0u);
}

TEST(CoreMetrics, SumAddsCoresAndMergesRequestRows) {
  CoreMetrics a;
  CoreMetrics b;
  a.connections_accepted.Add(3);
  b.connections_accepted.Add(4);
  a.connections_active.Set(2);
  b.connections_active.Set(5);
  a.bytes_in.Add(100);
  b.bytes_out.Add(7);
  a.headers_dropped_underscore.Add(2);
  b.headers_dropped_underscore.Add(3);
  a.snapshot_version.Set(9);
  b.snapshot_version.Set(8);
  a.requests.Count(1, 200, 10);
  b.requests.Count(1, 200, 5);
  b.requests.Count(0, 404, 2);
  a.requests.Count(2, 503);

  CoreTotals t = Sum({&a, nullptr, &b});
  EXPECT_EQ(t.cores, 2u);
  EXPECT_EQ(t.connections_accepted, 7u);
  EXPECT_EQ(t.connections_active, 7u);
  EXPECT_EQ(t.bytes_in, 100u);
  EXPECT_EQ(t.bytes_out, 7u);
  EXPECT_EQ(t.headers_dropped_underscore, 5u);
  EXPECT_EQ(t.snapshot_version_min, 8u);
  ASSERT_EQ(t.requests.size(), 3u);
  EXPECT_EQ(t.requests[0].route_key, 0u);
  EXPECT_EQ(t.requests[0].status, 404);
  EXPECT_EQ(t.requests[0].count, 2u);
  EXPECT_EQ(t.requests[1].route_key, 1u);
  EXPECT_EQ(t.requests[1].count, 15u);
  EXPECT_EQ(t.requests[2].route_key, 2u);
  EXPECT_EQ(t.requests[2].status, 503);
  EXPECT_EQ(t.requests_overflow, 0u);
}

TEST(CoreMetrics, DurationBucketsAreUpperBoundsThenInf) {
  EXPECT_EQ(DurationBucket(0), 0);
  EXPECT_EQ(DurationBucket(500), 0);  // le="0.0005" includes 0.5 ms
  EXPECT_EQ(DurationBucket(501), 1);
  EXPECT_EQ(DurationBucket(10'000'000), kDurationBuckets - 1);
  EXPECT_EQ(DurationBucket(10'000'001), kDurationBuckets);  // +Inf
}

TEST(CoreMetrics, ObserveCountsStatusBucketAndSumAcrossCores) {
  CoreMetrics a;
  CoreMetrics b;
  a.Observe(7, 200, 300);     // bucket 0
  a.Observe(7, 200, 30'000);  // bucket 6 (25 ms < 30 ms <= 50 ms)
  b.Observe(7, 503, 300);     // bucket 0
  CoreTotals t = Sum({&a, &b});
  ASSERT_EQ(t.requests.size(), 2u);
  EXPECT_EQ(t.requests[0].count, 2u);  // 200s
  EXPECT_EQ(t.requests[1].count, 1u);  // 503
  ASSERT_EQ(t.durations.size(), 3u);   // bucket 0, bucket 6, the sum
  EXPECT_EQ(t.durations[0].status, 0);
  EXPECT_EQ(t.durations[0].count, 2u);
  EXPECT_EQ(t.durations[1].status, 6);
  EXPECT_EQ(t.durations[1].count, 1u);
  EXPECT_EQ(t.durations[2].status, kDurationSumSlot);
  EXPECT_EQ(t.durations[2].count, 30'600u);
}

TEST(CoreMetrics, UpstreamAttemptsAndBytesAreSummedApartFromRequests) {
  CoreMetrics a;
  CoreMetrics b;
  // One request that took two attempts (a 503, then a 200) on core a, one on b.
  a.ObserveUpstream(4, 2'000);  // bucket 2 (1 ms < 2 ms <= 2.5 ms)
  a.ObserveUpstream(4, 700);    // bucket 1
  a.ObserveBytes(4, 120, 300);
  b.ObserveUpstream(4, 700);
  b.ObserveBytes(4, 80, 0);  // no response byte: nothing counted
  b.ObserveBytes(9, 0, 50);
  CoreTotals t = Sum({&a, &b});
  EXPECT_TRUE(t.requests.empty());
  EXPECT_TRUE(t.durations.empty());
  ASSERT_EQ(t.upstream_durations.size(), 3u);  // bucket 1, bucket 2, the sum
  EXPECT_EQ(t.upstream_durations[0].status, 1);
  EXPECT_EQ(t.upstream_durations[0].count, 2u);
  EXPECT_EQ(t.upstream_durations[1].status, 2);
  EXPECT_EQ(t.upstream_durations[1].count, 1u);
  EXPECT_EQ(t.upstream_durations[2].status, kDurationSumSlot);
  EXPECT_EQ(t.upstream_durations[2].count, 3'400u);
  ASSERT_EQ(t.route_bytes.size(), 3u);
  EXPECT_EQ(t.route_bytes[0].route_key, 4u);
  EXPECT_EQ(t.route_bytes[0].status, kBytesRequest);
  EXPECT_EQ(t.route_bytes[0].count, 200u);
  EXPECT_EQ(t.route_bytes[1].route_key, 4u);
  EXPECT_EQ(t.route_bytes[1].status, kBytesResponse);
  EXPECT_EQ(t.route_bytes[1].count, 300u);
  EXPECT_EQ(t.route_bytes[2].route_key, 9u);
  EXPECT_EQ(t.route_bytes[2].status, kBytesResponse);
  EXPECT_EQ(t.route_bytes[2].count, 50u);
}

TEST(Histograms, CumulativeBucketsPerRouteKey) {
  CoreMetrics a;
  CoreMetrics b;
  a.ObserveUpstream(3, 100);         // bucket 0
  b.ObserveUpstream(3, 100);         // bucket 0
  a.ObserveUpstream(3, 60'000);      // bucket 7 (50 ms < 60 ms <= 100 ms)
  a.ObserveUpstream(3, 20'000'000);  // +Inf
  b.ObserveUpstream(8, 5'000);       // bucket 3, exactly on the bound
  std::vector<DurationHistogram> hs = Histograms(Sum({&a, &b}).upstream_durations);
  ASSERT_EQ(hs.size(), 2u);
  const DurationHistogram& h = hs[0];
  EXPECT_EQ(h.route_key, 3u);
  const uint64_t want[kDurationBuckets + 1] = {2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 4};
  for (uint16_t i = 0; i <= kDurationBuckets; ++i) EXPECT_EQ(h.cumulative[i], want[i]) << i;
  EXPECT_EQ(h.count(), 4u);
  EXPECT_EQ(h.sum_us, 20'060'200u);
  EXPECT_EQ(hs[1].route_key, 8u);
  EXPECT_EQ(hs[1].cumulative[2], 0u);
  EXPECT_EQ(hs[1].cumulative[3], 1u);
  EXPECT_EQ(hs[1].count(), 1u);
  EXPECT_EQ(hs[1].sum_us, 5'000u);
}

TEST(Histograms, RowsWithoutObservationsGiveNone) {
  EXPECT_TRUE(Histograms({}).empty());
  // A sum row alone (a reader that raced the bucket's first count) still
  // makes a histogram, with zero counts.
  std::vector<DurationHistogram> hs = Histograms({RequestCount{5, kDurationSumSlot, 10}});
  ASSERT_EQ(hs.size(), 1u);
  EXPECT_EQ(hs[0].count(), 0u);
  EXPECT_EQ(hs[0].sum_us, 10u);
}

TEST(Histograms, BucketLabelsAreSecondsAsPrometheusWritesThem) {
  const char* want[kDurationBuckets + 1] = {"0.0005", "0.001", "0.0025", "0.005", "0.01",
                                            "0.025",  "0.05",  "0.1",    "0.25",  "0.5",
                                            "1",      "2.5",   "5",      "10",    "+Inf"};
  for (uint16_t i = 0; i <= kDurationBuckets; ++i) EXPECT_EQ(DurationBucketLabel(i), want[i]) << i;
}

TEST(CoreMetrics, SumOfNothingIsZero) {
  CoreTotals t = Sum({});
  EXPECT_EQ(t.cores, 0u);
  EXPECT_TRUE(t.requests.empty());
  EXPECT_EQ(t.snapshot_version_min, 0u);
}

}  // namespace
}  // namespace hms::obs
