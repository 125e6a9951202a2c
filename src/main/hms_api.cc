// hms-api: the control plane's CLI (DESIGN §2). Validates route files and
// writes them to the store that every data plane watches.
//
// Exit status: 0 success, 1 a user error (bad file, unknown service, store
// failure), 2 a usage error (unknown command, missing argument).
#include <arpa/inet.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "hms/auth/base64url.h"
#include "hms/common/file_check.h"
#include "hms/common/json_escape.h"
#include "hms/config/config.h"
#include "hms/config/snapshot.h"
#include "hms/control/fleet.h"
#include "hms/control/store.h"
#include "hms/core/clock.h"
#include "hms/http/path.h"
#include "hms/route/route_table.h"
#include "hms/tls/session.h"
#include "simdjson.h"
#include "src/control/http_client.h"
#include "src/main/certs_command.h"
#include "src/main/token_command.h"

#ifndef HMS_VERSION
#define HMS_VERSION "dev"
#endif

namespace hms {
namespace {

constexpr int kOk = 0;
constexpr int kUserError = 1;
constexpr int kUsageError = 2;

constexpr char kProgramHelp[] =
    "usage: hms-api [--store URI] COMMAND [ARGS]\n"
    "\n"
    "The control plane's CLI: validates route files and writes them to the store\n"
    "that every gateway and sidecar watches.\n"
    "\n"
    "commands:\n"
    "  register [--dry-run] FILE...          validate route files (YAML or JSON) and store them\n"
    "  deregister SERVICE                    remove a service and its endpoints\n"
    "  list [--json]                         registered services, routes and endpoints\n"
    "  show SERVICE                          a service's route file and endpoints\n"
    "  endpoints add|remove SERVICE HOST:PORT  static endpoints of a service\n"
    "  explain [--config GATEWAY_YAML] [--host HOST] [--json] METHOD PATH\n"
    "                                        which route, policies and endpoints a request gets\n"
    "  status [--admin HOST:PORT | --all] [--interval S] [--json]\n"
    "                                        a running gateway's live summary, with rates\n"
    "                                        (--all: request rates of every fleet member)\n"
    "  fleet [--json]                        the running gateways and sidecars, their state\n"
    "                                        and whether each serves the store's config\n"
    "  token --sub S [--aud A] [--scope X] [--ttl 1h] [--config GATEWAY_YAML]\n"
    "                                        mint a development JWT with the dev key\n"
    "  certs init | certs issue NAME         the mesh CA, and a service's mTLS identity\n"
    "\n"
    "options:\n"
    "  --store URI   the store: file:DIR or etcd://HOST:PORT[,HOST:PORT...] (default:\n"
    "                $HMS_STORE, else file:/var/lib/hms when writable, else\n"
    "                file:$HOME/.local/state/hms)\n"
    "  --help        this text; COMMAND --help describes one command\n"
    "  --version     the program's version\n";

constexpr char kFleetHelp[] =
    "usage: hms-api fleet [--json]\n"
    "\n"
    "Lists the fleet: every gateway and sidecar running on the store, from the\n"
    "record each keeps there under a lease (docs/config.md, \"The fleet\"): its id,\n"
    "role, version, admin address, start time, state and config snapshot. CONFIG\n"
    "says \"current\" when the member compiled what the store holds now, and\n"
    "\"LAGS\" when it serves an older snapshot (it has not read the latest change,\n"
    "or the store does not compile for it); a service it cannot load shows in\n"
    "STATE as \"stale: WHY\". Exit status 0, or 1 when the store cannot be read.\n";

constexpr char kStatusHelp[] =
    "usage: hms-api status [--admin HOST:PORT | --all] [--interval SECONDS] [--json]\n"
    "\n"
    "Asks a running gateway's admin API (GET /status) for a live summary: per\n"
    "core its connections, requests, request rate and snapshot version; per route\n"
    "its requests and request rate, 5xx answers and their rate, and its rate limit\n"
    "with the tokens left; each service's breaker with its state and the seconds\n"
    "until its next probe. With --all: every fleet member with an admin API\n"
    "(hms-api fleet), its requests and request rate, and the fleet's sums.\n"
    "Rates are per second between two samples taken\n"
    "--interval apart; counts and states are from the second.\n"
    "\n"
    "  --admin HOST:PORT    the admin listener (default: $HMS_ADMIN, else 127.0.0.1:9901)\n"
    "  --interval SECONDS   time between the two samples (default 1; \"0.5\" and \"500ms\"\n"
    "                       work too); 0 takes one sample and prints no rates (\"-\")\n"
    "  --json               print one sample of the gateway's JSON as it came (no rates)\n";

constexpr char kRegisterHelp[] =
    "usage: hms-api register [--dry-run] FILE...\n"
    "\n"
    "Validates every FILE (a route file, YAML or JSON), checks that its routes do\n"
    "not clash with the routes of the services already registered or with each\n"
    "other, then writes them all to the store. Nothing is written if any file is\n"
    "invalid; errors say file:line and why. Registering a service again replaces\n"
    "its route file and keeps its added endpoints; when the stored one came from\n"
    "another file, register says so in a warning.\n"
    "\n"
    "  --dry-run   validate exactly as above, then print what would change instead\n"
    "              of writing: per service \"would add\", \"would change\" or\n"
    "              \"unchanged\", with the routes added (+), removed (-) and changed (~).\n"
    "              A route is its method set, host and template; it changes when its\n"
    "              timeout, auth, require, rate_limit, websocket or\n"
    "              websocket_idle_timeout does. Writes nothing.\n";

constexpr char kExplainHelp[] =
    "usage: hms-api explain [--config GATEWAY_YAML] [--host HOST] [--json] METHOD PATH\n"
    "\n"
    "Compiles the store's services the way the gateway of GATEWAY_YAML does (its\n"
    "jwt section, its mesh file's retries, timeout, breaker and trust domain, its\n"
    "mtls identity; endpoint names resolved) and says what that gateway would do\n"
    "with METHOD PATH: the route that matches (service, template, file:line,\n"
    "captured parameters), the policies that apply (timeout, retries, breaker,\n"
    "rate_limit, auth, require, mtls) and the endpoints it would try, in order; or\n"
    "404, or 405 with the Allow list. PATH is the request target; a query string\n"
    "is ignored.\n"
    "\n"
    "  --config FILE  the gateway's gateway.yaml (default: $HMS_GATEWAY_CONFIG, else\n"
    "                 $HMS_CONFIG, else the embedded defaults: no jwt section, so\n"
    "                 routes without auth are open); its store key names the store\n"
    "                 when --store does not\n"
    "  --host HOST    the request's Host (port ignored); without it only routes\n"
    "                 for any host match\n"
    "  --json         one JSON object instead of text\n"
    "\n"
    "Exit status: 0 when a route matches, 1 otherwise (404, 405, or a store whose\n"
    "services do not compile).\n";

constexpr char kDeregisterHelp[] =
    "usage: hms-api deregister SERVICE\n"
    "\n"
    "Removes SERVICE, its route file and its endpoints from the store.\n";

constexpr char kListHelp[] =
    "usage: hms-api list [--json]\n"
    "\n"
    "Lists the registered services with their route counts and endpoints (those\n"
    "of the route file and those added with `endpoints add`). --json prints one\n"
    "JSON array with every route.\n";

constexpr char kShowHelp[] =
    "usage: hms-api show SERVICE\n"
    "\n"
    "Prints SERVICE's route file as registered, the file it came from and its\n"
    "added endpoints.\n";

constexpr char kEndpointsHelp[] =
    "usage: hms-api endpoints add SERVICE HOST:PORT\n"
    "       hms-api endpoints remove SERVICE HOST:PORT\n"
    "\n"
    "Adds or removes a static endpoint of a registered service. HOST is a name\n"
    "or an address (IPv6 in brackets: [::1]:7001); PORT is 1..65535. A service\n"
    "behind sidecars needs none: each sidecar registers itself.\n";

int Usage(const std::string& message, const char* help) {
  std::fprintf(stderr, "hms-api: %s\n\n%s", message.c_str(), help);
  return kUsageError;
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "hms-api: %s\n", message.c_str());
  return kUserError;
}

// ["a","b"]: a JSON array of strings.
void AppendJsonStrings(std::string* o, const std::vector<std::string>& items) {
  *o += "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) *o += ",";
    AppendJsonString(o, items[i]);
  }
  *o += "]";
}

bool IsHelp(const std::vector<std::string>& args) {
  for (const std::string& a : args) {
    if (a == "--help" || a == "-h") return true;
  }
  return false;
}

// What a command does with a file store whose directory is missing (never
// made, or removed): a writing command makes it and says so in one line; a
// reading one refuses, since an empty listing would hide a wrong path. The
// same for a directory that holds files but no store: a reading command
// would otherwise write the store's layout into it.
enum class Access { kRead, kWrite };

enum class StoreDir { kMissing, kEmpty, kStore, kOther };

StoreDir InspectStoreDir(const std::string& dir) {
  std::error_code ec;
  const std::filesystem::file_status st = std::filesystem::status(dir, ec);
  if (st.type() == std::filesystem::file_type::not_found) return StoreDir::kMissing;
  // Not a directory, or unreadable: the store's own open says why.
  if (ec || !std::filesystem::is_directory(st)) return StoreDir::kStore;
  if (std::filesystem::exists(dir + "/services", ec)) return StoreDir::kStore;
  return std::filesystem::is_empty(dir, ec) || ec ? StoreDir::kEmpty : StoreDir::kOther;
}

constexpr char kOtherStore[] =
    "; or name another store with --store URI (file:DIR or etcd://HOST:PORT) or HMS_STORE)";

