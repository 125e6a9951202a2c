// hms-gateway: the data plane (DESIGN §2). This file is the control thread's
// entry point: it loads the config, compiles snapshots from the store, starts
// the cores and the admin API, then hands the thread to the control loop
// (control/reloader.h), which watches the store, the key files and the
// signals. It is never on the data path.
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "hms/auth/jwt.h"
#include "hms/common/json_escape.h"
#include "hms/config/config.h"
#include "hms/config/snapshot.h"
#include "hms/control/admin_server.h"
#include "hms/control/fleet.h"
#include "hms/control/handover.h"
#include "hms/control/reloader.h"
#include "hms/control/self_registration.h"
#include "hms/control/served_config.h"
#include "hms/control/service_cache.h"
#include "hms/control/span_exporter.h"
#include "hms/control/store.h"
#include "hms/core/clock.h"
#include "hms/obs/access_log.h"
#include "hms/obs/exposition.h"
#include "hms/obs/metrics.h"
#include "hms/obs/metrics_page.h"
#include "hms/obs/ui_data.h"
#include "hms/obs/ui_page.h"
#include "hms/policy/binding.h"
#include "hms/policy/registry.h"
#include "hms/proxy/engine.h"
#include "src/main/key_material.h"

namespace {

using hms::config::GatewayConfig;
using hms::config::Snapshot;

constexpr const char* kVersion = "0.1.0";

constexpr const char* kUsage =
    "usage: hms-gateway [--config FILE] [--store URI] [--check] [--upgrade]\n"
    "\n"
    "Runs the HMS-API data plane (edge gateway or sidecar, as the config says).\n"
    "Without --config it runs on embedded defaults: a listener on 127.0.0.1:8080,\n"
    "the admin API on 127.0.0.1:9901, and the default store.\n"
    "\n"
    "  --config FILE  gateway.yaml to load\n"
    "  --store URI    store to read services from, file:DIR or etcd://HOST:PORT\n"
    "                 (overrides the config's store)\n"
    "  --check        validate the config (and the services in the store) and exit\n"
    "  --upgrade      take over the listening sockets of the running gateway of the\n"
    "                same config file (a new binary, no connection dropped); the\n"
    "                old process drains and exits 0 once this one serves\n"
    "\n"
    "Signals: SIGHUP reloads the config file and the store; SIGTERM/SIGINT stop\n"
    "accepting, drain in-flight requests (bounded by drain_timeout) and exit 0.\n";

void Log(const char* fmt, auto... args) {
  std::fprintf(stderr, "hms-gateway: ");
  std::fprintf(stderr, fmt, args...);
  std::fputc('\n', stderr);
}

void LogLine(const std::string& line) { Log("%s", line.c_str()); }

struct Gateway {
  std::string config_path;
  std::string store_override;
  bool check = false;  // --check: validate and exit
  bool upgrade = false;  // --upgrade: take the running gateway's sockets over
  hms::control::ReceivedSockets received;  // --upgrade: what the old process handed over
  GatewayConfig config;
  hms::config::MeshConfig mesh;
  std::unique_ptr<hms::control::Store> store;
  std::vector<hms::control::StoredService> last_listed;  // what the last Compile read
  // The stored services parsed, by name and stamp: a reload parses what
  // changed, and a service that no longer loads serves its last good version.
  hms::control::ServiceCache services;
  // Why the last SIGHUP's config file was not applied ("" when it was):
  // /healthz says "config": "stale: ..." until one is.
  std::string config_error;
  hms::config::Interner endpoint_ids;
  hms::config::Interner route_keys;
  hms::policy::PolicyRegistry policies;  // rate buckets and breakers, by stable name
  hms::main::KeyMaterial keys;           // TLS contexts and JWT keys, remade when their files change
  uint64_t version = 0;
  hms::control::ServedConfig served;     // what the admin API reads
  hms::obs::AccessLogFile access_log;
  hms::proxy::Engine engine;
  // Sends the cores' spans when mesh-config's tracing exports them (null otherwise).
  std::unique_ptr<hms::control::SpanExporter> spans;
  // After `spans` and the engine, whose counts its /metrics reads: it stops first.
  hms::control::AdminServer admin;
  bool admin_on = false;
  hms::obs::UiData ui;  // /ui/data's samples; touched only by the admin thread
  // A sidecar's lease on its own endpoint (null for an edge gateway).
  std::unique_ptr<hms::control::SelfRegistration> registration;
  // This process's record in the store's fleet view (control/fleet.h), and
  // the fingerprint of the store contents the last good snapshot compiled.
  std::unique_ptr<hms::control::Membership> membership;
  hms::control::FleetMember self;
  std::string fingerprint;
  // Listens for the next upgrade (control/handover.h); before `admin` and
  // the engine in destruction order, whose sockets it hands over.
  std::unique_ptr<hms::control::HandoverServer> handover;
};

hms::Result<GatewayConfig> LoadConfig(const std::string& path) {
  if (path.empty()) return hms::config::DefaultGatewayConfig();
  return hms::config::LoadGatewayConfig(path);
}

// Reads every service from the store, parsing only what changed since the
// last read (control/service_cache.h). A stored service that no longer
// loads (its text does not parse, or its `service:` is not the name it is
// stored under) keeps its last good version, with a log line and a word in
// /healthz: one bad entry must not take the others down, nor its own
// routes (DESIGN §6). `problems` gets one line per such service.
std::vector<hms::config::ServiceInput> ReadServices(Gateway& g, std::string* error,
                                                    std::vector<std::string>* problems) {
  auto listed = g.store->List();
  if (!listed.ok()) {
    *error = listed.error().message;
    return {};
  }
  // The inputs point at the endpoints of the list kept here.
  g.last_listed = std::move(*listed);
  hms::control::ServiceCache::Loaded loaded = g.services.Load(g.last_listed);
  for (const std::string& p : loaded.problems) Log("%s", p.c_str());
  *problems = std::move(loaded.problems);
  return std::move(loaded.services);
}

// The store's services a snapshot serves: a sidecar's snapshot also holds
// its own local service as a cluster (SERVICE@local), which is no service
// of the store.
size_t ServiceCount(const Snapshot& s) {
  return static_cast<size_t>(std::count_if(s.clusters.begin(), s.clusters.end(),
                                           [](const auto& cl) { return !cl.local; }));
}

// Gives the snapshot its process-wide policy state (policy/binding.h).
void AttachPolicies(Gateway& g, Snapshot* s) {
  // Cores change only at a restart: the running count once started.
  const uint32_t cores = g.engine.cores() > 0 ? g.engine.cores() : hms::proxy::CoresFor(g.config);
  hms::policy::BindPolicies(g.policies, g.route_keys, cores, hms::core::Now(), s);
}

// Compiles a snapshot from the config and the store. On an error (logged)
// it carries none, and the last good snapshot stays.
hms::control::Compiled Compile(Gateway& g) {
  hms::control::Compiled c;
  std::vector<std::string> problems;
  const auto started = std::chrono::steady_clock::now();
  const uint64_t parsed_before = g.services.parsed_total();
  auto services = ReadServices(g, &c.store_error, &problems);
  if (!c.store_error.empty()) {
    Log("store %s unreadable, keeping the last good config: %s", g.store->Uri().c_str(),
        c.store_error.c_str());
    return c;
  }
  auto snap = hms::config::CompileSnapshotOf(g.config, g.mesh, services, g.version + 1,
                                             &g.endpoint_ids, &g.route_keys);
  if (!snap.ok()) {
    Log("config not applied, keeping the last good one: %s", snap.error().message.c_str());
    c.stale = snap.error().message;
    return c;
  }
  if (auto k = g.keys.Attach(g.config, snap->get()); !k.ok()) {
    Log("config not applied, keeping the last good one: %s", k.error().message.c_str());
    c.stale = k.error().message;
    return c;
  }
  // What a reload cost, and how much of the store it parsed (docs/config.md
  // "Incremental reload").
  Log("store: %llu of %zu services parsed anew; %zu routes compiled in %lld ms",
      static_cast<unsigned long long>(g.services.parsed_total() - parsed_before),
      g.last_listed.size(), (*snap)->routes.size(),
      static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::steady_clock::now() - started)
                                 .count()));
  // The running config, not the file SIGHUP read, serves: say why.
  if (!g.config_error.empty()) c.stale = "config file not reloaded: " + g.config_error;
  for (const std::string& p : problems) c.stale += (c.stale.empty() ? "" : "; ") + p;
  ++g.version;
  g.fingerprint = hms::control::StoreFingerprint(g.last_listed);
  c.snapshot = snap->release();
  AttachPolicies(g, c.snapshot);
  return c;
}

