// The files under configs/ load, validate and compile as shipped.
#include <gtest/gtest.h>

#include <string>

#include "hms/config/config.h"
#include "hms/config/snapshot.h"

namespace hms::config {
namespace {

const std::string kConfigs = std::string(HMS_SOURCE_DIR) + "/configs";

TEST(ShippedConfigs, GatewayYamlIsTheDefaults) {
  Result<GatewayConfig> c = LoadGatewayConfig(kConfigs + "/gateway.yaml");
  ASSERT_TRUE(c) << c.error().message;
  const GatewayConfig d = DefaultGatewayConfig();
  // The file documents the defaults: loading it changes nothing but `mesh`.
  EXPECT_EQ(c->role, d.role);
  EXPECT_EQ(c->cores, d.cores);
  ASSERT_EQ(c->listeners.size(), 1u);
  EXPECT_EQ(c->listeners[0].address, d.listeners[0].address);
  EXPECT_EQ(c->admin, d.admin);
  EXPECT_EQ(c->ring_entries, d.ring_entries);
  EXPECT_EQ(c->buffer_count, d.buffer_count);
  EXPECT_EQ(c->buffer_size, d.buffer_size);
  EXPECT_EQ(c->sqpoll, d.sqpoll);
  EXPECT_EQ(c->zero_copy_min_bytes, d.zero_copy_min_bytes);
  EXPECT_EQ(c->max_connections_per_core, d.max_connections_per_core);
  EXPECT_EQ(c->upstream_idle_per_core, d.upstream_idle_per_core);
  EXPECT_EQ(c->max_header_bytes, d.max_header_bytes);
  EXPECT_EQ(c->max_body_bytes, d.max_body_bytes);
  EXPECT_EQ(c->header_timeout_ms, d.header_timeout_ms);
  EXPECT_EQ(c->idle_timeout_ms, d.idle_timeout_ms);
  EXPECT_EQ(c->drain_timeout_ms, d.drain_timeout_ms);
  EXPECT_EQ(c->keep_encoded_slashes, d.keep_encoded_slashes);
  EXPECT_EQ(c->merge_slashes, d.merge_slashes);
  EXPECT_EQ(c->underscores_in_headers, d.underscores_in_headers);
  EXPECT_EQ(c->mesh, kConfigs + "/mesh-config.yaml");
}

TEST(ShippedConfigs, SidecarYamlIsASidecarOfTheDemoCalcService) {
  Result<GatewayConfig> c = LoadGatewayConfig(kConfigs + "/sidecar.yaml");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->role, "sidecar");
  EXPECT_EQ(c->service, "calc-svc");
  EXPECT_EQ(c->local_port, 7002);  // where tools/demo runs calc-svc
  EXPECT_FALSE(c->egress.empty());
  EXPECT_EQ(c->registration_ttl_s, 10u);
  Interner ids, keys;
  Result<std::unique_ptr<Snapshot>> snap = CompileSnapshot(*c, MeshConfig{}, {}, 1, &ids, &keys);
  ASSERT_TRUE(snap) << snap.error().message;
  EXPECT_NE((*snap)->inbound_route, Snapshot::kNoRoute);
}

TEST(ShippedConfigs, MeshConfigIsTheSeedDefaults) {
  Result<MeshConfig> m = LoadMeshConfig(kConfigs + "/mesh-config.yaml");
  ASSERT_TRUE(m) << m.error().message;
  const MeshConfig d;
  EXPECT_EQ(m->retries, d.retries);
  EXPECT_EQ(m->timeout_ms, d.timeout_ms);
  EXPECT_EQ(m->breaker.failures, d.breaker.failures);
  EXPECT_EQ(m->breaker.open_for_ms, d.breaker.open_for_ms);
  EXPECT_EQ(m->keep_alive, d.keep_alive);
  EXPECT_TRUE(m->tracing == d.tracing);
  EXPECT_EQ(m->trust_domain, d.trust_domain);
}

TEST(ShippedConfigs, RouteFilesCompileTogether) {
  std::vector<ServiceConfig> services;
  for (const char* name : {"routes/hello-svc.yaml", "routes/calc-svc.yaml",
                           "routes/grants-svc.yaml", "demo/hello_svc/route.yaml"}) {
    Result<ServiceConfig> s = LoadServiceConfig(kConfigs + "/" + name);
    ASSERT_TRUE(s) << s.error().message;
    services.push_back(s.value());
  }
  Interner ids, keys;
  // The demo copy of hello-svc has the same name: refused, naming both files.
  Result<std::unique_ptr<Snapshot>> dup =
      CompileSnapshot(DefaultGatewayConfig(), MeshConfig{}, services, 1, &ids, &keys);
  ASSERT_FALSE(dup);
  EXPECT_NE(dup.error().message.find("service 'hello-svc' is already defined at"),
            std::string::npos);
  services.pop_back();
  Result<std::unique_ptr<Snapshot>> snap =
      CompileSnapshot(DefaultGatewayConfig(), MeshConfig{}, services, 1, &ids, &keys);
  ASSERT_TRUE(snap) << snap.error().message;
  EXPECT_EQ((*snap)->clusters.size(), 3u);
  EXPECT_EQ((*snap)->routes.size(), 7u);
  EXPECT_EQ((*snap)->table.Find("", "GET", "/grants/7/documents/a/b").kind,
            route::MatchKind::kFound);
  const route::Match live = (*snap)->table.Find("", "GET", "/grants/7/live");
  ASSERT_EQ(live.kind, route::MatchKind::kFound);
  EXPECT_TRUE((*snap)->routes[live.target].websocket);
  EXPECT_EQ((*snap)->routes[live.target].websocket_idle_ms, 300'000u);
}

}  // namespace
}  // namespace hms::config
