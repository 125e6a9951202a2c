// Config snapshot micro-benchmarks: what a reload costs.
//
// BM_SnapshotSwap: publishing a snapshot to one core and the core adopting it
// (Acquire, Mailbox push with its eventfd wake, pop, pointer swap, Release of
// the previous one). Producer and consumer share one thread here, so it is the
// uncontended cost without the cross-core cache-line transfer.
// BM_SnapshotCompile_1kRoutes: CompileSnapshot over 100 services × 10 routes,
// with the long-lived interners of the control thread.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "hms/config/config.h"
#include "hms/config/snapshot.h"
#include "hms/core/mailbox.h"

namespace hms::config {
namespace {

constexpr int kServices = 100;
constexpr int kRoutesPerService = 10;

std::vector<ServiceConfig> Services() {
  // Shapes services register: literals, params, two params, a catch-all.
  static const char* const kShapes[kRoutesPerService][2] = {
      {"GET", "/items"},
      {"POST", "/items"},
      {"GET", "/items/{id}"},
      {"PUT", "/items/{id}"},
      {"DELETE", "/items/{id}"},
      {"GET", "/items/{id}/parts/{part}"},
      {"GET", "/orders/{order}/lines/{line}"},
      {"GET", "/orders/search"},
      {"GET", "/health"},
      {"", "/static/{path*}"},
  };
  std::vector<ServiceConfig> out;
  for (int s = 0; s < kServices; ++s) {
    ServiceConfig svc;
    svc.service = "svc-" + std::to_string(s);
    svc.source = svc.service + ".yaml";
    svc.line = 1;
    svc.endpoints = {"127.0.0.1:" + std::to_string(7000 + s),
                     "127.0.0.2:" + std::to_string(7000 + s)};
    if (s % 4 == 0) svc.timeout_ms = 2000;
    for (int r = 0; r < kRoutesPerService; ++r) {
      RouteConfig rc;
      rc.path = "/" + svc.service + kShapes[r][1];
      if (kShapes[r][0][0] != '\0') rc.methods = {kShapes[r][0]};
      if (r == 2) rc.timeout_ms = 500;
      rc.line = 3 + r;
      svc.routes.push_back(std::move(rc));
    }
    out.push_back(std::move(svc));
  }
  return out;
}

Snapshot* CompileOrDie(const std::vector<ServiceConfig>& services, uint64_t version,
                       Interner* endpoint_ids, Interner* route_keys) {
  Result<std::unique_ptr<Snapshot>> snap = CompileSnapshot(
      DefaultGatewayConfig(), MeshConfig{}, services, version, endpoint_ids, route_keys);
  if (!snap) {
    std::fprintf(stderr, "CompileSnapshot: %s\n", snap.error().message.c_str());
    std::abort();
  }
  return snap->release();
}

void BM_SnapshotSwap(benchmark::State& state) {
  Interner endpoint_ids, route_keys;
  const std::vector<ServiceConfig> services = Services();
  // The control thread holds one reference to each; the bench alternates them so
  // Release never reaches zero and the delete stays out of the measurement.
  Snapshot* published[2] = {CompileOrDie(services, 1, &endpoint_ids, &route_keys),
                            CompileOrDie(services, 2, &endpoint_ids, &route_keys)};
  core::Mailbox mailbox(256);
  Snapshot* current = published[0];
  current->Acquire();  // the core's reference
  uint64_t i = 0;
  for (auto _ : state) {
    // Control side: publish.
    Snapshot* next = published[++i & 1];
    next->Acquire();
    if (!mailbox.Push({core::Message::Kind::kSnapshot, next})) {
      state.SkipWithError("mailbox full");
      break;
    }
    // Core side: adopt.
    core::Message m{};
    if (!mailbox.Pop(&m)) {
      state.SkipWithError("mailbox empty");
      break;
    }
    Snapshot* old = current;
    current = static_cast<Snapshot*>(m.payload);
    old->Release();
    benchmark::DoNotOptimize(current);
  }
  if (current->version != (i & 1) + 1) state.SkipWithError("wrong snapshot adopted");
  current->Release();
  published[0]->Release();
  published[1]->Release();
  if (LiveSnapshots() != 0) state.SkipWithError("snapshot leaked");
}
BENCHMARK(BM_SnapshotSwap);

void BM_SnapshotCompile_1kRoutes(benchmark::State& state) {
  const std::vector<ServiceConfig> services = Services();
  Interner endpoint_ids, route_keys;  // live as long as the control thread
  uint64_t version = 0;
  for (auto _ : state) {
    Result<std::unique_ptr<Snapshot>> snap = CompileSnapshot(
        DefaultGatewayConfig(), MeshConfig{}, services, ++version, &endpoint_ids, &route_keys);
    if (!snap) {
      state.SkipWithError(snap.error().message.c_str());
      break;
    }
    if ((*snap)->routes.size() != static_cast<size_t>(kServices * kRoutesPerService)) {
      state.SkipWithError("wrong route count");
      break;
    }
    benchmark::DoNotOptimize(snap->get());
  }
  state.SetItemsProcessed(state.iterations() * kServices * kRoutesPerService);
}
BENCHMARK(BM_SnapshotCompile_1kRoutes)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace hms::config

BENCHMARK_MAIN();