// What /metrics shows, gathered from the cores, the span exporter and the
// current snapshot's shared policy objects; obs renders it.
hms::obs::MetricsPageInput GatherMetrics(Gateway& g) {
  hms::obs::MetricsPageInput in;
  in.cores = g.engine.all_metrics();
  in.totals = hms::obs::Sum(in.cores);
  if (g.spans) {
    in.totals.spans_exported = g.spans->exported();
    in.totals.spans_export_dropped = g.spans->dropped();
    in.totals.span_export_failures = g.spans->failed_requests();
  }
  // Route keys read "service|METHODS|host|template"; requests that matched
  // no route are labelled "none".
  in.route_labels = [&g](uint32_t route_key) -> std::pair<std::string, std::string> {
    if (route_key == hms::obs::kNoRoute) return {"none", "none"};
    std::string key = g.route_keys.Name(route_key);
    size_t b = key.rfind('|');
    return {key.substr(0, key.find('|')), b == std::string::npos ? key : key.substr(b + 1)};
  };
  in.jwt_reason = [](uint16_t code) {
    return std::string(hms::auth::ReasonToken(static_cast<hms::auth::JwtReason>(code)));
  };
  // Policy state is process-wide: read once from the snapshot's shared objects.
  hms::core::Instant now = hms::core::Now();
  g.served.With([&](const Snapshot& s) {
    for (const auto& cl : s.clusters) {
      if (cl.breaker_state) {
        hms::policy::BreakerStatus st = cl.breaker_state->Status(now);
        in.breakers.push_back({cl.name, static_cast<int>(st.state), st.next_probe_in_ns,
                               st.opened_total, st.half_opened_total, st.closed_total,
                               st.consecutive_failures});
      }
      for (const auto& ep : cl.endpoints) {
        if (!ep.health) continue;
        const hms::core::Instant until = ep.health->ejected_until();
        in.endpoints.push_back({cl.name, ep.address, until > now, ep.health->ejections_total(),
                                ep.health->check_failing(), until > now ? until - now : 0});
      }
    }
    for (const auto& r : s.routes) {
      // A fleet route's bucket is in Redis; its own is the fallback's share.
      if (r.limiter && !r.limiter->keyed() && !r.fleet) {
        in.tokens.push_back({s.clusters[r.cluster].name, r.path_template, r.limiter->Available(now)});
      }
    }
  });
  in.live_snapshots = static_cast<uint64_t>(hms::config::LiveSnapshots());
  in.role = g.config.role;
  in.version = kVersion;
  return in;
}

