// Route files (DESIGN §3): one service, its routes and its policies.
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <optional>
#include <string>
#include <thread>

#include "hms/config/config.h"
#include "hms/h2/grpc.h"
#include "hms/policy/retry.h"
#include "hms/http/char_class.h"
#include "hms/http/path.h"
#include "hms/route/route_table.h"
#include "yaml_reader.h"

namespace hms::config {
namespace {

using internal::ConfigFailure;
using internal::Ctx;
using internal::Field;
using internal::Reader;

constexpr uint32_t kMaxRetries = 10;
constexpr uint64_t kMaxTimeoutMs = 24ull * 3600 * 1000;

using http::IsTokenChar;

void CheckMethod(const Reader& r, int line, const std::string& ctx, const std::string& m) {
  if (m.empty()) r.Fail(line, ctx, "empty method");
  if (m.find(',') != std::string::npos) {
    r.Fail(line, ctx,
           "one method per short-form route; use the long form with methods: [...] for several");
  }
  for (char c : m) {
    if (!IsTokenChar(c)) r.Fail(line, ctx, "method '" + m + "' is not an HTTP token");
  }
  std::string upper = m;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (upper != m) r.Fail(line, ctx, "method '" + m + "' must be upper-case (" + upper + ")");
}

void CheckTemplate(const Reader& r, int line, const std::string& ctx, const std::string& path) {
  if (path.empty() || path.front() != '/') {
    r.Fail(line, ctx, "path '" + path + "' must start with '/'");
  }
  Result<bool> ok = route::ValidateTemplate(path);
  if (!ok) r.Fail(line, ctx, ok.error().message);
  // Requests are matched after normalization (docs/engine.md "The canonical
  // path"), so a template in another spelling could never match, or would
  // match a path the upstream reads differently: it must be canonical under
  // the strict rules whatever a gateway relaxes.
  std::string canonical(path.size(), '\0');
  http::PathError e = http::PathError::kNone;
  const int n = http::NormalizePath(path, http::PathOptions{}, canonical.data(), &e);
  if (n < 0) {
    r.Fail(line, ctx,
           "path '" + path + "' is refused (" + std::string(http::PathErrorRule(e)) + "): " +
               std::string(http::PathErrorText(e)));
  }
  canonical.resize(static_cast<size_t>(n));
  if (canonical != path) {
    r.Fail(line, ctx,
           "path '" + path + "' is not in canonical form (requests are matched after "
           "normalization, which spells it '" + canonical + "'); write '" + canonical + "'");
  }
}

RateLimit ReadRateLimit(const Reader& r, const Field& f, const std::string& parent) {
  const std::string ctx = Ctx(parent, f.key);
  if (f.value.IsScalar()) {
    std::optional<RateLimit> rl = ParseRateText(f.value.Scalar());
    if (!rl) {
      r.Fail(f.line, ctx,
             "'" + f.value.Scalar() +
                 "' is not a rate (write \"20 req/min\", \"100 req/s\" or "
                 "\"5 req/h\")");
    }
    return *rl;
  }
  std::optional<RateLimit> rl;
  std::optional<uint32_t> burst;
  std::string per;
  bool fleet = false;
  int scope_line = 0;
  for (const Field& g : r.Fields(f.value, ctx, {"rate", "burst", "per", "scope"})) {
    if (g.key == "rate") {
      const std::string text = r.String(g, ctx);
      rl = ParseRateText(text);
      if (!rl) {
        r.Fail(g.line, Ctx(ctx, "rate"),
               "'" + text + "' is not a rate (write \"20 req/min\", \"100 req/s\" or \"5 req/h\")");
      }
    } else if (g.key == "burst") {
      burst = static_cast<uint32_t>(r.Unsigned(g, ctx, 1, 0xffffffffu));
    } else if (g.key == "scope") {
      const std::string scope = r.String(g, ctx);
      if (scope != "gateway" && scope != "fleet") {
        r.Fail(g.line, Ctx(ctx, "scope"), "'" + scope + "' must be gateway or fleet");
      }
      fleet = scope == "fleet";
      scope_line = g.line;
    } else {
      per = r.String(g, ctx);
      const bool header = per.starts_with("header:") && per.size() > 7 &&
                          std::all_of(per.begin() + 7, per.end(), IsTokenChar);
      if (per != "client_ip" && per != "jwt_sub" && !header) {
        r.Fail(g.line, Ctx(ctx, "per"), "'" + per + "' must be client_ip, jwt_sub or header:NAME");
      }
    }
  }
  if (!rl) r.Fail(f.line, ctx, "missing 'rate' (e.g. rate: \"100 req/s\")");
  // A fleet bucket lives in Redis, one key per route; one per client key
  // would be a Redis key per client with a lease on every core.
  if (fleet && !per.empty()) {
    r.Fail(scope_line, Ctx(ctx, "scope"),
           "fleet limits one bucket per route: drop 'per' or use scope: gateway");
  }
  if (burst) rl->burst = *burst;
  rl->per = per;
  rl->fleet = fleet;
  if (burst) rl->text += ", burst " + std::to_string(*burst);
  if (!per.empty()) rl->text += ", per " + per;
  if (fleet) rl->text += ", scope fleet";
  return *rl;
}

BreakerConfig ReadBreaker(const Reader& r, const Field& f, const std::string& parent) {
  const std::string ctx = Ctx(parent, f.key);
  BreakerConfig b;
  if (f.value.IsScalar() && f.value.Scalar() == "off") {
    b.failures = 0;  // no breaker for this service
    return b;
  }
  for (const Field& g : r.Fields(f.value, ctx, {"failures", "open_for"})) {
    if (g.key == "failures") {
      b.failures = static_cast<uint32_t>(r.Unsigned(g, ctx, 1, 1'000'000));
    } else {
      b.open_for_ms = static_cast<uint32_t>(r.DurationMs(g, ctx, 1, kMaxTimeoutMs));
    }
  }
  return b;
}

HealthCheckConfig ReadHealth(const Reader& r, const Field& f) {
  const std::string ctx = f.key;
  HealthCheckConfig h;
  bool have_path = false;
  for (const Field& g : r.Fields(f.value, ctx, {"path", "interval", "timeout", "unhealthy", "healthy"})) {
    if (g.key == "path") {
      h.path = r.String(g, ctx);
      have_path = true;
      if (h.path.empty() || h.path[0] != '/' ||
          std::any_of(h.path.begin(), h.path.end(),
                      [](char c) { return static_cast<unsigned char>(c) <= ' ' || c == 0x7f; })) {
        r.Fail(g.line, ctx + ".path", "'" + h.path + "' must start with '/' and hold no spaces");
      }
    } else if (g.key == "interval") {
      h.interval_ms = static_cast<uint32_t>(r.DurationMs(g, ctx, 100, kMaxTimeoutMs));
    } else if (g.key == "timeout") {
      h.timeout_ms = static_cast<uint32_t>(r.DurationMs(g, ctx, 1, kMaxTimeoutMs));
    } else if (g.key == "unhealthy") {
      h.unhealthy = static_cast<uint32_t>(r.Unsigned(g, ctx, 1, 100));
    } else {
      h.healthy = static_cast<uint32_t>(r.Unsigned(g, ctx, 1, 100));
    }
  }
  if (!have_path) r.Fail(f.line, ctx, "needs 'path' (what to GET, e.g. /healthz)");
  if (h.timeout_ms >= h.interval_ms) {
    r.Fail(f.line, ctx, "timeout must be shorter than interval");
  }
  return h;
}

RouteConfig ReadShortRoute(const Reader& r, const YAML::Node& item, const std::string& index_ctx) {
  const std::string text = item.Scalar();
  const int line = internal::LineOf(item);
  const std::string ctx = index_ctx + ": \"" + text + "\"";
  // Exactly "METHOD PATH", separated by whitespace.
  std::vector<std::string> parts;
  std::string cur;
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      if (!cur.empty()) parts.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) parts.push_back(std::move(cur));
  if (parts.size() != 2) r.Fail(line, ctx, "expected 'METHOD /path', e.g. 'GET /sum/{a}/{b}'");
  RouteConfig rc;
  rc.line = line;
  CheckMethod(r, line, ctx, parts[0]);
  CheckTemplate(r, line, ctx, parts[1]);
  rc.methods.push_back(parts[0]);
  rc.path = parts[1];
  return rc;
}

RouteConfig ReadLongRoute(const Reader& r, const YAML::Node& item, const std::string& index_ctx) {
  RouteConfig rc;
  rc.line = internal::LineOf(item);
  const std::vector<Field> fields = r.Fields(
      item, index_ctx,
      {"path", "methods", "host", "timeout", "auth", "require", "rate_limit", "websocket",
       "websocket_idle_timeout"});
  const auto path =
      std::find_if(fields.begin(), fields.end(), [](const Field& f) { return f.key == "path"; });
  if (path == fields.end()) r.Fail(rc.line, index_ctx, "missing 'path'");
  rc.path = r.String(*path, index_ctx);
  CheckTemplate(r, path->line, index_ctx + ": \"" + rc.path + "\"", rc.path);
  for (const Field& f : fields) {
    if (f.key == "methods") {
      std::vector<std::string> methods;
      if (f.value.IsScalar()) {
        methods.push_back(f.value.Scalar());  // "methods: GET" reads as a list of one
      } else {
        methods = r.StringList(f, index_ctx);
      }
      if (methods.empty()) {
        r.Fail(f.line, Ctx(index_ctx, "methods"),
               "empty list; leave 'methods' out to accept any method");
      }
      for (const std::string& m : methods) {
        CheckMethod(r, f.line, Ctx(index_ctx, "methods"), m);
        if (std::count(methods.begin(), methods.end(), m) > 1) {
          r.Fail(f.line, Ctx(index_ctx, "methods"), "method " + m + " appears twice");
        }
      }
      rc.methods = std::move(methods);
    } else if (f.key == "host") {
      std::string host = r.String(f, index_ctx);
      for (char& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (!ParseHostPort(host + ":80")) {
        r.Fail(f.line, Ctx(index_ctx, "host"), "'" + host + "' is not a host name");
      }
      rc.host = std::move(host);
    } else if (f.key == "timeout") {
      rc.timeout_ms = static_cast<uint32_t>(r.DurationMs(f, index_ctx, 1, kMaxTimeoutMs));
    } else if (f.key == "auth") {
      rc.auth = r.String(f, index_ctx);
      if (rc.auth != "required" && rc.auth != "optional" && rc.auth != "none") {
        r.Fail(f.line, Ctx(index_ctx, "auth"),
               "'" + rc.auth + "' must be required, optional or none");
      }
    } else if (f.key == "require") {
      const std::string ctx = Ctx(index_ctx, "require");
      if (!f.value.IsMap()) r.Fail(f.line, ctx, "expected a map of claim: value");
      for (auto it = f.value.begin(); it != f.value.end(); ++it) {
        const int line = internal::LineOf(it->first);
        if (!it->first.IsScalar() || !it->second.IsScalar() || it->first.Scalar().empty()) {
          r.Fail(line, ctx, "expected claim: value with plain strings");
        }
        for (const auto& [claim, value] : rc.require) {
          if (claim == it->first.Scalar()) {
            r.Fail(line, ctx, "claim '" + claim + "' appears twice");
          }
        }
        rc.require.emplace_back(it->first.Scalar(), it->second.Scalar());
      }
    } else if (f.key == "rate_limit") {
      rc.rate_limit = std::make_shared<const RateLimit>(ReadRateLimit(r, f, index_ctx));
    } else if (f.key == "websocket") {
      rc.websocket = r.Bool(f, index_ctx);
    } else if (f.key == "websocket_idle_timeout") {
      rc.websocket_idle_ms = static_cast<uint32_t>(r.DurationMs(f, index_ctx, 1, kMaxTimeoutMs));
    }
  }
  // An upgrade is a GET (RFC 6455 §4.1): a websocket route that takes no GET
  // could never carry one.
  if (rc.websocket && !rc.methods.empty() &&
      std::find(rc.methods.begin(), rc.methods.end(), "GET") == rc.methods.end()) {
    r.Fail(rc.line, Ctx(index_ctx, "websocket"), "a websocket route must accept GET");
  }
  return rc;
}

// `grpc_retry_on`: gRPC status names (h2::ParseGrpcStatusName), each once.
uint32_t ReadGrpcRetryOn(const Reader& r, const Field& f) {
  const std::vector<std::string> names = r.StringList(f, "");
  if (names.empty()) r.Fail(f.line, "grpc_retry_on", "empty: omit the key for none");
  uint32_t bits = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string ctx = "grpc_retry_on[" + std::to_string(i) + "]";
    h2::GrpcStatus code;
    if (!h2::ParseGrpcStatusName(names[i], &code) || code == h2::GrpcStatus::kOk) {
      r.Fail(f.value[i], ctx, "'" + names[i] + "' is not a failing gRPC status (UNAVAILABLE, ...)");
    }
    const uint32_t bit = policy::GrpcRetryBit(static_cast<uint32_t>(code));
    if ((bits & bit) != 0) r.Fail(f.value[i], ctx, "'" + names[i] + "' appears twice");
    bits |= bit;
  }
  return bits;
}

// `connection_keepalive: off`, or `{interval, timeout}` (either may be left
// to its default).
KeepaliveConfig ReadKeepalive(const Reader& r, const Field& f) {
  const std::string ctx = f.key;
  KeepaliveConfig k;
  if (f.value.IsScalar() && f.value.Scalar() == "off") {
    k.interval_ms = 0;
    return k;
  }
  for (const Field& g : r.Fields(f.value, ctx, {"interval", "timeout"})) {
    // At least 100 ms: a PING is a frame each way on every connection, and
    // the timer wheel that waits for its ACK ticks every 5 ms (a shorter
    // timeout would be the tick's, and a busy peer's ACK late by one).
    if (g.key == "interval") {
      k.interval_ms = static_cast<uint32_t>(r.DurationMs(g, ctx, 100, kMaxTimeoutMs));
    } else {
      k.timeout_ms = static_cast<uint32_t>(r.DurationMs(g, ctx, 100, kMaxTimeoutMs));
    }
  }
  return k;
}

// h2 is HTTP/2 inside the mesh's mTLS (the only TLS the engine speaks toward
// upstreams): its endpoints are mtls://; h2c is plain TCP: none of them is.
void CheckProtocol(const Reader& r, const ServiceConfig& s, int line, int keepalive_line) {
  if (s.protocol.empty() || s.protocol == "http1") {
    // HTTP/1.1 has no PING: its pooled connections are checked by use.
    if (s.connection_keepalive) {
      r.Fail(keepalive_line, "connection_keepalive",
             "PINGs are HTTP/2's: the service needs protocol h2c or h2");
    }
    return;
  }
  const bool tls = s.protocol == "h2";
  for (const std::string& e : s.endpoints) {
    if (e.starts_with(kMtlsScheme) != tls) {
      r.Fail(line, "protocol",
             tls ? "h2 endpoints are mtls:// (HTTP/2 over the mesh's mTLS); '" + e + "' is not"
                 : "h2c is HTTP/2 over plain TCP; '" + e + "' is mtls:// (use protocol: h2)");
    }
  }
}

ServiceConfig ReadService(const Reader& r, const YAML::Node& doc) {
  ServiceConfig s;
  s.source = r.source();
  bool have_service = false;
  int protocol_line = 0;
  int keepalive_line = 0;
  for (const Field& f : r.Fields(doc, "",
                                 {"service", "routes", "rate_limit", "retries", "timeout",
                                  "per_try_timeout", "retry_on", "breaker", "load_balancing",
                                  "health", "endpoints", "allow_from", "protocol", "grpc_retry_on",
                                  "connection_keepalive"})) {
    if (f.key == "service") {
      s.service = r.String(f, "");
      s.line = f.line;
      have_service = true;
      if (!IsValidServiceName(s.service)) {
        r.Fail(f.line, "service",
               "'" + s.service +
                   "' is not a valid name (1-63 of a-z, 0-9 and '-', not starting or ending "
                   "with '-')");
      }
    } else if (f.key == "routes") {
      if (!f.value.IsSequence()) r.Fail(f.line, "routes", "expected a list of routes");
      for (size_t i = 0; i < f.value.size(); ++i) {
        const YAML::Node item = f.value[i];
        const std::string ctx = "routes[" + std::to_string(i) + "]";
        if (item.IsScalar()) {
          s.routes.push_back(ReadShortRoute(r, item, ctx));
        } else if (item.IsMap()) {
          s.routes.push_back(ReadLongRoute(r, item, ctx));
        } else {
          r.Fail(item, ctx, "expected 'METHOD /path' or a map with 'path'");
        }
      }
    } else if (f.key == "rate_limit") {
      s.rate_limit = ReadRateLimit(r, f, "");
    } else if (f.key == "retries") {
      s.retries = static_cast<uint32_t>(r.Unsigned(f, "", 0, kMaxRetries));
    } else if (f.key == "timeout") {
      s.timeout_ms = static_cast<uint32_t>(r.DurationMs(f, "", 1, kMaxTimeoutMs));
    } else if (f.key == "per_try_timeout") {
      s.per_try_timeout_ms = static_cast<uint32_t>(r.DurationMs(f, "", 1, kMaxTimeoutMs));
    } else if (f.key == "retry_on") {
      s.retry_on = r.RetryOn(f, "");
    } else if (f.key == "protocol") {
      s.protocol = r.String(f, "");
      if (s.protocol != "http1" && s.protocol != "h2c" && s.protocol != "h2") {
        r.Fail(f.line, "protocol", "'" + s.protocol + "' must be http1, h2c or h2");
      }
      protocol_line = f.line;
    } else if (f.key == "grpc_retry_on") {
      s.grpc_retry_on = ReadGrpcRetryOn(r, f);
    } else if (f.key == "connection_keepalive") {
      s.connection_keepalive = ReadKeepalive(r, f);
      keepalive_line = f.line;
    } else if (f.key == "load_balancing") {
      s.load_balancing = r.String(f, "");
      if (s.load_balancing != "round_robin" && s.load_balancing != "least_request") {
        r.Fail(f.line, "load_balancing",
               "'" + s.load_balancing + "' must be round_robin or least_request");
      }
    } else if (f.key == "health") {
      s.health = ReadHealth(r, f);
    } else if (f.key == "breaker") {
      s.breaker = ReadBreaker(r, f, "");
    } else if (f.key == "endpoints") {
      s.endpoints = r.StringList(f, "");
      for (size_t i = 0; i < s.endpoints.size(); ++i) {
        const std::string& e = s.endpoints[i];
        const int line = internal::LineOf(f.value[i]);
        const std::string ctx = "endpoints[" + std::to_string(i) + "]";
        if (!ParseEndpoint(e)) {
          r.Fail(line, ctx, "'" + e + "' is not [mtls://]host:port with a port 1..65535");
        }
        if (std::count(s.endpoints.begin(), s.endpoints.end(), e) > 1) {
          r.Fail(line, ctx, "'" + e + "' appears twice");
        }
      }
    } else if (f.key == "allow_from") {
      s.allow_from = r.StringList(f, "");
      for (size_t i = 0; i < s.allow_from.size(); ++i) {
        const std::string& id = s.allow_from[i];
        if (!IsValidServiceName(id) && !id.starts_with("spiffe://")) {
          r.Fail(internal::LineOf(f.value[i]), "allow_from[" + std::to_string(i) + "]",
                 "'" + id + "' is neither a service name nor a spiffe:// identity");
        }
      }
    }
  }
  if (!have_service) r.Fail(internal::LineOf(doc), "", "missing 'service' (the service's name)");
  CheckProtocol(r, s, protocol_line, keepalive_line);
  return s;
}

}  // namespace

