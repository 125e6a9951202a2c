#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "hms/config/config.h"

namespace hms::config {
namespace {

// The seed's route files, byte for byte.
constexpr char kSeedCalc[] =
    "service: calc-svc\n"
    "routes:\n"
    "  - GET /sum/{a}/{b}\n"
    "rate_limit: \"20 req/min\"\n";
constexpr char kSeedHello[] =
    "service: hello-svc\n"
    "routes:\n"
    "  - GET /hello\n";

TEST(ParseServiceConfig, FleetScope) {
  Result<ServiceConfig> s = ParseServiceConfig(
      "service: calc-svc\nroutes:\n  - path: /x\n    rate_limit: {rate: 20 req/min, scope: fleet}\n"
      "  - path: /y\n    rate_limit: {rate: 20 req/min, scope: gateway}\n",
      "calc.yaml");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_TRUE(s->routes[0].rate_limit->fleet);
  EXPECT_EQ(s->routes[0].rate_limit->text, "20 req/min, scope fleet");
  EXPECT_FALSE(s->routes[1].rate_limit->fleet);
}

TEST(ParseServiceConfig, SeedCalc) {
  Result<ServiceConfig> s = ParseServiceConfig(kSeedCalc, "calc_svc/route.yaml");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->service, "calc-svc");
  EXPECT_EQ(s->source, "calc_svc/route.yaml");
  EXPECT_EQ(s->line, 1);
  ASSERT_EQ(s->routes.size(), 1u);
  EXPECT_EQ(s->routes[0].path, "/sum/{a}/{b}");
  EXPECT_EQ(s->routes[0].methods, std::vector<std::string>{"GET"});
  EXPECT_EQ(s->routes[0].line, 3);
  EXPECT_EQ(s->routes[0].auth, "");
  EXPECT_FALSE(s->routes[0].timeout_ms);
  ASSERT_TRUE(s->rate_limit);
  EXPECT_EQ(s->rate_limit->burst, 20u);
  EXPECT_EQ(s->rate_limit->text, "20 req/min");
  EXPECT_FALSE(s->retries);
  EXPECT_TRUE(s->endpoints.empty());
}

TEST(ParseServiceConfig, SeedHello) {
  Result<ServiceConfig> s = ParseServiceConfig(kSeedHello, "hello_svc/route.yaml");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->service, "hello-svc");
  ASSERT_EQ(s->routes.size(), 1u);
  EXPECT_EQ(s->routes[0].path, "/hello");
  EXPECT_FALSE(s->rate_limit);
}

