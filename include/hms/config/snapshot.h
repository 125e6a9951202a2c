// Snapshot: the immutable compiled config that every core reads (DESIGN §4).
//
// The control thread compiles one from the gateway config, the mesh defaults
// and the services in the store, then publishes it to every core. Nothing in a
// Snapshot changes after CompileSnapshot returns. Lifetime: `refs` counts the
// holders (the control thread's "current" pointer and each core that adopted
// it); the last Release() deletes it. Exchanges in flight do not touch `refs`:
// each core counts its own in-flight exchanges per snapshot and releases its
// reference when that count reaches zero (SnapshotHold, src/proxy/exchange.h).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "hms/auth/jwt.h"
#include "hms/auth/key_set.h"
#include "hms/config/config.h"
#include "hms/policy/breaker.h"
#include "hms/policy/outlier.h"
#include "hms/policy/rate_limit.h"
#include "hms/policy/retry.h"
#include "hms/policy/retry_budget.h"
#include "hms/route/route_table.h"

namespace hms::tls {
class ServerContext;
class ClientContext;
}  // namespace hms::tls

namespace hms::config {

struct Endpoint {
  std::string address;  // as written: "127.0.0.1:7001", "mtls://127.0.0.1:7001"
  bool mtls = false;    // connections to it are mTLS with the proxy's mesh identity
  // "host:port" without the scheme (a Host header when the caller sent none).
  std::string_view authority() const {
    return std::string_view(address).substr(mtls ? kMtlsScheme.size() : 0);
  }
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  uint32_t id = 0;  // stable for the process's life: per-core upstream pools are indexed by it
  // Outlier ejection record, process-wide, kept across reloads by service and
  // address (filled in by the control thread after compiling; null in a
  // sidecar's local cluster).
  std::shared_ptr<policy::EndpointHealth> health;
};

// What a service's endpoints speak: HTTP/1.1 over a pool of connections, or
// HTTP/2 with many exchanges multiplexed on a connection per endpoint per
// core (h2c: plain TCP with prior knowledge; h2: the mesh's mTLS, ALPN h2).
enum class UpstreamProtocol : uint8_t { kHttp1, kH2c, kH2 };
std::string_view UpstreamProtocolName(UpstreamProtocol p) noexcept;

struct Cluster {  // one service
  std::string name;
  std::vector<Endpoint> endpoints;
  uint32_t retries = 2;
  uint32_t retry_on = policy::kRetryOnDefault;  // what policy retries follow (RetryOn bits)
  uint32_t timeout_ms = 15'000;
  uint32_t per_try_timeout_ms = 0;  // 0: an attempt may use what is left of the deadline
  UpstreamProtocol protocol = UpstreamProtocol::kHttp1;
  KeepaliveConfig connection_keepalive;  // h2c/h2: liveness PINGs on each connection
  uint32_t grpc_retry_on = 0;       // gRPC statuses a call may be retried on (GrpcRetryBit)
  bool least_request = false;       // load balancing: least-request (P2C) instead of round robin
  std::optional<HealthCheckConfig> health_check;  // active checks of every endpoint
  BreakerConfig breaker;
  std::optional<RateLimit> rate_limit;
  std::vector<std::string> allow_from;
  // mTLS (docs/tls.md): the identity its endpoints must present,
  // spiffe://TRUST_DOMAIN/svc/NAME, and allow_from as identities (a service
  // name NAME stands for that service's identity). A sidecar's local
  // cluster carries its own service's list: who may call in.
  std::string identity;
  std::vector<std::string> allowed_peers;
  // Connect attempts made before giving up, at least one per endpoint: a
  // sidecar's local service gets 2 (one retry on connect failure).
  uint32_t connect_attempts = 1;
  bool local = false;  // a sidecar's own service on 127.0.0.1:local_port
  // Process-wide breaker state and retry budget, kept across reloads by name
  // (the control thread's policy::PolicyRegistry fills them in after
  // compiling).
  std::shared_ptr<policy::Breaker> breaker_state;
  std::shared_ptr<policy::RetryBudget> retry_budget;
};

// A route's JWT rule and its rate limit's key, decided when the snapshot is
// compiled (DecideRequestRules) so the request path compares enums, never
// the config's strings.
enum class AuthMode : uint8_t { kNone, kOptional, kRequired };
enum class RateKey : uint8_t {
  kRoute,     // one bucket for the route
  kClientIp,  // per caller address
  kJwtSub,    // per verified subject (the caller's address without one)
  kHeader,    // per value of the header `rate_header`
};

struct Route {
  uint32_t cluster = 0;       // index into Snapshot::clusters
  uint32_t key = 0;           // stable id of (service, template, methods): metrics and per-core state
  std::string path_template;
  std::string methods_text;   // "GET, HEAD" or "*"
  std::string host;
  uint32_t timeout_ms = 15'000;
  std::string auth;           // required | optional | none, as written (/config, explain)
  AuthMode auth_mode = AuthMode::kNone;  // `auth`, decided at compile time
  std::vector<std::pair<std::string, std::string>> require;  // claim → value (auth module)
  std::optional<RateLimit> rate_limit;
  RateKey rate_key = RateKey::kRoute;  // rate_limit->per, decided at compile time
  std::string rate_header;             // kHeader: the field name (after "header:")
  // Process-wide bucket for rate_limit (null without one), kept across reloads
  // by route key; filled in by the control thread after compiling.
  std::shared_ptr<policy::RateLimitState> limiter;
  // `scope: fleet` (docs/resilience.md "Fleet scope"): the bucket is the
  // Redis key `fleet_key`, the same on every gateway (a hash of the route's
  // stable name); `limiter` is then this gateway's local share, used while
  // Redis cannot be reached.
  bool fleet = false;
  std::string fleet_key;
  std::string where;          // "file:line"
  // WebSocket upgrades pass (route key `websocket`; a sidecar's own routes
  // always), and a tunnel's longest silence (0 = the gateway's idle_timeout).
  bool websocket = false;
  uint32_t websocket_idle_ms = 0;
};

// Interns names to small stable ids, for endpoint addresses and route keys.
// Owned by the control thread; ids are never reused. Thread-safe (the admin
// API reads names back while the control thread adds).
class Interner {
 public:
  uint32_t Intern(const std::string& name);
  std::string Name(uint32_t id) const;
  size_t size() const;

