// hms-api: the control plane's CLI (DESIGN §2). Validates route files and
// writes them to the store that every data plane watches.
//
// Exit status: 0 success, 1 a user error (bad file, unknown service, store
// failure), 2 a usage error (unknown command, missing argument).
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "hms/config/config.h"
#include "hms/config/snapshot.h"
#include "hms/control/store.h"

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
    "  register FILE...                      validate route files (YAML or JSON) and store them\n"
    "  deregister SERVICE                    remove a service and its endpoints\n"
    "  list [--json]                         registered services, routes and endpoints\n"
    "  show SERVICE                          a service's route file and endpoints\n"
    "  endpoints add|remove SERVICE HOST:PORT  static endpoints of a service\n"
    "\n"
    "options:\n"
    "  --store URI   the store: file:DIR (default: $HMS_STORE, else file:/var/lib/hms\n"
    "                when writable, else file:$HOME/.local/state/hms)\n"
    "  --help        this text; COMMAND --help describes one command\n"
    "  --version     the program's version\n";

constexpr char kRegisterHelp[] =
    "usage: hms-api register FILE...\n"
    "\n"
    "Validates every FILE (a route file, YAML or JSON), checks that its routes do\n"
    "not clash with the routes of the services already registered or with each\n"
    "other, then writes them all to the store. Nothing is written if any file is\n"
    "invalid; errors say file:line and why. Registering a service again replaces\n"
    "its route file and keeps its endpoints.\n";

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
    "or an address (IPv6 in brackets: [::1]:7001); PORT is 1..65535.\n";

int Usage(const std::string& message, const char* help) {
  std::fprintf(stderr, "hms-api: %s\n\n%s", message.c_str(), help);
  return kUsageError;
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "hms-api: %s\n", message.c_str());
  return kUserError;
}

bool IsHelp(const std::vector<std::string>& args) {
  for (const std::string& a : args) {
    if (a == "--help" || a == "-h") return true;
  }
  return false;
}

void AppendJson(std::string* out, const std::string& s) {
  out->push_back('"');
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(static_cast<char>(c));
    } else if (c == '\n') {
      *out += "\\n";
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      *out += buf;
    } else {
      out->push_back(static_cast<char>(c));
    }
  }
  out->push_back('"');
}

bool ReadFile(const std::string& path, std::string* text, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = path + ": cannot read: " + std::strerror(errno);
    return false;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  *text = ss.str();
  return true;
}

Result<std::unique_ptr<control::Store>> Open(const std::string& uri) {
  return control::OpenStore(uri.empty() ? control::DefaultStoreUri() : uri);
}

int Register(const std::string& uri, const std::vector<std::string>& args) {
  if (IsHelp(args)) return std::fputs(kRegisterHelp, stdout), kOk;
  if (args.empty()) return Usage("register needs at least one FILE", kRegisterHelp);
  for (const std::string& a : args) {
    if (a.starts_with("-")) return Usage("unknown option '" + a + "'", kRegisterHelp);
  }
  // Every file is read and checked, and every error reported, before the
  // store is touched.
  std::vector<config::ServiceConfig> parsed;
  std::vector<control::StoredService> batch;
  bool failed = false;
  for (const std::string& path : args) {
    std::string text, error;
    if (!ReadFile(path, &text, &error)) {
      std::fprintf(stderr, "hms-api: %s\n", error.c_str());
      failed = true;
      continue;
    }
    Result<config::ServiceConfig> s = config::ParseServiceConfig(text, path);
    if (!s) {
      std::fprintf(stderr, "hms-api: %s\n", s.error().message.c_str());
      failed = true;
      continue;
    }
    batch.push_back(control::StoredService{s->service, text, path, {}});
    parsed.push_back(std::move(s.value()));
  }
  if (failed) return Fail("nothing registered");

  Result<std::unique_ptr<control::Store>> store = Open(uri);
  if (!store) return Fail(store.error().message);
  Result<std::vector<control::StoredService>> existing = (*store)->List();
  if (!existing) return Fail(existing.error().message);

  // A trial snapshot of the store's services (minus the ones being replaced)
  // plus the new ones catches clashes across services and duplicate names.
  // Endpoints are left out: they are checked for syntax above, and a name
  // that only the gateways' resolver knows must not block a registration.
  std::vector<config::ServiceConfig> trial;
  for (const control::StoredService& stored : existing.value()) {
    bool replaced = false;
    for (const config::ServiceConfig& s : parsed) replaced = replaced || s.service == stored.name;
    if (replaced) continue;
    Result<config::ServiceConfig> s = config::ParseServiceConfig(
        stored.text, stored.source.empty() ? stored.name : stored.source);
    if (!s) {
      std::fprintf(stderr, "hms-api: warning: stored service %s no longer loads: %s\n",
                   stored.name.c_str(), s.error().message.c_str());
      continue;
    }
    trial.push_back(std::move(s.value()));
  }
  for (const config::ServiceConfig& s : parsed) trial.push_back(s);
  for (config::ServiceConfig& s : trial) s.endpoints.clear();
  config::Interner endpoint_ids, route_keys;
  Result<std::unique_ptr<config::Snapshot>> snap = config::CompileSnapshot(
      config::DefaultGatewayConfig(), config::MeshConfig{}, trial, 0, &endpoint_ids, &route_keys);
  if (!snap) {
    std::fprintf(stderr, "hms-api: %s\n", snap.error().message.c_str());
    return Fail("nothing registered");
  }

  Result<bool> ok = (*store)->Register(batch);
  if (!ok) return Fail(ok.error().message + "; nothing registered");
  for (const control::StoredService& s : batch) std::printf("✓ registered %s\n", s.name.c_str());
  return kOk;
}