TEST(ParseServiceConfig, LongFormEveryKey) {
  const char* text = R"(service: calc-svc
routes:
  - GET /sum/{a}/{b}
  - path: /v2/sum/{a}/{b}
    methods: [GET, HEAD]
    host: API.example.com
    timeout: 2s
    auth: required
    require: {scope: "calc:read", tenant: va}
    rate_limit: {rate: "100 req/s", burst: 20, per: client_ip}
  - path: /files/{rest*}
rate_limit: "20 req/min"
retries: 3
timeout: 15s
per_try_timeout: 500ms
retry_on: [500, timeout]
breaker: {failures: 5, open_for: 1m}
load_balancing: least_request
health: {path: /healthz, interval: 2s, timeout: 500ms, unhealthy: 3, healthy: 2}
endpoints: [127.0.0.1:7001, "[::1]:7002", localhost:7003]
allow_from: [hms-gateway, "spiffe://hms.local/svc/billing"]
)";
  Result<ServiceConfig> s = ParseServiceConfig(text, "calc.yaml");
  ASSERT_TRUE(s) << s.error().message;
  ASSERT_EQ(s->routes.size(), 3u);
  const RouteConfig& r = s->routes[1];
  EXPECT_EQ(r.line, 4);
  EXPECT_EQ(r.path, "/v2/sum/{a}/{b}");
  EXPECT_EQ(r.methods, (std::vector<std::string>{"GET", "HEAD"}));
  EXPECT_EQ(r.host, "api.example.com");
  EXPECT_EQ(r.timeout_ms, 2000u);
  EXPECT_EQ(r.auth, "required");
  ASSERT_EQ(r.require.size(), 2u);
  EXPECT_EQ(r.require[0], (std::pair<std::string, std::string>{"scope", "calc:read"}));
  ASSERT_TRUE(r.rate_limit);
  EXPECT_EQ(r.rate_limit->rate_per_sec_x1000, 100'000u);
  EXPECT_EQ(r.rate_limit->burst, 20u);
  EXPECT_EQ(r.rate_limit->per, "client_ip");
  EXPECT_EQ(r.rate_limit->text, "100 req/s, burst 20, per client_ip");
  EXPECT_TRUE(s->routes[2].methods.empty());  // long form without methods: any
  EXPECT_EQ(s->retries, 3u);
  EXPECT_EQ(s->timeout_ms, 15'000u);
  EXPECT_EQ(s->per_try_timeout_ms, 500u);
  EXPECT_EQ(s->retry_on, policy::kRetryOn500 | policy::kRetryOnTimeout);
  EXPECT_EQ(s->load_balancing, "least_request");
  ASSERT_TRUE(s->health);
  EXPECT_EQ(*s->health, (HealthCheckConfig{"/healthz", 2000, 500, 3, 2}));
  ASSERT_TRUE(s->breaker);
  EXPECT_EQ(s->breaker->failures, 5u);
  EXPECT_EQ(s->breaker->open_for_ms, 60'000u);
  EXPECT_EQ(s->endpoints.size(), 3u);
  EXPECT_EQ(s->allow_from.size(), 2u);
}

TEST(ParseServiceConfig, ProtocolAndGrpcRetryOn) {
  Result<ServiceConfig> s = ParseServiceConfig(
      "service: calc-grpc\nroutes:\n  - POST /calc.Calc/{m}\nprotocol: h2c\n"
      "grpc_retry_on: [UNAVAILABLE, resource-exhausted]\nendpoints: [127.0.0.1:7001]\n",
      "calc.yaml");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->protocol, "h2c");
  EXPECT_EQ(s->grpc_retry_on, policy::GrpcRetryBit(14) | policy::GrpcRetryBit(8));
  Result<ServiceConfig> tls = ParseServiceConfig(
      "service: calc-grpc\nroutes:\n  - GET /x\nprotocol: h2\n"
      "endpoints: [mtls://127.0.0.1:7001]\n",
      "calc.yaml");
  ASSERT_TRUE(tls) << tls.error().message;
  EXPECT_EQ(tls->protocol, "h2");
  Result<ServiceConfig> plain =
      ParseServiceConfig("service: calc-svc\nroutes:\n  - GET /x\n", "calc.yaml");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->protocol, "");  // http1
  EXPECT_EQ(plain->grpc_retry_on, 0u);
  EXPECT_FALSE(plain->connection_keepalive);
}

