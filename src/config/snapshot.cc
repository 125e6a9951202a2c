// Snapshot compilation: gateway config + mesh defaults + services → one
// immutable Snapshot (DESIGN §4). Runs on the control thread and in hms-api.
#include "hms/config/snapshot.h"

#include "hms/common/address.h"
#include "hms/common/hash.h"
#include "hms/common/json_escape.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <unordered_map>

namespace hms::config {
namespace {

std::atomic<int> g_live_snapshots{0};

std::string Where(const std::string& source, int line) {
  return line > 0 ? source + ":" + std::to_string(line) : source;
}

// Fills `ep.addr` from "host:port": numeric addresses directly, names through
// the resolver (blocking: this runs on the control thread, never on a core).
Result<bool> Resolve(Endpoint* ep) {
  const std::optional<EndpointAddress> e = ParseEndpoint(ep->address);
  if (!e) return ConfigError("'" + ep->address + "' is not [mtls://]host:port with a port 1..65535");
  ep->mtls = e->mtls;
  const HostPort* hp = &e->hp;
  if (NumericSockaddr(hp->host, hp->port, &ep->addr, &ep->addr_len)) return true;
  sockaddr_in* v4 = reinterpret_cast<sockaddr_in*>(&ep->addr);
  sockaddr_in6* v6 = reinterpret_cast<sockaddr_in6*>(&ep->addr);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = getaddrinfo(hp->host.c_str(), nullptr, &hints, &res);
  if (rc != 0 || res == nullptr) {
    return ConfigError("endpoint '" + ep->address +
                       "' does not resolve: " + (rc != 0 ? gai_strerror(rc) : "no address"));
  }
  // The resolver's first answer (RFC 6724 order), as a client's connect() would try.
  std::memcpy(&ep->addr, res->ai_addr, res->ai_addrlen);
  ep->addr_len = res->ai_addrlen;
  if (res->ai_family == AF_INET) v4->sin_port = htons(hp->port);
  if (res->ai_family == AF_INET6) v6->sin6_port = htons(hp->port);
  freeaddrinfo(res);
  return true;
}

std::string JoinMethods(const std::vector<std::string>& methods) {
  if (methods.empty()) return "*";
  std::string out;
  for (const std::string& m : methods) {
    if (!out.empty()) out += ", ";
    out += m;
  }
  return out;
}

void AppendKey(std::string* out, std::string_view key) {
  AppendJsonString(out, key);
  out->push_back(':');
}

void AppendRateLimit(std::string* out, const std::optional<RateLimit>& rl) {
  if (!rl) {
    *out += "null";
    return;
  }
  *out += "{";
  AppendKey(out, "text");
  AppendJsonString(out, rl->text);
  *out += ",\"rate_per_sec_x1000\":" + std::to_string(rl->rate_per_sec_x1000);
  *out += ",\"burst\":" + std::to_string(rl->burst) + ",";
  AppendKey(out, "per");
  AppendJsonString(out, rl->per);
  *out += "}";
}

// Turns the route's `auth` and rate-limit `per` (validated when the files
// were read) into the enums the request path switches on.
void DecideRequestRules(Route* r) {
  // Anything but "none" and "optional" checks tokens: a rule misread fails closed.
  r->auth_mode = r->auth == "none"       ? AuthMode::kNone
                 : r->auth == "optional" ? AuthMode::kOptional
                                         : AuthMode::kRequired;
  r->rate_key = RateKey::kRoute;
  r->rate_header.clear();
  if (!r->rate_limit) return;
  const std::string& per = r->rate_limit->per;
  if (per == "client_ip") {
    r->rate_key = RateKey::kClientIp;
  } else if (per == "jwt_sub") {
    r->rate_key = RateKey::kJwtSub;
  } else if (per.size() > 7 && per.compare(0, 7, "header:") == 0) {
    r->rate_key = RateKey::kHeader;
    r->rate_header = per.substr(7);
  }
}

// A sidecar's routes: inbound to the local service, egress to every service
// (Snapshot::inbound_route, Snapshot::egress). Their keys read
// "SERVICE|*||(inbound)" and "SERVICE|*||(egress)", so metrics label them
// route="(inbound)" and route="(egress)".
Result<bool> AddSidecarRoutes(const GatewayConfig& gateway, const MeshConfig& mesh, Snapshot* snap,
                              Interner* endpoint_ids, Interner* route_keys) {
  auto add_route = [&](uint32_t cluster, const std::string& service, const char* kind,
                       uint32_t timeout_ms) {
    Route r;
    r.cluster = cluster;
    r.path_template = kind;
    r.methods_text = "*";
    r.timeout_ms = timeout_ms;
    r.auth = "none";  // callers inside the mesh are admitted by mTLS identity, not JWT
    // The edge route that admitted the upgrade decided; a sidecar carries it
    // both ways like any request.
    r.websocket = true;
    DecideRequestRules(&r);
    r.where = gateway.source + ": sidecar " + kind;
    r.key = route_keys->Intern(service + "|*||" + kind);
    snap->routes.push_back(std::move(r));
    return static_cast<uint32_t>(snap->routes.size() - 1);
  };
  const uint32_t services = static_cast<uint32_t>(snap->clusters.size());
  for (uint32_t i = 0; i < services; ++i) {
    const Cluster& cl = snap->clusters[i];
    snap->egress.emplace_back(cl.name, add_route(i, cl.name, "(egress)", cl.timeout_ms));
  }
  std::sort(snap->egress.begin(), snap->egress.end());

  Cluster local;
  local.name = gateway.service + "@local";
  local.local = true;
  local.retries = gateway.local_retries;
  local.retry_on = gateway.local_retry_on;
  local.connect_attempts = 2;
  if (gateway.local_protocol == "h2c") local.protocol = UpstreamProtocol::kH2c;
  local.timeout_ms = mesh.timeout_ms;
  for (uint32_t i = 0; i < services; ++i) {
    if (snap->clusters[i].name != gateway.service) continue;
    local.timeout_ms = snap->clusters[i].timeout_ms;
    local.allowed_peers = snap->clusters[i].allowed_peers;
  }
  Endpoint ep;
  ep.address = "127.0.0.1:" + std::to_string(gateway.local_port);
  Result<bool> ok = Resolve(&ep);
  if (!ok) return ok.error();
  ep.id = endpoint_ids->Intern(ep.address);
  local.endpoints.push_back(std::move(ep));
  const uint32_t timeout_ms = local.timeout_ms;
  snap->clusters.push_back(std::move(local));
  snap->inbound_route = add_route(services, gateway.service, "(inbound)", timeout_ms);
  return true;
}

}  // namespace

uint32_t Interner::Intern(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto [it, inserted] = ids_.emplace(name, static_cast<uint32_t>(names_.size()));
  if (inserted) names_.push_back(&it->first);
  return it->second;
}

std::string Interner::Name(uint32_t id) const {
  std::lock_guard<std::mutex> lock(mu_);
  return id < names_.size() ? *names_[id] : std::string();
}

size_t Interner::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return names_.size();
}

