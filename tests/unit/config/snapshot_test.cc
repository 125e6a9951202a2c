#include "hms/config/snapshot.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <set>
#include <string>

namespace hms::config {
namespace {

ServiceConfig Parse(const std::string& text, const std::string& source) {
  Result<ServiceConfig> s = ParseServiceConfig(text, source);
  EXPECT_TRUE(s) << s.error().message;
  return s ? s.value() : ServiceConfig{};
}

class SnapshotTest : public ::testing::Test {
 protected:
  Result<std::unique_ptr<Snapshot>> Compile(const std::vector<ServiceConfig>& services,
                                            const GatewayConfig& gw = DefaultGatewayConfig(),
                                            const MeshConfig& mesh = MeshConfig{}) {
    return CompileSnapshot(gw, mesh, services, 7, &endpoint_ids_, &route_keys_);
  }
  Interner endpoint_ids_;
  Interner route_keys_;
};

// A fleet-scope limit is refused without `redis:` (naming the route's
// file:line), and with it gets a Redis key every gateway computes alike.
TEST_F(SnapshotTest, FleetScopeNeedsRedisAndNamesItsKeyAlike) {
  const ServiceConfig calc = Parse(
      "service: calc-svc\nroutes:\n  - GET /a\n  - path: /sum/{a}/{b}\n"
      "    rate_limit: {rate: 20 req/min, scope: fleet}\n",
      "calc.yaml");
  GatewayConfig gw = DefaultGatewayConfig();
  gw.source = "gw.yaml";
  Result<std::unique_ptr<Snapshot>> refused = Compile({calc}, gw);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message,
            "calc.yaml:4: rate_limit: scope: fleet needs a 'redis:' section in gw.yaml "
            "(docs/resilience.md \"Fleet scope\")");
  gw.redis = RedisConfig{};
  Result<std::unique_ptr<Snapshot>> a = Compile({calc}, gw);
  ASSERT_TRUE(a) << a.error().message;
  Interner other_ids, other_keys;
  Result<std::unique_ptr<Snapshot>> b =
      CompileSnapshot(gw, MeshConfig{}, {calc}, 8, &other_ids, &other_keys);
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_FALSE((*a)->routes[0].fleet);
  EXPECT_TRUE((*a)->routes[1].fleet);
  EXPECT_TRUE((*a)->routes[1].fleet_key.starts_with("hms:rl:calc-svc:"));
  EXPECT_EQ((*a)->routes[1].fleet_key.size(), std::string("hms:rl:calc-svc:").size() + 16);
  EXPECT_EQ((*a)->routes[1].fleet_key, (*b)->routes[1].fleet_key);
}

TEST_F(SnapshotTest, OverridePrecedenceRouteOverServiceOverMesh) {
  MeshConfig mesh;
  mesh.retries = 1;
  mesh.timeout_ms = 5000;
  mesh.breaker = {7, 9000};
  const ServiceConfig calc = Parse(R"(service: calc-svc
routes:
  - GET /sum/{a}/{b}
  - path: /v2/sum/{a}/{b}
    methods: [GET, HEAD]
    timeout: 2s
    auth: none
    rate_limit: "100 req/s"
rate_limit: "20 req/min"
retries: 3
timeout: 10s
)",
                                   "calc.yaml");
  const ServiceConfig hello = Parse("service: hello-svc\nroutes:\n  - GET /hello\n", "hello.yaml");
  GatewayConfig gw = DefaultGatewayConfig();
  gw.jwt = JwtConfig{};
  Result<std::unique_ptr<Snapshot>> snap = Compile({calc, hello}, gw, mesh);
  ASSERT_TRUE(snap) << snap.error().message;
  const Snapshot& s = **snap;
  EXPECT_EQ(s.version, 7u);
  ASSERT_EQ(s.clusters.size(), 2u);
  ASSERT_EQ(s.routes.size(), 3u);