Result<std::unique_ptr<control::Store>> Open(const std::string& uri, Access access) {
  const std::string resolved = uri.empty() ? control::DefaultStoreUri() : uri;
  if (resolved.starts_with("file:")) {
    std::string dir = resolved.substr(5);
    if (dir.starts_with("//")) dir.erase(0, 2);
    const StoreDir state = dir.empty() ? StoreDir::kStore : InspectStoreDir(dir);
    if (state == StoreDir::kMissing && access == Access::kRead) {
      return Error{
          "store " + dir + " does not exist (hms-api register FILE creates it" + kOtherStore,
          Side::kConfig, false};
    }
    if (state == StoreDir::kOther && access == Access::kRead) {
      return Error{"store " + dir + " is not a store: it holds files but no services/ " +
                       "(hms-api register FILE makes one there" + kOtherStore,
                   Side::kConfig, false};
    }
    if (state == StoreDir::kMissing) {
      std::fprintf(stderr, "hms-api: store %s did not exist: creating it\n", dir.c_str());
    } else if (state == StoreDir::kOther) {
      std::fprintf(stderr, "hms-api: store %s held no store: creating one in it\n", dir.c_str());
    }
  }
  return control::OpenStore(resolved);
}

// The services the store's files hold, parsed; a file that does not load,
// or whose `service:` is not the name it is stored under, gets an error
// (file:line) and the command that fixes it. `parsed[i]` is empty then.
std::vector<std::string> StoredProblems(const std::vector<control::StoredService>& stored,
                                        std::vector<std::optional<config::ServiceConfig>>* parsed) {
  std::vector<std::string> errors(stored.size());
  parsed->assign(stored.size(), std::nullopt);
  std::vector<const control::StoredService*> each;
  for (const control::StoredService& s : stored) each.push_back(&s);
  std::vector<Result<config::ServiceConfig>> loaded = control::LoadStoredServicesEach(each);
  for (size_t i = 0; i < stored.size(); ++i) {
    const control::StoredService& s = stored[i];
    Result<config::ServiceConfig>& p = loaded[i];
    if (p) {
      (*parsed)[i] = std::move(p.value());
    } else {
      errors[i] = p.error().message + " (fix: hms-api register a corrected file for " + s.name +
                  ", or hms-api deregister " + s.name + ")";
    }
  }
  return errors;
}

// Whether the store's services compile together; when they do not (a clash
// written by hand, which every gateway refuses, so each keeps its last good
// config and no later change applies), the reason and the services whose
// removal would end it, as commands.
std::string StoreClash(const std::vector<std::optional<config::ServiceConfig>>& parsed) {
  auto compile = [&parsed](size_t skip) -> std::string {
    std::vector<config::ServiceInput> trial;
    for (size_t i = 0; i < parsed.size(); ++i) {
      if (i != skip && parsed[i]) trial.push_back(config::ServiceInput{&*parsed[i], nullptr});
    }
    Result<bool> ok = config::CheckServices(trial);
    return ok ? "" : ok.error().message;
  };
  std::string why = compile(parsed.size());
  if (why.empty()) return "";
  std::string fixes;
  for (size_t i = 0; i < parsed.size(); ++i) {
    if (!parsed[i] || !compile(i).empty()) continue;
    fixes += std::string(fixes.empty() ? "" : ", or ") + "hms-api deregister " + parsed[i]->service;
  }
  return "the store's services clash, so gateways keep their last good config: " + why +
         (fixes.empty() ? "" : " (fix: " + fixes + ", then register the corrected file)");
}

// Reads and parses every file, printing every error (not just the first) to
// stderr. `parsed` and `batch` come out in the order of `files`. The files
// are read first, then parsed on several threads (config::ParseServiceConfigs).
bool ParseFiles(const std::vector<std::string>& files, std::vector<config::ServiceConfig>* parsed,
                std::vector<control::StoredService>* batch) {
  bool failed = false;
  std::vector<std::string> texts;
  std::vector<const std::string*> paths;
  for (const std::string& path : files) {
    Result<std::string> text = config::ReadConfigFile(path);
    if (!text) {
      std::fprintf(stderr, "hms-api: %s\n", text.error().message.c_str());
      failed = true;
      continue;
    }
    texts.push_back(std::move(text.value()));
    paths.push_back(&path);
  }
  std::vector<config::RouteFileText> each;
  for (size_t i = 0; i < texts.size(); ++i) each.push_back({&texts[i], paths[i]});
  std::vector<Result<config::ServiceConfig>> results = config::ParseServiceConfigs(each);
  for (size_t i = 0; i < texts.size(); ++i) {
    if (!results[i]) {
      std::fprintf(stderr, "hms-api: %s\n", results[i].error().message.c_str());
      failed = true;
      continue;
    }
    batch->push_back(control::StoredService{results[i]->service, std::move(texts[i]), *paths[i], {}});
    parsed->push_back(std::move(results[i].value()));
  }
  return !failed;
}

// A trial snapshot of the store's services (minus the ones being replaced)
// plus the new ones catches clashes across services and duplicate names.
// Endpoints are left out: they are checked for syntax by the parser, and a
// name that only the gateways' resolver knows must not block a registration.
// Nothing is copied: the compile reads the parsed services where they are.
bool TrialCompile(const std::vector<control::StoredService>& existing,
                  const std::vector<config::ServiceConfig>& parsed) {
  std::unordered_set<std::string_view> replaced;
  for (const config::ServiceConfig& s : parsed) replaced.insert(s.service);
  std::vector<const control::StoredService*> kept;
  for (const control::StoredService& stored : existing) {
    if (!replaced.contains(stored.name)) kept.push_back(&stored);
  }
  std::vector<Result<config::ServiceConfig>> loaded = control::LoadStoredServicesEach(kept);
  std::vector<config::ServiceInput> trial;
  trial.reserve(kept.size() + parsed.size());
  for (size_t i = 0; i < kept.size(); ++i) {
    if (!loaded[i]) {
      std::fprintf(stderr, "hms-api: warning: stored service %s no longer loads: %s\n",
                   kept[i]->name.c_str(), loaded[i].error().message.c_str());
      continue;
    }
    trial.push_back(config::ServiceInput{&loaded[i].value(), nullptr});
  }
  for (const config::ServiceConfig& s : parsed) trial.push_back(config::ServiceInput{&s, nullptr});
  Result<bool> ok = config::CheckServices(trial);
  if (!ok) {
    std::fprintf(stderr, "hms-api: %s\n", ok.error().message.c_str());
    return false;
  }
  return true;
}

// Whether two names of a route file are the same file ("calc.yaml" and
// "./calc.yaml", or two paths to one file).
bool SameFile(const std::string& a, const std::string& b) {
  if (std::filesystem::path(a).lexically_normal() == std::filesystem::path(b).lexically_normal()) {
    return true;
  }
  std::error_code ec;
  return std::filesystem::equivalent(a, b, ec);
}

// One warning per service of `parsed` that replaces a stored one that came
// from another file. Registering replaces a service whole (its routes and
// settings; endpoints added with `endpoints add` and sidecars' leases stay),
// so a second file that happens to use the same name would replace the
// first one's routes unseen.
std::vector<std::string> Replacements(const std::vector<control::StoredService>& current,
                                      const std::vector<config::ServiceConfig>& parsed) {
  std::vector<std::string> out;
  for (const config::ServiceConfig& s : parsed) {
    for (const control::StoredService& stored : current) {
      if (stored.name != s.service || SameFile(stored.source, s.source)) continue;
      const std::string from = stored.source.empty() ? "written into the store by hand"
                                                     : "registered from " + stored.source;
      out.push_back(s.service + " was " + from + "; " + s.source +
                    " replaces its routes and settings (endpoints added with hms-api "
                    "endpoints add stay)");
    }
  }
  return out;
}

void Warn(const std::vector<std::string>& warnings) {
  for (const std::string& w : warnings) std::fprintf(stderr, "hms-api: warning: %s\n", w.c_str());
}