TEST(ParseServiceConfig, ConnectionKeepalive) {
  Result<ServiceConfig> s = ParseServiceConfig(
      "service: calc-grpc\nroutes:\n  - GET /x\nprotocol: h2c\n"
      "connection_keepalive: {interval: 200ms, timeout: 1s}\n",
      "calc.yaml");
  ASSERT_TRUE(s) << s.error().message;
  ASSERT_TRUE(s->connection_keepalive);
  EXPECT_EQ(s->connection_keepalive->interval_ms, 200u);
  EXPECT_EQ(s->connection_keepalive->timeout_ms, 1000u);
  Result<ServiceConfig> half = ParseServiceConfig(
      "service: calc-grpc\nroutes:\n  - GET /x\nprotocol: h2c\n"
      "connection_keepalive: {timeout: 2s}\n",
      "calc.yaml");
  ASSERT_TRUE(half) << half.error().message;
  EXPECT_EQ(half->connection_keepalive->interval_ms, 30'000u);  // the default
  EXPECT_EQ(half->connection_keepalive->timeout_ms, 2000u);
  Result<ServiceConfig> off = ParseServiceConfig(
      "service: calc-grpc\nroutes:\n  - GET /x\nprotocol: h2c\nconnection_keepalive: off\n",
      "calc.yaml");
  ASSERT_TRUE(off) << off.error().message;
  EXPECT_EQ(off->connection_keepalive->interval_ms, 0u);
}

TEST(ParseServiceConfig, BreakerOff) {
  Result<ServiceConfig> s =
      ParseServiceConfig("service: calc-svc\nroutes:\n  - GET /x\nbreaker: off\n", "calc.yaml");
  ASSERT_TRUE(s) << s.error().message;
  ASSERT_TRUE(s->breaker);
  EXPECT_EQ(s->breaker->failures, 0u);
  Result<ServiceConfig> bad =
      ParseServiceConfig("service: calc-svc\nroutes:\n  - GET /x\nbreaker: of\n", "calc.yaml");
  EXPECT_FALSE(bad);
}

// WebSocket is off unless a route says so; its idle timeout defaults to the
// gateway's (0 here).
TEST(ParseServiceConfig, WebSocketRoutes) {
  Result<ServiceConfig> s = ParseServiceConfig(
      "service: live-svc\nroutes:\n  - GET /plain\n"
      "  - path: /ws\n    websocket: true\n    websocket_idle_timeout: 5m\n"
      "  - path: /ws2\n    methods: [GET]\n    websocket: true\n",
      "live.yaml");
  ASSERT_TRUE(s) << s.error().message;
  ASSERT_EQ(s->routes.size(), 3u);
  EXPECT_FALSE(s->routes[0].websocket);
  EXPECT_TRUE(s->routes[1].websocket);
  EXPECT_EQ(s->routes[1].websocket_idle_ms, 300'000u);
  EXPECT_TRUE(s->routes[2].websocket);
  EXPECT_EQ(s->routes[2].websocket_idle_ms, 0u);
}

TEST(ParseServiceConfig, JsonForm) {
  const char* text = R"({
  "service": "calc-svc",
  "routes": ["GET /sum/{a}/{b}", {"path": "/v2/sum/{a}/{b}", "methods": ["GET"], "auth": "none"}],
  "rate_limit": "20 req/min",
  "endpoints": ["127.0.0.1:7001"]
})";
  Result<ServiceConfig> s = ParseServiceConfig(text, "calc.json");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->service, "calc-svc");
  ASSERT_EQ(s->routes.size(), 2u);
  EXPECT_EQ(s->routes[1].auth, "none");
  EXPECT_EQ(s->routes[1].line, 3);
  EXPECT_EQ(s->endpoints[0], "127.0.0.1:7001");
}

TEST(ParseServiceConfig, JsonErrorsNameTheLine) {
  const char* text = "{\n  \"service\": \"calc-svc\",\n  \"retires\": 2\n}\n";
  Result<ServiceConfig> s = ParseServiceConfig(text, "calc.json");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message, "calc.json:3: unknown key 'retires' (did you mean 'retries'?)");
}

struct BadCase {
  const char* text;
  const char* error;
};