  // Service level over mesh.
  EXPECT_EQ(s.clusters[0].name, "calc-svc");
  EXPECT_EQ(s.clusters[0].retries, 3u);
  EXPECT_EQ(s.clusters[0].timeout_ms, 10'000u);
  EXPECT_EQ(s.clusters[0].breaker.failures, 7u);  // not set: mesh
  // Mesh defaults where the service says nothing.
  EXPECT_EQ(s.clusters[1].retries, 1u);
  EXPECT_EQ(s.clusters[1].timeout_ms, 5000u);
  EXPECT_EQ(s.clusters[1].breaker.open_for_ms, 9000u);

  // Route level over service level.
  EXPECT_EQ(s.routes[0].timeout_ms, 10'000u);
  EXPECT_EQ(s.routes[0].rate_limit->text, "20 req/min");
  EXPECT_EQ(s.routes[0].auth, "required");  // jwt section: zero trust by default
  EXPECT_EQ(s.routes[0].methods_text, "GET");
  EXPECT_EQ(s.routes[0].where, "calc.yaml:3");
  EXPECT_EQ(s.routes[1].timeout_ms, 2000u);
  EXPECT_EQ(s.routes[1].rate_limit->text, "100 req/s");
  EXPECT_EQ(s.routes[1].auth, "none");
  EXPECT_EQ(s.routes[1].methods_text, "GET, HEAD");
  EXPECT_EQ(s.routes[1].where, "calc.yaml:4");
  EXPECT_EQ(s.routes[2].timeout_ms, 5000u);
  EXPECT_FALSE(s.routes[2].rate_limit);
  EXPECT_EQ(s.routes[2].cluster, 1u);

  // The table answers with the route index.
  route::Match m = s.table.Find("", "GET", "/sum/2/3");
  ASSERT_EQ(m.kind, route::MatchKind::kFound);
  EXPECT_EQ(m.target, 0u);
  m = s.table.Find("", "GET", "/hello");
  ASSERT_EQ(m.kind, route::MatchKind::kFound);
  EXPECT_EQ(s.clusters[s.routes[m.target].cluster].name, "hello-svc");
  EXPECT_EQ(s.table.Find("", "POST", "/hello").kind, route::MatchKind::kMethodNotAllowed);
}

TEST_F(SnapshotTest, AuthDefaultsToNoneWithoutJwt) {
  Result<std::unique_ptr<Snapshot>> snap =
      Compile({Parse("service: a\nroutes:\n  - GET /a\n", "a.yaml")});
  ASSERT_TRUE(snap) << snap.error().message;
  EXPECT_EQ((*snap)->routes[0].auth, "none");
}

// The request path switches on enums decided here, never on the strings.
TEST_F(SnapshotTest, RequestRulesAreDecidedAtCompileTime) {
  const ServiceConfig svc = Parse(R"(service: s
routes:
  - path: /a
    methods: [GET]
    auth: none
    rate_limit: "10 req/s"
  - path: /b
    methods: [GET]
    auth: optional
    rate_limit: {rate: "10 req/s", per: client_ip}
  - path: /c
    methods: [GET]
    auth: required
    rate_limit: {rate: "10 req/s", per: jwt_sub}
  - path: /d
    methods: [GET]
    rate_limit: {rate: "10 req/s", per: "header:x-api-key"}
  - path: /e
    methods: [GET]
)",
                                  "s.yaml");
  GatewayConfig gw = DefaultGatewayConfig();
  gw.jwt = JwtConfig{};
  Result<std::unique_ptr<Snapshot>> snap = Compile({svc}, gw);
  ASSERT_TRUE(snap) << snap.error().message;
  const std::vector<Route>& r = (*snap)->routes;
  ASSERT_EQ(r.size(), 5u);
  struct Case {
    AuthMode auth;
    RateKey key;
    std::string header;
  } cases[] = {
      {AuthMode::kNone, RateKey::kRoute, ""},
      {AuthMode::kOptional, RateKey::kClientIp, ""},
      {AuthMode::kRequired, RateKey::kJwtSub, ""},
      {AuthMode::kRequired, RateKey::kHeader, "x-api-key"},  // jwt section: required by default
      {AuthMode::kRequired, RateKey::kRoute, ""},
  };
  for (size_t i = 0; i < r.size(); ++i) {
    SCOPED_TRACE(r[i].path_template);
    EXPECT_EQ(r[i].auth_mode, cases[i].auth);
    EXPECT_EQ(r[i].rate_key, cases[i].key);
    EXPECT_EQ(r[i].rate_header, cases[i].header);
  }
}

TEST_F(SnapshotTest, MtlsEndpointsAndIdentities) {
  MeshConfig mesh;
  mesh.trust_domain = "example.org";
  GatewayConfig sidecar = DefaultGatewayConfig();
  sidecar.role = "sidecar";
  sidecar.service = "calc-svc";
  sidecar.local_port = 7000;
  Result<std::unique_ptr<Snapshot>> snap = Compile(
      {Parse("service: calc-svc\nroutes:\n  - GET /sum\n"
             "endpoints: [mtls://127.0.0.1:7001, 127.0.0.1:7002]\n"
             "allow_from: [hms-gateway, spiffe://other.org/svc/x]\n",
             "calc.yaml")},
      sidecar, mesh);
  ASSERT_TRUE(snap) << snap.error().message;
  const Cluster& calc = (*snap)->clusters[0];
  ASSERT_EQ(calc.endpoints.size(), 2u);
  EXPECT_TRUE(calc.endpoints[0].mtls);
  EXPECT_EQ(calc.endpoints[0].authority(), "127.0.0.1:7001");
  EXPECT_EQ(ntohs(reinterpret_cast<const sockaddr_in&>(calc.endpoints[0].addr).sin_port), 7001);
  EXPECT_FALSE(calc.endpoints[1].mtls);
  EXPECT_EQ(calc.endpoints[1].authority(), "127.0.0.1:7002");
  EXPECT_EQ(calc.identity, "spiffe://example.org/svc/calc-svc");
  const std::vector<std::string> peers = {"spiffe://example.org/svc/hms-gateway",
                                          "spiffe://other.org/svc/x"};
  EXPECT_EQ(calc.allowed_peers, peers);
  // The sidecar's local cluster: who may call in.
  EXPECT_TRUE((*snap)->clusters.back().local);
  EXPECT_EQ((*snap)->clusters.back().allowed_peers, peers);
  // Neither a scheme alone nor another scheme is an endpoint.
  EXPECT_FALSE(ParseServiceConfig("service: a\nendpoints: [\"mtls://\"]\n", "a.yaml"));
  EXPECT_FALSE(ParseServiceConfig("service: a\nendpoints: [\"tls://127.0.0.1:1\"]\n", "a.yaml"));
}

TEST_F(SnapshotTest, ClashAcrossServicesNamesBothPlaces) {
  const ServiceConfig a = Parse("service: a\nroutes:\n  - GET /sum/{a}/{b}\n", "a.yaml");
  const ServiceConfig b =
      Parse("service: b\nroutes:\n  - GET /x\n  - GET /sum/{x}/{y}\n", "b.yaml");
  Result<std::unique_ptr<Snapshot>> snap = Compile({a, b});
  ASSERT_FALSE(snap);
  const std::string& msg = snap.error().message;
  EXPECT_EQ(msg.rfind("b.yaml:4: ", 0), 0u) << msg;
  EXPECT_NE(msg.find("a.yaml:3"), std::string::npos) << msg;
}

TEST_F(SnapshotTest, DifferentMethodsDoNotClash) {
  const ServiceConfig a = Parse("service: a\nroutes:\n  - GET /items/{id}\n", "a.yaml");
  const ServiceConfig b = Parse("service: b\nroutes:\n  - DELETE /items/{x}\n", "b.yaml");
  EXPECT_TRUE(Compile({a, b}));
}

TEST_F(SnapshotTest, DuplicateServiceNames) {
  const ServiceConfig a = Parse("service: calc-svc\nroutes:\n  - GET /a\n", "a.yaml");
  const ServiceConfig b = Parse("\nservice: calc-svc\nroutes:\n  - GET /b\n", "b.yaml");
  Result<std::unique_ptr<Snapshot>> snap = Compile({a, b});
  ASSERT_FALSE(snap);
  EXPECT_EQ(snap.error().message, "b.yaml:2: service 'calc-svc' is already defined at a.yaml:1");
}

TEST_F(SnapshotTest, EndpointResolution) {
  // The store's endpoints are appended to the file's by the caller and may
  // repeat one; the cluster lists it once.
  ServiceConfig merged =
      Parse("service: calc-svc\nendpoints: [127.0.0.1:7001, \"[::1]:7002\", localhost:7003]\n",
            "calc.yaml");
  merged.endpoints.push_back("127.0.0.1:7001");
  Result<std::unique_ptr<Snapshot>> snap = Compile({merged});
  ASSERT_TRUE(snap) << snap.error().message;
  const std::vector<Endpoint>& eps = (*snap)->clusters[0].endpoints;
  ASSERT_EQ(eps.size(), 3u);

  const auto* v4 = reinterpret_cast<const sockaddr_in*>(&eps[0].addr);
  EXPECT_EQ(v4->sin_family, AF_INET);
  EXPECT_EQ(ntohs(v4->sin_port), 7001);
  EXPECT_EQ(ntohl(v4->sin_addr.s_addr), INADDR_LOOPBACK);
  EXPECT_EQ(eps[0].addr_len, sizeof(sockaddr_in));

  const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&eps[1].addr);
  EXPECT_EQ(v6->sin6_family, AF_INET6);
  EXPECT_EQ(ntohs(v6->sin6_port), 7002);
  EXPECT_EQ(eps[1].addr_len, sizeof(sockaddr_in6));