Snapshot::Snapshot() noexcept { g_live_snapshots.fetch_add(1, std::memory_order_relaxed); }
Snapshot::~Snapshot() { g_live_snapshots.fetch_sub(1, std::memory_order_relaxed); }

int LiveSnapshots() noexcept { return g_live_snapshots.load(std::memory_order_relaxed); }

namespace {

// Service name → its first definition.
using Names = std::unordered_map<std::string_view, const ServiceConfig*>;

// Records `s` (defined at `where`) in `defined`: an error when its name is
// not valid or is already defined (naming both places).
Result<bool> Define(const ServiceConfig& s, const std::string& where, Names* defined) {
  if (!IsValidServiceName(s.service)) {
    return ConfigError(where + ": service '" + s.service + "' is not a valid name");
  }
  const auto [prev, inserted] = defined->emplace(s.service, &s);
  if (!inserted) {
    return ConfigError(where + ": service '" + s.service + "' is already defined at " +
                       Where(prev->second->source, prev->second->line));
  }
  return true;
}

// The cluster of one service: its settings with the mesh's defaults, and its
// endpoints resolved (none when `endpoint_ids` is null: a trial compile).
Result<Cluster> MakeCluster(const ServiceInput& in, const MeshConfig& mesh,
                            const std::string& where, Interner* endpoint_ids) {
  const ServiceConfig& s = *in.config;
  Cluster cl;
  cl.name = s.service;
  cl.retries = s.retries.value_or(mesh.retries);
  cl.retry_on = s.retry_on.value_or(policy::kRetryOnDefault);
  cl.timeout_ms = s.timeout_ms.value_or(mesh.timeout_ms);
  cl.per_try_timeout_ms = s.per_try_timeout_ms.value_or(0);
  cl.protocol = s.protocol == "h2c"  ? UpstreamProtocol::kH2c
                : s.protocol == "h2" ? UpstreamProtocol::kH2
                                     : UpstreamProtocol::kHttp1;
  cl.grpc_retry_on = s.grpc_retry_on;
  cl.connection_keepalive = s.connection_keepalive.value_or(KeepaliveConfig{});
  cl.least_request = s.load_balancing == "least_request";
  cl.health_check = s.health;
  cl.breaker = s.breaker.value_or(mesh.breaker);
  cl.rate_limit = s.rate_limit;
  cl.allow_from = s.allow_from;
  cl.identity = "spiffe://" + mesh.trust_domain + "/svc/" + s.service;
  for (const std::string& a : s.allow_from) {
    cl.allowed_peers.push_back(a.starts_with("spiffe://") ? a
                               : "spiffe://" + mesh.trust_domain + "/svc/" + a);
  }
  if (endpoint_ids == nullptr) return cl;
  std::set<std::string> seen;
  auto add = [&](const std::string& address) -> Result<bool> {
    if (!seen.insert(address).second) return true;  // the file and the store may both list it
    Endpoint ep;
    ep.address = address;
    Result<bool> ok = Resolve(&ep);
    if (!ok) return ConfigError(where + ": " + s.service + ": " + ok.error().message);
    ep.id = endpoint_ids->Intern(address);
    cl.endpoints.push_back(std::move(ep));
    return true;
  };
  for (const std::string& address : s.endpoints) {
    if (Result<bool> ok = add(address); !ok) return ok.error();
  }
  if (in.store_endpoints != nullptr) {
    for (const std::string& address : *in.store_endpoints) {
      if (Result<bool> ok = add(address); !ok) return ok.error();
    }
  }
  return cl;
}

// A fleet-scope limit needs the Redis that holds it: without `redis:` the
// gateway would have nothing to enforce it with, so the route is refused
// rather than silently limited per gateway.
Result<bool> CheckFleetRoutes(const GatewayConfig& gateway, const std::vector<Route>& routes) {
  if (gateway.redis) return true;
  for (const Route& r : routes) {
    if (r.fleet) {
      return ConfigError(r.where + ": rate_limit: scope: fleet needs a 'redis:' section in " +
                         gateway.source + " (docs/resilience.md \"Fleet scope\")");
    }
  }
  return true;
}

// The routes of one service (cluster `cluster_index`), into the snapshot
// and the table's specs.
void AddRoutes(const ServiceConfig& s, const Cluster& cl, uint32_t cluster_index,
               const std::string& default_auth, Interner* route_keys, Snapshot* snap,
               std::vector<route::RouteSpec>* specs) {
  std::string key;
  for (const RouteConfig& rc : s.routes) {
    Route r;
    r.cluster = cluster_index;
    r.path_template = rc.path;
    r.methods_text = JoinMethods(rc.methods);
    r.host = rc.host;
    r.timeout_ms = rc.timeout_ms.value_or(cl.timeout_ms);
    r.auth = rc.auth.empty() ? default_auth : rc.auth;
    r.require = rc.require;
    r.rate_limit = rc.rate_limit ? std::optional<RateLimit>(*rc.rate_limit) : cl.rate_limit;
    r.where = Where(s.source, rc.line);
    r.websocket = rc.websocket;
    r.websocket_idle_ms = rc.websocket_idle_ms;
    DecideRequestRules(&r);
    if (r.rate_limit && r.rate_limit->fleet) {
      // Every gateway names the bucket alike: the route's stable name,
      // hashed so that any template fits the Redis client's key bound.
      r.fleet = true;
      char hex[17];
      std::snprintf(hex, sizeof hex, "%016llx",
                    static_cast<unsigned long long>(Fnv1a64(s.service + "|" + r.methods_text + "|" +
                                                            r.host + "|" + r.path_template)));
      r.fleet_key = "hms:rl:" + s.service + ":" + hex;
    }
    // Stable across reloads while the service keeps this route, so per-core
    // buckets and metrics carry over (DESIGN §4).
    if (route_keys != nullptr) {
      key.assign(s.service).append("|").append(r.methods_text).append("|").append(r.host);
      key.append("|").append(r.path_template);
      r.key = route_keys->Intern(key);
    }
    route::RouteSpec spec;
    spec.host = rc.host;
    spec.methods = rc.methods;
    spec.path_template = rc.path;
    spec.target = static_cast<uint32_t>(snap->routes.size());
    // spec.where stays empty: the table asks for it (from the route) only
    // when it reports an error, so a million routes do not carry it twice.
    specs->push_back(std::move(spec));
    snap->routes.push_back(std::move(r));
  }
}

}  // namespace