 private:
  mutable std::mutex mu_;
  // Each name once: names_ points at the map's keys (a node-based map never
  // moves them), so a million route keys are not held twice.
  std::unordered_map<std::string, uint32_t> ids_;
  std::vector<const std::string*> names_;
};

struct Snapshot {
  // Count live snapshots for LiveSnapshots().
  Snapshot() noexcept;
  ~Snapshot();
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;

  uint64_t version = 0;
  GatewayConfig gateway;
  MeshConfig mesh;
  std::vector<Cluster> clusters;
  std::vector<Route> routes;
  route::RouteTable table;  // RouteSpec::target = index into routes
  // JWT validation (when the gateway config has a jwt section): the keys,
  // loaded by the control thread from the jwks or secret file, and the policy.
  std::shared_ptr<const auth::KeySet> jwt_keys;
  auth::JwtPolicy jwt_policy;
  // Raised by a core that saw a token whose kid the keys lack: the control
  // thread then reads the key file again, at most once per interval (the
  // flag belongs to the control thread's key material, which outlives every
  // snapshot).
  std::atomic<bool>* jwt_unknown_kid = nullptr;
  // TLS (docs/tls.md), made by the control thread from the files: the
  // server context of each listener ([listener], null for plain ones), and
  // this proxy's mesh identity for mTLS to upstream sidecars (null without
  // `mtls` in the gateway config).
  std::vector<std::shared_ptr<const tls::ServerContext>> listener_tls;
  std::shared_ptr<const tls::ClientContext> mesh_client;
  // Sidecar (gateway.role == sidecar; docs/sidecar.md): the inbound route
  // sends whatever reaches the inbound listener to the local service (the
  // last cluster, `local`); the egress routes, one per service, carry what
  // the local service sends to the egress listener to that service's
  // endpoints. Neither is in `table`. kNoRoute on a gateway.
  static constexpr uint32_t kNoRoute = 0xffffffffu;
  uint32_t inbound_route = kNoRoute;
  std::vector<std::pair<std::string, uint32_t>> egress;  // service → route index, sorted
  // The egress route of `service`, or null.
  const Route* EgressRoute(std::string_view service) const;
  std::atomic<int> refs{1};

  void Acquire() noexcept { refs.fetch_add(1, std::memory_order_relaxed); }
  void Release() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  // The snapshot as JSON for the admin API's /config.
  std::string ToJson() const;
};

// Live snapshot count, for /metrics (a leak shows as a growing number).
int LiveSnapshots() noexcept;

// One service to compile, as its caller keeps it: the parsed file, and the
// endpoints added through the store (after the file's own; null for none).
struct ServiceInput {
  const ServiceConfig* config = nullptr;
  const std::vector<std::string>* store_endpoints = nullptr;
};

// CompileSnapshot over services the caller keeps: nothing of them is copied
// but what the snapshot holds (a gateway's reload and hms-api's trial compile
// of a million routes). `endpoint_ids` null: no endpoint is resolved or kept
// (a trial compile, where a name only the gateways resolve must not block);
// `route_keys` null: every route's key is 0 (nothing outlives the snapshot).
Result<std::unique_ptr<Snapshot>> CompileSnapshotOf(const GatewayConfig& gateway,
                                                    const MeshConfig& mesh,
                                                    const std::vector<ServiceInput>& services,
                                                    uint64_t version, Interner* endpoint_ids,
                                                    Interner* route_keys);

// What CompileSnapshotOf (with null interners) refuses of `services`, a
// name defined twice or routes that clash (file:line), without the snapshot:
// only the route table is built and dropped. hms-api's trial compile of a
// registration, at a fraction of a snapshot's memory for a million routes.
Result<bool> CheckServices(const std::vector<ServiceInput>& services);

// Compiles a snapshot. Endpoints that do not resolve, templates that clash
// across services, and duplicate service names are errors with file:line.
// `endpoint_ids` and `route_keys` give the stable ids.
Result<std::unique_ptr<Snapshot>> CompileSnapshot(const GatewayConfig& gateway,
                                                  const MeshConfig& mesh,
                                                  const std::vector<ServiceConfig>& services,
                                                  uint64_t version, Interner* endpoint_ids,
                                                  Interner* route_keys);

}  // namespace hms::config