  // localhost resolves to a loopback address of either family.
  const int family = eps[2].addr.ss_family;
  ASSERT_TRUE(family == AF_INET || family == AF_INET6);
  const uint16_t port = family == AF_INET
                            ? reinterpret_cast<const sockaddr_in*>(&eps[2].addr)->sin_port
                            : reinterpret_cast<const sockaddr_in6*>(&eps[2].addr)->sin6_port;
  EXPECT_EQ(ntohs(port), 7003);

  // Ids are stable: a second compile gives the same ones.
  Result<std::unique_ptr<Snapshot>> again = Compile({merged});
  ASSERT_TRUE(again);
  for (size_t i = 0; i < eps.size(); ++i) {
    EXPECT_EQ((*again)->clusters[0].endpoints[i].id, eps[i].id);
    EXPECT_EQ(endpoint_ids_.Name(eps[i].id), eps[i].address);
  }
}

TEST_F(SnapshotTest, UnresolvableEndpointIsAnError) {
  const ServiceConfig s =
      Parse("service: calc-svc\nendpoints: [no-such-host.invalid:80]\n", "calc.yaml");
  Result<std::unique_ptr<Snapshot>> snap = Compile({s});
  ASSERT_FALSE(snap);
  EXPECT_EQ(snap.error().message.rfind(
                "calc.yaml:1: calc-svc: endpoint 'no-such-host.invalid:80' does not resolve: ", 0),
            0u)
      << snap.error().message;
}