Result<std::unique_ptr<Snapshot>> CompileSnapshotOf(const GatewayConfig& gateway,
                                                    const MeshConfig& mesh,
                                                    const std::vector<ServiceInput>& services,
                                                    uint64_t version, Interner* endpoint_ids,
                                                    Interner* route_keys) {
  auto snap = std::make_unique<Snapshot>();
  snap->version = version;
  snap->gateway = gateway;
  snap->mesh = mesh;
  // Zero trust by default (DESIGN §3): with a jwt section every route
  // requires a token unless it says otherwise.
  const std::string default_auth = gateway.jwt ? "required" : "none";

  size_t route_count = 0;
  for (const ServiceInput& in : services) route_count += in.config->routes.size();
  snap->routes.reserve(route_count);
  snap->clusters.reserve(services.size() + 1);
  std::vector<route::RouteSpec> specs;
  specs.reserve(route_count);
  Names defined;
  defined.reserve(services.size());
  for (const ServiceInput& in : services) {
    const ServiceConfig& s = *in.config;
    const std::string where = Where(s.source, s.line);
    if (Result<bool> ok = Define(s, where, &defined); !ok) return ok.error();
    Result<Cluster> cl = MakeCluster(in, mesh, where, endpoint_ids);
    if (!cl) return cl.error();
    const uint32_t cluster_index = static_cast<uint32_t>(snap->clusters.size());
    AddRoutes(s, cl.value(), cluster_index, default_auth, route_keys, snap.get(), &specs);
    snap->clusters.push_back(std::move(cl.value()));
  }
  if (Result<bool> ok = CheckFleetRoutes(gateway, snap->routes); !ok) return ok.error();
  const std::vector<Route>& routes = snap->routes;
  Result<route::RouteTable> table = route::RouteTable::Build(
      std::move(specs), [&routes](const route::RouteSpec& spec) { return routes[spec.target].where; });
  if (!table) return table.error();
  snap->table = std::move(table.value());
  if (gateway.role == "sidecar") {
    Interner scratch;  // a trial compile keeps no ids
    Result<bool> ok = AddSidecarRoutes(gateway, mesh, snap.get(),
                                       endpoint_ids != nullptr ? endpoint_ids : &scratch,
                                       route_keys != nullptr ? route_keys : &scratch);
    if (!ok) return ok.error();
  }
  return snap;
}