// "15s", "250ms", "1m30s", "2h": durations as config files write them.
std::string FormatMs(uint64_t ms) {
  if (ms == 0) return "0s";
  if (ms % 1000 != 0) return std::to_string(ms) + "ms";
  uint64_t s = ms / 1000;
  std::string out;
  if (s >= 3600) out += std::to_string(s / 3600) + "h";
  if (s % 3600 >= 60) out += std::to_string(s % 3600 / 60) + "m";
  if (s % 60 > 0) out += std::to_string(s % 60) + "s";
  return out;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string JoinMethods(const std::vector<std::string>& methods) {
  if (methods.empty()) return "*";
  std::string out;
  for (const std::string& m : methods) out += (out.empty() ? "" : ", ") + m;
  return out;
}

// What `register --dry-run` compares: a route's identity and the settings
// whose change makes it "changed". Effective values, so a service-level
// timeout or rate_limit that a route inherits shows up on the route.
struct RouteFacts {
  std::string identity;  // sorted method set | lower-case host | template
  std::string label;     // "GET, HEAD /v2/sum/{a}/{b} (host api.example.com)"
  std::string where;     // "file:line"
  uint32_t timeout_ms = 0;
  std::string auth;                                          // as written; "" = default
  std::vector<std::pair<std::string, std::string>> require;  // sorted
  std::optional<config::RateLimit> rate_limit;
  bool websocket = false;
  uint32_t websocket_idle_ms = 0;  // as written; 0 = the gateway's idle_timeout
};

std::vector<RouteFacts> Facts(const config::ServiceConfig& s, const config::MeshConfig& mesh) {
  std::vector<RouteFacts> out;
  for (const config::RouteConfig& rc : s.routes) {
    RouteFacts f;
    std::vector<std::string> methods = rc.methods;
    std::sort(methods.begin(), methods.end());
    methods.erase(std::unique(methods.begin(), methods.end()), methods.end());
    f.identity = JoinMethods(methods) + "|" + Lower(rc.host) + "|" + rc.path;
    f.label = JoinMethods(rc.methods) + " " + rc.path;
    if (!rc.host.empty()) f.label += " (host " + rc.host + ")";
    f.where = s.source + ":" + std::to_string(rc.line);
    f.timeout_ms = rc.timeout_ms.value_or(s.timeout_ms.value_or(mesh.timeout_ms));
    f.auth = rc.auth;
    f.require = rc.require;
    std::sort(f.require.begin(), f.require.end());
    f.rate_limit = rc.rate_limit ? std::optional<config::RateLimit>(*rc.rate_limit) : s.rate_limit;
    f.websocket = rc.websocket;
    f.websocket_idle_ms = rc.websocket_idle_ms;
    out.push_back(std::move(f));
  }
  return out;
}

std::string RequireText(const std::vector<std::pair<std::string, std::string>>& require) {
  if (require.empty()) return "none";
  std::string out;
  for (const auto& [claim, value] : require) out += (out.empty() ? "" : ", ") + claim + "=" + value;
  return out;
}

std::string RateText(const std::optional<config::RateLimit>& rl) {
  if (!rl || rl->rate_per_sec_x1000 == 0) return "none";
  return rl->text;
}

bool SameRate(const std::optional<config::RateLimit>& a,
              const std::optional<config::RateLimit>& b) {
  const bool has_a = a && a->rate_per_sec_x1000 != 0;
  const bool has_b = b && b->rate_per_sec_x1000 != 0;
  if (has_a != has_b) return false;
  return !has_a || (a->rate_per_sec_x1000 == b->rate_per_sec_x1000 && a->burst == b->burst &&
                    a->per == b->per);
}

// "timeout 15s → 2s; auth default → none", or "" when nothing differs.
std::string RouteChanges(const RouteFacts& was, const RouteFacts& now) {
  std::vector<std::string> changes;
  if (was.timeout_ms != now.timeout_ms) {
    changes.push_back("timeout " + FormatMs(was.timeout_ms) + " → " + FormatMs(now.timeout_ms));
  }
  if (was.auth != now.auth) {
    changes.push_back("auth " + (was.auth.empty() ? std::string("default") : was.auth) + " → " +
                      (now.auth.empty() ? std::string("default") : now.auth));
  }
  if (was.require != now.require) {
    changes.push_back("require " + RequireText(was.require) + " → " + RequireText(now.require));
  }
  if (!SameRate(was.rate_limit, now.rate_limit)) {
    changes.push_back("rate_limit " + RateText(was.rate_limit) + " → " + RateText(now.rate_limit));
  }
  if (was.websocket != now.websocket) {
    changes.push_back(std::string("websocket ") + (was.websocket ? "on → off" : "off → on"));
  }
  if (was.websocket_idle_ms != now.websocket_idle_ms) {
    auto idle = [](uint32_t ms) { return ms == 0 ? std::string("default") : FormatMs(ms); };
    changes.push_back("websocket_idle_timeout " + idle(was.websocket_idle_ms) + " → " +
                      idle(now.websocket_idle_ms));
  }
  std::string out;
  for (const std::string& c : changes) out += (out.empty() ? "" : "; ") + c;
  return out;
}

std::string ListText(const std::vector<std::string>& items) {
  if (items.empty()) return "[]";
  std::string out = "[";
  for (const std::string& i : items) out += (out.size() > 1 ? ", " : "") + i;
  return out + "]";
}

// An h2c/h2 service's liveness PINGs as a route file writes them.
std::string KeepaliveText(const config::KeepaliveConfig& k) {
  return k.interval_ms == 0 ? std::string("off")
                            : "{interval: " + FormatMs(k.interval_ms) +
                                  ", timeout: " + FormatMs(k.timeout_ms) + "}";
}

// Service settings that no route carries: retries, breaker, the file's
// endpoints, allow_from.
std::vector<std::string> ServiceChanges(const config::ServiceConfig& was,
                                        const config::ServiceConfig& now,
                                        const config::MeshConfig& mesh) {
  std::vector<std::string> out;
  const uint32_t r0 = was.retries.value_or(mesh.retries), r1 = now.retries.value_or(mesh.retries);
  if (r0 != r1) out.push_back("retries " + std::to_string(r0) + " → " + std::to_string(r1));
  const config::BreakerConfig b0 = was.breaker.value_or(mesh.breaker);
  const config::BreakerConfig b1 = now.breaker.value_or(mesh.breaker);
  auto breaker = [](const config::BreakerConfig& b) {
    return b.failures == 0 ? std::string("off")
                           : "{failures: " + std::to_string(b.failures) + ", open_for: " +
                                 FormatMs(b.open_for_ms) + "}";
  };
  if (breaker(b0) != breaker(b1)) out.push_back("breaker " + breaker(b0) + " → " + breaker(b1));
  if (was.per_try_timeout_ms != now.per_try_timeout_ms) {
    auto text = [](const std::optional<uint32_t>& ms) { return ms ? FormatMs(*ms) : std::string("none"); };
    out.push_back("per_try_timeout " + text(was.per_try_timeout_ms) + " → " + text(now.per_try_timeout_ms));
  }
  if (was.health != now.health) {
    auto text = [](const std::optional<config::HealthCheckConfig>& h) {
      return h ? "{path: " + h->path + ", interval: " + FormatMs(h->interval_ms) + ", timeout: " +
                     FormatMs(h->timeout_ms) + ", unhealthy: " + std::to_string(h->unhealthy) +
                     ", healthy: " + std::to_string(h->healthy) + "}"
               : std::string("none");
    };
    out.push_back("health " + text(was.health) + " → " + text(now.health));
  }
  if (was.load_balancing != now.load_balancing) {
    auto text = [](const std::string& lb) { return lb.empty() ? std::string("round_robin") : lb; };
    if (text(was.load_balancing) != text(now.load_balancing)) {
      out.push_back("load_balancing " + text(was.load_balancing) + " → " + text(now.load_balancing));
    }
  }
  auto protocol = [](const std::string& p) { return p.empty() ? std::string("http1") : p; };
  if (protocol(was.protocol) != protocol(now.protocol)) {
    out.push_back("protocol " + protocol(was.protocol) + " → " + protocol(now.protocol));
  }
  const std::string k0 = KeepaliveText(was.connection_keepalive.value_or(config::KeepaliveConfig{}));
  const std::string k1 = KeepaliveText(now.connection_keepalive.value_or(config::KeepaliveConfig{}));
  if (k0 != k1) out.push_back("connection_keepalive " + k0 + " → " + k1);
  if (was.endpoints != now.endpoints) {
    out.push_back("endpoints " + ListText(was.endpoints) + " → " + ListText(now.endpoints));
  }
  if (was.allow_from != now.allow_from) {
    out.push_back("allow_from " + ListText(was.allow_from) + " → " + ListText(now.allow_from));
  }
  return out;
}

// The lines under "would change": routes added, removed and changed (by
// identity, through a map: a service of thousands of routes is not compared
// pairwise), then the changed service settings. `was` is null when the
// stored file no longer parses: it has no routes the gateways serve.
std::vector<std::string> PlanLines(const config::ServiceConfig* was,
                                   const config::ServiceConfig& now,
                                   const std::vector<RouteFacts>& new_routes,
                                   const config::MeshConfig& mesh) {
  const std::vector<RouteFacts> old_routes = was ? Facts(*was, mesh) : std::vector<RouteFacts>{};
  std::unordered_map<std::string_view, const RouteFacts*> old_by_id, new_by_id;
  for (const RouteFacts& o : old_routes) old_by_id.emplace(o.identity, &o);
  for (const RouteFacts& f : new_routes) new_by_id.emplace(f.identity, &f);
  std::vector<std::string> lines;
  for (const RouteFacts& f : new_routes) {
    if (!old_by_id.contains(f.identity)) lines.push_back("  + " + f.label + "  " + f.where);
  }
  for (const RouteFacts& o : old_routes) {
    if (!new_by_id.contains(o.identity)) lines.push_back("  - " + o.label + "  " + o.where);
  }
  for (const RouteFacts& f : new_routes) {
    const auto it = old_by_id.find(f.identity);
    if (it == old_by_id.end()) continue;
    const std::string changes = RouteChanges(*it->second, f);
    if (!changes.empty()) lines.push_back("  ~ " + f.label + "  " + f.where + ": " + changes);
  }
  if (was) {
    for (const std::string& c : ServiceChanges(*was, now, mesh)) lines.push_back("  ~ " + c);
  }
  return lines;
}

// Prints what registering `parsed` over `existing` would change.
void PrintPlan(const std::vector<control::StoredService>& existing,
               const std::vector<config::ServiceConfig>& parsed) {
  const config::MeshConfig mesh;
  std::unordered_map<std::string_view, const control::StoredService*> by_name;
  for (const control::StoredService& e : existing) by_name[e.name] = &e;
  std::vector<const control::StoredService*> stored(parsed.size(), nullptr), replaced;
  for (size_t i = 0; i < parsed.size(); ++i) {
    const auto it = by_name.find(parsed[i].service);
    if (it == by_name.end()) continue;
    stored[i] = it->second;
    replaced.push_back(it->second);
  }
  std::vector<Result<config::ServiceConfig>> loaded = control::LoadStoredServicesEach(replaced);
  size_t next_loaded = 0;
  std::string out;
  for (size_t i = 0; i < parsed.size(); ++i) {
    std::fwrite(out.data(), 1, out.size(), stdout);  // one service at a time
    out.clear();
    const config::ServiceConfig& now = parsed[i];
    const std::vector<RouteFacts> new_routes = Facts(now, mesh);
    if (stored[i] == nullptr) {
      out += "would add " + now.service + " (" + now.source + ")\n";
      for (const RouteFacts& f : new_routes) out += "  + " + f.label + "  " + f.where + "\n";
      continue;
    }
    Result<config::ServiceConfig>& was = loaded[next_loaded++];
    if (!was) {
      std::fprintf(stderr, "hms-api: warning: stored service %s no longer loads: %s\n",
                   stored[i]->name.c_str(), was.error().message.c_str());
    }
    const std::vector<std::string> lines =
        PlanLines(was ? &was.value() : nullptr, now, new_routes, mesh);
    if (lines.empty()) {
      out += now.service + ": unchanged\n";
      continue;
    }
    out += "would change " + now.service + " (" + now.source + ")\n";
    for (const std::string& l : lines) out += l + "\n";
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
}

// The store's services for a dry run. A file store whose directory does not
// exist yet is an empty store: opening it would create the directory, and a
// dry run writes nothing.
bool ListForDryRun(const std::string& uri, std::vector<control::StoredService>* out) {
  const std::string resolved = uri.empty() ? control::DefaultStoreUri() : uri;
  struct stat st;
  if (resolved.starts_with("file:") && stat(resolved.c_str() + 5, &st) != 0 && errno == ENOENT) {
    return true;
  }
  Result<std::unique_ptr<control::Store>> store = control::OpenStore(resolved);
  if (!store) {
    Fail(store.error().message);
    return false;
  }
  Result<std::vector<control::StoredService>> list = (*store)->List();
  if (!list) {
    Fail(list.error().message);
    return false;
  }
  *out = std::move(list.value());
  return true;
}

int Register(const std::string& uri, const std::vector<std::string>& args) {
  if (IsHelp(args)) return std::fputs(kRegisterHelp, stdout), kOk;
  bool dry_run = false;
  std::vector<std::string> files;
  for (const std::string& a : args) {
    if (a == "--dry-run") {
      dry_run = true;
    } else if (a.starts_with("-")) {
      return Usage("unknown option '" + a + "'", kRegisterHelp);
    } else {
      files.push_back(a);
    }
  }
  if (files.empty()) return Usage("register needs at least one FILE", kRegisterHelp);
  const char* const nothing = dry_run ? "nothing would be registered" : "nothing registered";
  // Every file is read and checked, and every error reported, before the
  // store is touched.
  std::vector<config::ServiceConfig> parsed;
  std::vector<control::StoredService> batch;
  if (!ParseFiles(files, &parsed, &batch)) return Fail(nothing);

  if (dry_run) {
    batch = {};  // the texts: a dry run writes none of them
    std::vector<control::StoredService> existing;
    if (!ListForDryRun(uri, &existing)) return kUserError;
    if (!TrialCompile(existing, parsed)) return Fail(nothing);
    Warn(Replacements(existing, parsed));
    PrintPlan(existing, parsed);
    std::printf("dry run: nothing written\n");
    return kOk;
  }

  // The new files alone first, with the messages a dry run gives (a service
  // in two of them: "b.yaml:1: service 'calc-svc' is already defined at
  // a.yaml:1"), before a missing store is made for nothing.
  if (!TrialCompile({}, parsed)) return Fail(nothing);
  Result<std::unique_ptr<control::Store>> store = Open(uri, Access::kWrite);
  if (!store) return Fail(store.error().message);
  // The trial compile runs inside the store's write (under its lock, or
  // against the revision the txn compares), so two registrations of
  // clashing routes at the same moment cannot both land.
  bool refused = false;
  std::vector<std::string> replaced;  // judged on what the write replaced
  Result<bool> ok = (*store)->Register(
      batch, [&](const std::vector<control::StoredService>& current) -> Result<bool> {
        if (TrialCompile(current, parsed)) {
          replaced = Replacements(current, parsed);
          return true;
        }
        refused = true;
        return Error{"", Side::kConfig, false};
      });
  if (refused) return Fail(nothing);  // TrialCompile said why
  if (!ok) return Fail(ok.error().message + "; nothing registered");
  Warn(replaced);
  for (const control::StoredService& s : batch) std::printf("✓ registered %s\n", s.name.c_str());
  return kOk;
}

int Deregister(const std::string& uri, const std::vector<std::string>& args) {
  if (IsHelp(args)) return std::fputs(kDeregisterHelp, stdout), kOk;
  if (args.size() != 1) return Usage("deregister needs exactly one SERVICE", kDeregisterHelp);
  Result<std::unique_ptr<control::Store>> store = Open(uri, Access::kRead);
  if (!store) return Fail(store.error().message);
  Result<bool> ok = (*store)->Deregister(args[0]);
  if (!ok) return Fail(ok.error().message);
  std::printf("✓ deregistered %s\n", args[0].c_str());
  return kOk;
}

// The file's endpoints followed by the store's, without repeats.
std::vector<std::string> AllEndpoints(const config::ServiceConfig* parsed,
                                      const control::StoredService& stored) {
  std::vector<std::string> out;
  if (parsed != nullptr) out = parsed->endpoints;
  for (const std::string& e : stored.endpoints) {
    if (std::find(out.begin(), out.end(), e) == out.end()) out.push_back(e);
  }
  return out;
}

int List(const std::string& uri, const std::vector<std::string>& args) {
  if (IsHelp(args)) return std::fputs(kListHelp, stdout), kOk;
  bool json = false;
  for (const std::string& a : args) {
    if (a == "--json") {
      json = true;
    } else {
      return Usage("unknown argument '" + a + "'", kListHelp);
    }
  }
  Result<std::unique_ptr<control::Store>> store = Open(uri, Access::kRead);
  if (!store) return Fail(store.error().message);
  Result<std::vector<control::StoredService>> list = (*store)->List();
  if (!list) return Fail(list.error().message);

  struct Row {
    const control::StoredService* stored;
    std::optional<config::ServiceConfig> parsed;
    std::string error;
  };
  std::vector<Row> rows;
  std::vector<std::optional<config::ServiceConfig>> parsed;
  const std::vector<std::string> errors = StoredProblems(list.value(), &parsed);
  for (size_t i = 0; i < list->size(); ++i) rows.push_back(Row{&(*list)[i], parsed[i], errors[i]});
  const std::string clash = StoreClash(parsed);

  if (json) {
    std::string o = "[";
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      if (i > 0) o += ",";
      o += "{\"service\":";
      AppendJsonString(&o, r.stored->name);
      o += ",\"source\":";
      AppendJsonString(&o, r.stored->source);
      o += ",\"routes\":[";
      if (r.parsed) {
        for (size_t j = 0; j < r.parsed->routes.size(); ++j) {
          const config::RouteConfig& rc = r.parsed->routes[j];
          if (j > 0) o += ",";
          o += "{\"path\":";
          AppendJsonString(&o, rc.path);
          o += ",\"methods\":";
          AppendJsonStrings(&o, rc.methods);
          o += ",\"host\":";
          AppendJsonString(&o, rc.host);
          o += "}";
        }
      }
      o += "],\"endpoints\":";
      AppendJsonStrings(&o, AllEndpoints(r.parsed ? &*r.parsed : nullptr, *r.stored));
      if (!r.error.empty()) {
        o += ",\"error\":";
        AppendJsonString(&o, r.error);
      }
      o += "}";
    }
    o += "]\n";
    std::fputs(o.c_str(), stdout);
    if (!clash.empty()) std::fprintf(stderr, "hms-api: warning: %s\n", clash.c_str());
    return kOk;
  }

  if (rows.empty()) {
    std::printf("no services registered in %s\n", (*store)->Uri().c_str());
    return kOk;
  }
  size_t width = std::strlen("SERVICE");
  for (const Row& r : rows) width = std::max(width, r.stored->name.size());
  std::printf("%-*s  %6s  %s\n", static_cast<int>(width), "SERVICE", "ROUTES", "ENDPOINTS");
  for (const Row& r : rows) {
    const std::vector<std::string> eps = AllEndpoints(r.parsed ? &*r.parsed : nullptr, *r.stored);
    std::string ep_text;
    for (const std::string& e : eps) ep_text += (ep_text.empty() ? "" : ", ") + e;
    if (ep_text.empty()) ep_text = "-";
    const std::string routes = r.parsed ? std::to_string(r.parsed->routes.size()) : "?";
    std::printf("%-*s  %6s  %s\n", static_cast<int>(width), r.stored->name.c_str(), routes.c_str(),
                ep_text.c_str());
  }
  for (const Row& r : rows) {
    if (!r.error.empty()) std::fprintf(stderr, "hms-api: warning: %s\n", r.error.c_str());
  }
  if (!clash.empty()) std::fprintf(stderr, "hms-api: warning: %s\n", clash.c_str());
  return kOk;
}

int Show(const std::string& uri, const std::vector<std::string>& args) {
  if (IsHelp(args)) return std::fputs(kShowHelp, stdout), kOk;
  if (args.size() != 1) return Usage("show needs exactly one SERVICE", kShowHelp);
  Result<std::unique_ptr<control::Store>> store = Open(uri, Access::kRead);
  if (!store) return Fail(store.error().message);
  Result<std::vector<control::StoredService>> list = (*store)->List();
  if (!list) return Fail(list.error().message);
  for (const control::StoredService& s : list.value()) {
    if (s.name != args[0]) continue;
    std::printf("# %s, registered from %s\n", s.name.c_str(), s.source.c_str());
    std::fputs(s.text.c_str(), stdout);
    if (!s.text.empty() && s.text.back() != '\n') std::fputc('\n', stdout);
    for (const std::string& e : s.endpoints) std::printf("# endpoint added: %s\n", e.c_str());
    return kOk;
  }
  return Fail("service '" + args[0] + "' is not registered");
}

int Endpoints(const std::string& uri, const std::vector<std::string>& args) {
  if (IsHelp(args)) return std::fputs(kEndpointsHelp, stdout), kOk;
  if (args.empty()) return Usage("endpoints needs add or remove", kEndpointsHelp);
  const std::string& action = args[0];
  if (action != "add" && action != "remove") {
    return Usage("unknown endpoints action '" + action + "' (add or remove)", kEndpointsHelp);
  }
  if (args.size() != 3)
    return Usage("endpoints " + action + " needs SERVICE HOST:PORT", kEndpointsHelp);
  const std::string& service = args[1];
  const std::string& address = args[2];
  // Both need the service registered, so a store that does not exist yet is
  // refused, not made: a mistyped store path leaves no directory behind.
  Result<std::unique_ptr<control::Store>> store = Open(uri, Access::kRead);
  if (!store) return Fail(store.error().message);
  if (action == "add") {
    Result<bool> ok = (*store)->AddEndpoint(service, address);
    if (!ok) return Fail(ok.error().message);
    if (ok.value()) {
      std::printf("✓ %s: added endpoint %s\n", service.c_str(), address.c_str());
    } else {
      std::printf("✓ %s: endpoint %s was already there\n", service.c_str(), address.c_str());
    }
  } else {
    Result<bool> ok = (*store)->RemoveEndpoint(service, address);
    if (!ok) return Fail(ok.error().message);
    std::printf("✓ %s: removed endpoint %s\n", service.c_str(), address.c_str());
  }
  return kOk;
}

// "10.0.0.5:7001" or "[::1]:7001": the address an endpoint resolved to.
std::string ResolvedText(const config::Endpoint& ep) {
  char buf[INET6_ADDRSTRLEN] = "";
  if (ep.addr.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&ep.addr);
    inet_ntop(AF_INET, &v4->sin_addr, buf, sizeof(buf));
    return std::string(buf) + ":" + std::to_string(ntohs(v4->sin_port));
  }
  if (ep.addr.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&ep.addr);
    inet_ntop(AF_INET6, &v6->sin6_addr, buf, sizeof(buf));
    return "[" + std::string(buf) + "]:" + std::to_string(ntohs(v6->sin6_port));
  }
  return "?";
}