int Deregister(const std::string& uri, const std::vector<std::string>& args) {
  if (IsHelp(args)) return std::fputs(kDeregisterHelp, stdout), kOk;
  if (args.size() != 1) return Usage("deregister needs exactly one SERVICE", kDeregisterHelp);
  Result<std::unique_ptr<control::Store>> store = Open(uri);
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
  Result<std::unique_ptr<control::Store>> store = Open(uri);
  if (!store) return Fail(store.error().message);
  Result<std::vector<control::StoredService>> list = (*store)->List();
  if (!list) return Fail(list.error().message);

  struct Row {
    const control::StoredService* stored;
    std::optional<config::ServiceConfig> parsed;
    std::string error;
  };
  std::vector<Row> rows;
  for (const control::StoredService& s : list.value()) {
    Result<config::ServiceConfig> p =
        config::ParseServiceConfig(s.text, s.source.empty() ? s.name : s.source);
    rows.push_back(
        Row{&s, p ? std::optional(p.value()) : std::nullopt, p ? "" : p.error().message});
  }

  if (json) {
    std::string o = "[";
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      if (i > 0) o += ",";
      o += "{\"service\":";
      AppendJson(&o, r.stored->name);
      o += ",\"source\":";
      AppendJson(&o, r.stored->source);
      o += ",\"routes\":[";
      if (r.parsed) {
        for (size_t j = 0; j < r.parsed->routes.size(); ++j) {
          const config::RouteConfig& rc = r.parsed->routes[j];
          if (j > 0) o += ",";
          o += "{\"path\":";
          AppendJson(&o, rc.path);
          o += ",\"methods\":[";
          for (size_t k = 0; k < rc.methods.size(); ++k) {
            if (k > 0) o += ",";
            AppendJson(&o, rc.methods[k]);
          }
          o += "],\"host\":";
          AppendJson(&o, rc.host);
          o += "}";
        }
      }
      o += "],\"endpoints\":[";
      const std::vector<std::string> eps = AllEndpoints(r.parsed ? &*r.parsed : nullptr, *r.stored);
      for (size_t k = 0; k < eps.size(); ++k) {
        if (k > 0) o += ",";
        AppendJson(&o, eps[k]);
      }
      o += "]";
      if (!r.error.empty()) {
        o += ",\"error\":";
        AppendJson(&o, r.error);
      }
      o += "}";
    }
    o += "]\n";
    std::fputs(o.c_str(), stdout);
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
  return kOk;
}

int Show(const std::string& uri, const std::vector<std::string>& args) {
  if (IsHelp(args)) return std::fputs(kShowHelp, stdout), kOk;
  if (args.size() != 1) return Usage("show needs exactly one SERVICE", kShowHelp);
  Result<std::unique_ptr<control::Store>> store = Open(uri);
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
  Result<std::unique_ptr<control::Store>> store = Open(uri);
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
  if (command == "help") {
    std::fputs(kProgramHelp, stdout);
    return kOk;
  }
  return Usage("unknown command '" + command + "'", kProgramHelp);
}

}  // namespace
}  // namespace hms

int main(int argc, char** argv) { return hms::Main(argc, argv); }
