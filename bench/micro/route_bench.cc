// Route table micro-benchmarks: a 10,000-route table over 500 services in the
// shapes services really register, matched with a mix of hits (literal,
// param, two-param, catch-all, HEAD via GET), 405s and 404s.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "hms/route/route_table.h"

namespace hms::route {
namespace {

constexpr int kServices = 500;
constexpr int kRoutesPerService = 20;

std::vector<RouteSpec> TenThousandRoutes() {
  static const char* const kShapes[kRoutesPerService][2] = {
      {"GET", "/v1/items"},
      {"POST", "/v1/items"},
      {"GET", "/v1/items/{id}"},
      {"PUT", "/v1/items/{id}"},
      {"DELETE", "/v1/items/{id}"},
      {"GET", "/v1/items/{id}/parts"},
      {"GET", "/v1/items/{id}/parts/{part}"},
      {"PATCH", "/v1/items/{id}/parts/{part}"},
      {"GET", "/v1/orders/{order}/lines/{line}"},
      {"GET", "/v1/orders/search"},
      {"GET", "/v1/health"},
      {"GET", "/v1/metrics"},
      {"GET", "/v2/items/{id}"},
      {"POST", "/v2/items/{id}/actions/{action}"},
      {"GET", "/v2/users/{user}/settings"},
      {"PUT", "/v2/users/{user}/settings"},
      {"GET", "/static/{path*}"},
      {"", "/proxy/{rest*}"},
      {"GET", "/v2/users/me"},
      {"POST", "/v1/upload"},
  };
  std::vector<RouteSpec> specs;
  specs.reserve(kServices * kRoutesPerService);
  for (int s = 0; s < kServices; s++) {
    for (int r = 0; r < kRoutesPerService; r++) {
      RouteSpec spec;
      spec.path_template = "/svc" + std::to_string(s) + kShapes[r][1];
      if (kShapes[r][0][0] != '\0') spec.methods.push_back(kShapes[r][0]);
      spec.target = static_cast<uint32_t>(specs.size());
      spec.where = "svc" + std::to_string(s) + ".yaml:" + std::to_string(r + 3);
      specs.push_back(std::move(spec));
    }
  }
  return specs;
}

const RouteTable& Table() {
  static RouteTable* table = [] {
    auto r = RouteTable::Build(TenThousandRoutes());
    if (!r.ok()) {
      std::fprintf(stderr, "route table build failed: %s\n", r.error().message.c_str());
      std::abort();
    }
    return new RouteTable(std::move(r).value());
  }();
  return *table;
}

struct Request {
  std::string method;
  std::string path;
  MatchKind want;
};

// Requests spread over services so the walk does not sit in one cache line.
std::vector<Request> Requests(bool hits, bool misses) {
  std::vector<Request> out;
  for (int s = 0; s < kServices; s += 3) {
    std::string svc = "/svc" + std::to_string(s);
    if (hits) {
      out.push_back({"GET", svc + "/v1/items", MatchKind::kFound});
      out.push_back({"GET", svc + "/v1/items/8d3f2a", MatchKind::kFound});
      out.push_back({"PATCH", svc + "/v1/items/42/parts/bolt-7", MatchKind::kFound});
      out.push_back({"GET", svc + "/v1/orders/search", MatchKind::kFound});
      out.push_back({"GET", svc + "/v1/orders/o-991/lines/3", MatchKind::kFound});
      out.push_back({"HEAD", svc + "/static/css/site/main.css", MatchKind::kFound});
      out.push_back({"PUT", svc + "/v2/users/me/settings", MatchKind::kFound});
      out.push_back({"POST", svc + "/proxy/api/v3/things", MatchKind::kFound});
    }
    if (misses) {
      out.push_back({"DELETE", svc + "/v1/health", MatchKind::kMethodNotAllowed});
      out.push_back({"GET", svc + "/v1/items/42/nope", MatchKind::kNotFound});
      out.push_back({"GET", svc + "9999/v1/items", MatchKind::kNotFound});
      out.push_back({"GET", svc + "/v3/items/1", MatchKind::kNotFound});
    }
  }
  for (const Request& r : out) {
    if (Table().Find("", r.method, r.path).kind != r.want) {
      std::fprintf(stderr, "unexpected match kind for %s %s\n", r.method.c_str(), r.path.c_str());
      std::abort();
    }
  }
  return out;
}

void RunMatch(benchmark::State& state, const std::vector<Request>& reqs) {
  const RouteTable& t = Table();
  size_t i = 0;
  for (auto _ : state) {
    const Request& r = reqs[i];
    Match m = t.Find("api.example.com:443", r.method, r.path);
    benchmark::DoNotOptimize(m.kind);
    benchmark::DoNotOptimize(m.target);
    if (++i == reqs.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_RouteMatch_10kRoutes(benchmark::State& state) {
  static const std::vector<Request> reqs = Requests(true, true);
  RunMatch(state, reqs);
}
BENCHMARK(BM_RouteMatch_10kRoutes);

void BM_RouteMatch_10kRoutes_HitsOnly(benchmark::State& state) {
  static const std::vector<Request> reqs = Requests(true, false);
  RunMatch(state, reqs);
}
BENCHMARK(BM_RouteMatch_10kRoutes_HitsOnly);

void BM_RouteMatch_10kRoutes_MissesOnly(benchmark::State& state) {
  static const std::vector<Request> reqs = Requests(false, true);
  RunMatch(state, reqs);
}
BENCHMARK(BM_RouteMatch_10kRoutes_MissesOnly);

void BM_RouteBuild_10kRoutes(benchmark::State& state) {
  const std::vector<RouteSpec> specs = TenThousandRoutes();
  for (auto _ : state) {
    state.PauseTiming();
    std::vector<RouteSpec> copy = specs;
    state.ResumeTiming();
    auto r = RouteTable::Build(std::move(copy));
    benchmark::DoNotOptimize(r.ok());
  }
  state.SetItemsProcessed(state.iterations() * kServices * kRoutesPerService);
}
BENCHMARK(BM_RouteBuild_10kRoutes)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace hms::route

BENCHMARK_MAIN();