void AppendRateJson(std::string* o, const std::optional<config::RateLimit>& rl) {
  if (!rl || rl->rate_per_sec_x1000 == 0) {
    *o += "null";
    return;
  }
  *o += "{\"text\":";
  AppendJsonString(o, rl->text);
  *o += ",\"rate_per_sec_x1000\":" + std::to_string(rl->rate_per_sec_x1000) +
        ",\"burst\":" + std::to_string(rl->burst) + ",\"per\":";
  AppendJsonString(o, rl->per.empty() ? "route" : rl->per);
  *o += "}";
}

// What `hms-api explain` asks: METHOD, PATH (canonical, without its query)
// and the Host it is asked for.
struct ExplainQuery {
  bool json = false;
  std::string method, path, host;
  std::string config;  // --config: the gateway.yaml whose stamps are explained
};

// `"method":…,"path":…,"host":…`, the question as every JSON answer repeats it.
void AppendQueryJson(std::string* o, const ExplainQuery& q) {
  *o += "\"method\":";
  AppendJsonString(o, q.method);
  *o += ",\"path\":";
  AppendJsonString(o, q.path);
  *o += ",\"host\":";
  AppendJsonString(o, q.host);
}

// The question, from the arguments; a usage error or a bad path (printed, as
// the gateway would answer it) returns the exit status in `*exit`.
bool ParseExplain(const std::vector<std::string>& args, ExplainQuery* q, int* exit) {
  std::vector<std::string> positional;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--json") {
      q->json = true;
    } else if (a == "--host") {
      if (i + 1 >= args.size()) return *exit = Usage("--host needs a HOST", kExplainHelp), false;
      q->host = args[++i];
    } else if (a.starts_with("--host=")) {
      q->host = a.substr(7);
    } else if (a == "--config") {
      if (i + 1 >= args.size()) {
        return *exit = Usage("--config needs a GATEWAY_YAML", kExplainHelp), false;
      }
      q->config = args[++i];
    } else if (a.starts_with("--config=")) {
      q->config = a.substr(9);
    } else if (a.starts_with("-")) {
      return *exit = Usage("unknown option '" + a + "'", kExplainHelp), false;
    } else {
      positional.push_back(a);
    }
  }
  if (positional.size() != 2) {
    return *exit = Usage("explain needs METHOD and PATH", kExplainHelp), false;
  }
  q->method = positional[0];
  q->path = positional[1];
  if (!q->path.starts_with("/")) {
    return *exit = Usage("PATH must start with '/'", kExplainHelp), false;
  }
  // The gateway matches the path without its query (route/route_table.h),
  // canonicalized with the strict rules (docs/engine.md "The canonical path").
  q->path = q->path.substr(0, q->path.find('?'));
  std::string canonical(q->path.size(), '\0');
  http::PathError pe = http::PathError::kNone;
  const int n = http::NormalizePath(q->path, http::PathOptions{}, canonical.data(), &pe);
  if (n >= 0) {
    canonical.resize(static_cast<size_t>(n));
    q->path = canonical;
    return true;
  }
  const std::string message = "bad path (" + std::string(http::PathErrorRule(pe)) +
                              "): " + std::string(http::PathErrorText(pe));
  if (q->json) {
    std::string o = "{\"status\":400,";
    AppendQueryJson(&o, *q);
    o += ",\"reason\":\"bad_path\",\"message\":";
    AppendJsonString(&o, message);
    o += "}\n";
    std::fputs(o.c_str(), stdout);
  } else {
    std::printf("400 Bad Request (bad_path): %s\n", message.c_str());
  }
  *exit = kUserError;
  return false;
}