using hms::JsonString;

// Fleet-scope limits (docs/resilience.md "Fleet scope"): "ok" while every
// core asks Redis, else "degraded" with the fallback in force and why, as
// /healthz and /status show it. Empty without `redis:`.
std::string FleetJson(Gateway& g, bool* degraded) {
  *degraded = false;
  if (!g.config.redis) return "";
  const auto all = g.engine.all_metrics();
  uint64_t up = 0, fallback = 0;
  std::string reason;
  for (const auto* m : all) {
    up += m->fleet_redis_up.Get();
    fallback += m->fleet_degraded.Get();
    if (reason.empty()) reason = hms::proxy::RedisFailureText(m->fleet_redis_failure.Get());
  }
  *degraded = fallback > 0;
  std::string o = "{\"redis\":" + JsonString(*degraded ? "degraded" : "ok") +
                  ",\"address\":" + JsonString(g.config.redis->address) + ",\"fallback\":" +
                  JsonString(std::string(hms::config::FallbackName(g.config.redis->fallback))) +
                  ",\"cores_up\":" + std::to_string(up) +
                  ",\"cores_on_fallback\":" + std::to_string(fallback);
  if (*degraded) {
    o += ",\"reason\":" + JsonString(reason.empty() ? "connecting to Redis" : reason);
  }
  return o + "}";
}