// Each bad file and the exact message a user sees.
const BadCase kBad[] = {
    {"service: calc-svc\nroutes:\n  - GET /sum/{a}/{a}\n",
     "calc.yaml:3: routes[0]: \"GET /sum/{a}/{a}\": parameter a appears twice"},
    {"service: calc-svc\nroutes:\n  - GET /sum/{a}\nrate_limt: \"20 req/min\"\n",
     "calc.yaml:4: unknown key 'rate_limt' (did you mean 'rate_limit'?)"},
    {"service: calc-svc\nroutes:\n  - GET /x\nfoo: 1\n", "calc.yaml:4: unknown key 'foo'"},
    {"service: calc-svc\nroutes:\n  - path: /ws\n    methods: [POST]\n    websocket: true\n",
     "calc.yaml:3: routes[0].websocket: a websocket route must accept GET"},
    {"service: calc-svc\nroutes:\n  - path: /ws\n    websocket: yes please\n",
     "calc.yaml:4: routes[0].websocket: expected true or false, found 'yes please'"},
    {"service: calc-svc\nroutes:\n  - GET /x\nhealth: {interval: 5s}\n",
     "calc.yaml:4: health: needs 'path' (what to GET, e.g. /healthz)"},
    {"service: calc-svc\nroutes:\n  - GET /x\nhealth: {path: /h, interval: 1s, timeout: 1s}\n",
     "calc.yaml:4: health: timeout must be shorter than interval"},
    {"service: calc-svc\nroutes:\n  - GET /x\nhealth: {path: healthz}\n",
     "calc.yaml:4: health.path: 'healthz' must start with '/' and hold no spaces"},
    {"service: calc-svc\nroutes:\n  - GET /x\nhealth: {path: /h, intreval: 1s}\n",
     "calc.yaml:4: health: unknown key 'intreval' (did you mean 'interval'?)"},
    {"service: calc-svc\nroutes:\n  - GET /x\nprotocol: http2\n",
     "calc.yaml:4: protocol: 'http2' must be http1, h2c or h2"},
    {"service: calc-svc\nroutes:\n  - GET /x\nprotocol: h2\nendpoints: [127.0.0.1:7001]\n",
     "calc.yaml:4: protocol: h2 endpoints are mtls:// (HTTP/2 over the mesh's mTLS); "
     "'127.0.0.1:7001' is not"},
    {"service: calc-svc\nroutes:\n  - GET /x\nendpoints: [mtls://127.0.0.1:7001]\nprotocol: h2c\n",
     "calc.yaml:5: protocol: h2c is HTTP/2 over plain TCP; 'mtls://127.0.0.1:7001' is mtls:// "
     "(use protocol: h2)"},
    {"service: calc-svc\nroutes:\n  - GET /x\nconnection_keepalive: {interval: 1s}\n",
     "calc.yaml:4: connection_keepalive: PINGs are HTTP/2's: the service needs protocol h2c or h2"},
    {"service: calc-svc\nroutes:\n  - GET /x\nprotocol: h2c\nconnection_keepalive: {intreval: 1s}\n",
     "calc.yaml:5: connection_keepalive: unknown key 'intreval' (did you mean 'interval'?)"},
    {"service: calc-svc\nroutes:\n  - GET /x\nprotocol: h2c\nconnection_keepalive: {interval: 10ms}\n",
     "calc.yaml:5: connection_keepalive.interval: '10ms' is below the minimum of 100ms"},
    {"service: calc-svc\nroutes:\n  - GET /x\nprotocol: h2c\nconnection_keepalive: {timeout: 0s}\n",
     "calc.yaml:5: connection_keepalive.timeout: '0s' is below the minimum of 100ms"},
    {"service: calc-svc\nroutes:\n  - GET /x\nprotocol: h2c\nconnection_keepalive: {timeout: 5ms}\n",
     "calc.yaml:5: connection_keepalive.timeout: '5ms' is below the minimum of 100ms"},
    {"service: calc-svc\nroutes:\n  - GET /x\ngrpc_retry_on: [UNAVAILABLE, unavailable]\n",
     "calc.yaml:4: grpc_retry_on[1]: 'unavailable' appears twice"},
    {"service: calc-svc\nroutes:\n  - GET /x\ngrpc_retry_on: [OK]\n",
     "calc.yaml:4: grpc_retry_on[0]: 'OK' is not a failing gRPC status (UNAVAILABLE, ...)"},
    {"service: calc-svc\nroutes:\n  - GET /x\ngrpc_retry_on: [BUSY]\n",
     "calc.yaml:4: grpc_retry_on[0]: 'BUSY' is not a failing gRPC status (UNAVAILABLE, ...)"},
    {"service: calc-svc\nroutes:\n  - GET /x\nload_balancing: random\n",
     "calc.yaml:4: load_balancing: 'random' must be round_robin or least_request"},
    {"service: calc-svc\nroutes:\n  - GET /x\nretry_on: [500, reset, 500]\n",
     "calc.yaml:4: retry_on[2]: '500' appears twice"},
    {"service: calc-svc\nroutes:\n  - GET /x\nretry_on: [gateway-error]\n",
     "calc.yaml:4: retry_on[0]: 'gateway-error' must be 500, 502, 503, 504, connect-failure, "
     "reset or timeout"},
    {"service: calc-svc\nroutes:\n  - GET /x\nretry_on: []\n",
     "calc.yaml:4: retry_on: empty: omit the key for the default"},
    {"service: calc-svc\nroutes:\n  - GET /x\nper_try_timeout: 0s\n",
     "calc.yaml:4: per_try_timeout: '0s' must be more than zero"},
    {"routes:\n  - GET /x\n", "calc.yaml:1: missing 'service' (the service's name)"},
    {"service: Calc_Svc\n",
     "calc.yaml:1: service: 'Calc_Svc' is not a valid name (1-63 of a-z, 0-9 and '-', not "
     "starting or ending with '-')"},
    {"service: calc-svc\nroutes:\n  - get /x\n",
     "calc.yaml:3: routes[0]: \"get /x\": method 'get' must be upper-case (GET)"},
    {"service: calc-svc\nroutes:\n  - GET,HEAD /x\n",
     "calc.yaml:3: routes[0]: \"GET,HEAD /x\": one method per short-form route; use the long "
     "form with methods: [...] for several"},
    {"service: calc-svc\nroutes:\n  - GET\n",
     "calc.yaml:3: routes[0]: \"GET\": expected 'METHOD /path', e.g. 'GET /sum/{a}/{b}'"},
    {"service: calc-svc\nroutes:\n  - GET sum\n",
     "calc.yaml:3: routes[0]: \"GET sum\": path 'sum' must start with '/'"},
    {"service: calc-svc\nroutes:\n  - GET /a/{rest*}/b\n",
     "calc.yaml:3: routes[0]: \"GET /a/{rest*}/b\": catch-all {rest*} must be the last segment"},
    {"service: calc-svc\nroutes:\n  - GET /a/../secret\n",
     "calc.yaml:3: routes[0]: \"GET /a/../secret\": path '/a/../secret' is not in canonical form "
     "(requests are matched after normalization, which spells it '/secret'); write '/secret'"},
    {"service: calc-svc\nroutes:\n  - GET /./x\n",
     "calc.yaml:3: routes[0]: \"GET /./x\": path '/./x' is not in canonical form (requests are "
     "matched after normalization, which spells it '/x'); write '/x'"},
    {"service: calc-svc\nroutes:\n  - GET /%73ecret\n",
     "calc.yaml:3: routes[0]: \"GET /%73ecret\": path '/%73ecret' is not in canonical form "
     "(requests are matched after normalization, which spells it '/secret'); write '/secret'"},
    {"service: calc-svc\nroutes:\n  - GET /a%3fb\n",
     "calc.yaml:3: routes[0]: \"GET /a%3fb\": path '/a%3fb' is not in canonical form (requests "
     "are matched after normalization, which spells it '/a%3Fb'); write '/a%3Fb'"},
    {"service: calc-svc\nroutes:\n  - path: /admin%2Fusers\n",
     "calc.yaml:3: routes[0]: \"/admin%2Fusers\": path '/admin%2Fusers' is refused "
     "(encoded_slash): the path holds an encoded '/' (%2F)"},
    {"service: calc-svc\nroutes:\n  - GET /a%5Cb\n",
     "calc.yaml:3: routes[0]: \"GET /a%5Cb\": path '/a%5Cb' is refused (backslash): the path "
     "holds a '\\' (raw or %5C)"},
    {"service: calc-svc\nroutes:\n  - GET /a%00\n",
     "calc.yaml:3: routes[0]: \"GET /a%00\": path '/a%00' is refused (control): the path holds "
     "a control character, a space or a non-ASCII byte (raw or encoded)"},
    {"service: calc-svc\nroutes:\n  - GET /../x\n",
     "calc.yaml:3: routes[0]: \"GET /../x\": path '/../x' is refused (above_root): the path's "
     "'..' segments climb above the root"},
    {"service: calc-svc\nroutes:\n  - G@T /x\n",
     "calc.yaml:3: routes[0]: \"G@T /x\": method 'G@T' is not an HTTP token"},
    {"service: calc-svc\nroutes:\n  - methods: [GET]\n", "calc.yaml:3: routes[0]: missing 'path'"},
    {"service: calc-svc\nroutes:\n  - path: /x\n    methds: [GET]\n",
     "calc.yaml:4: routes[0]: unknown key 'methds' (did you mean 'methods'?)"},
    {"service: calc-svc\nroutes:\n  - path: /x\n    methods: [GET, GET]\n",
     "calc.yaml:4: routes[0].methods: method GET appears twice"},
    {"service: calc-svc\nroutes:\n  - path: /x\n    methods: []\n",
     "calc.yaml:4: routes[0].methods: empty list; leave 'methods' out to accept any method"},
    {"service: calc-svc\nroutes:\n  - path: /x\n    auth: maybe\n",
     "calc.yaml:4: routes[0].auth: 'maybe' must be required, optional or none"},
    {"service: calc-svc\nroutes:\n  - path: /x\n    timeout: 0s\n",
     "calc.yaml:4: routes[0].timeout: '0s' must be more than zero"},
    {"service: calc-svc\nroutes:\n  - path: /x\n    timeout: 5\n",
     "calc.yaml:4: routes[0].timeout: '5' is not a duration (write it with a unit: 250ms, 2s, "
     "1m, 1h)"},
    {"service: calc-svc\nroutes:\n  - path: /x\n    host: \"bad host\"\n",
     "calc.yaml:4: routes[0].host: 'bad host' is not a host name"},
    {"service: calc-svc\nroutes:\n  - path: /x\n    require: [scope]\n",
     "calc.yaml:4: routes[0].require: expected a map of claim: value"},
    {"service: calc-svc\nrate_limit: \"20 per minute\"\n",
     "calc.yaml:2: rate_limit: '20 per minute' is not a rate (write \"20 req/min\", \"100 req/s\" "
     "or \"5 req/h\")"},
    {"service: calc-svc\nrate_limit: {burst: 5}\n",
     "calc.yaml:2: rate_limit: missing 'rate' (e.g. rate: \"100 req/s\")"},
    {"service: calc-svc\nrate_limit: {rate: 5 req/s, per: ip}\n",
     "calc.yaml:2: rate_limit.per: 'ip' must be client_ip, jwt_sub or header:NAME"},
    {"service: calc-svc\nrate_limit: {rate: 5 req/s, scope: world}\n",
     "calc.yaml:2: rate_limit.scope: 'world' must be gateway or fleet"},
    {"service: calc-svc\nrate_limit: {rate: 5 req/s, per: client_ip,\n  scope: fleet}\n",
     "calc.yaml:3: rate_limit.scope: fleet limits one bucket per route: drop 'per' or use scope: "
     "gateway"},
    {"service: calc-svc\nrate_limit: {rate: 5 req/s, burst: 0}\n",
     "calc.yaml:2: rate_limit.burst: 0 is out of range 1..4294967295"},
    {"service: calc-svc\nretries: -1\n",
     "calc.yaml:2: retries: expected a whole number, found '-1'"},
    {"service: calc-svc\nretries: 11\n", "calc.yaml:2: retries: 11 is out of range 0..10"},
    {"service: calc-svc\nretries: 99999999999999999999999\n",
     "calc.yaml:2: retries: expected a whole number, found '99999999999999999999999'"},
    {"service: calc-svc\ntimeout: 9999999999999999999999h\n",
     "calc.yaml:2: timeout: '9999999999999999999999h' is not a duration (write it with a unit: "
     "250ms, 2s, 1m, 1h)"},
    {"service: calc-svc\nbreaker: {failures: 0}\n",
     "calc.yaml:2: breaker.failures: 0 is out of range 1..1000000"},
    {"service: calc-svc\nbreaker: {failures: 3, open_for: 0s}\n",
     "calc.yaml:2: breaker.open_for: '0s' must be more than zero"},
    {"service: calc-svc\nbreaker: {failure: 3}\n",
     "calc.yaml:2: breaker: unknown key 'failure' (did you mean 'failures'?)"},
    {"service: calc-svc\nendpoints:\n  - 127.0.0.1:7001\n  - 127.0.0.1:70000\n",
     "calc.yaml:4: endpoints[1]: '127.0.0.1:70000' is not [mtls://]host:port with a port 1..65535"},
    {"service: calc-svc\nendpoints: [localhost]\n",
     "calc.yaml:2: endpoints[0]: 'localhost' is not [mtls://]host:port with a port 1..65535"},
    {"service: calc-svc\nendpoints: [a:1, a:1]\n",
     "calc.yaml:2: endpoints[0]: 'a:1' appears twice"},
    {"service: calc-svc\nendpoints: 127.0.0.1:7001\n",
     "calc.yaml:2: endpoints: expected a list, found a scalar"},
    {"service: calc-svc\nallow_from: [Bad_Name]\n",
     "calc.yaml:2: allow_from[0]: 'Bad_Name' is neither a service name nor a spiffe:// identity"},
    {"service: calc-svc\nservice: other\n", "calc.yaml:2: key 'service' appears twice"},
    {"service: calc-svc\nroutes: GET /x\n", "calc.yaml:2: routes: expected a list of routes"},
    {"service: calc-svc\nroutes:\n  - [GET, /x]\n",
     "calc.yaml:3: routes[0]: expected 'METHOD /path' or a map with 'path'"},
    {"- GET /x\n", "calc.yaml:1: expected a map, found a list"},
    {"", "calc.yaml: file is empty"},
    {"service: calc-svc\nroutes: [GET /x\n",
     "calc.yaml:3: syntax error: end of sequence flow not found"},
    // A tab in the indentation is named, at its own line, not as yaml-cpp's
    // "illegal block entry" further down.
    {"service: calc-svc\nroutes:\n\t- GET /x\n",
     "calc.yaml:3: syntax error: a tab indents this line; YAML indents with spaces only"},
    {"service: calc-svc\nbreaker:\n  failures: 3\n \topen_for: 30s\n",
     "calc.yaml:4: syntax error: a tab indents this line; YAML indents with spaces only"},
};

