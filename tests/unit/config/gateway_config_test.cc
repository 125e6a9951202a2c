#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "hms/config/config.h"

namespace hms::config {
namespace {

class GatewayConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/hms-gateway-test-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
  }
  void TearDown() override {
    for (const std::string& f : files_) std::remove(f.c_str());
    rmdir(dir_.c_str());
  }
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    files_.push_back(path);
    return path;
  }
  // Loads `text` as gateway.yaml and returns the error ("" when it loads).
  std::string LoadError(const std::string& text) {
    const std::string path = Write("gateway.yaml", text);
    Result<GatewayConfig> c = LoadGatewayConfig(path);
    if (c) return "";
    EXPECT_EQ(c.error().message.rfind(path + ":", 0), 0u) << c.error().message;
    return c.error().message.substr(path.size());
  }

  std::string dir_;
  std::vector<std::string> files_;
};

TEST_F(GatewayConfigTest, DefaultsWhenKeysAreMissing) {
  const std::string path = Write("gateway.yaml", "role: gateway\n");
  Result<GatewayConfig> c = LoadGatewayConfig(path);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->source, path);
  EXPECT_EQ(c->cores, 0u);
  ASSERT_EQ(c->listeners.size(), 1u);
  EXPECT_EQ(c->listeners[0].address, "127.0.0.1:8080");
  EXPECT_EQ(c->admin, "127.0.0.1:9901");
  EXPECT_EQ(c->ring_entries, 4096u);
  EXPECT_EQ(c->buffer_count, 1024u);
  EXPECT_EQ(c->buffer_size, 16384u);
  EXPECT_FALSE(c->sqpoll);
  EXPECT_EQ(c->max_header_bytes, 16384u);
  EXPECT_EQ(c->max_body_bytes, 1ull << 30);
  EXPECT_EQ(c->header_timeout_ms, 10'000u);
  EXPECT_EQ(c->idle_timeout_ms, 60'000u);
  EXPECT_EQ(c->drain_timeout_ms, 10'000u);
  EXPECT_EQ(c->underscores_in_headers, http::UnderscorePolicy::kDrop);
  EXPECT_FALSE(c->jwt);
  EXPECT_TRUE(ValidateGatewayConfig(DefaultGatewayConfig()));
}

TEST_F(GatewayConfigTest, EveryKey) {
  const std::string path = Write("gateway.yaml", R"(role: sidecar
cores: 2
cpu_affinity: [0, 1]
listeners:
  - 127.0.0.1:0
  - address: "[::1]:8443"
    tls: {cert: c.pem, key: k.pem, ca: ca.pem, client_auth: true}
admin: "off"
store: file:/tmp/hms-store
jwt: {issuer: hms, audience: api, hs256_secret_file: secret, leeway: 5s}
mesh: mesh-config.yaml
ring_entries: 1024
buffers: {count: 256, size: 32KiB}
sqpoll: false
zero_copy_min_bytes: 64KiB
max_connections_per_core: 5000
upstream_idle_per_core: 0
max_header_bytes: 8KiB
max_body_bytes: 10MiB
header_timeout: 5s
idle_timeout: 2m
drain_timeout: 30s
underscores_in_headers: reject
service: calc-svc
local_port: 7000
egress: 127.0.0.1:15001
advertise: 10.0.0.7:15000
registration_ttl: 30s
local_retries: 3
local_retry_on: [503, connect-failure]
local_protocol: h2c
)");
  Result<GatewayConfig> c = LoadGatewayConfig(path);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->role, "sidecar");
  EXPECT_EQ(c->cores, 2u);
  EXPECT_EQ(c->cpu_affinity, (std::vector<int>{0, 1}));
  ASSERT_EQ(c->listeners.size(), 2u);
  EXPECT_EQ(c->listeners[0].address, "127.0.0.1:0");
  EXPECT_FALSE(c->listeners[0].tls);
  ASSERT_TRUE(c->listeners[1].tls);
  EXPECT_EQ(c->listeners[1].tls->ca, dir_ + "/ca.pem");  // relative to gateway.yaml
  EXPECT_EQ(c->listeners[1].tls->cert, dir_ + "/c.pem");
  EXPECT_TRUE(c->listeners[1].tls->client_auth);
  EXPECT_EQ(c->admin, "off");
  EXPECT_EQ(c->store, "file:/tmp/hms-store");
  ASSERT_TRUE(c->jwt);
  EXPECT_EQ(c->jwt->issuer, "hms");
  EXPECT_EQ(c->jwt->leeway_ms, 5000u);
  EXPECT_EQ(c->mesh, dir_ + "/mesh-config.yaml");
  EXPECT_EQ(c->jwt->hs256_secret_file, dir_ + "/secret");
  EXPECT_EQ(c->ring_entries, 1024u);
  EXPECT_EQ(c->buffer_count, 256u);
  EXPECT_EQ(c->buffer_size, 32768u);
  EXPECT_EQ(c->zero_copy_min_bytes, 65536u);
  EXPECT_EQ(c->max_connections_per_core, 5000u);
  EXPECT_EQ(c->upstream_idle_per_core, 0u);
  EXPECT_EQ(c->max_header_bytes, 8192u);
  EXPECT_EQ(c->max_body_bytes, 10u << 20);
  EXPECT_EQ(c->header_timeout_ms, 5000u);
  EXPECT_EQ(c->idle_timeout_ms, 120'000u);
  EXPECT_EQ(c->drain_timeout_ms, 30'000u);
  EXPECT_EQ(c->underscores_in_headers, http::UnderscorePolicy::kReject);
  EXPECT_EQ(c->service, "calc-svc");
  EXPECT_EQ(c->local_port, 7000);
  EXPECT_EQ(c->egress, "127.0.0.1:15001");
  EXPECT_EQ(c->advertise, "10.0.0.7:15000");
  EXPECT_EQ(c->registration_ttl_s, 30u);
  EXPECT_EQ(c->local_retries, 3u);
  EXPECT_EQ(c->local_retry_on, policy::kRetryOn503 | policy::kRetryOnConnectFailure);
  EXPECT_EQ(c->local_protocol, "h2c");
}

TEST_F(GatewayConfigTest, AccessLog) {
  const std::string path =
      Write("gateway.yaml", "access_log: {path: logs/access.log, sample_ratio: 0.1, buffer: 64KiB}\n");
  Result<GatewayConfig> c = LoadGatewayConfig(path);
  ASSERT_TRUE(c) << c.error().message;
  ASSERT_TRUE(c->access_log);
  EXPECT_EQ(c->access_log->path, dir_ + "/logs/access.log");  // relative to gateway.yaml
  EXPECT_DOUBLE_EQ(c->access_log->sample_ratio, 0.1);
  EXPECT_EQ(c->access_log->buffer_bytes, 65536u);
  EXPECT_FALSE(DefaultGatewayConfig().access_log);
}

TEST_F(GatewayConfigTest, Redis) {
  const std::string path =
      Write("gateway.yaml",
            "redis:\n  address: 127.0.0.1:6380\n  password_file: secrets/redis\n  timeout: 150ms\n"
            "  fallback: fail_closed\n  gateways: 3\n  max_waiting: 64\n  tls: {ca: ca.pem}\n");
  Result<GatewayConfig> c = LoadGatewayConfig(path);
  ASSERT_TRUE(c) << c.error().message;
  ASSERT_TRUE(c->redis);
  EXPECT_EQ(c->redis->address, "127.0.0.1:6380");
  EXPECT_EQ(c->redis->password_file, dir_ + "/secrets/redis");  // relative to gateway.yaml
  EXPECT_EQ(c->redis->timeout_ms, 150u);
  EXPECT_EQ(c->redis->fallback, policy::FleetFallback::kFailClosed);
  EXPECT_EQ(FallbackName(c->redis->fallback), "fail_closed");
  EXPECT_EQ(c->redis->gateways, 3u);
  EXPECT_EQ(c->redis->max_waiting, 64u);
  ASSERT_TRUE(c->redis->tls);
  EXPECT_EQ(c->redis->tls->ca, dir_ + "/ca.pem");
  EXPECT_FALSE(DefaultGatewayConfig().redis);
}

TEST_F(GatewayConfigTest, CoresAuto) { EXPECT_EQ(LoadError("cores: auto\n"), ""); }

TEST_F(GatewayConfigTest, PathSwitches) {
  Result<GatewayConfig> d = LoadGatewayConfig(Write("gateway.yaml", "role: gateway\n"));
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_FALSE(d->keep_encoded_slashes);  // strict unless relaxed
  EXPECT_TRUE(d->merge_slashes);
  Result<GatewayConfig> c = LoadGatewayConfig(
      Write("gateway.yaml", "paths:\n  encoded_slashes: keep\n  merge_slashes: false\n"));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_TRUE(c->keep_encoded_slashes);
  EXPECT_FALSE(c->merge_slashes);
  Result<GatewayConfig> r = LoadGatewayConfig(Write("gateway.yaml", "paths: {encoded_slashes: refuse}\n"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_FALSE(r->keep_encoded_slashes);
}

TEST_F(GatewayConfigTest, UnderscoresInHeaders) {
  const struct {
    const char* value;
    http::UnderscorePolicy policy;
  } kValues[] = {{"allow", http::UnderscorePolicy::kAllow},
                 {"drop", http::UnderscorePolicy::kDrop},
                 {"reject", http::UnderscorePolicy::kReject}};
  for (const auto& v : kValues) {
    const std::string path =
        Write("gateway.yaml", std::string("cores: 1\nunderscores_in_headers: ") + v.value + "\n");
    Result<GatewayConfig> c = LoadGatewayConfig(path);
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->underscores_in_headers, v.policy) << v.value;
  }
}

struct RuleCase {
  const char* text;
  const char* error;  // after "PATH"
};

const RuleCase kRules[] = {
    {"cores: 0\n", ":1: cores: 0 is out of range 1..256"},
    {"cores: 257\n", ":1: cores: 257 is out of range 1..256"},
    {"cores: 2\ncpu_affinity: [0]\n",
     ":2: cpu_affinity: lists 1 CPUs for 2 cores; give one CPU per core"},
    {"cpu_affinity: [0, 1]\n", ":1: cpu_affinity: lists 2 CPUs but cores is auto; set cores: 2"},
    {"cores: 2\ncpu_affinity: [1, 1]\n", ":2: cpu_affinity: CPU 1 appears twice"},
    {"ring_entries: 1000\n", ":1: ring_entries: 1000 must be a power of two in 64..32768"},
    {"ring_entries: 32\n", ":1: ring_entries: 32 must be a power of two in 64..32768"},
    {"ring_entries: 65536\n", ":1: ring_entries: 65536 must be a power of two in 64..32768"},
    {"buffers: {count: 100}\n", ":1: buffers.count: 100 must be a power of two in 16..32768"},
    {"buffers: {count: 8}\n", ":1: buffers.count: 8 must be a power of two in 16..32768"},
    {"buffers: {size: 512}\n", ":1: buffers.size: 512 bytes is out of range 1KiB..1MiB"},
    {"buffers: {size: 2MiB}\n", ":1: buffers.size: 2097152 bytes is out of range 1KiB..1MiB"},
    {"buffers: {sise: 2MiB}\n", ":1: buffers: unknown key 'sise' (did you mean 'size'?)"},
    {"max_header_bytes: 512\n", ":1: max_header_bytes: 512 bytes is out of range 1KiB..64KiB"},
    {"max_header_bytes: 128KiB\n",
     ":1: max_header_bytes: 131072 bytes is out of range 1KiB..64KiB"},
    {"max_connections_per_core: 0\n", ":1: max_connections_per_core: must be at least 1"},
    {"upstream_idle_per_core: -1\n",
     ":1: upstream_idle_per_core: expected a whole number, found '-1'"},
    {"header_timeout: 0s\n", ":1: header_timeout: must be more than zero"},
    {"idle_timeout: 0ms\n", ":1: idle_timeout: must be more than zero"},
    {"drain_timeout: 0s\n", ":1: drain_timeout: must be more than zero"},
    {"idle_timeout: 60\n",
     ":1: idle_timeout: '60' is not a duration (write it with a unit: 250ms, 2s, 1m, 1h)"},
    {"max_body_bytes: 1PB\n",
     ":1: max_body_bytes: '1PB' is not a size (bytes, or with a unit: 64KiB, 1MiB, 1GiB)"},
    {"sqpoll: true\n",
     ":1: sqpoll: true is not supported: each core's ring uses SINGLE_ISSUER|DEFER_TASKRUN, "
     "which the kernel refuses to combine with SQPOLL; leave sqpoll: false"},
    {"listeners: []\n", ":1: listeners: at least one listener is needed"},
    {"listeners: [localhost:8080]\n",
     ":1: listeners[0]: 'localhost:8080' is not a numeric address:port (e.g. 127.0.0.1:8080 "
     "or [::1]:8080)"},
    {"listeners:\n  - address: 127.0.0.1:99999\n",
     ":2: listeners[0]: '127.0.0.1:99999' is not a numeric address:port (e.g. 127.0.0.1:8080 "
     "or [::1]:8080)"},
    {"listeners:\n  - address: 127.0.0.1:8443\n    tls: {cert: c.pem}\n",
     ":3: listeners[0].tls: needs both 'cert' and 'key'"},
    {"listeners:\n  - address: 127.0.0.1:8443\n    tls: {cert: c, key: k, client_auth: true}\n",
     ":3: listeners[0].tls: client_auth: true needs 'ca' to verify client certificates"},
    {"admin: nowhere\n", ":1: admin: 'nowhere' is not a numeric address:port (or off)"},
    {"paths:\n  encoded_slashes: decode\n",
     ":2: paths.encoded_slashes: 'decode' must be refuse or keep"},
    {"paths:\n  merge_slashes: sometimes\n", ":2: paths.merge_slashes: expected true or false, found 'sometimes'"},
    {"paths: {merge_slash: true}\n",
     ":1: paths: unknown key 'merge_slash' (did you mean 'merge_slashes'?)"},
    {"role: edge\n", ":1: role: 'edge' must be gateway or sidecar"},
    {"role: sidecar\nlocal_port: 7000\n",
     ":1: service: role: sidecar needs 'service' (its service's name)"},
    {"role: sidecar\nservice: calc-svc\n",
     ":1: local_port: role: sidecar needs 'local_port' (where its service listens)"},
    {"local_port: 0\n", ":1: local_port: 0 is out of range 1..65535"},
    {"access_log: {sample_ratio: 0.5}\n", ":1: access_log: needs 'path' (the file lines are appended to)"},
    {"redis: {address: \"redis.local:6379\"}\n",
     ":1: redis.address: 'redis.local:6379' is not a numeric address:port (a core never resolves "
     "names)"},
    {"redis: {address: \"127.0.0.1:0\"}\n",
     ":1: redis.address: '127.0.0.1:0' is not a numeric address:port (a core never resolves "
     "names)"},
    {"redis:\n  timeout: 1s\n", ":1: redis: needs 'address' (numeric IP:PORT of the Redis server)"},
    {"redis:\n  address: 127.0.0.1:6379\n  fallback: open\n",
     ":3: redis.fallback: 'open' must be local_share, fail_open or fail_closed"},
    {"redis:\n  address: 127.0.0.1:6379\n  tls: {cert: c.pem, key: k.pem}\n",
     ":3: redis.tls: needs 'ca' (Redis's certificate is checked)"},
    {"redis:\n  address: 127.0.0.1:6379\n  gateways: 0\n",
     ":3: redis.gateways: 0 is out of range 1..10000"},
    {"access_log: {path: a.log, sample_ratio: 2}\n",
     ":1: access_log.sample_ratio: '2' must be a number in (0, 1]"},
    {"cores: 1\negress: 127.0.0.1:15001\n",
     ":2: egress: only a sidecar has it (set role: sidecar)"},
    {"role: sidecar\nservice: calc-svc\nlocal_port: 7000\nlisteners: [0.0.0.0:15000]\n",
     ":4: advertise: the inbound listener 0.0.0.0:15000 is a wildcard address; set 'advertise' "
     "to the host:port other proxies reach it at"},
    {"role: sidecar\nservice: calc-svc\nlocal_port: 7000\nadvertise: nowhere\n",
     ":4: advertise: 'nowhere' is not host:port with a port 1..65535"},
    {"role: sidecar\nservice: calc-svc\nlocal_port: 7000\nregistration_ttl: 10ms\n",
     ":4: registration_ttl: '10ms' is below the minimum of 1000ms"},
    {"cores: 1\nlocal_retries: 1\n", ":2: local_retries: only a sidecar has it (set role: sidecar)"},
    {"cores: 1\nlocal_protocol: h2c\n",
     ":2: local_protocol: only a sidecar has it (set role: sidecar)"},
    {"role: sidecar\nservice: calc-svc\nlocal_port: 7000\nlocal_protocol: h2\n",
     ":4: local_protocol: 'h2' must be http1 or h2c (the local service is plain TCP)"},
    {"role: sidecar\nservice: calc-svc\nlocal_port: 7000\nlocal_retry_on: [500, 5xx]\n",
     ":4: local_retry_on[1]: '5xx' must be 500, 502, 503, 504, connect-failure, reset or timeout"},
    {"role: sidecar\nservice: calc-svc\nlocal_port: 7000\nlocal_retries: 11\n",
     ":4: local_retries: 11 is out of range 0..10"},
    {"jwt: {issuer: hms}\n",
     ":1: jwt: needs exactly one of 'jwks' (a JWKS file) or 'hs256_secret_file'"},
    {"jwt: {jwks: a.json, hs256_secret: s}\n",
     ":1: jwt: unknown key 'hs256_secret' (did you mean 'hs256_secret_file'?)"},
    {"cores: 1\nunderscores_in_headers: off\n",
     ":2: underscores_in_headers: 'off' must be allow, drop or reject"},
    {"underscores_in_headers: Drop\n",
     ":1: underscores_in_headers: 'Drop' must be allow, drop or reject"},
    {"underscores_in_headers: [drop]\n",
     ":1: underscores_in_headers: expected a string, found a list"},
    {"underscores_in_header: drop\n",
     ":1: unknown key 'underscores_in_header' (did you mean 'underscores_in_headers'?)"},
    {"ring_entrys: 64\n", ":1: unknown key 'ring_entrys' (did you mean 'ring_entries'?)"},
    {"cores: auto\nmax_body_bytes: 1KiB\nmax_body_bytes: 2KiB\n",
     ":3: key 'max_body_bytes' appears twice"},
};

TEST_F(GatewayConfigTest, EachValidationRule) {
  for (const RuleCase& c : kRules) {
    EXPECT_EQ(LoadError(c.text), c.error) << c.text;
  }
}

TEST(ValidateGatewayConfig, WithoutLinesNamesTheSource) {
  GatewayConfig c = DefaultGatewayConfig();
  c.sqpoll = true;
  Result<bool> ok = ValidateGatewayConfig(c);
  ASSERT_FALSE(ok);
  EXPECT_EQ(ok.error().message.rfind("<embedded>: sqpoll: true is not supported", 0), 0u)
      << ok.error().message;
  c = DefaultGatewayConfig();
  c.cores = 300;
  EXPECT_FALSE(ValidateGatewayConfig(c));
  c = DefaultGatewayConfig();
  c.listeners.clear();
  EXPECT_FALSE(ValidateGatewayConfig(c));
  c = DefaultGatewayConfig();
  c.cores = 4;
  c.cpu_affinity = {0, 1, 2, 3};
  EXPECT_TRUE(ValidateGatewayConfig(c));
}

TEST_F(GatewayConfigTest, MeshConfig) {
  const std::string path = Write("mesh-config.yaml", R"(retries: 1
timeout: 5s
breaker: {failures: 7, open_for: 10s}
keep_alive: false
tracing: false
trust_domain: example.org
)");
  Result<MeshConfig> m = LoadMeshConfig(path);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->retries, 1u);
  EXPECT_EQ(m->timeout_ms, 5000u);
  EXPECT_EQ(m->breaker.failures, 7u);
  EXPECT_EQ(m->breaker.open_for_ms, 10'000u);
  EXPECT_FALSE(m->keep_alive);
  EXPECT_FALSE(m->tracing.enabled);
  EXPECT_FALSE(m->tracing.exports());
  EXPECT_EQ(m->trust_domain, "example.org");

  const std::string bad = Write("bad-mesh.yaml", "retries: 2\ntimeuot: 5s\n");
  Result<MeshConfig> e = LoadMeshConfig(bad);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().message, bad + ":2: unknown key 'timeuot' (did you mean 'timeout'?)");

  const std::string bad_domain = Write("bad-domain.yaml", "trust_domain: Bad/Domain\n");
  EXPECT_FALSE(LoadMeshConfig(bad_domain));
}

TEST(MeshConfig, SeedDefaults) {
  MeshConfig m;
  EXPECT_EQ(m.retries, 2u);
  EXPECT_EQ(m.timeout_ms, 15'000u);
  EXPECT_EQ(m.breaker.failures, 3u);
  EXPECT_EQ(m.breaker.open_for_ms, 30'000u);
  EXPECT_TRUE(m.keep_alive);
  EXPECT_TRUE(m.tracing.enabled);
  EXPECT_FALSE(m.tracing.exports());  // trace ids only: no collector named
  EXPECT_EQ(m.tracing.sample_ratio, 1.0);
}

TEST_F(GatewayConfigTest, TracingExport) {
  const std::string path = Write("mesh-tracing.yaml", R"(tracing:
  otlp_endpoint: http://127.0.0.1:4318/v1/traces
  sample_ratio: 0.25
  service_name: edge-eu
  export_timeout: 250ms
)");
  Result<MeshConfig> m = LoadMeshConfig(path);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_TRUE(m->tracing.exports());
  EXPECT_EQ(m->tracing.otlp_endpoint, "http://127.0.0.1:4318/v1/traces");
  EXPECT_EQ(m->tracing.otlp_host, "127.0.0.1");
  EXPECT_EQ(m->tracing.otlp_port, 4318);
  EXPECT_EQ(m->tracing.otlp_path, "/v1/traces");
  EXPECT_EQ(m->tracing.sample_ratio, 0.25);
  EXPECT_EQ(m->tracing.service_name, "edge-eu");
  EXPECT_EQ(m->tracing.export_timeout_ms, 250u);

  // The short form stays: true is trace ids without export.
  Result<MeshConfig> short_form = LoadMeshConfig(Write("mesh-true.yaml", "tracing: true\n"));
  ASSERT_TRUE(short_form) << short_form.error().message;
  EXPECT_TRUE(short_form->tracing.enabled);
  EXPECT_FALSE(short_form->tracing.exports());
}

TEST_F(GatewayConfigTest, TracingErrorsPointAtTheLine) {
  struct Case {
    const char* text;
    const char* error;  // after "file:"
  };
  const Case cases[] = {
      {"tracing:\n  otlp_endpoint: https://collector:4318\n",
       "2: tracing.otlp_endpoint: 'https://collector:4318': https is not supported; export over "
       "http:// (to a collector on loopback or a trusted network)"},
      {"tracing:\n  otlp_endpoint: collector:4318\n",
       "2: tracing.otlp_endpoint: 'collector:4318' is not an http:// URL (e.g. "
       "http://127.0.0.1:4318/v1/traces)"},
      {"tracing:\n  otlp_endpoint: http://127.0.0.1:99999/v1/traces\n",
       "2: tracing.otlp_endpoint: 'http://127.0.0.1:99999/v1/traces': '127.0.0.1:99999' is not "
       "HOST:PORT with a port 1..65535"},
      {"retries: 1\ntracing:\n  sample_ratio: 1.5\n",
       "3: tracing.sample_ratio: '1.5' must be a number in [0, 1]"},
      {"tracing:\n  otlp_endpiont: http://127.0.0.1:4318\n",
       "2: tracing: unknown key 'otlp_endpiont' (did you mean 'otlp_endpoint'?)"},
  };
  int i = 0;
  for (const Case& c : cases) {
    const std::string path = Write("bad-tracing-" + std::to_string(i++) + ".yaml", c.text);
    Result<MeshConfig> m = LoadMeshConfig(path);
    ASSERT_FALSE(m) << c.text;
    EXPECT_EQ(m.error().message, path + ":" + c.error) << c.text;
  }
}

TEST(TracingConfig, ParsesOtlpEndpoints) {
  struct Case {
    const char* url;
    const char* host;
    uint16_t port;
    const char* path;
  };
  const Case cases[] = {
      {"http://127.0.0.1:4318/v1/traces", "127.0.0.1", 4318, "/v1/traces"},
      {"http://collector", "collector", 4318, "/v1/traces"},  // OTLP/HTTP's port and path
      {"http://collector:9000/", "collector", 9000, "/v1/traces"},
      {"http://[::1]:4318/otlp/v1/traces", "::1", 4318, "/otlp/v1/traces"},
      {"http://[::1]", "::1", 4318, "/v1/traces"},
  };
  for (const Case& c : cases) {
    TracingConfig t;
    Result<bool> ok = ParseOtlpEndpoint(c.url, &t);
    ASSERT_TRUE(ok) << c.url << ": " << ok.error().message;
    EXPECT_EQ(t.otlp_host, c.host) << c.url;
    EXPECT_EQ(t.otlp_port, c.port) << c.url;
    EXPECT_EQ(t.otlp_path, c.path) << c.url;
    EXPECT_EQ(t.otlp_endpoint, c.url);
  }
  for (const char* bad : {"", "http://", "http://:4318", "http://a b:1/", "http://h:1/a b",
                          "ftp://h:1/", "http://h:0/"}) {
    TracingConfig t;
    EXPECT_FALSE(ParseOtlpEndpoint(bad, &t)) << bad;
  }
}

TEST_F(GatewayConfigTest, ListenerAddressesAreDistinct) {
  struct Case {
    const char* yaml;
    const char* error;  // "" = loads
  } cases[] = {
      {"listeners: [127.0.0.1:8080, 127.0.0.1:8080]\n",
       ":1: listeners[1]: 127.0.0.1:8080 is also listeners[0] (127.0.0.1:8080): each address is "
       "bound once"},
      {"listeners: [0.0.0.0:8080, 127.0.0.1:8080]\n", "is also listeners[0] (0.0.0.0:8080)"},
      {"listeners: [127.0.0.1:8080]\nadmin: 127.0.0.1:8080\n",
       ":2: admin: 127.0.0.1:8080 is also listeners[0]"},
      {"listeners: [127.0.0.1:0, 127.0.0.1:0]\nadmin: 127.0.0.1:0\n", ""},  // fresh ports
      {"listeners: [127.0.0.1:8080, 127.0.0.2:8080]\n", ""},
      {"role: sidecar\nservice: a\nlocal_port: 7000\nlisteners: [127.0.0.1:8080]\n"
       "egress: 127.0.0.1:8080\n",
       ":5: egress: 127.0.0.1:8080 is also listeners[0]"},
  };
  for (const Case& c : cases) {
    const std::string err = LoadError(c.yaml);
    if (std::string(c.error).empty()) {
      EXPECT_EQ(err, "") << c.yaml;
    } else {
      EXPECT_NE(err.find(c.error), std::string::npos) << c.yaml << " → " << err;
    }
  }
}

TEST_F(GatewayConfigTest, StoreMustBeAValidUri) {
  EXPECT_NE(LoadError("store: ''\n").find(":1: store: must not be empty"), std::string::npos);
  EXPECT_NE(LoadError("store: s3://bucket\n").find(":1: store: unsupported store scheme 's3'"),
            std::string::npos);
  EXPECT_NE(LoadError("store: 'file:'\n").find(":1: store: 'file:' names no directory"),
            std::string::npos);
  EXPECT_EQ(LoadError("store: file:/var/lib/hms\n"), "");
  EXPECT_EQ(LoadError("store: etcd://127.0.0.1:2379\n"), "");
}

// CheckGatewayEnvironment's error for the config at `path` (after the path), or "" when it passes.
std::string EnvError(const std::string& path) {
  Result<GatewayConfig> c = LoadGatewayConfig(path);
  EXPECT_TRUE(c) << c.error().message;
  if (!c) return "load failed";
  Result<bool> ok = CheckGatewayEnvironment(*c);
  return ok ? "" : ok.error().message.substr(path.size());
}

TEST_F(GatewayConfigTest, EnvironmentChecksNameFileLineAndTheFile) {
  const std::string pem = Write("real.pem", "not really a certificate\n");
  const std::string secret = Write("secret", "0123456789abcdef0123456789abcdef\n");
  struct Case {
    std::string yaml;
    std::string error;  // "" = passes
  } cases[] = {
      {"jwt:\n  hs256_secret_file: /nonexistent/secret\n",
       ":2: jwt.hs256_secret_file: /nonexistent/secret: cannot open: No such file or directory"},
      {"jwt:\n  hs256_secret_file: " + secret + "\n", ""},
      {"jwt:\n  jwks: " + dir_ + "\n", ":2: jwt.jwks: " + dir_ + ": is a directory"},
      {"listeners:\n  - address: 127.0.0.1:0\n    tls:\n      cert: " + pem +
           "\n      key: missing.key\n",
       ":5: listeners[0].tls.key: " + dir_ + "/missing.key: cannot open: No such file or directory"},
      {"mtls:\n  cert: " + pem + "\n  key: " + pem + "\n  ca: /nonexistent/ca.pem\n",
       ":4: mtls.ca: /nonexistent/ca.pem: cannot open: No such file or directory"},
      {"mesh: " + dir_ + "\n", ":1: mesh: " + dir_ + ": is a directory"},
      {"access_log:\n  path: /nonexistent-dir/a.log\n",
       ":2: access_log.path: /nonexistent-dir: cannot open the log's directory: No such file or "
       "directory"},
      {"access_log:\n  path: " + dir_ + "\n", ":2: access_log.path: " + dir_ + ": is a directory"},
      {"access_log:\n  path: " + dir_ + "/access.log\n", ""},
      {"cores: 2\ncpu_affinity: [0, 1023]\n",
       ":2: cpu_affinity: CPU 1023 is not one this process may run on (allowed: "},
  };
  for (const Case& c : cases) {
    const std::string path = Write("gateway.yaml", c.yaml);
    const std::string err = EnvError(path);
    if (c.error.empty()) {
      EXPECT_EQ(err, "") << c.yaml;
    } else {
      EXPECT_EQ(err.rfind(c.error, 0), 0u) << c.yaml << " → " << err;
    }
  }
}

TEST_F(GatewayConfigTest, AReferencedDirectoryIsSaidToBeOne) {
  // mesh-config read as a file: a directory is not "empty".
  Result<MeshConfig> m = LoadMeshConfig(dir_);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().message, dir_ + ": is a directory");
  Result<ServiceConfig> s = LoadServiceConfig(dir_ + "/absent.yaml");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message, dir_ + "/absent.yaml: cannot open: No such file or directory");
}

}  // namespace
}  // namespace hms::config