// The gateway's own answer when no route takes the request
// (proxy/admission.cc): status, x-hms-reason, message.
int ExplainNoRoute(const ExplainQuery& q, const route::Match& m) {
  const bool not_found = m.kind == route::MatchKind::kNotFound;
  const std::string reason = not_found ? "no_route" : "method_not_allowed";
  const std::string message = not_found ? "no route for " + q.method + " " + q.path
                                        : "method " + q.method + " not allowed here";
  if (q.json) {
    std::string o = "{\"status\":" + std::string(not_found ? "404" : "405") + ",";
    AppendQueryJson(&o, q);
    o += ",\"reason\":";
    AppendJsonString(&o, reason);
    o += ",\"message\":";
    AppendJsonString(&o, message);
    if (!not_found) {
      o += ",\"allow\":";
      AppendJsonString(&o, m.allow);
    }
    o += "}\n";
    std::fputs(o.c_str(), stdout);
  } else if (not_found) {
    std::printf("404 Not Found (%s): %s\n", reason.c_str(), message.c_str());
  } else {
    std::printf("405 Method Not Allowed (%s): %s\nAllow: %.*s\n", reason.c_str(), message.c_str(),
                static_cast<int>(m.allow.size()), m.allow.data());
  }
  return kUserError;
}

// The gateway whose stamps explain reports: its config and mesh config.
struct ExplainGateway {
  std::string path;      // "" = the embedded defaults
  std::string identity;  // its mesh identity (mtls.cert's URI SAN); "" without mtls
  config::GatewayConfig gateway;
  config::MeshConfig mesh;
};

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && v[0] != '\0' ? v : fallback;
}

// The URI SAN of the first certificate of a PEM file ("" when unreadable).
// PEM is base64 between its armour lines; the JWT decoder reads base64url,
// which differs in two letters and the padding.
std::string PemIdentity(const std::string& path) {
  Result<std::string> read = config::ReadConfigFile(path);
  if (!read) return "";
  const std::string& text = read.value();
  const std::string begin = "-----BEGIN CERTIFICATE-----";
  const size_t b = text.find(begin);
  const size_t e = b == std::string::npos ? b : text.find("-----END", b + begin.size());
  if (e == std::string::npos) return "";
  std::string b64;
  for (char c : text.substr(b + begin.size(), e - b - begin.size())) {
    if (c == '+')
      b64 += '-';
    else if (c == '/')
      b64 += '_';
    else if (std::isalnum(static_cast<unsigned char>(c)) != 0)
      b64 += c;
  }
  std::string der(auth::Base64UrlDecodedSize(b64.size()), '\0');
  const int64_t n = auth::DecodeBase64Url(b64, reinterpret_cast<uint8_t*>(der.data()), der.size());
  if (n <= 0) return "";
  return tls::UriSan(reinterpret_cast<const unsigned char*>(der.data()), static_cast<size_t>(n));
}

// From --config, else $HMS_GATEWAY_CONFIG, else $HMS_CONFIG (what `token`
// reads), else the embedded defaults; with its mesh file, as the gateway
// loads them at start (hms_gateway.cc LoadStartConfig), short of the checks
// against this machine, which say nothing about routes.
Result<ExplainGateway> LoadExplainGateway(const std::string& flag) {
  ExplainGateway g;
  g.path = !flag.empty() ? flag : EnvOr("HMS_GATEWAY_CONFIG", EnvOr("HMS_CONFIG", ""));
  if (g.path.empty()) {
    g.gateway = config::DefaultGatewayConfig();
    return g;
  }
  Result<config::GatewayConfig> c = config::LoadGatewayConfig(g.path);
  if (!c) return c.error();
  g.gateway = std::move(c.value());
  if (g.gateway.role == "sidecar") {
    return ConfigError(config::WhereIs(g.gateway, "role") +
                       ": role: sidecar: explain answers for a gateway (a sidecar sends "
                       "what reaches its inbound listener to its own service)");
  }
  if (!g.gateway.mesh.empty()) {
    Result<config::MeshConfig> m = config::LoadMeshConfig(g.gateway.mesh);
    if (!m) return ConfigError(config::WhereIs(g.gateway, "mesh") + ": mesh: " + m.error().message);
    g.mesh = std::move(m.value());
  }
  if (g.gateway.mtls) g.identity = PemIdentity(g.gateway.mtls->cert);
  return g;
}