// Tabs before JSON lines are separation space in a flow collection: legal.
TEST(ParseServiceConfig, TabsIndentingJsonAreFine) {
  Result<ServiceConfig> s = ParseServiceConfig(
      "{\n\t\"service\": \"calc-svc\",\n\t\"routes\": [\"GET /x\"]\n}\n", "calc.json");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->service, "calc-svc");
}

TEST(ParseServiceConfig, BadFilesSayWhereAndWhy) {
  for (const BadCase& c : kBad) {
    Result<ServiceConfig> s = ParseServiceConfig(c.text, "calc.yaml");
    ASSERT_FALSE(s) << c.text;
    EXPECT_EQ(s.error().message, c.error) << c.text;
    EXPECT_EQ(s.error().side, Side::kConfig);
  }
}

TEST(LoadServiceConfig, ReadsFileAndNamesIt) {
  char dir[] = "/tmp/hms-config-test-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/calc.yaml";
  std::ofstream(path) << kSeedCalc;
  Result<ServiceConfig> s = LoadServiceConfig(path);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->source, path);
  std::remove(path.c_str());

  Result<ServiceConfig> missing = LoadServiceConfig(path);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message, path + ": cannot open: No such file or directory");
  rmdir(dir);
}

// Files and texts over kMaxConfigFileBytes are refused before parsing: a
// route file, a gateway or mesh config (judged on the file's size before a
// byte is read: the sparse 17 MiB file below is never read), and a stored
// service's text, which reaches the parser without a file.
TEST(ConfigFileLimit, OversizedFilesAndTextsAreRefusedBeforeParsing) {
  char dir[] = "/tmp/hms-config-test-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/big.yaml";
  std::ofstream(path) << kSeedCalc;
  ASSERT_EQ(truncate(path.c_str(), 17 << 20), 0);
  const std::string want = path + ": 17825792 bytes, over the limit of 16 MiB for a config or "
                           "route file (refused before parsing; split it into one file per "
                           "service)";
  Result<ServiceConfig> route = LoadServiceConfig(path);
  ASSERT_FALSE(route);
  EXPECT_EQ(route.error().message, want);
  Result<GatewayConfig> gateway = LoadGatewayConfig(path);
  ASSERT_FALSE(gateway);
  EXPECT_EQ(gateway.error().message, want);
  Result<MeshConfig> mesh = LoadMeshConfig(path);
  ASSERT_FALSE(mesh);
  EXPECT_EQ(mesh.error().message, want);

  // Exactly the limit is read (and here fails as YAML, not as too big).
  ASSERT_EQ(truncate(path.c_str(), kMaxConfigFileBytes), 0);
  Result<std::string> at_limit = ReadConfigFile(path);
  ASSERT_TRUE(at_limit) << at_limit.error().message;
  EXPECT_EQ(at_limit->size(), kMaxConfigFileBytes);
  std::remove(path.c_str());
  rmdir(dir);

  std::string text = std::string(kSeedCalc) + "#";
  text.resize(kMaxConfigFileBytes + 1, '#');
  Result<ServiceConfig> stored = ParseServiceConfig(text, "services/calc-svc.yaml");
  ASSERT_FALSE(stored);
  EXPECT_EQ(stored.error().message.rfind("services/calc-svc.yaml: 16777217 bytes, over the limit", 0),
            0u)
      << stored.error().message;
}

