// What an exchange's end costs its core in records (src/proxy/recorder.h):
// formatting its access-log line (the time stamp, the JSON-escaped fields)
// and filling its span record. The wall clock advances 20 µs a request, as
// at 50k requests/s on one core, so the second changes now and then.
#include <benchmark/benchmark.h>

#include <cstring>

#include "src/proxy/recorder.h"

namespace {

using hms::proxy::Caller;
using hms::proxy::ExchangeFacts;

struct Answered {
  hms::config::Cluster cluster;
  hms::config::Route route;
  ExchangeFacts ex;
  Caller caller{"192.168.10.24", "", hms::proxy::Protocol::kHttp1, hms::obs::SpanListener::kEdge};

  Answered() {
    cluster.name = "orders-svc";
    cluster.endpoints.emplace_back().address = "10.1.0.17:8080";
    route.path_template = "/v1/orders/{id}/items";
    ex.cluster = &cluster;
    ex.route = &route;
    ex.status = 200;
    ex.start = hms::core::Millis(5'000);
    ex.attempts = 1;
    ex.bytes_in = 213;
    ex.bytes_out = 1840;
    std::memcpy(ex.trace.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736", 33);
    std::memcpy(ex.trace.span_id, "00f067aa0ba902b7", 17);
    std::memcpy(ex.method_text, "GET", 3);
    ex.method_len = 3;
  }
};

void BM_AccessLine(benchmark::State& state) {
  Answered a;
  char line[hms::proxy::kAccessLineMax];
  hms::proxy::UtcStamp stamp;
  int64_t unix_us = 1796550238123456;
  for (auto _ : state) {
    unix_us += 20;
    size_t n = hms::proxy::AccessLine(a.ex, a.caller, a.ex.start + 1'214'000,
                                      stamp.Text(unix_us / 1000), line, sizeof line);
    benchmark::DoNotOptimize(n);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_AccessLine);

void BM_FillSpan(benchmark::State& state) {
  Answered a;
  hms::obs::SpanRecord s;
  int64_t unix_ns = 1796550238123456789;
  for (auto _ : state) {
    unix_ns += 20'000;
    hms::proxy::FillSpan(a.ex, a.caller, a.ex.start + 1'214'000, unix_ns, &s);
    benchmark::DoNotOptimize(&s);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_FillSpan);

}  // namespace

BENCHMARK_MAIN();