// The route's JWT stamp as this gateway applies it, and why.
std::string AuthText(const config::Route& r, const ExplainGateway& g) {
  std::string jwt;
  if (const std::optional<config::JwtConfig>& j = g.gateway.jwt) {
    jwt = j->jwks.empty() ? "HS256 key " + j->hs256_secret_file : "JWKS " + j->jwks;
    if (!j->issuer.empty()) jwt += ", issuer " + j->issuer;
    if (!j->audience.empty()) jwt += ", audience " + j->audience;
  }
  switch (r.auth_mode) {
    case config::AuthMode::kRequired:
      return "required: no valid token, 401 (" + jwt + ")";
    case config::AuthMode::kOptional:
      return "optional: a token sent is checked (" + jwt + ")";
    case config::AuthMode::kNone:
      break;
  }
  if (g.gateway.jwt) return "none: the route opens itself (auth: none)";
  return g.path.empty() ? "none: explained for a gateway without a jwt section (--config "
                          "GATEWAY_YAML or HMS_GATEWAY_CONFIG names yours)"
                        : "none: " + g.path + " has no jwt section";
}

// How this gateway reaches the service's endpoints: mTLS with its identity,
// checking theirs, or plain.
std::string MtlsText(const config::Cluster& cl, const ExplainGateway& g) {
  bool any_mtls = false;
  for (const config::Endpoint& ep : cl.endpoints) any_mtls = any_mtls || ep.mtls;
  if (!g.gateway.mtls) {
    return any_mtls ? "none: no mtls section, so its mtls:// endpoints answer 502 no_mesh_identity"
                    : "none: plain connections (no mtls section)";
  }
  const std::string me =
      g.identity.empty() ? "the identity in " + g.gateway.mtls->cert : g.identity;
  return "calls mtls:// endpoints as " + me + "; they must present " + cl.identity +
         (any_mtls ? "" : " (no endpoint of this service is mtls://)");
}

std::string AllowFromText(const config::Cluster& cl) {
  if (cl.allow_from.empty()) return "any identity the mesh CA issued (checked by its sidecars)";
  std::string out;
  for (const std::string& a : cl.allow_from) out += (out.empty() ? "" : ", ") + a;
  return out + " (checked by its sidecars)";
}

// A WebSocket tunnel's idle timeout on this route (docs/engine.md "WebSocket").
uint32_t WebSocketIdleMs(const config::Route& r, const ExplainGateway& g) {
  return r.websocket_idle_ms != 0 ? r.websocket_idle_ms : g.gateway.idle_timeout_ms;
}

// The route that takes the request, its parameters, policies and endpoints, as JSON.
void PrintExplainJson(const ExplainQuery& q, const route::Match& m, const config::Route& r,
                      const config::Cluster& cl, const ExplainGateway& g) {
  std::string o = "{\"status\":200,";
  AppendQueryJson(&o, q);
  o += ",\"gateway\":";
  AppendJsonString(&o, g.path);
  o += ",\"route\":{\"service\":";
  AppendJsonString(&o, cl.name);
  o += ",\"template\":";
  AppendJsonString(&o, r.path_template);
  o += ",\"methods\":";
  AppendJsonString(&o, r.methods_text);
  o += ",\"host\":";
  AppendJsonString(&o, r.host);
  o += ",\"where\":";
  AppendJsonString(&o, r.where);
  o += "},\"params\":{";
  for (int i = 0; i < m.param_count; ++i) {
    if (i > 0) o += ",";
    AppendJsonString(&o, m.params[i].name);
    o += ":";
    AppendJsonString(&o, m.params[i].value);
  }
  o += "},\"protocol\":";
  AppendJsonString(&o, config::UpstreamProtocolName(cl.protocol));
  // Liveness PINGs are an h2c/h2 connection's: none for http1, an interval
  // of 0 for `off`.
  o += ",\"connection_keepalive\":";
  o += cl.protocol == config::UpstreamProtocol::kHttp1
           ? std::string("null")
           : "{\"interval_ms\":" + std::to_string(cl.connection_keepalive.interval_ms) +
                 ",\"timeout_ms\":" + std::to_string(cl.connection_keepalive.timeout_ms) + "}";
  o += ",\"policies\":{\"timeout_ms\":" + std::to_string(r.timeout_ms) +
       ",\"retries\":" + std::to_string(cl.retries) + ",\"retry_on\":";
  AppendJsonStrings(&o, config::RetryOnNames(cl.retry_on));
  o += ",\"breaker\":{\"failures\":" + std::to_string(cl.breaker.failures) +
       ",\"open_for_ms\":" + std::to_string(cl.breaker.open_for_ms) + "},\"rate_limit\":";
  AppendRateJson(&o, r.rate_limit);
  o += ",\"auth\":";
  AppendJsonString(&o, r.auth);
  o += ",\"require\":{";
  for (size_t i = 0; i < r.require.size(); ++i) {
    if (i > 0) o += ",";
    AppendJsonString(&o, r.require[i].first);
    o += ":";
    AppendJsonString(&o, r.require[i].second);
  }
  o += "},\"mtls\":{\"identity\":";
  AppendJsonString(&o, g.gateway.mtls ? g.identity : "");
  o += ",\"upstream_identity\":";
  AppendJsonString(&o, cl.identity);
  o += ",\"allow_from\":";
  AppendJsonStrings(&o, cl.allow_from);
  o += "},\"websocket\":{\"enabled\":";
  o += r.websocket ? "true" : "false";
  o += ",\"idle_timeout_ms\":" + std::to_string(WebSocketIdleMs(r, g)) + "}},\"endpoints\":[";
  for (size_t i = 0; i < cl.endpoints.size(); ++i) {
    if (i > 0) o += ",";
    o += "{\"address\":";
    AppendJsonString(&o, cl.endpoints[i].address);
    o += ",\"resolved\":";
    AppendJsonString(&o, ResolvedText(cl.endpoints[i]));
    o += "}";
  }
  o += "]}\n";
  std::fputs(o.c_str(), stdout);
}

// The same, for a person.
void PrintExplainText(const ExplainQuery& q, const route::Match& m, const config::Route& r,
                      const config::Cluster& cl, const ExplainGateway& g) {
  std::printf("%s %s%s%s → %s\n", q.method.c_str(), q.path.c_str(), q.host.empty() ? "" : " host ",
              q.host.c_str(), cl.name.c_str());
  std::printf("gateway     %s\n", g.path.empty() ? "embedded defaults" : g.path.c_str());
  std::printf("route       %s %s%s%s\n", r.methods_text.c_str(), r.path_template.c_str(),
              r.host.empty() ? "" : " host ", r.host.c_str());
  std::printf("where       %s\n", r.where.c_str());
  std::string params;
  for (int i = 0; i < m.param_count; ++i) {
    params +=
        (i > 0 ? ", " : "") + std::string(m.params[i].name) + "=" + std::string(m.params[i].value);
  }
  std::printf("params      %s\n", params.empty() ? "none" : params.c_str());
  std::printf("protocol    %s", std::string(config::UpstreamProtocolName(cl.protocol)).c_str());
  if (cl.protocol != config::UpstreamProtocol::kHttp1) {
    std::printf(", connection_keepalive %s", KeepaliveText(cl.connection_keepalive).c_str());
  }
  std::printf("\n");
  std::printf("timeout     %s\n", FormatMs(r.timeout_ms).c_str());
  std::string retry_on;
  for (const std::string& t : config::RetryOnNames(cl.retry_on)) {
    retry_on += (retry_on.empty() ? "" : ", ") + t;
  }
  std::printf("retries     %u, on %s\n", cl.retries, retry_on.c_str());
  if (cl.breaker.failures == 0) {
    std::printf("breaker     off\n");
  } else {
    std::printf("breaker     opens after %u failures, for %s\n", cl.breaker.failures,
                FormatMs(cl.breaker.open_for_ms).c_str());
  }
  if (r.rate_limit && r.rate_limit->rate_per_sec_x1000 != 0) {
    std::printf("rate_limit  %s (bucket of %u, one per %s)\n", r.rate_limit->text.c_str(),
                r.rate_limit->burst,
                r.rate_limit->per.empty() ? "route" : r.rate_limit->per.c_str());
  } else {
    std::printf("rate_limit  none\n");
  }
  std::printf("auth        %s\n", AuthText(r, g).c_str());
  std::printf("require     %s\n", RequireText(r.require).c_str());
  std::printf("mtls        %s\n", MtlsText(cl, g).c_str());
  std::printf("allow_from  %s\n", AllowFromText(cl).c_str());
  if (r.websocket) {
    std::printf("websocket   on: an upgrade becomes a tunnel, closed after %s without a byte\n",
                FormatMs(WebSocketIdleMs(r, g)).c_str());
  } else {
    std::printf("websocket   off: an upgrade is refused 403 websocket_not_enabled\n");
  }
  if (cl.endpoints.empty()) {
    std::printf("endpoints   none: the gateway answers 503 no_endpoints\n");
    return;
  }
  // proxy/pool.cc picks the first endpoint round robin per core and moves to the
  // next one after a failed connect: this is the order from the first pick.
  std::printf("endpoints   tried in this order (the first one rotates per request)\n");
  for (size_t i = 0; i < cl.endpoints.size(); ++i) {
    const std::string resolved = ResolvedText(cl.endpoints[i]);
    if (resolved == cl.endpoints[i].address) {
      std::printf("  %zu. %s\n", i + 1, resolved.c_str());
    } else {
      std::printf("  %zu. %s (%s)\n", i + 1, cl.endpoints[i].address.c_str(), resolved.c_str());
    }
  }
}

