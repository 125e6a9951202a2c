// Per-core request accounting on a core's hot path (docs/observability.md):
// what one answered request costs in CoreMetrics, before and with the
// upstream-side histogram and the byte counters; what a local answer adds
// for the admin page, and what the admin thread spends on /ui/data. The argument is the number
// of routes the requests spread over, their answers over a few statuses and
// duration buckets: 1 route touches a few dozen table slots, 64 routes a few
// thousand.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

#include "hms/obs/metrics.h"
#include "hms/obs/ui_data.h"

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

// What ExchangeRecorder::End and JudgeAnswer do now for a request with one
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

// What a core adds to each answer it makes itself (429, 503, 404, ...) for
// the admin page: one record in its RefusalRing.
void BM_RefusalRing_Record(benchmark::State& state) {
  CoreMetrics m;
  int64_t ms = 1'764'395'563'120;
  for (auto _ : state) {
    m.refusals.Record(++ms, 7, 429, "rate_limited", "GET", "4bf92f3577b34da6a3ce929d0e0e4736");
  }
  benchmark::DoNotOptimize(m.refusals.written());
}
BENCHMARK(BM_RefusalRing_Record);

// The admin thread's answer to /ui/data (once a second per open page): two
// cores that served `routes` routes, with full refusal rings; the gathering
// from the snapshot (the gateway's part) is not included.
void BM_UiData_Render(benchmark::State& state) {
  const uint32_t routes = static_cast<uint32_t>(state.range(0));
  CoreMetrics a, b;
  Requests r;
  for (int i = 0; i < 200'000; ++i) {
    uint64_t x = r.Next();
    (i % 2 ? a : b).Observe(static_cast<uint32_t>(x % routes), kStatuses[(x >> 8) % 6],
                            DurationUs(x));
  }
  for (int i = 0; i < 32; ++i) {
    (i % 2 ? a : b).refusals.Record(i, i % routes, 429, "rate_limited", "GET", "t");
  }
  hms::obs::UiData ui;
  uint64_t clock = 0;
  for (auto _ : state) {
    hms::obs::UiInput in;
    in.metrics.cores = {&a, &b};
    in.metrics.totals = hms::obs::Sum(in.metrics.cores);
    in.metrics.route_labels = [](uint32_t key) -> std::pair<std::string, std::string> {
      return {"svc-" + std::to_string(key % 8), "/route/" + std::to_string(key)};
    };
    for (uint32_t k = 0; k < routes; ++k) {
      in.routes.push_back({k, "svc-" + std::to_string(k % 8), "GET /route/" + std::to_string(k)});
    }
    clock += 1'000'000'000;  // a page polling every second
    in.clock_ns = clock;
    benchmark::DoNotOptimize(ui.Render(in));
  }
}
BENCHMARK(BM_UiData_Render)->Arg(8)->Arg(256);

}  // namespace

BENCHMARK_MAIN();
