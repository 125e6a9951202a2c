// Per-core request accounting on a core's hot path (docs/observability.md):
// what one answered request costs in CoreMetrics, before and with the
// upstream-side histogram and the byte counters. The argument is the number
// of routes the requests spread over, their answers over a few statuses and
// duration buckets: 1 route touches a few dozen table slots, 64 routes a few
// thousand.
#include <benchmark/benchmark.h>

#include <cstdint>

#include "hms/obs/metrics.h"

namespace {

using hms::obs::CoreMetrics;

constexpr uint16_t kStatuses[] = {200, 200, 200, 201, 404, 503};

// xorshift64: the route, status and durations of the next request.
struct Requests {
  uint64_t s = 0x9e3779b97f4a7c15ull;
  uint64_t Next() noexcept {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
};

// A request's duration: 0.2 to 3.2 ms (an upstream on the same network),
// one in 16 up to 200 ms (a slow tail).
uint64_t DurationUs(uint64_t x) noexcept {
  return (x >> 60) == 0 ? (x >> 16) % 200'000 : 200 + (x >> 16) % 3'000;
}

// Before the upstream histogram and the byte counters: the status count and
// the request's duration (three table updates).
void BM_CoreMetrics_Observe(benchmark::State& state) {
  CoreMetrics m;
  Requests r;
  const uint64_t routes = static_cast<uint64_t>(state.range(0));
  for (auto _ : state) {
    uint64_t x = r.Next();
    m.Observe(static_cast<uint32_t>(x % routes), kStatuses[(x >> 8) % 6], DurationUs(x));
  }
  benchmark::DoNotOptimize(m.requests.size());
}
BENCHMARK(BM_CoreMetrics_Observe)->Arg(1)->Arg(64);

// What EndExchange and ConsumeUpstream do now for a request with one
// attempt: the above, the attempt's upstream duration and both byte counts.
void BM_CoreMetrics_ObserveWithUpstreamAndBytes(benchmark::State& state) {
  CoreMetrics m;
  Requests r;
  const uint64_t routes = static_cast<uint64_t>(state.range(0));
  for (auto _ : state) {
    uint64_t x = r.Next();
    uint32_t route = static_cast<uint32_t>(x % routes);
    uint64_t us = DurationUs(x);
    m.ObserveUpstream(route, us - us / 8);
    m.Observe(route, kStatuses[(x >> 8) % 6], us);
    m.ObserveBytes(route, 200 + (x >> 40) % 1000, 300 + (x >> 48) % 4000);
  }
  benchmark::DoNotOptimize(m.requests.size());
}
BENCHMARK(BM_CoreMetrics_ObserveWithUpstreamAndBytes)->Arg(1)->Arg(64);

}  // namespace

BENCHMARK_MAIN();