int Explain(const std::string& uri, const std::vector<std::string>& args) {
  if (IsHelp(args)) return std::fputs(kExplainHelp, stdout), kOk;
  ExplainQuery q;
  if (int exit = kOk; !ParseExplain(args, &q, &exit)) return exit;
  Result<ExplainGateway> g = LoadExplainGateway(q.config);
  if (!g) return Fail(g.error().message);
  // The store that gateway reads: --store, else its config's, else the default.
  Result<std::unique_ptr<control::Store>> store =
      Open(uri.empty() ? g->gateway.store : uri, Access::kRead);
  if (!store) return Fail(store.error().message);
  Result<std::vector<control::StoredService>> list = (*store)->List();
  if (!list) return Fail(list.error().message);
  // As the gateway reads the store: a service that no longer loads is
  // skipped, the others still serve; added endpoints follow the file's.
  std::vector<std::string> problems;
  const std::vector<config::ServiceConfig> services =
      control::LoadStoredServices(list.value(), &problems);
  for (const std::string& p : problems) {
    std::fprintf(stderr, "hms-api: warning: skipping service %s (as the gateway would)\n",
                 p.c_str());
  }
  config::Interner endpoint_ids, route_keys;
  Result<std::unique_ptr<config::Snapshot>> compiled =
      config::CompileSnapshot(g->gateway, g->mesh, services, 1, &endpoint_ids, &route_keys);
  if (!compiled) {
    return Fail("the store's services do not compile (a gateway keeps its last good config): " +
                compiled.error().message);
  }
  const config::Snapshot& snap = **compiled;
  const route::Match m = snap.table.Find(q.host, q.method, q.path);
  if (m.kind != route::MatchKind::kFound) return ExplainNoRoute(q, m);
  const config::Route& r = snap.routes[m.target];
  const config::Cluster& cl = snap.clusters[r.cluster];
  if (q.json) {
    PrintExplainJson(q, m, r, cl, *g);
  } else {
    PrintExplainText(q, m, r, cl, *g);
  }
  return kOk;
}

// --interval: "2", "0.5" (seconds) or a config duration ("500ms", "2s").
std::optional<uint64_t> ParseIntervalMs(const std::string& text) {
  char* end = nullptr;
  errno = 0;
  double seconds = std::strtod(text.c_str(), &end);
  if (!text.empty() && end == text.c_str() + text.size() && errno == 0) {
    if (!(seconds >= 0 && seconds <= 3600)) return std::nullopt;
    return static_cast<uint64_t>(seconds * 1000 + 0.5);
  }
  std::optional<uint64_t> ms = config::ParseDurationMs(text);
  if (!ms || *ms > 3600 * 1000) return std::nullopt;
  return ms;
}

// One GET /status, parsed. Returns kOk, or kUserError after saying why.
struct StatusSample {
  std::string body;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  simdjson::dom::array cores, routes, breakers;
  int64_t snapshot = 0;
  int64_t clock_ms = -1;  // absent from gateways older than the field
};

// GET /status from the gateway's admin API into `body`; errors are printed.
int GetStatusBody(control::HttpClient& client, const std::string& admin, std::string* body) {
  auto r = client.Get("/status");
  if (!r.ok()) {
    std::fprintf(stderr, "hms-api: no gateway admin API at %s: %s\n", admin.c_str(),
                 r.error().message.c_str());
    return kUserError;
  }
  if (r->status != 200) {
    std::fprintf(stderr, "hms-api: %s answered %d to GET /status\n", admin.c_str(), r->status);
    return kUserError;
  }
  *body = std::move(r->body);
  return kOk;
}

int FetchStatus(control::HttpClient& client, const std::string& admin, StatusSample* s) {
  if (int rc = GetStatusBody(client, admin, &s->body); rc != kOk) return rc;
  if (s->parser.parse(s->body).get(s->doc) != simdjson::SUCCESS || s->doc["cores"].get(s->cores) ||
      s->doc["routes"].get(s->routes) || s->doc["breakers"].get(s->breakers) ||
      s->doc["snapshot"].get(s->snapshot)) {
    std::fprintf(stderr, "hms-api: %s sent a /status this version does not read\n", admin.c_str());
    return kUserError;
  }
  if (s->doc["clock_ms"].get(s->clock_ms) != simdjson::SUCCESS) s->clock_ms = -1;
  return kOk;
}

// Prints the tables of `hms-api status` from the sample `after`, with rates
// against `before` over `seconds` (0: no rates).
void PrintStatus(const std::string& admin, const StatusSample* before, const StatusSample* after,
                 double seconds) {
  // Fields of one row; a missing one reads as 0 or "".
  auto num = [](simdjson::dom::element e, const char* key) {
    int64_t v = 0;
    return e[key].get(v) == simdjson::SUCCESS ? static_cast<long long>(v) : 0LL;
  };
  auto str = [](simdjson::dom::element e, const char* key) {
    std::string_view v;
    return e[key].get(v) == simdjson::SUCCESS ? std::string(v) : std::string();
  };
  // A count's rate between the samples: "-" without a first sample, or when
  // the count went down (the gateway restarted in between).
  auto rate = [seconds](long long now, std::optional<long long> then) {
    if (seconds <= 0 || !then || now < *then) return std::string("-");
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", static_cast<double>(now - *then) / seconds);
    return std::string(buf);
  };
  std::map<long long, long long> core_before;
  std::map<std::string, std::pair<long long, long long>> route_before;  // service + route → counts
  auto route_key = [&str](simdjson::dom::element rt) {
    return str(rt, "service") + '\n' + str(rt, "route");
  };
  if (seconds > 0) {
    for (simdjson::dom::element c : before->cores) core_before[num(c, "core")] = num(c, "requests");
    for (simdjson::dom::element rt : before->routes) {
      route_before[route_key(rt)] = {num(rt, "requests"), num(rt, "errors_5xx")};
    }
  }
  if (std::string_view config; after->doc["config"].get(config) == simdjson::SUCCESS &&
                                config != "ok") {
    // The gateway serves its last good config: say why, and where the fix is.
    std::printf("config: %.*s\n  (hms-api list shows the store's problems and the commands that "
                "fix them)\n",
                static_cast<int>(config.size()), config.data());
  }
  if (simdjson::dom::element fleet; after->doc["fleet"].get(fleet) == simdjson::SUCCESS) {
    // Fleet-scope limits (docs/resilience.md "Fleet scope"): on Redis, or
    // on the fallback and why.
    std::printf("fleet limits: redis %s %s, fallback %s", str(fleet, "address").c_str(),
                str(fleet, "redis").c_str(), str(fleet, "fallback").c_str());
    if (std::string why = str(fleet, "reason"); !why.empty()) {
      std::printf(" in force on %lld cores: %s", num(fleet, "cores_on_fallback"), why.c_str());
    }
    std::printf("\n");
  }
  std::printf("gateway %s, config snapshot %lld", admin.c_str(),
              static_cast<long long>(after->snapshot));
  if (seconds > 0) {
    std::printf(", rates over %.1f s\n\n", seconds);
  } else {
    std::printf(", no rates (--interval 0)\n\n");
  }
  std::printf("%-6s %12s %12s %9s %9s\n", "CORE", "CONNECTIONS", "REQUESTS", "REQ/S", "SNAPSHOT");
  for (simdjson::dom::element c : after->cores) {
    long long requests = num(c, "requests");
    std::optional<long long> then;
    if (auto it = core_before.find(num(c, "core")); it != core_before.end()) then = it->second;
    std::printf("%-6lld %12lld %12lld %9s %9lld\n", num(c, "core"), num(c, "connections"), requests,
                rate(requests, then).c_str(), num(c, "snapshot"));
  }
  std::printf("\n%-16s %-32s %10s %9s %8s %8s  %s\n", "SERVICE", "ROUTE", "REQUESTS", "REQ/S",
              "5XX", "5XX/S", "RATE LIMIT");
  for (simdjson::dom::element rt : after->routes) {
    std::string limit = str(rt, "rate_limit");
    int64_t left;
    if (!limit.empty() && rt["tokens_left"].get(left) == simdjson::SUCCESS) {
      limit += ", " + std::to_string(left) + " left";
    }
    long long requests = num(rt, "requests"), errors = num(rt, "errors_5xx");
    std::optional<long long> requests_then, errors_then;
    if (auto then = route_before.find(route_key(rt)); then != route_before.end()) {
      requests_then = then->second.first;
      errors_then = then->second.second;
    }
    std::printf("%-16s %-32s %10lld %9s %8lld %8s  %s\n", str(rt, "service").c_str(),
                str(rt, "route").c_str(), requests, rate(requests, requests_then).c_str(), errors,
                rate(errors, errors_then).c_str(), limit.empty() ? "-" : limit.c_str());
  }
  std::printf("\n%-16s %-10s %9s  %s\n", "SERVICE", "BREAKER", "FAILURES", "NEXT PROBE");
  for (simdjson::dom::element b : after->breakers) {
    std::string state = str(b, "state");
    std::string next = state == "closed" ? "-" : std::to_string(num(b, "next_probe_s")) + " s";
    std::printf("%-16s %-10s %9lld  %s\n", str(b, "service").c_str(), state.c_str(),
                num(b, "consecutive_failures"), next.c_str());
  }
}

// The fleet's records, parsed; a record that does not parse is skipped.
Result<std::vector<control::FleetMember>> ReadFleet(control::Store& store) {
  Result<std::vector<std::string>> records = store.ListMembers();
  if (!records) return records.error();
  std::vector<control::FleetMember> out;
  for (const std::string& r : *records) {
    if (auto m = control::ParseMemberRecord(r); m.ok()) out.push_back(std::move(*m));
  }
  return out;
}

std::string UtcTime(int64_t unix_s) {
  const time_t t = static_cast<time_t>(unix_s);
  tm parts;
  char buf[32];
  gmtime_r(&t, &parts);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return buf;
}

