// hms-gateway: the data plane (DESIGN §2). This file is the control thread:
// it loads the config, compiles snapshots from the store, starts the cores,
// serves the admin API, watches the store and handles signals. It is never on
// the data path.
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "hms/auth/jwt.h"
#include "hms/common/json_escape.h"
#include "hms/config/config.h"
#include "hms/config/snapshot.h"
#include "hms/control/admin_server.h"
#include "hms/control/self_registration.h"
#include "hms/control/span_exporter.h"
#include "hms/control/store.h"
#include "hms/obs/access_log.h"
#include "hms/obs/exposition.h"
#include "hms/obs/metrics.h"
#include "hms/policy/registry.h"
#include "hms/proxy/engine.h"
#include "src/main/key_material.h"

namespace {

using hms::config::GatewayConfig;
using hms::config::Snapshot;

constexpr const char* kVersion = "0.1.0";

constexpr const char* kUsage =
    "usage: hms-gateway [--config FILE] [--store URI] [--check]\n"
    "\n"
    "Runs the HMS-API data plane (edge gateway or sidecar, as the config says).\n"
    "Without --config it runs on embedded defaults: a listener on 127.0.0.1:8080,\n"
    "the admin API on 127.0.0.1:9901, and the default store.\n"
    "\n"
    "  --config FILE  gateway.yaml to load\n"
    "  --store URI    store to read services from (overrides the config's store)\n"
    "  --check        validate the config (and the services in the store) and exit\n"
    "\n"
    "Signals: SIGHUP reloads the config file and the store; SIGTERM/SIGINT stop\n"
    "accepting, drain in-flight requests (bounded by drain_timeout) and exit 0.\n";

void Log(const char* fmt, auto... args) {
  std::fprintf(stderr, "hms-gateway: ");
  std::fprintf(stderr, fmt, args...);
  std::fputc('\n', stderr);
}

// Holds what the admin API reads while the control thread replaces it.
class State {
 public:
  void SetCurrent(Snapshot* s) {
    std::lock_guard<std::mutex> lock(mu_);
    if (current_ != nullptr) current_->Release();
    current_ = s;
  }
  // Runs f(snapshot) with the current snapshot held (admin thread).
  template <typename F>
  void With(F&& f) {
    std::lock_guard<std::mutex> lock(mu_);
    if (current_ != nullptr) f(*current_);
  }
  std::string ConfigJson() {
    std::lock_guard<std::mutex> lock(mu_);
    return current_ != nullptr ? current_->ToJson() : "{}";
  }
  void SetStoreError(std::string e) {
    std::lock_guard<std::mutex> lock(mu_);
    store_error_ = std::move(e);
  }
  std::string store_error() {
    std::lock_guard<std::mutex> lock(mu_);
    return store_error_;
  }
  // Why what is served is not what the store holds ("" when it is).
  void SetStale(std::string why) {
    std::lock_guard<std::mutex> lock(mu_);
    stale_ = std::move(why);
  }
  std::string stale() {
    std::lock_guard<std::mutex> lock(mu_);
    return stale_;
  }
  ~State() { SetCurrent(nullptr); }