TEST_F(SnapshotTest, RouteKeysAreStableAndDistinct) {
  const ServiceConfig a = Parse(
      "service: a\nroutes:\n  - GET /x\n  - path: /x\n    methods: [POST]\n  - path: /x\n    "
      "methods: [PUT]\n    host: api.example.com\n",
      "a.yaml");
  Result<std::unique_ptr<Snapshot>> first = Compile({a});
  ASSERT_TRUE(first) << first.error().message;
  Result<std::unique_ptr<Snapshot>> second = Compile({a});
  ASSERT_TRUE(second);
  std::set<uint32_t> keys;
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ((*first)->routes[i].key, (*second)->routes[i].key);
    keys.insert((*first)->routes[i].key);
  }
  EXPECT_EQ(keys.size(), 3u);
  EXPECT_EQ(route_keys_.Name((*first)->routes[0].key), "a|GET||/x");
  EXPECT_EQ(route_keys_.Name((*first)->routes[2].key), "a|PUT|api.example.com|/x");
  EXPECT_EQ(route_keys_.size(), 3u);
}

TEST_F(SnapshotTest, SidecarGetsAnInboundRouteAndAnEgressRoutePerService) {
  GatewayConfig gw = DefaultGatewayConfig();
  gw.role = "sidecar";
  gw.service = "calc-svc";
  gw.local_port = 7002;
  const ServiceConfig calc =
      Parse("service: calc-svc\nroutes:\n  - GET /sum/{a}/{b}\ntimeout: 3s\n", "calc.yaml");
  const ServiceConfig hello = Parse(
      "service: hello-svc\nroutes:\n  - GET /hello\nendpoints: [127.0.0.1:15001]\n", "hello.yaml");
  Result<std::unique_ptr<Snapshot>> snap = Compile({hello, calc}, gw);
  ASSERT_TRUE(snap) << snap.error().message;
  const Snapshot& s = **snap;
  // The services, then the local one.
  ASSERT_EQ(s.clusters.size(), 3u);
  const Cluster& local = s.clusters[2];
  EXPECT_TRUE(local.local);
  EXPECT_EQ(local.name, "calc-svc@local");
  ASSERT_EQ(local.endpoints.size(), 1u);
  EXPECT_EQ(local.endpoints[0].address, "127.0.0.1:7002");
  EXPECT_EQ(local.connect_attempts, 2u);  // one retry on connect failure
  EXPECT_EQ(local.timeout_ms, 3000u);     // the service's own timeout
  EXPECT_FALSE(s.clusters[0].local);

  ASSERT_NE(s.inbound_route, Snapshot::kNoRoute);
  const Route& in = s.routes[s.inbound_route];
  EXPECT_EQ(in.cluster, 2u);
  EXPECT_EQ(in.auth, "none");
  EXPECT_EQ(route_keys_.Name(in.key), "calc-svc|*||(inbound)");

  const Route* to_hello = s.EgressRoute("hello-svc");
  ASSERT_NE(to_hello, nullptr);
  EXPECT_EQ(s.clusters[to_hello->cluster].name, "hello-svc");
  EXPECT_EQ(route_keys_.Name(to_hello->key), "hello-svc|*||(egress)");
  ASSERT_NE(s.EgressRoute("calc-svc"), nullptr);
  EXPECT_EQ(s.EgressRoute("calc-svc")->timeout_ms, 3000u);
  EXPECT_EQ(s.EgressRoute("calc-svc@local"), nullptr);  // the local one is not a destination
  EXPECT_EQ(s.EgressRoute("nope-svc"), nullptr);
  EXPECT_EQ(s.EgressRoute(""), nullptr);
  // None of it is in the edge table.
  EXPECT_EQ(s.table.Find("", "GET", "/sum/1/2").kind, route::MatchKind::kFound);
  EXPECT_NE(s.table.Find("", "GET", "/hello-svc/hello").kind, route::MatchKind::kFound);

  // Without services: the inbound route still works (mesh timeout).
  Result<std::unique_ptr<Snapshot>> empty = Compile({}, gw);
  ASSERT_TRUE(empty);
  EXPECT_EQ((*empty)->clusters.size(), 1u);
  EXPECT_EQ((*empty)->routes[(*empty)->inbound_route].timeout_ms, MeshConfig{}.timeout_ms);
  EXPECT_TRUE((*empty)->egress.empty());

  // A gateway has none of it.
  Result<std::unique_ptr<Snapshot>> edge = Compile({hello, calc});
  ASSERT_TRUE(edge);
  EXPECT_EQ((*edge)->inbound_route, Snapshot::kNoRoute);
  EXPECT_TRUE((*edge)->egress.empty());
  EXPECT_EQ((*edge)->clusters.size(), 2u);
}