// ParseServiceConfigs gives each file's result in order, on however many
// threads it uses: a failure stays with its file.
TEST(ParseServiceConfigs, ResultsKeepTheirOrder) {
  std::vector<std::string> texts, sources;
  for (int i = 0; i < 300; ++i) {
    const std::string name = "svc-" + std::to_string(i);
    // Enough text for several threads (about 1.5 MiB in all).
    std::string t = "service: " + name + "\nroutes:\n";
    for (int r = 0; r < 100; ++r) t += "  - GET /" + name + "/r" + std::to_string(r) + "/{id}\n";
    if (i == 137) t = "service: " + name + "\nroutes: 7\n";
    texts.push_back(t);
    sources.push_back(name + ".yaml");
  }
  std::vector<RouteFileText> files;
  for (size_t i = 0; i < texts.size(); ++i) files.push_back({&texts[i], &sources[i]});
  std::vector<Result<ServiceConfig>> got = ParseServiceConfigs(files);
  ASSERT_EQ(got.size(), texts.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (i == 137) {
      ASSERT_FALSE(got[i]);
      EXPECT_EQ(got[i].error().message.rfind("svc-137.yaml:2: ", 0), 0u) << got[i].error().message;
      continue;
    }
    ASSERT_TRUE(got[i]) << got[i].error().message;
    EXPECT_EQ(got[i]->service, "svc-" + std::to_string(i));
    EXPECT_EQ(got[i]->routes.size(), 100u);
  }
}

}  // namespace
}  // namespace hms::config