// The live summary `hms-api status` prints: per core, per route, breakers and
// rate limits. Counts only: the CLI takes two samples for rates, dividing by
// the difference of their "clock_ms" (this process's monotonic clock when the
// counts were read), so the gateway keeps no rate state.
std::string StatusJson(Gateway& g) {
  hms::core::Instant now = hms::core::Now();
  auto all = g.engine.all_metrics();
  // "config" as in /healthz: "ok", or "stale: WHY" (hms-api status prints it).
  const std::string stale = g.served.stale();
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
  g.served.With([&](const Snapshot& s) {
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
        if (!r.limiter->keyed() && !r.fleet) {
          o += ",\"tokens_left\":" + std::to_string(r.limiter->Available(now));
        }
      }
      o += "}";
      first = false;
    }
    o += "],\"breakers\":[";
    first = true;
    for (const auto& cl : s.clusters) {
      if (!cl.breaker_state) continue;
      auto st = cl.breaker_state->Status(now);
      o += (first ? "" : ",") + std::string("{\"service\":") + JsonString(cl.name) +
           ",\"state\":\"" + hms::obs::BreakerStateName(static_cast<int>(st.state)) +
           "\",\"consecutive_failures\":" + std::to_string(st.consecutive_failures) +
           ",\"next_probe_s\":" + std::to_string(st.next_probe_in_ns / 1'000'000'000ull) + "}";
      first = false;
    }
    o += "],\"snapshot\":" + std::to_string(s.version);
  });
  bool degraded = false;
  if (std::string fleet = FleetJson(g, &degraded); !fleet.empty()) o += ",\"fleet\":" + fleet;
  return o + "}\n";
}

// What /ui/data shows: /metrics' input plus the routes as /status lists them
// and the core threads' CPU time, read on the admin thread.
hms::obs::UiInput GatherUi(Gateway& g) {
  hms::obs::UiInput in;
  in.metrics = GatherMetrics(g);
  in.clock_ns = hms::core::Now();
  in.unix_ms = hms::core::UnixMs();
  in.role = g.config.role;
  const std::string stale = g.served.stale();
  in.config = stale.empty() ? "ok" : "stale: " + stale;
  in.core_cpu_ns = hms::obs::CoreCpuTimes(g.engine.cores());
  g.served.With([&](const Snapshot& s) {
    in.snapshot = s.version;
    for (const auto& r : s.routes) {
      hms::obs::UiRoute u{r.key, s.clusters[r.cluster].name, r.methods_text + " " + r.path_template};
      if (r.limiter) {
        u.rate_limit = r.rate_limit->text;
        u.has_tokens = !r.limiter->keyed() && !r.fleet;
        if (u.has_tokens) u.tokens_left = r.limiter->Available(in.clock_ns);
      }
      in.routes.push_back(std::move(u));
    }
  });
  return in;
}

// The live page (/ui, its script and style) and its data (/ui/data).
void InstallUi(Gateway& g) {
  size_t n = 0;
  const hms::obs::UiAsset* assets = hms::obs::UiAssets(&n);
  const auto page_headers = [](hms::control::AdminResponse* r, const char* cache) {
    r->headers = {{"Content-Security-Policy", std::string(hms::obs::kUiContentSecurityPolicy)},
                  {"X-Content-Type-Options", "nosniff"},
                  {"Cache-Control", cache}};
  };
  for (size_t i = 0; i < n; ++i) {
    const hms::obs::UiAsset a = assets[i];
    auto serve = [a, page_headers](const hms::control::AdminRequest&) {
      hms::control::AdminResponse r;
      r.content_type = std::string(a.content_type);
      r.body = std::string(a.body);
      page_headers(&r, "no-cache");
      return r;
    };
    g.admin.Handle(std::string(a.path), serve);
    if (i == 0) g.admin.Handle(std::string(a.path) + "/", serve);
  }
  g.admin.Handle("/ui/data", [&g, page_headers](const hms::control::AdminRequest&) {
    hms::control::AdminResponse r;
    r.body = g.ui.Render(GatherUi(g));
    page_headers(&r, "no-store");
    return r;
  });
}

// Reads the command line into `g`; returns an exit code to stop with, or -1
// to go on.
int ParseArgs(Gateway& g, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "--config" || a == "-c") && i + 1 < argc) {
      g.config_path = argv[++i];
    } else if (a == "--store" && i + 1 < argc) {
      g.store_override = argv[++i];
    } else if (a == "--check") {
      g.check = true;
    } else if (a == "--upgrade") {
      g.upgrade = true;
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
  return -1;
}

