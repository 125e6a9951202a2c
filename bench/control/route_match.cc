// Route-scale match benchmark (bench/control/route_scale runs it): builds a
// route table of N routes in the shapes bench/control/route_scale writes
// (services of 100 routes: literal, param, two-segment param and catch-all
// templates) and times Find on requests spread over every service, one
// call at a time, for p50 and p99; prints one JSON line.
//
//   bench-route-scale ROUTES [LOOKUPS]
//
// Build time and the table's memory (the growth of the peak RSS across the
// build, specs included) are printed too. Not a Google Benchmark binary:
// percentiles of single lookups are what the curve wants, not a mean.
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "hms/route/route_table.h"

namespace {

constexpr int kRoutesPerService = 100;

// Route r of service s, as route_scale.py writes it (METHODS, TEMPLATE).
std::pair<std::vector<std::string>, std::string> Shape(int s, int r) {
  const std::string base = "/svc-" + std::to_string(s) + "/r" + std::to_string(r);
  switch (r % 4) {
    case 0: return {{"GET"}, base + "/{id}"};
    case 1: return {{"POST"}, base};
    case 2: return {{"GET", "PUT"}, base + "/{a}/x"};
    default: return {{"GET"}, base + "/items/{rest*}"};
  }
}

// A request that route r of service s answers.
std::string Path(int s, int r) {
  const std::string base = "/svc-" + std::to_string(s) + "/r" + std::to_string(r);
  switch (r % 4) {
    case 0: return base + "/42";
    case 1: return base;
    case 2: return base + "/7/x";
    default: return base + "/items/a/b/c";
  }
}

long PeakRssKib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000 + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench-route-scale ROUTES [LOOKUPS]\n");
    return 2;
  }
  const int routes = std::max(1, std::atoi(argv[1]));
  const int lookups = argc > 2 ? std::max(100, std::atoi(argv[2])) : 200'000;
  const int services = (routes + kRoutesPerService - 1) / kRoutesPerService;
  const long rss_before = PeakRssKib();
  const uint64_t t0 = NowNs();
  std::vector<hms::route::RouteSpec> specs;
  specs.reserve(static_cast<size_t>(routes));
  for (int i = 0; i < routes; ++i) {
    auto [methods, path] = Shape(i / kRoutesPerService, i % kRoutesPerService);
    hms::route::RouteSpec spec;
    spec.methods = std::move(methods);
    spec.path_template = std::move(path);
    spec.target = static_cast<uint32_t>(i);
    specs.push_back(std::move(spec));
  }
  const uint64_t t1 = NowNs();
  auto table = hms::route::RouteTable::Build(std::move(specs));
  const uint64_t t2 = NowNs();
  if (!table.ok()) {
    std::fprintf(stderr, "build failed: %s\n", table.error().message.c_str());
    return 1;
  }
  // Requests over every service (a fixed pseudo-random order), so the
  // walk does not sit in one cache line.
  std::vector<std::pair<const char*, std::string>> requests;
  uint64_t x = 88172645463325252ull;
  for (int i = 0; i < 4096; ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    const int id = static_cast<int>(x % static_cast<uint64_t>(routes));
    const int r = id % kRoutesPerService;
    requests.emplace_back(r % 4 == 1 ? "POST" : "GET", Path(id / kRoutesPerService, r));
  }
  std::vector<uint32_t> ns(static_cast<size_t>(lookups));
  int found = 0;
  for (int i = 0; i < lookups; ++i) {
    const auto& [method, path] = requests[static_cast<size_t>(i) % requests.size()];
    const uint64_t a = NowNs();
    const hms::route::Match m = table->Find("", method, path);
    const uint64_t b = NowNs();
    found += m.kind == hms::route::MatchKind::kFound;
    ns[static_cast<size_t>(i)] = static_cast<uint32_t>(b - a);
  }
  std::sort(ns.begin(), ns.end());
  const auto pct = [&ns](double p) { return ns[static_cast<size_t>(p * (ns.size() - 1))]; };
  std::printf(
      "{\"routes\":%d,\"services\":%d,\"specs_ms\":%.1f,\"build_ms\":%.1f,"
      "\"table_peak_mib\":%.1f,\"lookups\":%d,\"found\":%d,\"p50_ns\":%u,\"p99_ns\":%u}\n",
      routes, services, (t1 - t0) / 1e6, (t2 - t1) / 1e6, (PeakRssKib() - rss_before) / 1024.0,
      lookups, found, pct(0.50), pct(0.99));
  return found == lookups ? 0 : 1;
}