Result<ServiceConfig> ParseServiceConfig(const std::string& text, const std::string& source) {
  try {
    const YAML::Node doc = internal::ParseDocument(text, source);
    return ReadService(Reader(source), doc);
  } catch (const ConfigFailure& f) {
    return ConfigError(f.message);
  } catch (const YAML::Exception& e) {
    return ConfigError(source + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
}

Result<ServiceConfig> LoadServiceConfig(const std::string& path) {
  Result<std::string> text = ReadConfigFile(path);
  if (!text) return text.error();
  return ParseServiceConfig(text.value(), path);
}

std::vector<Result<ServiceConfig>> ParseServiceConfigs(const std::vector<RouteFileText>& files) {
  // Below ~256 KiB of text (some 60 services of 100 routes) one thread is
  // done before more would have started.
  constexpr size_t kBytesPerThread = 256 << 10;
  constexpr unsigned kMaxThreads = 8;
  size_t bytes = 0;
  for (const RouteFileText& f : files) bytes += f.text->size();
  cpu_set_t cpus;
  const unsigned allowed =
      sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? static_cast<unsigned>(CPU_COUNT(&cpus)) : 1;
  const unsigned threads = static_cast<unsigned>(
      std::clamp<size_t>(std::min<size_t>(allowed, bytes / kBytesPerThread), 1, kMaxThreads));
  std::vector<std::optional<Result<ServiceConfig>>> slots(files.size());
  std::atomic<size_t> next{0};
  // Files are taken one at a time, so one large file does not leave the
  // other threads idle behind a fixed split.
  auto work = [&] {
    for (size_t i = next.fetch_add(1); i < files.size(); i = next.fetch_add(1)) {
      slots[i].emplace(ParseServiceConfig(*files[i].text, *files[i].source));
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  std::vector<Result<ServiceConfig>> out;
  out.reserve(files.size());
  for (std::optional<Result<ServiceConfig>>& r : slots) out.push_back(std::move(*r));
  return out;
}

}  // namespace hms::config