// Loads and checks the gateway config and its mesh config; false (said on
// stderr) when the gateway cannot start with them.
bool LoadStartConfig(Gateway& g) {
  auto loaded = LoadConfig(g.config_path);
  if (!loaded.ok()) {
    std::fprintf(stderr, "%s\n", loaded.error().message.c_str());
    return false;
  }
  g.config = std::move(*loaded);
  if (auto v = hms::config::ValidateGatewayConfig(g.config); !v.ok()) {
    std::fprintf(stderr, "%s\n", v.error().message.c_str());
    return false;
  }
  // What start-up needs of this machine besides the ports, checked the same
  // way for --check and for a start (one function), so a config that --check
  // passes does not fail at start.
  if (auto e = hms::config::CheckGatewayEnvironment(g.config); !e.ok()) {
    std::fprintf(stderr, "%s\n", e.error().message.c_str());
    return false;
  }
  if (!g.config.mesh.empty()) {
    auto mesh = hms::config::LoadMeshConfig(g.config.mesh);
    if (!mesh.ok()) {
      // The mesh file's own errors carry its file:line; say which key named it.
      std::fprintf(stderr, "%s: mesh: %s\n", hms::config::WhereIs(g.config, "mesh").c_str(),
                   mesh.error().message.c_str());
      return false;
    }
    g.mesh = *mesh;
  }
  return true;
}

// Opens the store and compiles the first snapshot; null (said on stderr)
// when the gateway cannot start.
Snapshot* FirstSnapshot(Gateway& g) {
  std::string store_uri = !g.store_override.empty() ? g.store_override
                          : !g.config.store.empty() ? g.config.store
                                                    : hms::control::DefaultStoreUri();
  auto store = hms::control::OpenStore(store_uri);
  if (!store.ok()) {
    std::fprintf(stderr, "hms-gateway: %s\n", store.error().message.c_str());
    return nullptr;
  }
  g.store = std::move(*store);
  g.keys.set_log(LogLine);
  // Watch before the first read: a change between the two is not missed.
  if (!g.check) g.store->WatchFd();
  {
    // Certificates and keys must load before anything is served: a TLS
    // listener never falls back to the clear.
    Snapshot probe;
    if (auto k = g.keys.Attach(g.config, &probe); !k.ok()) {
      std::fprintf(stderr, "hms-gateway: %s\n", k.error().message.c_str());
      return nullptr;
    }
  }
  hms::control::Compiled c = Compile(g);
  if (g.check) {
    // --check judges the stored services as start-up loads them, and a
    // service start-up would leave out (its file:line and why) fails it.
    if (!c.store_error.empty() || !c.stale.empty() || c.snapshot == nullptr) {
      if (c.snapshot != nullptr) c.snapshot->Release();
      std::fprintf(stderr, "hms-gateway: store %s: %s\n", g.store->Uri().c_str(),
                   (!c.store_error.empty() ? c.store_error : c.stale).c_str());
      return nullptr;
    }
    return c.snapshot;
  }
  if (g.served.Note(c)) return c.snapshot;
  // Serve nothing rather than nothing at all: an empty table answers 404s
  // until the store holds valid services.
  auto empty = hms::config::CompileSnapshot(g.config, g.mesh, {}, ++g.version, &g.endpoint_ids,
                                            &g.route_keys);
  Snapshot* first = empty->release();
  (void)g.keys.Attach(g.config, first);  // made a moment ago from the same files
  AttachPolicies(g, first);
  return first;
}

// Starts the span exporter when mesh-config's tracing exports spans.
bool StartTracing(Gateway& g) {
  if (!g.mesh.tracing.exports()) return true;
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
  g.spans = std::make_unique<hms::control::SpanExporter>(o, g.engine.span_rings(), LogLine);
  if (auto s = g.spans->Start(); !s.ok()) {
    Log("%s", s.error().message.c_str());
    return false;
  }
  Log("tracing: exporting spans of %s to %s (sample_ratio %g)", o.resource.service_name.c_str(),
      t.otlp_endpoint.c_str(), t.sample_ratio);
  return true;
}