TEST_F(SnapshotTest, LiveCountAndRelease) {
  const int before = LiveSnapshots();
  Result<std::unique_ptr<Snapshot>> snap = Compile({});
  ASSERT_TRUE(snap);
  EXPECT_EQ(LiveSnapshots(), before + 1);
  Snapshot* raw = snap->release();
  raw->Acquire();
  raw->Release();
  EXPECT_EQ(LiveSnapshots(), before + 1);
  raw->Release();  // the last reference deletes it
  EXPECT_EQ(LiveSnapshots(), before);
  // A failed compile leaves nothing behind.
  ServiceConfig bad;
  bad.service = "Not Valid";
  EXPECT_FALSE(Compile({bad}));
  EXPECT_EQ(LiveSnapshots(), before);
}

TEST_F(SnapshotTest, ToJson) {
  ServiceConfig s = Parse(
      "service: calc-svc\nroutes:\n  - GET /sum/{a}/{b}\nrate_limit: \"20 req/min\"\n"
      "endpoints: [127.0.0.1:7001]\n",
      "dir/we\"ird\\name.yaml");
  Result<std::unique_ptr<Snapshot>> snap = Compile({s});
  ASSERT_TRUE(snap) << snap.error().message;
  const std::string json = (*snap)->ToJson();
  EXPECT_EQ(json.rfind("{\"version\":7,\"gateway\":{", 0), 0u) << json;
  EXPECT_NE(json.find("\"clusters\":[{\"name\":\"calc-svc\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"address\":\"127.0.0.1:7001\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"template\":\"/sum/{a}/{b}\",\"methods\":\"GET\""), std::string::npos);
  EXPECT_NE(json.find("\"cluster\":\"calc-svc\""), std::string::npos);
  EXPECT_NE(json.find("\"rate_limit\":\"20 req/min\""), std::string::npos);
  EXPECT_NE(json.find("\"where\":\"dir/we\\\"ird\\\\name.yaml:3\""), std::string::npos) << json;
  EXPECT_EQ(json.back(), '}');
}

}  // namespace
}  // namespace hms::config