Result<bool> CheckServices(const std::vector<ServiceInput>& services) {
  size_t route_count = 0;
  for (const ServiceInput& in : services) route_count += in.config->routes.size();
  std::vector<route::RouteSpec> specs;
  specs.reserve(route_count);
  // Route number → (service, route), for the table's error messages.
  std::vector<std::pair<uint32_t, uint32_t>> origin;
  origin.reserve(route_count);
  Names defined;
  defined.reserve(services.size());
  for (uint32_t i = 0; i < services.size(); ++i) {
    const ServiceConfig& s = *services[i].config;
    if (Result<bool> ok = Define(s, Where(s.source, s.line), &defined); !ok) return ok.error();
    for (uint32_t r = 0; r < s.routes.size(); ++r) {
      route::RouteSpec spec;
      spec.host = s.routes[r].host;
      spec.methods = s.routes[r].methods;
      spec.path_template = s.routes[r].path;
      spec.target = static_cast<uint32_t>(specs.size());
      specs.push_back(std::move(spec));
      origin.emplace_back(i, r);
    }
  }
  Result<route::RouteTable> table = route::RouteTable::Build(
      std::move(specs), [&](const route::RouteSpec& spec) {
        const auto [svc, r] = origin[spec.target];
        const ServiceConfig& s = *services[svc].config;
        return Where(s.source, s.routes[r].line);
      });
  if (!table) return table.error();
  return true;
}