// /healthz, /metrics, /status, /config and the live page.
void InstallAdmin(Gateway& g) {
  InstallUi(g);
  g.admin.Handle("/healthz", [&g](const hms::control::AdminRequest&) {
    // The gateway is healthy while it serves; a lost store is reported, not
    // fatal: the last good config keeps serving (DESIGN §2).
    hms::control::AdminResponse r;
    std::string err = g.served.store_error();
    if (err.empty() && !g.store->healthy()) err = g.store->last_error();
    std::string store = err.empty() ? "\"ok\"" : "\"unreachable, serving the last good config\"";
    // "config": "ok", or "stale: WHY" while the store holds something
    // that does not load (the last good version serves); "status" stays
    // "ok" so probes keep routing to a gateway that serves.
    std::string stale = g.served.stale();
    // A fleet limit on its fallback is reported, not fatal: the gateway
    // still serves, by its local share (or fail_open/fail_closed).
    bool degraded = false;
    const std::string fleet = FleetJson(g, &degraded);
    r.body = std::string("{\"status\":") + (degraded ? "\"degraded\"" : "\"ok\"") +
             ",\"cores\":" + std::to_string(g.engine.cores()) + ",\"store\":" + store +
             ",\"store_uri\":" + JsonString(g.store->Uri()) +
             ",\"config\":" + JsonString(stale.empty() ? "ok" : "stale: " + stale);
    if (!err.empty()) r.body += ",\"store_error\":" + JsonString(err);
    if (!fleet.empty()) r.body += ",\"fleet\":" + fleet;
    r.body += "}\n";
    return r;
  });
  g.admin.Handle("/metrics", [&g](const hms::control::AdminRequest&) {
    hms::control::AdminResponse r;
    r.content_type = std::string(hms::obs::Exposition::kContentType);
    r.body = hms::obs::RenderMetricsPage(GatherMetrics(g));
    return r;
  });
  g.admin.Handle("/status", [&g](const hms::control::AdminRequest&) {
    hms::control::AdminResponse r;
    r.body = StatusJson(g);
    return r;
  });
  g.admin.Handle("/config", [&g](const hms::control::AdminRequest&) {
    // The snapshot as compiled, plus the version each core runs now: after
    // a reload every core reaches the top-level "version".
    hms::control::AdminResponse r;
    std::string json = g.served.ConfigJson();
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
}

// Opens the access log, claims every address, starts the cores, the span
// exporter and the admin API; false (logged) when one fails.
bool StartServing(Gateway& g, Snapshot* first) {
  // The access log: opened before the cores start, so a bad path stops here.
  if (g.config.access_log) {
    if (auto o = g.access_log.Open(g.config.access_log->path); !o.ok()) {
      Log("%s", o.error().message.c_str());
      return false;
    }
  }
  // Every address is claimed before any thread starts (docs/engine.md, "One
  // gateway per address"): a listener or admin address another process
  // listens on ends the start here, exit 1, naming the address. From Start
  // on, a failure returns through ~Gateway, whose engine stops and joins the
  // cores before the process exits.
  auto b = g.engine.Bind(g.config, g.upgrade ? &g.received.listeners : nullptr);
  // Groups the config no longer has: this process lets its copies go (the
  // old one closes its own as it drains).
  for (auto& group : g.received.listeners)
    for (int fd : group) close(fd);
  g.received.listeners.clear();
  if (!b.ok()) {
    Log("%s", b.error().message.c_str());
    return false;
  }
  g.admin_on = !g.config.admin.empty() && g.config.admin != "off";
  if (g.admin_on) {
    auto a = g.received.admin >= 0 ? g.admin.Adopt(std::exchange(g.received.admin, -1))
                                   : g.admin.Listen(g.config.admin);
    if (!a.ok()) {
      Log("%s", a.error().message.c_str());
      return false;
    }
  }
  if (g.received.admin >= 0) close(std::exchange(g.received.admin, -1));  // admin: off now
  if (auto s = g.engine.Start(g.config, first); !s.ok()) {
    Log("%s", s.error().message.c_str());
    return false;
  }
  if (!StartTracing(g)) return false;
  if (!g.admin_on) return true;
  InstallAdmin(g);
  if (auto a = g.admin.Start(); !a.ok()) {
    Log("%s", a.error().message.c_str());
    return false;
  }
  return true;
}

// An upgrade: tells the old process that this one serves (it then drains).
// Then, in any case, listens for the next upgrade: its name is free once the
// old process took the connection.
void ListenForUpgrades(Gateway& g) {
  if (g.upgrade) {
    if (auto c = hms::control::ConfirmServing(&g.received); !c.ok()) {
      Log("%s", c.error().message.c_str());
    } else {
      Log("upgrade: serving on the sockets of the process this one replaces");
    }
  }
  g.handover = std::make_unique<hms::control::HandoverServer>(
      hms::control::HandoverName(g.config_path),
      [&g] {
        std::vector<hms::control::HandedSocket> out;
        const auto& groups = g.engine.listening_sockets();
        for (size_t i = 0; i < groups.size(); ++i)
          for (int fd : groups[i]) out.push_back({fd, static_cast<int>(i)});
        if (g.admin_on) out.push_back({g.admin.listen_fd(), hms::control::HandedSocket::kAdmin});
        return out;
      },
      // The control loop reads SIGTERM from its signalfd and ends; Shutdown
      // sees handed_over() and drains without touching the sockets.
      [] { kill(getpid(), SIGTERM); }, LogLine);
  if (auto s = g.handover->Start(); !s.ok()) {
    Log("%s; --upgrade will reach that gateway, not this one", s.error().message.c_str());
    g.handover.reset();
  }
}

// This process's fleet record as of now.
const hms::control::FleetMember& SelfRecord(Gateway& g, const char* state = nullptr) {
  const std::string stale = g.served.stale();
  g.self.snapshot = static_cast<int64_t>(g.version);
  g.self.fingerprint = g.fingerprint;
  g.self.state = state != nullptr ? state : stale.empty() ? "serving" : "stale: " + stale;
  return g.self;
}

// Records this process in the store's fleet view, under a lease of
// registration_ttl (renewed by the control loop's tick).
void JoinFleet(Gateway& g) {
  g.self.id = hms::control::LocalMemberId();
  g.self.role = g.config.role;
  g.self.service = g.config.role == "sidecar" ? g.config.service : "";
  g.self.version = kVersion;
  g.self.pid = getpid();
  g.self.started_s = static_cast<int64_t>(std::time(nullptr));
  if (g.admin_on) {
    g.self.admin = g.config.admin.substr(0, g.config.admin.rfind(':')) + ":" +
                   std::to_string(g.admin.port());
  }
  g.membership = std::make_unique<hms::control::Membership>(g.store.get(),
                                                            g.config.registration_ttl_s, LogLine);
  g.membership->Tick(std::chrono::steady_clock::now(), SelfRecord(g));
}

// Prints the bound addresses, registers a sidecar, and prints the ready line.
void Announce(Gateway& g, const Snapshot& first) {
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
  if (g.config.role == "sidecar") {
    // Callers learn from the address that this sidecar takes only mTLS.
    const auto& inbound = g.config.listeners.front();
    const bool inbound_mtls = inbound.tls ? inbound.tls->client_auth : g.config.mtls.has_value();
    g.registration = std::make_unique<hms::control::SelfRegistration>(
        g.store.get(), g.config.service,
        std::string(inbound_mtls ? hms::config::kMtlsScheme : "") +
            (g.config.advertise.empty() ? bound.front() : g.config.advertise),
        g.config.registration_ttl_s, LogLine);
    g.registration->Tick(std::chrono::steady_clock::now());
    std::printf("hms-gateway: sidecar of %s on 127.0.0.1:%u, registered as %s%s\n",
                g.config.service.c_str(), g.config.local_port, g.registration->address().c_str(),
                g.registration->registered() ? "" : " (pending)");
  }
  if (g.admin_on) {
    std::string host = g.config.admin.substr(0, g.config.admin.rfind(':'));
    std::printf("hms-gateway: admin %s:%u\n", host.c_str(), g.admin.port());
  }
  ListenForUpgrades(g);
  JoinFleet(g);
  std::printf("hms-gateway: ready cores=%u snapshot=%llu services=%zu store=%s\n", g.engine.cores(),
              static_cast<unsigned long long>(first.version), ServiceCount(first),
              g.store->Uri().c_str());
  std::fflush(stdout);
}

// SIGHUP: the config file again (listeners, cores and per-core tuning take
// effect at restart; routes, services and policies at the reload that
// follows), and the access log reopened for rotation.
void ReloadConfig(Gateway& g) {
  Log("SIGHUP: reloading %s and the store",
      g.config_path.empty() ? "<embedded defaults>" : g.config_path.c_str());
  auto c = LoadConfig(g.config_path);
  g.config_error.clear();
  if (!c.ok()) {
    g.config_error = c.error().message;
  } else if (auto v = hms::config::ValidateGatewayConfig(*c); !v.ok()) {
    g.config_error = v.error().message;
  } else {
    g.config = std::move(*c);
  }
  if (!g.config_error.empty()) {
    Log("config not reloaded, keeping the last good one: %s", g.config_error.c_str());
  }
  // Log rotation: the renamed file is let go, the path opened anew.
  if (g.config.access_log) {
    g.access_log.Flush(g.engine.access_logs());
    if (auto o = g.access_log.Open(g.config.access_log->path); !o.ok()) {
      Log("%s; still writing to the old file", o.error().message.c_str());
    }
  }
}

// Runs the control loop (control/reloader.h) until SIGTERM or SIGINT.
void RunControlLoop(Gateway& g, int signal_fd) {
  using Clock = std::chrono::steady_clock;
  hms::control::ReloaderHooks h;
  h.compile = [&g] { return Compile(g); };
  h.publish = [&g](Snapshot* s) { g.engine.Publish(s); };
  h.reload_config = [&g] { ReloadConfig(g); };
  h.keys_changed = [&g] { return g.keys.Changed(); };
  h.wants_key_reload = [&g](int64_t now_s) { return g.keys.WantsKeyReload(now_s); };
  h.store_differs = [&g] {
    auto listed = g.store->List();
    return listed.ok() && *listed != g.last_listed;
  };
  h.flush = [&g] {
    if (g.config.access_log) g.access_log.Flush(g.engine.access_logs());
  };
  h.tick = [&g](hms::core::Instant now) {
    // Every 20 ms with an access log (SIGHUP may add one), whose lines wait
    // in the cores' rings (at 50k requests/s a core's 1 MiB ring holds
    // about 75 ms of lines); else the loop's own longest wait.
    int64_t ms = g.config.access_log ? 20 : 1000;
    // CLOCK_MONOTONIC both: core::Instant and steady_clock count the same time.
    const Clock::time_point at{std::chrono::nanoseconds(now)};
    if (g.registration) ms = std::min(ms, g.registration->Tick(at));
    if (g.membership) ms = std::min(ms, g.membership->Tick(at, SelfRecord(g)));
    return ms;
  };
  h.log = LogLine;
  hms::control::Reloader reloader(g.store.get(), &g.served, std::move(h),
                                  hms::control::ReloaderOptions{});
  reloader.Run(signal_fd);
}

// Leaves the store, drains the cores and stops what runs beside them.
void Shutdown(Gateway& g) {
  // No upgrade while draining; one that completed made this drain (or is
  // under way: its new process holds the sockets, and may serve on them).
  if (g.handover) g.handover->Stop();
  const bool handed_over = g.handover && g.handover->handed_over();
  // Out of the store first, so callers stop choosing this sidecar while it
  // drains; after an upgrade the new process holds the same endpoint under
  // its own lease, so it stays (this lease expires on its own).
  if (g.registration && !handed_over) g.registration->Withdraw();
  Log("draining (up to %u ms)%s", g.config.drain_timeout_ms,
      handed_over ? " after an upgrade" : "");
  // After an upgrade the admin socket is the new process's: this one stops
  // answering on it at once, so /status and /metrics read the new one.
  if (handed_over && g.admin_on) {
    g.admin.Stop();
    g.admin_on = false;
  }
  // The fleet view shows the drain, and loses the member once it is over.
  if (g.membership) g.membership->Tick(std::chrono::steady_clock::now(), SelfRecord(g, "draining"));
  g.engine.Drain(handed_over);
  g.engine.Join();
  if (g.membership) g.membership->Withdraw();
  if (g.config.access_log) g.access_log.Flush(g.engine.access_logs());  // what the drain answered
  if (g.spans) g.spans->Stop();
  if (g.admin_on) g.admin.Stop();
  Log("stopped");
}

int Main(int argc, char** argv) {
  Gateway g;
  if (int rc = ParseArgs(g, argc, argv); rc >= 0) return rc;
  if (!LoadStartConfig(g)) return 1;
  // Before the store opens: its watch thread, like every thread started
  // from here on, inherits the mask (control/reloader.h).
  const int signal_fd = hms::control::Reloader::BlockSignals();
  Snapshot* first = FirstSnapshot(g);
  if (first == nullptr) return 1;
  if (g.check) {
    std::printf("%s: ok (%zu services, %zu routes)\n",
                g.config_path.empty() ? "<embedded defaults>" : g.config_path.c_str(),
                ServiceCount(*first), first->routes.size());
    first->Release();
    return 0;
  }
  g.served.SetCurrent(first);  // released by ~ServedConfig on every return from here
  if (g.upgrade) {
    // Only now, with a config that loads: a new process that fails before
    // here never touched the old one, which goes on serving.
    auto r = hms::control::ReceiveSockets(hms::control::HandoverName(g.config_path));
    if (!r.ok()) {
      Log("%s", r.error().message.c_str());
      return 1;
    }
    g.received = std::move(*r);
  }
  if (!StartServing(g, first)) {
    g.received.CloseAll();  // the old process keeps serving on its own copies
    return 1;
  }
  Announce(g, *first);
  RunControlLoop(g, signal_fd);
  Shutdown(g);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Main(argc, argv); }