 private:
  std::mutex mu_;
  Snapshot* current_ = nullptr;
  std::string store_error_;
  std::string stale_;
};

struct Gateway {
  std::string config_path;
  std::string store_override;
  GatewayConfig config;
  hms::config::MeshConfig mesh;
  std::unique_ptr<hms::control::Store> store;
  std::vector<hms::control::StoredService> last_listed;  // what the last Compile read
  // Each stored service's last version that loaded, without its store
  // endpoints: served in place of a version that does not load.
  std::map<std::string, hms::config::ServiceConfig> last_good;
  hms::config::Interner endpoint_ids;
  hms::config::Interner route_keys;
  hms::policy::PolicyRegistry policies;  // rate buckets and breakers, by stable name
  hms::main::KeyMaterial keys;           // TLS contexts and JWT keys, remade when their files change
  uint64_t version = 0;
  State state;
  hms::proxy::Engine engine;
  // Sends the cores' spans when mesh-config's tracing exports them (null otherwise).
  std::unique_ptr<hms::control::SpanExporter> spans;
};

hms::Result<GatewayConfig> LoadConfig(const std::string& path) {
  if (path.empty()) return hms::config::DefaultGatewayConfig();
  return hms::config::LoadGatewayConfig(path);
}

// Reads every service from the store. A stored service that no longer
// loads (its text does not parse, or its `service:` is not the name it is
// stored under) keeps its last good version, with a log line and a word in
// /healthz: one bad entry must not take the others down, nor its own
// routes (DESIGN §6). `problems` gets one line per such service.
std::vector<hms::config::ServiceConfig> ReadServices(Gateway& g, std::string* error,
                                                     std::vector<std::string>* problems) {
  std::vector<hms::config::ServiceConfig> services;
  auto listed = g.store->List();
  if (!listed.ok()) {
    *error = listed.error().message;
    return services;
  }
  g.last_listed = *listed;
  std::map<std::string, hms::config::ServiceConfig> good;
  for (const auto& s : *listed) {
    auto parsed = hms::control::LoadStoredService(s);
    const std::string why = parsed.ok() ? "" : parsed.error().message;
    if (!why.empty()) {
      auto last = g.last_good.find(s.name);
      std::string line = "service " + s.name + ": " + why +
                         (last != g.last_good.end() ? "; serving its last good version"
                                                    : "; not served");
      Log("%s", line.c_str());
      problems->push_back(std::move(line));
      if (last == g.last_good.end()) continue;
      parsed = last->second;
    }
    good[s.name] = *parsed;
    services.push_back(hms::control::WithStoredEndpoints(std::move(*parsed), s));
  }
  g.last_good = std::move(good);  // deregistered services are forgotten
  return services;
}

// Loads the JWT keys the gateway config names. Errors name the file.
// Gives the snapshot its process-wide policy state: a route or service that
// survives a reload keeps its bucket and breaker (a changed limit applies at
// once); state of names that disappeared is freed.
void AttachPolicies(Gateway& g, Snapshot* s) {
  hms::core::Instant now = hms::core::Now();
  // Cores change only at a restart: the running count once started.
  const uint32_t cores = g.engine.cores() > 0 ? g.engine.cores() : hms::proxy::CoresFor(g.config);
  for (auto& cl : s->clusters) {
    if (cl.local) continue;  // a sidecar's own service: its callers' breakers guard it
    hms::policy::BreakerParams p;
    p.failures = cl.breaker.failures;
    p.open_for_ns = hms::core::Millis(cl.breaker.open_for_ms);
    if (cl.breaker.failures > 0) cl.breaker_state = g.policies.GetBreaker(cl.name, p);
    for (auto& ep : cl.endpoints) {
      ep.health = g.policies.GetEndpointHealth(cl.name + "|" + ep.address, hms::policy::OutlierParams{});
    }
    if (cl.retries > 0) {
      cl.retry_budget = g.policies.GetRetryBudget(cl.name, cores, hms::policy::RetryBudgetParams{});
    }
  }
  for (auto& r : s->routes) {
    if (!r.rate_limit || r.rate_limit->rate_per_sec_x1000 == 0) continue;
    auto limit = hms::policy::Limit::PerSecondX1000(r.rate_limit->rate_per_sec_x1000,
                                                    std::max<uint32_t>(1, r.rate_limit->burst));
    // Keyed limits (per: client_ip, header:NAME) hold at most 4096 keys per
    // route, least recently used evicted.
    uint32_t keys = r.rate_limit->per.empty() ? 0 : 4096;
    r.limiter = g.policies.RateLimit(g.route_keys.Name(r.key), limit, keys, now);
  }
  g.policies.Sweep();
}

// Compiles a snapshot from the config and the store; null (logged) on error,
// in which case the last good snapshot stays.
Snapshot* Compile(Gateway& g) {
  std::string error;
  std::vector<std::string> problems;
  auto services = ReadServices(g, &error, &problems);
  if (!error.empty()) {
    Log("store %s unreadable, keeping the last good config: %s", g.store->Uri().c_str(),
        error.c_str());
    g.state.SetStoreError(error);
    return nullptr;
  }
  g.state.SetStoreError("");
  auto snap = hms::config::CompileSnapshot(g.config, g.mesh, services, g.version + 1,
                                           &g.endpoint_ids, &g.route_keys);
  if (!snap.ok()) {
    Log("config not applied, keeping the last good one: %s", snap.error().message.c_str());
    g.state.SetStale(snap.error().message);
    return nullptr;
  }
  if (auto k = g.keys.Attach(g.config, snap->get()); !k.ok()) {
    Log("config not applied, keeping the last good one: %s", k.error().message.c_str());
    g.state.SetStale(k.error().message);
    return nullptr;
  }
  std::string stale;
  for (const std::string& p : problems) stale += (stale.empty() ? "" : "; ") + p;
  g.state.SetStale(stale);
  ++g.version;
  Snapshot* s = snap->release();
  AttachPolicies(g, s);
  return s;
}

void Publish(Gateway& g, Snapshot* s) {
  g.engine.Publish(s);  // one reference per core
  g.state.SetCurrent(s);  // and the control thread's own
  Log("snapshot %llu published: %zu services, %zu routes",
      static_cast<unsigned long long>(s->version), s->clusters.size(), s->routes.size());
}

std::string RenderMetrics(Gateway& g) {
  hms::obs::CoreTotals t = hms::obs::Sum(g.engine.all_metrics());
  hms::obs::Exposition e;
  // Route keys read "service|METHODS|host|template"; requests that matched
  // no route are labelled "none".
  auto names = [&g](uint32_t route_key) -> std::pair<std::string, std::string> {
    if (route_key == 0xffffffffu) return {"none", "none"};
    std::string key = g.route_keys.Name(route_key);
    size_t b = key.rfind('|');
    return {key.substr(0, key.find('|')), b == std::string::npos ? key : key.substr(b + 1)};
  };
  e.Family("hms_requests_total", "counter", "Requests answered, by service, route and status code.");
  for (const auto& rc : t.requests) {
    auto [service, route] = names(rc.route_key);
    std::string code = std::to_string(rc.status);
    e.Sample({{"service", service}, {"route", route}, {"code", code}}, rc.count);
  }
  auto histograms = [&](const char* name, const char* help,
                        const std::vector<hms::obs::RequestCount>& rows) {
    e.Family(name, "histogram", help);
    for (const hms::obs::DurationHistogram& h : hms::obs::Histograms(rows)) {
      auto [service, route] = names(h.route_key);
      for (uint16_t b = 0; b <= hms::obs::kDurationBuckets; ++b) {
        std::string le = hms::obs::DurationBucketLabel(b);
        e.Sample("_bucket", {{"service", service}, {"route", route}, {"le", le}}, h.cumulative[b]);
      }
      e.Sample("_sum", {{"service", service}, {"route", route}}, h.sum_us / 1e6);
      e.Sample("_count", {{"service", service}, {"route", route}}, h.count());
    }
  };
  histograms("hms_request_duration_seconds",
             "Gateway-side time from a request's head to its answer, by service and route.",
             t.durations);
  histograms(
      "hms_upstream_response_duration_seconds",
      "Upstream-side time of each attempt, from its request queued on an upstream connection "
      "(connect included) to the response head, by service and route; retries count apart.",
      t.upstream_durations);
  auto bytes_family = [&](const char* name, const char* help, uint16_t slot) {
    e.Family(name, "counter", help);
    for (const auto& bc : t.route_bytes) {
      if (bc.status != slot) continue;
      auto [service, route] = names(bc.route_key);
      e.Sample({{"service", service}, {"route", route}}, bc.count);
    }
  };
  bytes_family(
      "hms_request_bytes_total",
      "Request bytes (head and body as received) of answered requests, by service and route.",
      hms::obs::kBytesRequest);
  bytes_family("hms_response_bytes_total",
               "Response bytes (head and body as sent) of answered requests, by service and route.",
               hms::obs::kBytesResponse);
  auto policy_family = [&](const char* name, const char* help, uint16_t slot) {
    e.Family(name, "counter", help);
    for (const auto& pc : t.policy) {
      if (pc.status != slot) continue;
      auto [service, route] = names(pc.route_key);
      e.Sample({{"service", service}, {"route", route}}, pc.count);
    }
  };
  policy_family("hms_rate_limit_admitted_total", "Requests a rate-limited route admitted.",
                hms::obs::kPolicyAdmitted);
  policy_family("hms_rate_limit_limited_total", "Requests a rate-limited route refused with 429.",
                hms::obs::kPolicyLimited);
  policy_family("hms_retries_total", "Retry attempts made, by the route of the request.",
                hms::obs::kPolicyRetried);
  policy_family("hms_retry_budget_exhausted_total",
                "Retries not made because the service's retry budget was spent.",
                hms::obs::kPolicyBudgetRefused);
  e.Family("hms_jwt_rejections_total", "counter",
           "Requests refused by JWT validation (401, or 403 insufficient_scope), by service, route "
           "and reason.");
  for (const auto& pc : t.policy) {
    if (pc.status < hms::obs::kPolicyJwtRejected ||
        pc.status >= hms::obs::kPolicyJwtRejected + hms::obs::kJwtReasonSlots) {
      continue;
    }
    auto [service, route] = names(pc.route_key);
    std::string reason(hms::auth::ReasonToken(
        static_cast<hms::auth::JwtReason>(pc.status - hms::obs::kPolicyJwtRejected)));
    e.Sample({{"service", service}, {"route", route}, {"reason", reason}}, pc.count);
  }
  e.Family("hms_requests_unrecorded_total", "counter",
           "Requests whose per-route counter found no room in a core's table.");
  e.Sample({}, t.requests_overflow);
  auto gauge = [&e](const char* name, const char* help, uint64_t v) {
    e.Family(name, "gauge", help);
    e.Sample({}, v);
  };
  auto counter = [&e](const char* name, const char* help, uint64_t v) {
    e.Family(name, "counter", help);
    e.Sample({}, v);
  };
  counter("hms_connections_accepted_total", "Downstream connections accepted.", t.connections_accepted);
  gauge("hms_connections_active", "Downstream connections open.", t.connections_active);
  counter("hms_connections_refused_total", "Downstream connections refused over max_connections_per_core.",
          t.connections_refused);
  counter("hms_upstream_connect_errors_total", "Upstream connections that failed to open.",
          t.upstream_connect_errors);
  counter("hms_upstream_connections_total", "Upstream connections opened.", t.upstream_connections_new);
  counter("hms_upstream_reused_total", "Requests sent on a pooled upstream connection.",
          t.upstream_connections_reused);
  gauge("hms_upstream_idle_connections", "Pooled idle upstream connections.", t.upstream_idle);
  counter("hms_buffer_ring_exhausted_total", "Receives that found the provided-buffer ring empty.",
          t.buffer_ring_exhausted);
  counter("hms_upstream_pipelined_total",
          "Requests sent pipelined behind another on one upstream connection.", t.upstream_pipelined);
  counter("hms_zero_copy_sends_total", "Sends that went out as SEND_ZC (zero_copy_min_bytes).",
          t.zero_copy_sends);
  counter("hms_core_heap_allocations_total", "operator new calls on core threads.", t.heap_allocations);
  counter("hms_health_checks_total", "Active health checks made.", t.health_checks);
  counter("hms_access_log_lines_total", "Access-log lines written.", t.access_log_lines);
  counter("hms_access_log_dropped_total", "Access-log lines dropped: a core's ring was full.",
          t.access_log_dropped);
  counter("hms_health_checks_failed_total", "Active health checks that failed.", t.health_checks_failed);
  counter("hms_spans_recorded_total", "Sampled spans the cores handed to the span exporter.",
          t.spans_recorded);
  counter("hms_spans_exported_total", "Spans the OTLP collector accepted.",
          g.spans ? g.spans->exported() : 0);
  e.Family("hms_spans_dropped_total", "counter",
           "Spans dropped: a core's span ring was full (ring_full), or their export failed or "
           "came while the exporter waited after a failure (export_failed).");
  e.Sample({{"reason", "ring_full"}}, t.spans_dropped);
  e.Sample({{"reason", "export_failed"}}, g.spans ? g.spans->dropped() : 0);
  counter("hms_span_export_failures_total",
          "OTLP export requests that failed (each drops its spans).",
          g.spans ? g.spans->failed_requests() : 0);
  counter("hms_downstream_received_bytes_total", "Bytes received from clients.", t.bytes_in);
  counter("hms_downstream_sent_bytes_total", "Bytes sent to clients.", t.bytes_out);
  e.Family("hms_tls_handshakes_total", "counter",
           "TLS handshakes with clients, by result (resumed ones are also ok).");
  e.Sample({{"result", "ok"}}, t.tls_handshakes);
  e.Sample({{"result", "resumed"}}, t.tls_resumed);
  e.Sample({{"result", "failed"}}, t.tls_failed);
  e.Sample({{"result", "plain_http"}}, t.tls_plain_http);
  e.Family("hms_upstream_tls_handshakes_total", "counter",
           "mTLS handshakes with upstream sidecars, by result (resumed ones are also ok).");
  e.Sample({{"result", "ok"}}, t.upstream_tls_handshakes);
  e.Sample({{"result", "resumed"}}, t.upstream_tls_resumed);
  e.Sample({{"result", "failed"}}, t.upstream_tls_failed);
  counter("hms_identity_refused_total", "mTLS callers refused: identity not in allow_from.",
          t.identity_refused);
  e.Family("hms_headers_dropped_total", "counter",
           "Request fields not forwarded for their names, by reason: a '_' in the name "
           "(underscores_in_headers: drop).");
  e.Sample({{"reason", "underscore"}}, t.headers_dropped_underscore);
  // Policy state is process-wide: read once from the snapshot's shared objects.
  hms::core::Instant now = hms::core::Now();
  std::vector<std::pair<std::string, hms::policy::BreakerStatus>> breakers;
  std::vector<std::tuple<std::string, std::string, uint32_t>> tokens;
  std::vector<std::tuple<std::string, std::string, hms::core::Instant, uint64_t, bool>> endpoints;
  g.state.With([&](const Snapshot& s) {
    for (const auto& cl : s.clusters) {
      if (cl.breaker_state) breakers.emplace_back(cl.name, cl.breaker_state->Status(now));
      for (const auto& ep : cl.endpoints) {
        if (ep.health) {
          endpoints.emplace_back(cl.name, ep.address, ep.health->ejected_until(),
                                 ep.health->ejections_total(), ep.health->check_failing());
        }
      }
    }
    for (const auto& r : s.routes)
      if (r.limiter && !r.limiter->keyed()) {
        tokens.emplace_back(s.clusters[r.cluster].name, r.path_template, r.limiter->Available(now));
      }
  });
  e.Family("hms_breaker_state", "gauge", "Circuit breaker per service: 0 closed, 1 open, 2 half-open.");
  for (const auto& [name, st] : breakers) e.Sample({{"service", name}}, static_cast<int>(st.state));
  e.Family("hms_breaker_next_probe_seconds", "gauge",
           "Seconds until an open breaker lets its probe through (0 when not open).");
  for (const auto& [name, st] : breakers) e.Sample({{"service", name}}, st.next_probe_in_ns / 1e9);
  e.Family("hms_breaker_opened_total", "counter", "Times each service's breaker opened.");
  for (const auto& [name, st] : breakers) e.Sample({{"service", name}}, st.opened_total);
  e.Family("hms_breaker_transitions_total", "counter",
           "Circuit breaker state changes per service, by the state entered.");
  for (const auto& [name, st] : breakers) {
    e.Sample({{"service", name}, {"to", "open"}}, st.opened_total);
    e.Sample({{"service", name}, {"to", "half_open"}}, st.half_opened_total);
    e.Sample({{"service", name}, {"to", "closed"}}, st.closed_total);
  }
  e.Family("hms_endpoint_ejected", "gauge",
           "1 while an endpoint is ejected for consecutive failures (outlier ejection).");
  for (const auto& [service, address, until, total, failing] : endpoints) {
    e.Sample({{"service", service}, {"endpoint", address}}, until > now ? 1 : 0);
  }
  e.Family("hms_endpoint_healthy", "gauge",
           "0 while an endpoint fails its active health checks (services with health:), else 1.");
  for (const auto& [service, address, until, total, failing] : endpoints) {
    e.Sample({{"service", service}, {"endpoint", address}}, failing ? 0 : 1);
  }
  e.Family("hms_endpoint_ejections_total", "counter", "Times each endpoint was ejected.");
  for (const auto& [service, address, until, total, failing] : endpoints) {
    e.Sample({{"service", service}, {"endpoint", address}}, total);
  }
  e.Family("hms_rate_limit_available_tokens", "gauge",
           "Whole tokens left in each rate-limited route's bucket (unkeyed limits).");
  for (const auto& [service, route, left] : tokens) {
    e.Sample({{"service", service}, {"route", route}}, left);
  }
  gauge("hms_snapshot_live", "Config snapshots alive in the process.",
        static_cast<uint64_t>(hms::config::LiveSnapshots()));
  e.Family("hms_core_snapshot_version", "gauge", "Config snapshot version each core runs.");
  auto all = g.engine.all_metrics();
  for (size_t i = 0; i < all.size(); ++i) {
    std::string core = std::to_string(i);
    e.Sample({{"core", core}}, all[i]->snapshot_version.Get());
  }
  e.Family("hms_core_requests_total", "counter",
           "Requests answered by each core (how evenly the kernel spreads connections).");
  for (size_t i = 0; i < all.size(); ++i) {
    uint64_t requests = 0;
    all[i]->requests.ForEach([&](uint32_t, uint16_t, uint64_t n) { requests += n; });
    e.Sample({{"core", std::to_string(i)}}, requests);
  }
  return e.Finish();
}

using hms::JsonString;

// The live summary `hms-api status` prints: per core, per route, breakers and
// rate limits. Counts only: the CLI takes two samples for rates, dividing by
// the difference of their "clock_ms" (this process's monotonic clock when the
// counts were read), so the gateway keeps no rate state.
std::string StatusJson(Gateway& g) {
  hms::core::Instant now = hms::core::Now();
  auto all = g.engine.all_metrics();
  // "config" as in /healthz: "ok", or "stale: WHY" (hms-api status prints it).
  const std::string stale = g.state.stale();
  std::string o = "{\"clock_ms\":" + std::to_string(now / 1'000'000) +
                  ",\"config\":" + JsonString(stale.empty() ? "ok" : "stale: " + stale) +
                  ",\"cores\":[";
  for (size_t i = 0; i < all.size(); ++i) {
    uint64_t requests = 0;
    all[i]->requests.ForEach([&](uint32_t, uint16_t, uint64_t n) { requests += n; });
    o += (i ? "," : "") + std::string("{\"core\":") + std::to_string(i) +
         ",\"connections\":" + std::to_string(all[i]->connections_active.Get()) +
         ",\"requests\":" + std::to_string(requests) +
         ",\"snapshot\":" + std::to_string(all[i]->snapshot_version.Get()) + "}";
  }
  hms::obs::CoreTotals t = hms::obs::Sum(all);
  o += "],\"routes\":[";
  g.state.With([&](const Snapshot& s) {
    bool first = true;
    for (const auto& r : s.routes) {
      uint64_t requests = 0, errors = 0;
      for (const auto& rc : t.requests) {
        if (rc.route_key != r.key) continue;
        requests += rc.count;
        if (rc.status >= 500) errors += rc.count;
      }
      o += (first ? "" : ",") + std::string("{\"service\":") + JsonString(s.clusters[r.cluster].name) +
           ",\"route\":" + JsonString(r.methods_text + " " + r.path_template) +
           ",\"requests\":" + std::to_string(requests) + ",\"errors_5xx\":" + std::to_string(errors);
      if (r.limiter) {
        o += ",\"rate_limit\":" + JsonString(r.rate_limit->text);
        if (!r.limiter->keyed()) o += ",\"tokens_left\":" + std::to_string(r.limiter->Available(now));
      }
      o += "}";
      first = false;
    }
    o += "],\"breakers\":[";
    first = true;
    for (const auto& cl : s.clusters) {
      if (!cl.breaker_state) continue;
      auto st = cl.breaker_state->Status(now);
      static const char* kStates[] = {"closed", "open", "half-open"};
      o += (first ? "" : ",") + std::string("{\"service\":") + JsonString(cl.name) +
           ",\"state\":\"" + kStates[static_cast<int>(st.state)] +
           "\",\"consecutive_failures\":" + std::to_string(st.consecutive_failures) +
           ",\"next_probe_s\":" + std::to_string(st.next_probe_in_ns / 1'000'000'000ull) + "}";
      first = false;
    }
    o += "],\"snapshot\":" + std::to_string(s.version);
  });
  return o + "}\n";
}

int Main(int argc, char** argv) {
  Gateway g;
  bool check = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "--config" || a == "-c") && i + 1 < argc) {
      g.config_path = argv[++i];
    } else if (a == "--store" && i + 1 < argc) {
      g.store_override = argv[++i];
    } else if (a == "--check") {
      check = true;
    } else if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--version") {
      std::printf("hms-gateway %s\n", kVersion);
      return 0;
    } else {
      std::fprintf(stderr, "hms-gateway: unknown argument '%s'\n%s", a.c_str(), kUsage);
      return 2;
    }
  }
  auto loaded = LoadConfig(g.config_path);
  if (!loaded.ok()) {
    std::fprintf(stderr, "%s\n", loaded.error().message.c_str());
    return 1;
  }
  g.config = std::move(*loaded);
  if (auto v = hms::config::ValidateGatewayConfig(g.config); !v.ok()) {
    std::fprintf(stderr, "%s\n", v.error().message.c_str());
    return 1;
  }
  // What start-up needs of this machine besides the ports, checked the same
  // way for --check and for a start (one function), so a config that --check
  // passes does not fail at start.
  if (auto e = hms::config::CheckGatewayEnvironment(g.config); !e.ok()) {
    std::fprintf(stderr, "%s\n", e.error().message.c_str());
    return 1;
  }
  if (!g.config.mesh.empty()) {
    auto mesh = hms::config::LoadMeshConfig(g.config.mesh);
    if (!mesh.ok()) {
      // The mesh file's own errors carry its file:line; say which key named it.
      std::fprintf(stderr, "%s: mesh: %s\n", hms::config::WhereIs(g.config, "mesh").c_str(),
                   mesh.error().message.c_str());
      return 1;
    }
    g.mesh = *mesh;
  }
  std::string store_uri = !g.store_override.empty() ? g.store_override
                          : !g.config.store.empty() ? g.config.store
                                                    : hms::control::DefaultStoreUri();
  // Signals are read from a signalfd by this thread; every thread started
  // from here on (the store's watch, the cores, the admin API) inherits the
  // mask, so none of them takes a signal meant for the control loop.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  signal(SIGPIPE, SIG_IGN);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

  auto store = hms::control::OpenStore(store_uri);
  if (!store.ok()) {
    std::fprintf(stderr, "hms-gateway: %s\n", store.error().message.c_str());
    return 1;
  }
  g.store = std::move(*store);
  g.keys.set_log([](const std::string& line) { Log("%s", line.c_str()); });
  // Watch before the first read: a change between the two is not missed.
  if (!check) g.store->WatchFd();
  {
    // Certificates and keys must load before anything is served: a TLS
    // listener never falls back to the clear.
    Snapshot probe;
    if (auto k = g.keys.Attach(g.config, &probe); !k.ok()) {
      std::fprintf(stderr, "hms-gateway: %s\n", k.error().message.c_str());
      return 1;
    }
  }
  Snapshot* first = Compile(g);
  if (first == nullptr) {
    if (check) return 1;
    // Serve nothing rather than nothing at all: an empty table answers 404s
    // until the store holds valid services.
    auto empty = hms::config::CompileSnapshot(g.config, g.mesh, {}, ++g.version, &g.endpoint_ids,
                                              &g.route_keys);
    first = empty->release();
    (void)g.keys.Attach(g.config, first);  // made a moment ago from the same files
    AttachPolicies(g, first);
  }
  if (check) {
    std::printf("%s: ok (%zu services, %zu routes)\n",
                g.config_path.empty() ? "<embedded defaults>" : g.config_path.c_str(),
                first->clusters.size(), first->routes.size());
    first->Release();
    return 0;
  }

  g.state.SetCurrent(first);  // released by ~State on every return from here

  // The access log: opened before the cores start, so a bad path stops here.
  hms::obs::AccessLogFile access_log;
  if (g.config.access_log) {
    if (auto o = access_log.Open(g.config.access_log->path); !o.ok()) {
      Log("%s", o.error().message.c_str());
      return 1;
    }
  }
  // Every address is claimed before any thread starts (docs/engine.md, "One
  // gateway per address"): a listener or admin address another process
  // listens on ends the start here, exit 1, naming the address. From Start
  // on, a failure returns through ~Gateway, whose engine stops and joins the
  // cores before the process exits.
  if (auto b = g.engine.Bind(g.config); !b.ok()) {
    Log("%s", b.error().message.c_str());
    return 1;
  }
  hms::control::AdminServer admin;
  const bool admin_on = !g.config.admin.empty() && g.config.admin != "off";
  if (admin_on) {
    if (auto a = admin.Listen(g.config.admin); !a.ok()) {
      Log("%s", a.error().message.c_str());
      return 1;
    }
  }
  if (auto s = g.engine.Start(g.config, first); !s.ok()) {
    Log("%s", s.error().message.c_str());
    return 1;
  }
  if (g.mesh.tracing.exports()) {
    // Started after the cores, whose rings it drains; stopped after them, so
    // the spans of the drain go out too.
    const hms::config::TracingConfig& t = g.mesh.tracing;
    hms::control::SpanExportOptions o;
    o.host = t.otlp_host;
    o.port = t.otlp_port;
    o.path = t.otlp_path;
    o.timeout_ms = static_cast<int>(t.export_timeout_ms);
    o.resource.service_name = !t.service_name.empty()      ? t.service_name
                              : g.config.role == "sidecar" ? g.config.service
                                                           : "hms-gateway";
    o.resource.service_version = kVersion;
    o.resource.role = g.config.role;
    g.spans = std::make_unique<hms::control::SpanExporter>(
        o, g.engine.span_rings(), [](const std::string& line) { Log("%s", line.c_str()); });
    if (auto s = g.spans->Start(); !s.ok()) {
      Log("%s", s.error().message.c_str());
      return 1;
    }
    Log("tracing: exporting spans of %s to %s (sample_ratio %g)", o.resource.service_name.c_str(),
        t.otlp_endpoint.c_str(), t.sample_ratio);
  }

  if (admin_on) {
    admin.Handle("/healthz", [&g](const hms::control::AdminRequest&) {
      // The gateway is healthy while it serves; a lost store is reported, not
      // fatal: the last good config keeps serving (DESIGN §2).
      hms::control::AdminResponse r;
      std::string err = g.state.store_error();
      if (err.empty() && !g.store->healthy()) err = g.store->last_error();
      std::string store = err.empty() ? "\"ok\"" : "\"unreachable, serving the last good config\"";
      // "config": "ok", or "stale: WHY" while the store holds something
      // that does not load (the last good version serves); "status" stays
      // "ok" so probes keep routing to a gateway that serves.
      std::string stale = g.state.stale();
      r.body = "{\"status\":\"ok\",\"cores\":" + std::to_string(g.engine.cores()) +
               ",\"store\":" + store + ",\"store_uri\":" + JsonString(g.store->Uri()) +
               ",\"config\":" + JsonString(stale.empty() ? "ok" : "stale: " + stale);
      if (!err.empty()) r.body += ",\"store_error\":" + JsonString(err);
      r.body += "}\n";
      return r;
    });
    admin.Handle("/metrics", [&g](const hms::control::AdminRequest&) {
      hms::control::AdminResponse r;
      r.content_type = std::string(hms::obs::Exposition::kContentType);
      r.body = RenderMetrics(g);
      return r;
    });
    admin.Handle("/status", [&g](const hms::control::AdminRequest&) {
      hms::control::AdminResponse r;
      r.body = StatusJson(g);
      return r;
    });
    admin.Handle("/config", [&g](const hms::control::AdminRequest&) {
      // The snapshot as compiled, plus the version each core runs now: after
      // a reload every core reaches the top-level "version".
      hms::control::AdminResponse r;
      std::string json = g.state.ConfigJson();
      if (json.size() > 2) {
        json.pop_back();
        json += ",\"cores\":[";
        auto all = g.engine.all_metrics();
        for (size_t i = 0; i < all.size(); ++i) {
          json += (i ? "," : "") + std::string("{\"core\":") + std::to_string(i) +
                  ",\"version\":" + std::to_string(all[i]->snapshot_version.Get()) + "}";
        }
        json += "]}";
      }
      r.body = std::move(json);
      return r;
    });
    if (auto a = admin.Start(); !a.ok()) {
      Log("%s", a.error().message.c_str());
      return 1;
    }
  }
  // A sidecar's egress listener is bound last.
  std::vector<std::string> bound = g.engine.bound_addresses();
  std::string egress;
  if (g.config.role == "sidecar" && !g.config.egress.empty()) {
    egress = bound.back();
    bound.pop_back();
  }
  for (const auto& addr : bound) std::printf("hms-gateway: listening %s\n", addr.c_str());
  if (!egress.empty()) std::printf("hms-gateway: egress %s\n", egress.c_str());
  // A sidecar registers its inbound address as an endpoint of its service.
  std::unique_ptr<hms::control::SelfRegistration> registration;
  if (g.config.role == "sidecar") {
    // Callers learn from the address that this sidecar takes only mTLS.
    const auto& inbound = g.config.listeners.front();
    const bool inbound_mtls = inbound.tls ? inbound.tls->client_auth : g.config.mtls.has_value();
    registration = std::make_unique<hms::control::SelfRegistration>(
        g.store.get(), g.config.service,
        std::string(inbound_mtls ? hms::config::kMtlsScheme : "") +
            (g.config.advertise.empty() ? bound.front() : g.config.advertise),
        g.config.registration_ttl_s, [](const std::string& line) { Log("%s", line.c_str()); });
    registration->Tick(std::chrono::steady_clock::now());
    std::printf("hms-gateway: sidecar of %s on 127.0.0.1:%u, registered as %s%s\n",
                g.config.service.c_str(), g.config.local_port, registration->address().c_str(),
                registration->registered() ? "" : " (pending)");
  }
  if (admin_on) {
    std::string host = g.config.admin.substr(0, g.config.admin.rfind(':'));
    std::printf("hms-gateway: admin %s:%u\n", host.c_str(), admin.port());
  }
  std::printf("hms-gateway: ready cores=%u snapshot=%llu services=%zu store=%s\n", g.engine.cores(),
              static_cast<unsigned long long>(first->version), first->clusters.size(),
              g.store->Uri().c_str());
  std::fflush(stdout);

  // The control loop: signals and store changes. Store events are coalesced:
  // the reload runs kCoalesceMs after the first event of a burst (later events
  // of the burst do not push it back, so a stream of changes still reloads
  // every kCoalesceMs).
  constexpr int kCoalesceMs = 20;
  bool reload_pending = false;
  auto reload_at = std::chrono::steady_clock::now();
  bool store_healthy = true;
  auto next_key_check = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  for (;;) {
    pollfd fds[2] = {{sfd, POLLIN, 0}, {g.store->WatchFd(), POLLIN, 0}};
    // At least once a second: notice the store coming and going; every 20 ms
    // with an access log, whose lines wait in the cores' rings (at 50k
    // requests/s a core's 1 MiB ring holds about 75 ms of lines).
    int wait_ms = g.config.access_log ? 20 : 1000;
    if (reload_pending) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          reload_at - std::chrono::steady_clock::now());
      wait_ms = std::max<int>(0, static_cast<int>(left.count()));
    }
    if (registration) {
      wait_ms = std::min<int>(
          wait_ms, static_cast<int>(registration->Tick(std::chrono::steady_clock::now())));
    }
    // A leased endpoint the store does not announce the expiry of (the file
    // store): look again when the first one is due.
    auto expiry_check = std::chrono::steady_clock::time_point::max();
    if (int64_t ms = g.store->NextExpiryMs(); ms >= 0) {
      expiry_check = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms + 1);
      wait_ms = std::min<int>(wait_ms, static_cast<int>(ms + 1));
    }
    int n = poll(fds, fds[1].fd >= 0 ? 2 : 1, wait_ms);
    if (n < 0 && errno != EINTR) break;
    if (g.config.access_log) access_log.Flush(g.engine.access_logs());
    if (g.store->healthy() != store_healthy) {
      store_healthy = !store_healthy;
      if (store_healthy) {
        Log("store %s reachable again", g.store->Uri().c_str());
      } else {
        Log("store unreachable, serving the last good config: %s", g.store->last_error().c_str());
      }
    }
    // A store whose directory was removed lost its watches; they come back
    // with the directory (and the store is read again then).
    if (g.store->Rewatch() && !reload_pending) {
      Log("store %s is back: watching it again", g.store->Uri().c_str());
      reload_pending = true;
      reload_at = std::chrono::steady_clock::now();
    }
    if (fds[1].fd >= 0 && (fds[1].revents & POLLIN) && g.store->DrainWatch()) {
      if (!reload_pending) {
        reload_pending = true;
        reload_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(kCoalesceMs);
      }
    }
    if (!reload_pending && std::chrono::steady_clock::now() >= expiry_check) {
      auto listed = g.store->List();
      if (listed.ok() && *listed != g.last_listed) {
        reload_pending = true;
        reload_at = std::chrono::steady_clock::now();
      }
    }
    // Certificates, keys and JWKS files are looked at once a second; a
    // change makes a new snapshot (a file that fails to load keeps the old
    // one, and is tried again at its next change).
    if (auto now = std::chrono::steady_clock::now(); now >= next_key_check) {
      next_key_check = now + std::chrono::seconds(1);
      const int64_t now_s =
          std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
      if (g.keys.Changed()) {
        Log("certificate, key or JWKS file changed: reloading");
        if (Snapshot* s = Compile(g)) Publish(g, s);
      } else if (g.keys.WantsKeyReload(now_s)) {
        Log("a token named a kid the keys lack: reading the key file again");
        if (Snapshot* s = Compile(g)) Publish(g, s);
      }
    }
    if (reload_pending && std::chrono::steady_clock::now() >= reload_at) {
      reload_pending = false;
      if (Snapshot* s = Compile(g)) Publish(g, s);
    }
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo si;
      bool stop = false;
      while (read(sfd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGHUP) {
          Log("SIGHUP: reloading %s and the store",
              g.config_path.empty() ? "<embedded defaults>" : g.config_path.c_str());
          auto c = LoadConfig(g.config_path);
          if (!c.ok()) {
            Log("config not reloaded, keeping the last good one: %s", c.error().message.c_str());
          } else if (auto v = hms::config::ValidateGatewayConfig(*c); !v.ok()) {
            Log("config not reloaded, keeping the last good one: %s", v.error().message.c_str());
          } else {
            // Listeners, cores and per-core tuning take effect at restart;
            // routes, services and policies now.
            g.config = std::move(*c);
          }
          // Log rotation: the renamed file is let go, the path opened anew.
          if (g.config.access_log) {
            access_log.Flush(g.engine.access_logs());
            if (auto o = access_log.Open(g.config.access_log->path); !o.ok()) {
              Log("%s; still writing to the old file", o.error().message.c_str());
            }
          }
          if (Snapshot* s = Compile(g)) Publish(g, s);
        } else {
          stop = true;
        }
      }
      if (stop) break;
    }
  }
  // Out of the store first, so callers stop choosing this sidecar while it drains.
  if (registration) registration->Withdraw();
  Log("draining (up to %u ms)", g.config.drain_timeout_ms);
  g.engine.Drain();
  g.engine.Join();
  if (g.config.access_log) access_log.Flush(g.engine.access_logs());  // what the drain answered
  if (g.spans) g.spans->Stop();
  if (admin_on) admin.Stop();
  Log("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Main(argc, argv); }