Result<std::unique_ptr<Snapshot>> CompileSnapshot(const GatewayConfig& gateway,
                                                  const MeshConfig& mesh,
                                                  const std::vector<ServiceConfig>& services,
                                                  uint64_t version, Interner* endpoint_ids,
                                                  Interner* route_keys) {
  std::vector<ServiceInput> inputs;
  inputs.reserve(services.size());
  for (const ServiceConfig& s : services) inputs.push_back(ServiceInput{&s, nullptr});
  return CompileSnapshotOf(gateway, mesh, inputs, version, endpoint_ids, route_keys);
}

const Route* Snapshot::EgressRoute(std::string_view service) const {
  const auto it = std::lower_bound(
      egress.begin(), egress.end(), service,
      [](const std::pair<std::string, uint32_t>& e, std::string_view s) { return e.first < s; });
  if (it == egress.end() || it->first != service) return nullptr;
  return &routes[it->second];
}

std::string_view UpstreamProtocolName(UpstreamProtocol p) noexcept {
  switch (p) {
    case UpstreamProtocol::kH2c: return "h2c";
    case UpstreamProtocol::kH2: return "h2";
    case UpstreamProtocol::kHttp1: break;
  }
  return "http1";
}

namespace {

// The members of the "gateway" object of ToJson.
void AppendGatewayJson(std::string* o, const GatewayConfig& gateway) {
  AppendKey(o, "source");
  AppendJsonString(o, gateway.source);
  *o += ",";
  AppendKey(o, "role");
  AppendJsonString(o, gateway.role);
  *o += ",\"cores\":" + std::to_string(gateway.cores) + ",\"listeners\":[";
  for (size_t i = 0; i < gateway.listeners.size(); ++i) {
    if (i > 0) *o += ",";
    *o += "{";
    AppendKey(o, "address");
    AppendJsonString(o, gateway.listeners[i].address);
    *o += std::string(",\"tls\":") + (gateway.listeners[i].tls ? "true" : "false") + "}";
  }
  *o += "],";
  AppendKey(o, "admin");
  AppendJsonString(o, gateway.admin);
  *o += std::string(",\"jwt\":") + (gateway.jwt ? "true" : "false");
  *o += ",\"ring_entries\":" + std::to_string(gateway.ring_entries);
  *o += ",\"buffers\":{\"count\":" + std::to_string(gateway.buffer_count) +
        ",\"size\":" + std::to_string(gateway.buffer_size) + "}";
  *o += ",\"zero_copy_min_bytes\":" + std::to_string(gateway.zero_copy_min_bytes);
  *o += ",\"max_connections_per_core\":" + std::to_string(gateway.max_connections_per_core);
  *o += ",\"upstream_idle_per_core\":" + std::to_string(gateway.upstream_idle_per_core);
  *o += ",\"upstream_pipeline_depth\":" + std::to_string(gateway.upstream_pipeline_depth);
  *o += ",\"max_header_bytes\":" + std::to_string(gateway.max_header_bytes);
  *o += ",\"max_body_bytes\":" + std::to_string(gateway.max_body_bytes);
  *o += ",\"header_timeout_ms\":" + std::to_string(gateway.header_timeout_ms);
  *o += ",\"idle_timeout_ms\":" + std::to_string(gateway.idle_timeout_ms);
  *o += ",\"drain_timeout_ms\":" + std::to_string(gateway.drain_timeout_ms);
  *o += std::string(",\"paths\":{\"encoded_slashes\":") +
        (gateway.keep_encoded_slashes ? "\"keep\"" : "\"refuse\"") +
        ",\"merge_slashes\":" + (gateway.merge_slashes ? "true" : "false") + "}";
  *o += ",\"underscores_in_headers\":\"";
  *o += http::UnderscorePolicyName(gateway.underscores_in_headers);
  *o += "\"";
}

// The members of the "mesh" object of ToJson.
void AppendMeshJson(std::string* o, const MeshConfig& mesh) {
  *o += "\"retries\":" + std::to_string(mesh.retries) +
        ",\"timeout_ms\":" + std::to_string(mesh.timeout_ms) + ",";
  AppendKey(o, "trust_domain");
  AppendJsonString(o, mesh.trust_domain);
  *o += std::string(",\"tracing\":{\"enabled\":") + (mesh.tracing.enabled ? "true" : "false") + ",";
  AppendKey(o, "otlp_endpoint");
  AppendJsonString(o, mesh.tracing.otlp_endpoint);
  char ratio[32];
  std::snprintf(ratio, sizeof ratio, "%.6g", mesh.tracing.sample_ratio);
  *o += std::string(",\"sample_ratio\":") + ratio + ",";
  AppendKey(o, "service_name");
  AppendJsonString(o, mesh.tracing.service_name);
  *o += ",\"export_timeout_ms\":" + std::to_string(mesh.tracing.export_timeout_ms) + "}";
}

// One entry of the "clusters" array of ToJson.
void AppendClusterJson(std::string* o, const Cluster& c) {
  *o += "{";
  AppendKey(o, "name");
  AppendJsonString(o, c.name);
  *o += ",\"retries\":" + std::to_string(c.retries) + ",\"retry_on\":[";
  const std::vector<std::string> retry_on = RetryOnNames(c.retry_on);
  for (size_t i = 0; i < retry_on.size(); ++i) {
    if (i > 0) *o += ",";
    AppendJsonString(o, retry_on[i]);
  }
  *o += "],\"timeout_ms\":" + std::to_string(c.timeout_ms) +
        ",\"per_try_timeout_ms\":" + std::to_string(c.per_try_timeout_ms) +
        ",\"load_balancing\":\"" + (c.least_request ? "least_request" : "round_robin") + "\"" +
        ",\"protocol\":\"" + std::string(UpstreamProtocolName(c.protocol)) + "\"" +
        ",\"health_check\":" +
        (c.health_check ? "\"GET " + c.health_check->path + " every " +
                              std::to_string(c.health_check->interval_ms) + " ms\""
                        : std::string("null")) +
        ",\"breaker\":{\"failures\":" + std::to_string(c.breaker.failures) +
        ",\"open_for_ms\":" + std::to_string(c.breaker.open_for_ms) + "},\"rate_limit\":";
  AppendRateLimit(o, c.rate_limit);
  *o += ",\"endpoints\":[";
  for (size_t j = 0; j < c.endpoints.size(); ++j) {
    if (j > 0) *o += ",";
    *o += "{";
    AppendKey(o, "address");
    AppendJsonString(o, c.endpoints[j].address);
    *o += ",\"id\":" + std::to_string(c.endpoints[j].id) + "}";
  }
  *o += "],\"allow_from\":[";
  for (size_t j = 0; j < c.allow_from.size(); ++j) {
    if (j > 0) *o += ",";
    AppendJsonString(o, c.allow_from[j]);
  }
  *o += "]}";
}

// One entry of the "routes" array of ToJson; `clusters` names its cluster.
void AppendRouteJson(std::string* o, const Route& r, const std::vector<Cluster>& clusters) {
  *o += "{";
  AppendKey(o, "template");
  AppendJsonString(o, r.path_template);
  *o += ",";
  AppendKey(o, "methods");
  AppendJsonString(o, r.methods_text);
  *o += ",";
  AppendKey(o, "host");
  AppendJsonString(o, r.host);
  *o += ",";
  AppendKey(o, "cluster");
  AppendJsonString(o, r.cluster < clusters.size() ? clusters[r.cluster].name : "");
  *o +=
      ",\"key\":" + std::to_string(r.key) + ",\"timeout_ms\":" + std::to_string(r.timeout_ms) + ",";
  AppendKey(o, "auth");
  AppendJsonString(o, r.auth);
  *o += ",";
  AppendKey(o, "rate_limit");
  if (r.rate_limit) {
    AppendJsonString(o, r.rate_limit->text);
  } else {
    *o += "null";
  }
  *o += ",";
  AppendKey(o, "where");
  AppendJsonString(o, r.where);
  *o += "}";
}

}  // namespace

std::string Snapshot::ToJson() const {
  std::string o = "{\"version\":" + std::to_string(version) + ",\"gateway\":{";
  AppendGatewayJson(&o, gateway);
  o += "},\"mesh\":{";
  AppendMeshJson(&o, mesh);
  o += "},\"clusters\":[";
  for (size_t i = 0; i < clusters.size(); ++i) {
    if (i > 0) o += ",";
    AppendClusterJson(&o, clusters[i]);
  }
  o += "],\"routes\":[";
  for (size_t i = 0; i < routes.size(); ++i) {
    if (i > 0) o += ",";
    AppendRouteJson(&o, routes[i], clusters);
  }
  o += "]}";
  return o;
}

}  // namespace hms::config
