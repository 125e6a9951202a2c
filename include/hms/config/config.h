// Config files (DESIGN §3): gateway.yaml, mesh-config.yaml and route files.
//
// Loaded by the control thread and by hms-api (allocate freely, may use
// yaml-cpp's exceptions internally; nothing here throws past its functions).
// Every error is "file:line: reason"; unknown keys are errors with the closest
// known key suggested ("unknown key 'rate_limt' (did you mean 'rate_limit'?)").
// Durations are "250ms", "2s", "1m", "1h"; sizes "512", "64KiB", "1MiB", "1GiB".
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hms/common/result.h"
#include "hms/http/field_names.h"
#include "hms/policy/fleet_fallback.h"
#include "hms/policy/retry.h"

namespace hms::config {

struct CertPair {
  std::string cert, key;  // PEM files: the chain (leaf first) and its key
};

// A TLS listener (docs/tls.md): `cert`/`key` answer clients that name no
// server, or a name no other certificate carries; `sni_certs` are chosen by
// the name the client sends (SNI) against their DNS names.
struct ListenerTls {
  std::string cert, key, ca;
  std::vector<CertPair> sni_certs;
  bool client_auth = false;
};

// This proxy's mesh identity (`mtls:`, docs/tls.md): the key and certificate
// `hms-api certs issue` made, and the mesh CA that peers must chain to.
struct MeshTlsConfig {
  std::string cert, key, ca;
};

// HTTP/2 on a listener (docs/http2.md): ALPN h2 on TLS, h2c with prior
// knowledge on plain. The limits left at 0 keep h2::Limits' defaults.
struct ListenerHttp2 {
  bool enabled = true;
  uint32_t max_concurrent_streams = 0;
  uint32_t max_header_list_bytes = 0;
  uint32_t header_table_bytes = 0;
  uint32_t stream_window_bytes = 0;
  uint32_t connection_window_bytes = 0;
  // The flood thresholds (docs/http2.md "Floods"), 0 likewise: RST_STREAM
  // and SETTINGS/PING/PRIORITY as token buckets, CONTINUATIONs per header
  // block, empty frames in a row.
  uint32_t resets_burst = 0, resets_per_second = 0;
  uint32_t control_frames_burst = 0, control_frames_per_second = 0;
  uint32_t max_continuations = 0;
  uint32_t max_empty_frames = 0;
};

struct ListenerConfig {
  std::string address;  // "127.0.0.1:8080" (IPv4 or [IPv6]:port); port 0 picks a free one
  std::optional<ListenerTls> tls;
  ListenerHttp2 http2;
};

struct JwtConfig {  // parsed now, enforced by the auth module
  std::string issuer, audience, jwks, hs256_secret_file;
  uint32_t leeway_ms = 30'000;
};

// One JSON line per request (docs/observability.md), off unless configured.
struct AccessLogConfig {
  std::string path;           // appended to; reopened on SIGHUP (log rotation)
  double sample_ratio = 1.0;  // (0, 1]: the share of requests logged
  uint64_t buffer_bytes = 1ull << 20;  // each core's ring; a full ring drops lines
};

// Fleet-wide rate limits (`redis:`, docs/resilience.md "Fleet scope"): the
// one Redis every gateway of the fleet shares, reached by each core over its
// own connection. Read at start; a change needs a restart, as listeners do.
struct RedisTlsConfig {
  std::string ca;         // PEM: Redis's certificate must chain to it
  std::string cert, key;  // our certificate, for a Redis with tls-auth-clients (optional)
};
struct RedisConfig {
  std::string address;        // numeric "IP:PORT" (a core never resolves a name)
  std::string password_file;  // AUTH with its first line; empty = no AUTH
  std::string username;       // AUTH username password (ACL users); empty = requirepass
  std::optional<RedisTlsConfig> tls;
  uint32_t timeout_ms = 200;  // connect, and each call's answer
  policy::FleetFallback fallback = policy::FleetFallback::kLocalShare;
  uint32_t gateways = 1;        // how many gateways share the limits (local_share divides by it)
  uint32_t max_waiting = 1024;  // requests a core parks for Redis's answer; more take the fallback
};
// "local_share", "fail_open", "fail_closed": as written in `redis.fallback`.
std::string_view FallbackName(policy::FleetFallback f);

struct GatewayConfig {
  std::string source;  // file name the config came from ("<embedded>" for defaults)
  // Where each key was written ("listeners", "listeners[0].tls.cert",
  // "jwt.jwks", ...), so checks made after loading still name file:line.
  std::map<std::string, int> lines;
  std::string role = "gateway";  // gateway | sidecar
  uint32_t cores = 0;            // 0 = auto (one per CPU the process may run on)
  std::vector<int> cpu_affinity; // empty = core i on the i-th allowed CPU
  std::vector<ListenerConfig> listeners;  // default: one on 127.0.0.1:8080
  std::string admin = "127.0.0.1:9901";   // "" or "off" disables
  std::string store;                      // empty = default store (see control/store.h)
  std::optional<JwtConfig> jwt;
  std::string mesh;                       // mesh-config.yaml path; empty = seed defaults
  std::optional<AccessLogConfig> access_log;
  std::optional<MeshTlsConfig> mtls;
  // `tls: {ticket_keys: FILE}` (docs/tls.md): session-ticket secrets shared
  // by a fleet, re-read when the file changes; empty = this process's own.
  std::string tls_ticket_keys;
  // `redis:` (fleet-wide rate limits); none = `scope: fleet` is refused.
  std::optional<RedisConfig> redis;
  // Per-core tuning.
  uint32_t ring_entries = 4096;
  uint32_t buffer_count = 1024;           // provided receive buffers per core (power of two)
  uint32_t buffer_size = 16384;           // bytes each
  bool sqpoll = false;
  uint64_t zero_copy_min_bytes = 0;       // 0 = never use SEND_ZC
  uint32_t max_connections_per_core = 100'000;
  uint32_t upstream_idle_per_core = 128;  // idle pooled upstream connections kept per endpoint per core
  uint32_t upstream_pipeline_depth = 1;   // bodiless GET/HEADs of one pass sharing an upstream send; 1 = off
  // Limits.
  uint32_t max_header_bytes = 16384;
  uint64_t max_body_bytes = 1ull << 30;   // 1 GiB
  uint32_t header_timeout_ms = 10'000;
  uint32_t idle_timeout_ms = 60'000;
  uint32_t drain_timeout_ms = 10'000;
  // Request paths (`paths:`, docs/engine.md "The canonical path"): the two
  // relaxations of the strict normalization, both off by default.
  bool keep_encoded_slashes = false;  // paths.encoded_slashes: keep (default refuse)
  bool merge_slashes = true;          // paths.merge_slashes
  // Request fields whose names hold '_' (docs/engine.md "Header fields").
  http::UnderscorePolicy underscores_in_headers = http::UnderscorePolicy::kDrop;
  // Sidecar keys (role: sidecar).
  std::string service;
  uint16_t local_port = 0;
  std::string egress;                     // egress listener address; empty = none
  std::string advertise;                  // the endpoint it registers; empty = its first listener's
  uint32_t registration_ttl_s = 10;       // lease TTL of that endpoint in the store
  // Policy retries toward the local service (the seed's "retries once on
  // 5xx"): only requests safe to repeat (policy::DecideRetry), on what
  // local_retry_on lists (policy::RetryOn bits).
  uint32_t local_retries = 1;
  uint32_t local_retry_on = policy::kRetryOnLocalDefault;
  // What the local service speaks: "http1" or "h2c" (a gRPC service), as a
  // route file's `protocol` (docs/http2.md "HTTP/2 to upstreams").
  std::string local_protocol = "http1";
};

// Active health checks of a service's endpoints (`health:` in a route file).
struct HealthCheckConfig {
  std::string path;               // GET this path; a 2xx answer is healthy
  uint32_t interval_ms = 5000;
  uint32_t timeout_ms = 1000;
  uint32_t unhealthy = 2;         // consecutive failed checks that take an endpoint out
  uint32_t healthy = 1;           // consecutive good checks that bring it back
  friend bool operator==(const HealthCheckConfig&, const HealthCheckConfig&) = default;
};

struct BreakerConfig {
  uint32_t failures = 3;  // 0: no breaker (`breaker: off`)
  uint32_t open_for_ms = 30'000;
};

// Liveness PINGs on an h2c/h2 service's connections (`connection_keepalive:`
// in a route file; docs/http2.md "HTTP/2 to upstreams"): a PING after
// `interval_ms` without a frame from the upstream, the connection closed
// when its ACK takes longer than `timeout_ms`.
struct KeepaliveConfig {
  uint32_t interval_ms = 30'000;  // 0: no PINGs (`connection_keepalive: off`)
  uint32_t timeout_ms = 10'000;
};

struct RateLimit {
  uint64_t rate_per_sec_x1000 = 0;  // tokens per second × 1000; 0 = no limit
  uint32_t burst = 0;
  std::string per;                  // "", "client_ip", "jwt_sub", "header:NAME"
  std::string text;                 // as written, for /config and errors
  bool fleet = false;               // `scope: fleet`: one bucket in Redis for every gateway
};

// `tracing` in mesh-config.yaml (docs/observability.md "Spans"). Trace ids
// are always accepted, made and forwarded; this says whether spans are
// recorded and where they are exported. `tracing: true|false` is the short
// form (no export either way).
struct TracingConfig {
  bool enabled = true;        // false: no span is recorded, whatever else is set
  std::string otlp_endpoint;  // as written: "http://HOST[:PORT][/PATH]"; empty = no export
  std::string otlp_host;      // parsed from it (IPv6 without brackets)
  uint16_t otlp_port = 0;
  std::string otlp_path;      // "/v1/traces" when the URL has no path
  double sample_ratio = 1.0;  // [0, 1]: traces this hop starts (or gets undecided) that are sampled
  std::string service_name;   // service.name; empty = the sidecar's service, else "hms-gateway"
  uint32_t export_timeout_ms = 500;  // one export request's bound (connect, send, answer)
  // Spans are recorded and exported.
  bool exports() const { return enabled && !otlp_endpoint.empty(); }
  friend bool operator==(const TracingConfig&, const TracingConfig&) = default;
};

// Parses an OTLP/HTTP endpoint: "http://HOST[:PORT][/PATH]" (PORT defaults
// to 4318, the OTLP/HTTP port; an empty PATH or "/" becomes "/v1/traces").
// Only plain http: an error message otherwise.
Result<bool> ParseOtlpEndpoint(std::string_view url, TracingConfig* out);

// mesh-config.yaml: mesh-wide defaults that route files override.
struct MeshConfig {
  uint32_t retries = 2;
  uint32_t timeout_ms = 15'000;
  BreakerConfig breaker;
  bool keep_alive = true;
  TracingConfig tracing;
  std::string trust_domain = "hms.local";
};

struct RouteConfig {
  std::string path;                  // template
  std::vector<std::string> methods;  // upper-case; empty = any
  std::string host;
  std::optional<uint32_t> timeout_ms;
  std::string auth;                  // "", required, optional, none
  std::vector<std::pair<std::string, std::string>> require;  // claim → value
  // Shared, not inline: most routes have none, and a million inline empty
  // optionals cost 88 bytes each (docs/config.md "Scale").
  std::shared_ptr<const RateLimit> rate_limit;
  int line = 0;                      // 1-based line in the source file
  // WebSocket (docs/engine.md "WebSocket"): off unless the route says so;
  // the tunnel's longest silence, 0 = the gateway's idle_timeout.
  bool websocket = false;
  uint32_t websocket_idle_ms = 0;
};

struct ServiceConfig {
  std::string service;
  std::vector<RouteConfig> routes;
  std::optional<RateLimit> rate_limit;
  std::optional<uint32_t> retries;
  std::optional<uint32_t> timeout_ms;
  std::optional<uint32_t> per_try_timeout_ms;  // each attempt's bound; unset = the route's deadline
  std::optional<uint32_t> retry_on;    // policy::RetryOn bits; unset = policy::kRetryOnDefault
  // What the endpoints speak (docs/http2.md "HTTP/2 to upstreams"):
  // "http1" (default), "h2c" (HTTP/2 with prior knowledge) or "h2" (HTTP/2
  // over the mesh's mTLS, ALPN h2).
  std::string protocol;
  std::optional<KeepaliveConfig> connection_keepalive;  // h2c/h2 only; unset: the defaults
  // gRPC statuses a call may be retried on (policy::GrpcRetryBit bits).
  uint32_t grpc_retry_on = 0;
  std::optional<BreakerConfig> breaker;
  std::string load_balancing;          // round_robin (default) | least_request
  std::optional<HealthCheckConfig> health;
  std::vector<std::string> endpoints;  // "host:port"
  std::vector<std::string> allow_from;
  std::string source;                  // file name for messages
  int line = 0;                        // line of the `service:` key, for clash messages
};

// Loads gateway.yaml and checks it with ValidateGatewayConfig (errors point at
// the offending key's line). Missing keys take the defaults above. Relative
// file names (mesh, jwt files, TLS files) are made relative to the directory
// of `path`.
Result<GatewayConfig> LoadGatewayConfig(const std::string& path);
// The embedded defaults ("hms-gateway" with no --config): one plain listener
// on 127.0.0.1:8080, admin on 127.0.0.1:9901, the default store.
GatewayConfig DefaultGatewayConfig();
// Checks cross-field rules (cores vs cpu_affinity, buffer_count a power of two,
// listener addresses distinct from each other and from admin and egress, ...).
Result<bool> ValidateGatewayConfig(const GatewayConfig& c);
// The checks start-up makes against this machine that need no port: every
// file the config names opens (certificates, keys, CAs, JWKS or secret, mesh
// config), the access log's directory is writable, every CPU in cpu_affinity
// is one this process may run on. `hms-gateway --check` and start-up both run
// it, so a config --check passes does not fail at start. Errors name
// file:line, then the file and why ("... cannot open: No such file or directory").
Result<bool> CheckGatewayEnvironment(const GatewayConfig& c);
// "gateway.yaml:12" for a key of `c.lines` (the closest recorded parent key
// when that one was not), or just the source file.
std::string WhereIs(const GatewayConfig& c, const std::string& key);

Result<MeshConfig> LoadMeshConfig(const std::string& path);

// Parses a route file (YAML, or JSON, which is read as YAML) from its text.
// `source` names it in errors. Validates templates, methods, durations, rate
// limits, endpoints; does not check ambiguity across services (the snapshot
// compiler does, with both places named).
Result<ServiceConfig> ParseServiceConfig(const std::string& text, const std::string& source);
Result<ServiceConfig> LoadServiceConfig(const std::string& path);

// One route file's text and the name that stands for it in errors; both
// outlive the call they are given to.
struct RouteFileText {
  const std::string* text = nullptr;
  const std::string* source = nullptr;
};
// ParseServiceConfig of every file, results in the order given. Spread over
// the CPUs this process may run on (up to 8 threads) when there is enough
// text to pay for them: yaml-cpp's scanner is most of a big registration's
// time (docs/config.md "Scale"), and documents share no state.
std::vector<Result<ServiceConfig>> ParseServiceConfigs(const std::vector<RouteFileText>& files);

// The largest config or route file read (gateway.yaml, mesh-config.yaml, a
// route file, a stored service's text): a larger one is refused before it is
// parsed (docs/config.md "Limits"). A route file of 100 routes is ~4 KiB; the
// whole 1,000,000-route table of 10,000 such files is 40 MB.
inline constexpr uint64_t kMaxConfigFileBytes = 16ull << 20;
// "SOURCE: N bytes, over the limit of 16 MiB ..." when `bytes` is over the
// limit, else "".
std::string OversizedText(uint64_t bytes, const std::string& source);
// A whole config or route file: errors name it ("PATH: cannot open: ...",
// "PATH: is a directory", or over kMaxConfigFileBytes, judged before reading).
Result<std::string> ReadConfigFile(const std::string& path);

// Durations and sizes, as written in config files.
std::optional<uint64_t> ParseDurationMs(std::string_view text);
std::optional<uint64_t> ParseSize(std::string_view text);
// "20 req/min", "100 req/s", "5 req/h" → rate; burst defaults to the count.
std::optional<RateLimit> ParseRateText(std::string_view text);

// "host:port", "1.2.3.4:80" or "[::1]:80". The port must be 1..65535 unless
// `allow_port_zero` (listeners: 0 picks a free port). Hosts are DNS names or
// numeric addresses; an IPv6 address must be bracketed.
struct HostPort {
  std::string host;  // without brackets
  uint16_t port = 0;
};
std::optional<HostPort> ParseHostPort(std::string_view text, bool allow_port_zero = false);

// An upstream endpoint: "HOST:PORT", or "mtls://HOST:PORT" for one that takes
// only mTLS callers (a sidecar with a mesh identity registers itself so).
inline constexpr std::string_view kMtlsScheme = "mtls://";
struct EndpointAddress {
  HostPort hp;
  bool mtls = false;
};
std::optional<EndpointAddress> ParseEndpoint(std::string_view text);

// Service names: DNS-label-like, [a-z0-9-], 1..63 characters, no leading or
// trailing '-'. Also the file names of the file store, so never a path.
bool IsValidServiceName(std::string_view name);

// The tokens a `retry_on` value lists (policy::RetryOn bits), in the order
// policy::kRetryOnTokens gives them: for /config and `hms-api explain`.
std::vector<std::string> RetryOnNames(uint32_t retry_on);

}  // namespace hms::config
