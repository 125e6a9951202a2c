// hms-gateway: the data plane (DESIGN §2). This file is the control thread's
// entry point: it loads the config, compiles snapshots from the store, starts
// the cores and the admin API, then hands the thread to the control loop
// (control/reloader.h), which watches the store, the key files and the
// signals. It is never on the data path.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
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
#include "hms/control/reloader.h"
#include "hms/control/self_registration.h"
#include "hms/control/served_config.h"
#include "hms/control/span_exporter.h"
#include "hms/control/store.h"
#include "hms/obs/access_log.h"
#include "hms/obs/exposition.h"
#include "hms/obs/metrics.h"
#include "hms/obs/metrics_page.h"
#include "hms/policy/binding.h"
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
    "  --store URI    store to read services from, file:DIR or etcd://HOST:PORT\n"
    "                 (overrides the config's store)\n"
    "  --check        validate the config (and the services in the store) and exit\n"
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
  hms::control::ServedConfig served;     // what the admin API reads
  hms::obs::AccessLogFile access_log;
  hms::proxy::Engine engine;
  // Sends the cores' spans when mesh-config's tracing exports them (null otherwise).
  std::unique_ptr<hms::control::SpanExporter> spans;
  // After `spans` and the engine, whose counts its /metrics reads: it stops first.
  hms::control::AdminServer admin;
  bool admin_on = false;
  // A sidecar's lease on its own endpoint (null for an edge gateway).
  std::unique_ptr<hms::control::SelfRegistration> registration;
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
  auto services = ReadServices(g, &c.store_error, &problems);
  if (!c.store_error.empty()) {
    Log("store %s unreadable, keeping the last good config: %s", g.store->Uri().c_str(),
        c.store_error.c_str());
    return c;
  }
  auto snap = hms::config::CompileSnapshot(g.config, g.mesh, services, g.version + 1,
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
  for (const std::string& p : problems) c.stale += (c.stale.empty() ? "" : "; ") + p;
  ++g.version;
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
                               st.opened_total, st.half_opened_total, st.closed_total});
      }
      for (const auto& ep : cl.endpoints) {
        if (!ep.health) continue;
        in.endpoints.push_back({cl.name, ep.address, ep.health->ejected_until() > now,
                                ep.health->ejections_total(), ep.health->check_failing()});
      }
    }
    for (const auto& r : s.routes) {
      if (r.limiter && !r.limiter->keyed()) {
        in.tokens.push_back({s.clusters[r.cluster].name, r.path_template, r.limiter->Available(now)});
      }
    }
  });
  in.live_snapshots = static_cast<uint64_t>(hms::config::LiveSnapshots());
  return in;
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
  if (g.served.Note(c)) return c.snapshot;
  if (g.check) return nullptr;
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

// /healthz, /metrics, /status and /config.
void InstallAdmin(Gateway& g) {
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
    r.body = "{\"status\":\"ok\",\"cores\":" + std::to_string(g.engine.cores()) +
             ",\"store\":" + store + ",\"store_uri\":" + JsonString(g.store->Uri()) +
             ",\"config\":" + JsonString(stale.empty() ? "ok" : "stale: " + stale);
    if (!err.empty()) r.body += ",\"store_error\":" + JsonString(err);
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
  if (auto b = g.engine.Bind(g.config); !b.ok()) {
    Log("%s", b.error().message.c_str());
    return false;
  }
  g.admin_on = !g.config.admin.empty() && g.config.admin != "off";
  if (g.admin_on) {
    if (auto a = g.admin.Listen(g.config.admin); !a.ok()) {
      Log("%s", a.error().message.c_str());
      return false;
    }
  }
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
  if (!c.ok()) {
    Log("config not reloaded, keeping the last good one: %s", c.error().message.c_str());
  } else if (auto v = hms::config::ValidateGatewayConfig(*c); !v.ok()) {
    Log("config not reloaded, keeping the last good one: %s", v.error().message.c_str());
  } else {
    g.config = std::move(*c);
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
    if (g.registration) {
      // CLOCK_MONOTONIC both: core::Instant and steady_clock count the same time.
      ms = std::min(ms, g.registration->Tick(Clock::time_point(std::chrono::nanoseconds(now))));
    }
    return ms;
  };
  h.log = LogLine;
  hms::control::Reloader reloader(g.store.get(), &g.served, std::move(h),
                                  hms::control::ReloaderOptions{});
  reloader.Run(signal_fd);
}

// Leaves the store, drains the cores and stops what runs beside them.
void Shutdown(Gateway& g) {
  // Out of the store first, so callers stop choosing this sidecar while it drains.
  if (g.registration) g.registration->Withdraw();
  Log("draining (up to %u ms)", g.config.drain_timeout_ms);
  g.engine.Drain();
  g.engine.Join();
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
  if (!StartServing(g, first)) return 1;
  Announce(g, *first);
  RunControlLoop(g, signal_fd);
  Shutdown(g);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Main(argc, argv); }