int Fleet(const std::string& uri, const std::vector<std::string>& args) {
  if (IsHelp(args)) return std::fputs(kFleetHelp, stdout), kOk;
  bool json = false;
  for (const std::string& a : args) {
    if (a != "--json") return Usage("unknown argument '" + a + "'", kFleetHelp);
    json = true;
  }
  Result<std::unique_ptr<control::Store>> store = Open(uri, Access::kRead);
  if (!store) return Fail(store.error().message);
  Result<std::vector<control::StoredService>> list = (*store)->List();
  if (!list) return Fail(list.error().message);
  Result<std::vector<control::FleetMember>> fleet = ReadFleet(**store);
  if (!fleet) return Fail(fleet.error().message);
  const std::string now = control::StoreFingerprint(*list);
  if (json) {
    std::string o = "{\"fingerprint\":" + JsonString(now) + ",\"members\":[";
    for (size_t i = 0; i < fleet->size(); ++i) {
      const control::FleetMember& m = (*fleet)[i];
      std::string rec = control::MemberRecord(m);
      rec.pop_back();
      o += (i ? "," : "") + rec + ",\"lags\":" + (m.fingerprint == now ? "false" : "true") + "}";
    }
    std::printf("%s]}\n", o.c_str());
    return kOk;
  }
  std::printf("%-24s %-8s %-12s %-8s %-21s %-20s %8s  %-8s %s\n", "MEMBER", "ROLE", "SERVICE",
              "VERSION", "ADMIN", "STARTED", "SNAPSHOT", "CONFIG", "STATE");
  for (const control::FleetMember& m : *fleet) {
    std::printf("%-24s %-8s %-12s %-8s %-21s %-20s %8lld  %-8s %s\n", m.id.c_str(), m.role.c_str(),
                m.service.empty() ? "-" : m.service.c_str(), m.version.c_str(),
                m.admin.empty() ? "-" : m.admin.c_str(), UtcTime(m.started_s).c_str(),
                static_cast<long long>(m.snapshot), m.fingerprint == now ? "current" : "LAGS",
                m.state.c_str());
  }
  std::printf("\n%zu member%s on %s\n", fleet->size(), fleet->size() == 1 ? "" : "s",
              (*store)->Uri().c_str());
  return kOk;
}

// The requests a /status sample counts, over every core.
long long SampleRequests(const StatusSample& s) {
  long long n = 0;
  for (simdjson::dom::element c : s.cores) {
    int64_t v = 0;
    if (c["requests"].get(v) == simdjson::SUCCESS) n += v;
  }
  return n;
}

// `hms-api status --all`: two samples of every member's /status, `interval_ms`
// apart; each member's request rate on its own clock, and the sums.
int StatusAll(const std::string& uri, uint64_t interval_ms, bool json) {
  Result<std::unique_ptr<control::Store>> store = Open(uri, Access::kRead);
  if (!store) return Fail(store.error().message);
  Result<std::vector<control::FleetMember>> fleet = ReadFleet(**store);
  if (!fleet) return Fail(fleet.error().message);
  struct Row {
    const control::FleetMember* member;
    StatusSample before, after;
    bool ok = false;
  };
  std::vector<std::unique_ptr<Row>> rows;
  for (const control::FleetMember& m : *fleet) {
    const std::optional<config::HostPort> hp = config::ParseHostPort(m.admin);
    if (!hp) continue;  // no admin API: nothing to ask
    auto row = std::make_unique<Row>();
    row->member = &m;
    control::HttpClient client({control::HttpTarget{hp->host, hp->port}}, 3000);
    row->ok = FetchStatus(client, m.admin, &row->before) == kOk;
    rows.push_back(std::move(row));
  }
  timespec pause{static_cast<time_t>(interval_ms / 1000),
                 static_cast<long>(interval_ms % 1000) * 1'000'000};
  while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {
  }
  long long total = 0;
  double total_rate = 0;
  std::string o = "{\"members\":[";
  if (!json) std::printf("%-24s %-21s %12s %10s\n", "MEMBER", "ADMIN", "REQUESTS", "REQ/S");
  for (size_t i = 0; i < rows.size(); ++i) {
    Row& r = *rows[i];
    const control::HttpTarget target{config::ParseHostPort(r.member->admin)->host,
                                     config::ParseHostPort(r.member->admin)->port};
    control::HttpClient client({target}, 3000);
    r.ok = r.ok && FetchStatus(client, r.member->admin, &r.after) == kOk;
    const long long n = r.ok ? SampleRequests(r.after) : 0;
    const double seconds = r.ok && r.after.clock_ms > r.before.clock_ms
                               ? static_cast<double>(r.after.clock_ms - r.before.clock_ms) / 1000
                               : 0;
    const double rate =
        seconds > 0 ? static_cast<double>(n - SampleRequests(r.before)) / seconds : 0;
    total += n;
    total_rate += rate;
    char line[160];
    std::snprintf(line, sizeof line,
                  "{\"id\":%s,\"admin\":%s,\"ok\":%s,\"requests\":%lld,\"req_per_s\":%.1f}",
                  JsonString(r.member->id).c_str(), JsonString(r.member->admin).c_str(),
                  r.ok ? "true" : "false", n, rate);
    o += (i ? "," : "") + std::string(line);
    if (!json) {
      std::printf("%-24s %-21s %12s %10s\n", r.member->id.c_str(), r.member->admin.c_str(),
                  r.ok ? std::to_string(n).c_str() : "-",
                  r.ok ? std::to_string(std::llround(rate)).c_str() : "unreachable");
    }
  }
  if (json) {
    std::printf("%s],\"requests\":%lld,\"req_per_s\":%.1f}\n", o.c_str(), total, total_rate);
  } else {
    const std::string count = std::to_string(rows.size()) + " members";
    std::printf("%-24s %-21s %12lld %10.1f\n", "fleet", count.c_str(), total, total_rate);
  }
  return kOk;
}

int Status(const std::string& uri, const std::vector<std::string>& args) {
  const char* env = std::getenv("HMS_ADMIN");
  std::string admin = env != nullptr && env[0] != '\0' ? env : "127.0.0.1:9901";
  bool json = false;
  bool all = false;
  uint64_t interval_ms = 1000;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--help" || args[i] == "-h") {
      std::fputs(kStatusHelp, stdout);
      return kOk;
    }
    if (args[i] == "--json") {
      json = true;
    } else if (args[i] == "--all") {
      all = true;
    } else if (args[i] == "--admin" && i + 1 < args.size()) {
      admin = args[++i];
    } else if (args[i] == "--interval" && i + 1 < args.size()) {
      std::optional<uint64_t> ms = ParseIntervalMs(args[++i]);
      if (!ms) {
        return Usage("--interval needs seconds from 0 to 3600 (\"1\", \"0.5\", \"500ms\")",
                     kStatusHelp);
      }
      interval_ms = *ms;
    } else {
      return Usage("unknown argument '" + args[i] + "'", kStatusHelp);
    }
  }
  if (all) return StatusAll(uri, std::max<uint64_t>(interval_ms, 100), json);
  const std::optional<config::HostPort> hp = config::ParseHostPort(admin);
  if (!hp) return Usage("--admin needs HOST:PORT", kStatusHelp);
  control::HttpClient client({control::HttpTarget{hp->host, hp->port}}, 3000);
  if (json) {
    std::string body;
    if (int rc = GetStatusBody(client, admin, &body); rc != kOk) return rc;
    std::fputs(body.c_str(), stdout);
    return kOk;
  }
  // Rates need two samples: the counts now and `interval` later, divided by
  // the time between them on the gateway's clock (the wall clock here when
  // the gateway does not say).
  auto first = std::make_unique<StatusSample>();
  if (int rc = FetchStatus(client, admin, first.get()); rc != kOk) return rc;
  const int64_t wall_first = hms::core::NowMs();
  const StatusSample* before = first.get();
  const StatusSample* after = first.get();
  std::unique_ptr<StatusSample> second;
  double seconds = 0;  // between the samples; 0: one sample, no rates
  if (interval_ms > 0) {
    timespec pause{static_cast<time_t>(interval_ms / 1000),
                   static_cast<long>(interval_ms % 1000) * 1'000'000};
    while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {
    }
    second = std::make_unique<StatusSample>();
    if (int rc = FetchStatus(client, admin, second.get()); rc != kOk) return rc;
    const int64_t wall_second = hms::core::NowMs();
    after = second.get();
    seconds = before->clock_ms >= 0 && after->clock_ms > before->clock_ms
                  ? static_cast<double>(after->clock_ms - before->clock_ms) / 1000
                  : static_cast<double>(std::max<int64_t>(wall_second - wall_first, 1)) / 1000;
  }
  PrintStatus(admin, before, after, seconds);
  return kOk;
}

int Main(int argc, char** argv) {
  std::string uri;
  int i = 1;
  for (; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kProgramHelp, stdout);
      return kOk;
    }
    if (a == "--version") {
      std::printf("hms-api %s\n", HMS_VERSION);
      return kOk;
    }
    if (a == "--store") {
      if (i + 1 >= argc) return Usage("--store needs a URI", kProgramHelp);
      uri = argv[++i];
    } else if (a.starts_with("--store=")) {
      uri = a.substr(8);
    } else if (a.starts_with("-")) {
      return Usage("unknown option '" + a + "'", kProgramHelp);
    } else {
      break;
    }
  }
  if (i >= argc) return Usage("no command given", kProgramHelp);
  const std::string command = argv[i];
  const std::vector<std::string> args(argv + i + 1, argv + argc);
  if (command == "register") return Register(uri, args);
  if (command == "deregister") return Deregister(uri, args);
  if (command == "list") return List(uri, args);
  if (command == "show") return Show(uri, args);
  if (command == "endpoints") return Endpoints(uri, args);
  if (command == "explain") return Explain(uri, args);
  if (command == "status") return Status(uri, args);
  if (command == "fleet") return Fleet(uri, args);
  if (command == "token") return TokenCommand(args);
  if (command == "certs") return CertsCommand(args);
  if (command == "help") {
    std::fputs(kProgramHelp, stdout);
    return kOk;
  }
  return Usage("unknown command '" + command + "'", kProgramHelp);
}

}  // namespace
}  // namespace hms

int main(int argc, char** argv) { return hms::Main(argc, argv); }
