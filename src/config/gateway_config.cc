// gateway.yaml and mesh-config.yaml (DESIGN §3).
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cstdlib>
#include <map>
#include <set>
#include <string>

#include "hms/common/address.h"
#include "hms/common/file_check.h"
#include "hms/config/config.h"
#include "yaml_reader.h"

namespace hms::config {
namespace {

using internal::ConfigFailure;
using internal::Ctx;
using internal::Field;
using internal::Reader;

constexpr uint64_t kMaxTimeoutMs = 24ull * 3600 * 1000;
constexpr uint32_t kMaxCores = 256;

bool IsPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

// The store URI's form, as control::OpenStore reads it; "" when it is one.
std::string StoreUriProblem(const std::string& uri) {
  if (uri.starts_with("file:")) {
    std::string dir = uri.substr(5);
    if (dir.starts_with("//")) dir.erase(0, 2);
    return dir.empty() ? "'" + uri + "' names no directory (file:DIR)" : "";
  }
  if (uri.starts_with("etcd://")) {
    return uri.size() > 7 ? "" : "'" + uri + "' names no endpoint (etcd://HOST:PORT)";
  }
  const size_t colon = uri.find(':');
  const std::string scheme = colon == std::string::npos ? uri : uri.substr(0, colon);
  return "unsupported store scheme '" + scheme +
         "' (expected file:DIR or etcd://HOST:PORT[,HOST:PORT...])";
}

// Two sockets cannot share an address:port, and SO_REUSEPORT (which every
// listener sets, so that each core binds its own) would let a second one
// bind silently and split the connections. Port 0 asks for a fresh port.
bool SameBind(const HostPort& a, const HostPort& b) {
  if (a.port == 0 || a.port != b.port) return false;
  auto wildcard = [](const std::string& h) { return h == "0.0.0.0" || h == "::"; };
  return a.host == b.host || wildcard(a.host) || wildcard(b.host);
}

// Listener addresses are numeric: a gateway binds, it does not resolve.
bool IsListenAddress(const std::string& address) {
  const std::optional<HostPort> hp = ParseHostPort(address, /*allow_port_zero=*/true);
  sockaddr_storage ss;
  socklen_t len;
  return hp && NumericSockaddr(hp->host, hp->port, &ss, &len);
}

// Where each top-level key was written, so that cross-field errors found
// after loading still point at a line.
using KeyLines = std::map<std::string, int>;

// A flood bucket's `{burst, per_second}` (h2::Rate): both required, so a
// half-written key is not silently half the default.
void ReadFloodRate(const Reader& r, const Field& f, const std::string& ctx, uint32_t max_burst,
                   uint32_t min_burst, uint32_t* burst, uint32_t* per_second) {
  const std::string here = Ctx(ctx, f.key);
  bool have_burst = false, have_rate = false;
  for (const Field& g : r.Fields(f.value, here, {"burst", "per_second"})) {
    if (g.key == "burst") {
      *burst = static_cast<uint32_t>(r.Unsigned(g, here, min_burst, max_burst));
      have_burst = true;
    } else {
      *per_second = static_cast<uint32_t>(r.Unsigned(g, here, 1, 100000));
      have_rate = true;
    }
  }
  if (!have_burst || !have_rate) r.Fail(f.line, here, "needs both burst and per_second");
}

// `http2: false`, or its limits (docs/config.md). The bounds are RFC 9113's
// where it has them (a window is at most 2^31-1, §6.9.1) and what keeps one
// connection's memory sane where it does not.
ListenerHttp2 ReadHttp2(const Reader& r, const Field& f, const std::string& ctx,
                        KeyLines* lines) {
  (*lines)[ctx] = f.line;
  ListenerHttp2 h;
  if (f.value.IsScalar()) {
    h.enabled = r.Bool(f, ctx);
    return h;
  }
  for (const Field& g : r.Fields(f.value, ctx,
                                 {"enabled", "max_concurrent_streams", "max_header_list_bytes",
                                  "header_table_bytes", "stream_window_bytes",
                                  "connection_window_bytes", "resets", "control_frames",
                                  "max_continuations", "max_empty_frames"})) {
    (*lines)[Ctx(ctx, g.key)] = g.line;
    if (g.key == "enabled") h.enabled = r.Bool(g, ctx);
    if (g.key == "max_concurrent_streams") {
      h.max_concurrent_streams = static_cast<uint32_t>(r.Unsigned(g, ctx, 1, 10000));
    }
    if (g.key == "max_header_list_bytes") {
      h.max_header_list_bytes = static_cast<uint32_t>(r.Size(g, ctx, 1024, 1 << 20));
    }
    if (g.key == "header_table_bytes") {
      h.header_table_bytes = static_cast<uint32_t>(r.Size(g, ctx, 0, 1 << 16));
    }
    if (g.key == "stream_window_bytes") {
      h.stream_window_bytes = static_cast<uint32_t>(r.Size(g, ctx, 65535, 0x7fffffff));
    }
    if (g.key == "connection_window_bytes") {
      h.connection_window_bytes = static_cast<uint32_t>(r.Size(g, ctx, 65535, 0x7fffffff));
    }
    // Floors where a well-behaved client would trip the defence: a client
    // opens with SETTINGS (and its ACK), often a PING; a large head may
    // need a few CONTINUATIONs.
    if (g.key == "resets") {
      ReadFloodRate(r, g, ctx, 100000, 1, &h.resets_burst, &h.resets_per_second);
    }
    if (g.key == "control_frames") {
      ReadFloodRate(r, g, ctx, 100000, 10, &h.control_frames_burst,
                    &h.control_frames_per_second);
    }
    if (g.key == "max_continuations") {
      h.max_continuations = static_cast<uint32_t>(r.Unsigned(g, ctx, 1, 1000));
    }
    if (g.key == "max_empty_frames") {
      h.max_empty_frames = static_cast<uint32_t>(r.Unsigned(g, ctx, 1, 1000));
    }
  }
  return h;
}

ListenerConfig ReadListener(const Reader& r, const YAML::Node& item, const std::string& ctx,
                            KeyLines* lines) {
  (*lines)[ctx] = internal::LineOf(item);
  ListenerConfig l;
  if (item.IsScalar()) {
    l.address = item.Scalar();
  } else {
    bool have_address = false;
    for (const Field& f : r.Fields(item, ctx, {"address", "tls", "http2"})) {
      if (f.key == "address") {
        l.address = r.String(f, ctx);
        have_address = true;
      } else if (f.key == "http2") {
        l.http2 = ReadHttp2(r, f, Ctx(ctx, "http2"), lines);
      } else {
        const std::string tctx = Ctx(ctx, "tls");
        ListenerTls tls;
        for (const Field& g :
             r.Fields(f.value, tctx, {"cert", "key", "ca", "client_auth", "sni_certs"})) {
          (*lines)[Ctx(tctx, g.key)] = g.line;
          if (g.key == "cert") tls.cert = r.String(g, tctx);
          if (g.key == "key") tls.key = r.String(g, tctx);
          if (g.key == "ca") tls.ca = r.String(g, tctx);
          if (g.key == "client_auth") tls.client_auth = r.Bool(g, tctx);
          if (g.key == "sni_certs") {
            const std::string sctx = Ctx(tctx, "sni_certs");
            if (!g.value.IsSequence()) r.Fail(g.line, sctx, "must be a list of {cert, key}");
            for (size_t i = 0; i < g.value.size(); ++i) {
              const std::string ictx = sctx + "[" + std::to_string(i) + "]";
              CertPair pair;
              for (const Field& h : r.Fields(g.value[i], ictx, {"cert", "key"})) {
                (*lines)[Ctx(ictx, h.key)] = h.line;
                (h.key == "cert" ? pair.cert : pair.key) = r.String(h, ictx);
              }
              if (pair.cert.empty() || pair.key.empty()) {
                r.Fail(internal::LineOf(g.value[i]), ictx, "needs both 'cert' and 'key'");
              }
              tls.sni_certs.push_back(std::move(pair));
            }
          }
        }
        if (tls.cert.empty() || tls.key.empty())
          r.Fail(f.line, tctx, "needs both 'cert' and 'key'");
        if (tls.client_auth && tls.ca.empty()) {
          r.Fail(f.line, tctx, "client_auth: true needs 'ca' to verify client certificates");
        }
        l.tls = std::move(tls);
      }
    }
    if (!have_address) r.Fail(item, ctx, "missing 'address'");
  }
  if (!IsListenAddress(l.address)) {
    r.Fail(item, ctx,
           "'" + l.address + "' is not a numeric address:port (e.g. 127.0.0.1:8080 or [::1]:8080)");
  }
  return l;
}

JwtConfig ReadJwt(const Reader& r, const Field& f, KeyLines* lines) {
  JwtConfig j;
  for (const Field& g :
       r.Fields(f.value, "jwt", {"issuer", "audience", "jwks", "hs256_secret_file", "leeway"})) {
    (*lines)["jwt." + g.key] = g.line;
    if (g.key == "issuer") j.issuer = r.String(g, "jwt");
    if (g.key == "audience") j.audience = r.String(g, "jwt");
    if (g.key == "jwks") j.jwks = r.String(g, "jwt");
    if (g.key == "hs256_secret_file") j.hs256_secret_file = r.String(g, "jwt");
    if (g.key == "leeway")
      j.leeway_ms = static_cast<uint32_t>(r.DurationMs(g, "jwt", 0, 3'600'000));
  }
  if (j.jwks.empty() == j.hs256_secret_file.empty()) {
    r.Fail(f.line, "jwt", "needs exactly one of 'jwks' (a JWKS file) or 'hs256_secret_file'");
  }
  return j;
}

MeshTlsConfig ReadMeshTls(const Reader& r, const Field& f, KeyLines* lines) {
  MeshTlsConfig m;
  for (const Field& g : r.Fields(f.value, "mtls", {"cert", "key", "ca"})) {
    (*lines)["mtls." + g.key] = g.line;
    (g.key == "cert" ? m.cert : g.key == "key" ? m.key : m.ca) = r.String(g, "mtls");
  }
  if (m.cert.empty() || m.key.empty() || m.ca.empty()) {
    r.Fail(f.line, "mtls", "needs 'cert', 'key' and 'ca' (see hms-api certs issue)");
  }
  return m;
}

// `tls:` settings shared by every TLS listener (each listener's own are in
// its `tls:`).
std::string ReadTls(const Reader& r, const Field& f, KeyLines* lines) {
  std::string ticket_keys;
  for (const Field& g : r.Fields(f.value, "tls", {"ticket_keys"})) {
    (*lines)["tls." + g.key] = g.line;
    ticket_keys = r.String(g, "tls");
  }
  return ticket_keys;
}

// `redis: {address, password_file, username, tls: {ca, cert, key}, timeout,
// fallback, gateways, max_waiting}` (docs/config.md, docs/resilience.md).
RedisConfig ReadRedis(const Reader& r, const Field& f, KeyLines* lines) {
  RedisConfig c;
  bool have_address = false;
  for (const Field& g : r.Fields(f.value, "redis",
                                 {"address", "password_file", "username", "tls", "timeout",
                                  "fallback", "gateways", "max_waiting"})) {
    (*lines)["redis." + g.key] = g.line;
    if (g.key == "address") {
      c.address = r.String(g, "redis");
      have_address = true;
      // The cores connect without resolving (a lookup would block a core's
      // loop), so the address must already be one.
      // ParseHostPort refuses port 0 here: a connect needs a real port.
      if (!IsListenAddress(c.address) || !ParseHostPort(c.address)) {
        r.Fail(g.line, "redis.address",
               "'" + c.address + "' is not a numeric address:port (a core never resolves names)");
      }
    } else if (g.key == "password_file") {
      c.password_file = r.String(g, "redis");
    } else if (g.key == "username") {
      c.username = r.String(g, "redis");
    } else if (g.key == "tls") {
      RedisTlsConfig t;
      for (const Field& h : r.Fields(g.value, "redis.tls", {"ca", "cert", "key"})) {
        (*lines)["redis.tls." + h.key] = h.line;
        (h.key == "ca" ? t.ca : h.key == "cert" ? t.cert : t.key) = r.String(h, "redis.tls");
      }
      if (t.ca.empty()) r.Fail(g.line, "redis.tls", "needs 'ca' (Redis's certificate is checked)");
      if (t.cert.empty() != t.key.empty()) {
        r.Fail(g.line, "redis.tls", "'cert' and 'key' go together (or neither)");
      }
      c.tls = t;
    } else if (g.key == "timeout") {
      c.timeout_ms = static_cast<uint32_t>(r.DurationMs(g, "redis", 1, 60'000));
    } else if (g.key == "fallback") {
      const std::string v = r.String(g, "redis");
      if (v == "local_share") {
        c.fallback = policy::FleetFallback::kLocalShare;
      } else if (v == "fail_open") {
        c.fallback = policy::FleetFallback::kFailOpen;
      } else if (v == "fail_closed") {
        c.fallback = policy::FleetFallback::kFailClosed;
      } else {
        r.Fail(g.line, "redis.fallback",
               "'" + v + "' must be local_share, fail_open or fail_closed");
      }
    } else if (g.key == "gateways") {
      c.gateways = static_cast<uint32_t>(r.Unsigned(g, "redis", 1, 10'000));
    } else {
      c.max_waiting = static_cast<uint32_t>(r.Unsigned(g, "redis", 1, 65'536));
    }
  }
  if (!have_address)
    r.Fail(f.line, "redis", "needs 'address' (numeric IP:PORT of the Redis server)");
  return c;
}

AccessLogConfig ReadAccessLog(const Reader& r, const Field& f, KeyLines* lines) {
  AccessLogConfig a;
  bool have_path = false;
  for (const Field& g : r.Fields(f.value, "access_log", {"path", "sample_ratio", "buffer"})) {
    (*lines)["access_log." + g.key] = g.line;
    if (g.key == "path") {
      a.path = r.String(g, "access_log");
      have_path = !a.path.empty();
    } else if (g.key == "sample_ratio") {
      const std::string text = r.String(g, "access_log");
      char* end = nullptr;
      a.sample_ratio = std::strtod(text.c_str(), &end);
      if (text.empty() || *end != '\0' || !(a.sample_ratio > 0.0 && a.sample_ratio <= 1.0)) {
        r.Fail(g.line, "access_log.sample_ratio", "'" + text + "' must be a number in (0, 1]");
      }
    } else {
      a.buffer_bytes = r.Size(g, "access_log", 4096, 1ull << 30);
    }
  }
  if (!have_path) r.Fail(f.line, "access_log", "needs 'path' (the file lines are appended to)");
  return a;
}

// `paths: {encoded_slashes: refuse|keep, merge_slashes: true|false}`.
void ReadPaths(const Reader& r, const Field& f, GatewayConfig* c, KeyLines* lines) {
  for (const Field& g : r.Fields(f.value, "paths", {"encoded_slashes", "merge_slashes"})) {
    (*lines)["paths." + g.key] = g.line;
    if (g.key == "encoded_slashes") {
      const std::string v = r.String(g, "paths");
      if (v != "refuse" && v != "keep") {
        r.Fail(g.line, "paths.encoded_slashes", "'" + v + "' must be refuse or keep");
      }
      c->keep_encoded_slashes = v == "keep";
    } else {
      c->merge_slashes = r.Bool(g, "paths");
    }
  }
}

// The engine's sizes, limits and timeouts, and how paths and header names
// are read; false when `f` is none of them.
bool ReadEngineKey(const Reader& r, const Field& f, GatewayConfig* c, KeyLines* lines) {
  const std::string& k = f.key;
  if (k == "ring_entries") {
    c->ring_entries = static_cast<uint32_t>(r.Unsigned(f, "", 0, UINT32_MAX));
  } else if (k == "buffers") {
    for (const Field& g : r.Fields(f.value, "buffers", {"count", "size"})) {
      (*lines)["buffers." + g.key] = g.line;
      if (g.key == "count")
        c->buffer_count = static_cast<uint32_t>(r.Unsigned(g, "buffers", 0, UINT32_MAX));
      if (g.key == "size")
        c->buffer_size = static_cast<uint32_t>(r.Size(g, "buffers", 0, UINT32_MAX));
    }
  } else if (k == "sqpoll") {
    c->sqpoll = r.Bool(f, "");
  } else if (k == "zero_copy_min_bytes") {
    c->zero_copy_min_bytes = r.Size(f, "", 0, UINT64_MAX);
  } else if (k == "max_connections_per_core") {
    c->max_connections_per_core = static_cast<uint32_t>(r.Unsigned(f, "", 0, UINT32_MAX));
  } else if (k == "upstream_pipeline_depth") {
    c->upstream_pipeline_depth = static_cast<uint32_t>(r.Unsigned(f, "", 0, UINT32_MAX));
  } else if (k == "upstream_idle_per_core") {
    c->upstream_idle_per_core = static_cast<uint32_t>(r.Unsigned(f, "", 0, UINT32_MAX));
  } else if (k == "max_header_bytes") {
    c->max_header_bytes = static_cast<uint32_t>(r.Size(f, "", 0, UINT32_MAX));
  } else if (k == "max_body_bytes") {
    c->max_body_bytes = r.Size(f, "", 0, UINT64_MAX);
  } else if (k == "header_timeout") {
    c->header_timeout_ms = static_cast<uint32_t>(r.DurationMs(f, "", 0, kMaxTimeoutMs));
  } else if (k == "idle_timeout") {
    c->idle_timeout_ms = static_cast<uint32_t>(r.DurationMs(f, "", 0, kMaxTimeoutMs));
  } else if (k == "drain_timeout") {
    c->drain_timeout_ms = static_cast<uint32_t>(r.DurationMs(f, "", 0, kMaxTimeoutMs));
  } else if (k == "paths") {
    ReadPaths(r, f, c, lines);
  } else if (k == "underscores_in_headers") {
    if (!http::ParseUnderscorePolicy(r.String(f, ""), &c->underscores_in_headers)) {
      r.Fail(f.line, "underscores_in_headers",
             "'" + r.String(f, "") + "' must be allow, drop or reject");
    }
  } else {
    return false;
  }
  return true;
}

// What only a sidecar has (Validate refuses them on a gateway).
void ReadSidecarKey(const Reader& r, const Field& f, GatewayConfig* c) {
  const std::string& k = f.key;
  if (k == "service") {
    c->service = r.String(f, "");
  } else if (k == "local_port") {
    c->local_port = static_cast<uint16_t>(r.Unsigned(f, "", 1, 65535));
  } else if (k == "egress") {
    c->egress = r.String(f, "");
  } else if (k == "advertise") {
    c->advertise = r.String(f, "");
  } else if (k == "registration_ttl") {
    c->registration_ttl_s = static_cast<uint32_t>(r.DurationMs(f, "", 1000, 3'600'000) / 1000);
  } else if (k == "local_retries") {
    c->local_retries = static_cast<uint32_t>(r.Unsigned(f, "", 0, 10));
  } else if (k == "local_retry_on") {
    c->local_retry_on = r.RetryOn(f, "");
  } else if (k == "local_protocol") {
    c->local_protocol = r.String(f, "");
    if (c->local_protocol != "http1" && c->local_protocol != "h2c") {
      r.Fail(f.line, "local_protocol",
             "'" + c->local_protocol + "' must be http1 or h2c (the local service is plain TCP)");
    }
  }
}

GatewayConfig ReadGateway(const Reader& r, const YAML::Node& doc, KeyLines* lines) {
  GatewayConfig c = DefaultGatewayConfig();
  c.source = r.source();
  c.listeners.clear();
  bool have_listeners = false;
  for (const Field& f : r.Fields(doc, "",
                                 {"role",
                                  "cores",
                                  "cpu_affinity",
                                  "listeners",
                                  "admin",
                                  "store",
                                  "jwt",
                                  "mesh",
                                  "ring_entries",
                                  "buffers",
                                  "sqpoll",
                                  "zero_copy_min_bytes",
                                  "max_connections_per_core",
                                  "upstream_idle_per_core",
                                  "upstream_pipeline_depth",
                                  "max_header_bytes",
                                  "max_body_bytes",
                                  "header_timeout",
                                  "idle_timeout",
                                  "drain_timeout",
                                  "paths",
                                  "underscores_in_headers",
                                  "service",
                                  "local_port",
                                  "egress",
                                  "advertise",
                                  "registration_ttl",
                                  "local_retries",
                                  "local_retry_on",
                                  "local_protocol",
                                  "access_log",
                                  "mtls",
                                  "tls",
                                  "redis"})) {
    (*lines)[f.key] = f.line;
    const std::string& k = f.key;
    if (k == "role") {
      c.role = r.String(f, "");
      if (c.role != "gateway" && c.role != "sidecar") {
        r.Fail(f.line, "role", "'" + c.role + "' must be gateway or sidecar");
      }
    } else if (k == "cores") {
      if (f.value.IsScalar() && f.value.Scalar() == "auto") {
        c.cores = 0;
      } else {
        c.cores = static_cast<uint32_t>(r.Unsigned(f, "", 1, kMaxCores));
      }
    } else if (k == "cpu_affinity") {
      if (!f.value.IsSequence()) r.Fail(f.line, "cpu_affinity", "expected a list of CPU numbers");
      for (size_t i = 0; i < f.value.size(); ++i) {
        Field item{"cpu_affinity[" + std::to_string(i) + "]", f.value[i],
                   internal::LineOf(f.value[i])};
        c.cpu_affinity.push_back(static_cast<int>(r.Unsigned(item, "", 0, 1023)));
      }
    } else if (k == "listeners") {
      if (!f.value.IsSequence()) r.Fail(f.line, "listeners", "expected a list of listeners");
      have_listeners = true;
      for (size_t i = 0; i < f.value.size(); ++i) {
        c.listeners.push_back(
            ReadListener(r, f.value[i], "listeners[" + std::to_string(i) + "]", lines));
      }
    } else if (k == "admin") {
      c.admin = f.value.IsNull() ? "" : r.String(f, "");
    } else if (k == "store") {
      c.store = r.String(f, "");
      // An empty value used to mean the default store without saying so.
      if (c.store.empty()) {
        r.Fail(f.line, "store",
               "must not be empty: give file:DIR or etcd://HOST:PORT, or leave 'store' out for "
               "the default store");
      }
      if (std::string why = StoreUriProblem(c.store); !why.empty()) r.Fail(f.line, "store", why);
    } else if (k == "jwt") {
      c.jwt = ReadJwt(r, f, lines);
    } else if (k == "mesh") {
      c.mesh = r.String(f, "");
    } else if (k == "access_log") {
      c.access_log = ReadAccessLog(r, f, lines);
    } else if (k == "mtls") {
      c.mtls = ReadMeshTls(r, f, lines);
    } else if (k == "tls") {
      c.tls_ticket_keys = ReadTls(r, f, lines);
    } else if (k == "redis") {
      c.redis = ReadRedis(r, f, lines);
    } else if (!ReadEngineKey(r, f, &c, lines)) {
      ReadSidecarKey(r, f, &c);
    }
  }
  if (!have_listeners) c.listeners = DefaultGatewayConfig().listeners;
  return c;
}

// Builds a Validate error: "<source>:<line>: <key>: <reason>". `at` names
// the key whose line the message points at when it differs from `key` (a
// missing key is reported at the key that requires it).
struct FailAt {
  const GatewayConfig& c;
  const KeyLines* lines;  // may be null

  Result<bool> operator()(const std::string& key, const std::string& reason,
                          const std::string& at = "") const {
    std::string msg = c.source.empty() ? "<config>" : c.source;
    if (lines != nullptr) {
      const auto it = lines->find(at.empty() ? key : at);
      if (it != lines->end()) msg += ":" + std::to_string(it->second);
    }
    return ConfigError(msg + ": " + key + ": " + reason);
  }
};

// One CPU per core, each named once, when cpu_affinity is given.
Result<bool> CheckCpuAffinity(const GatewayConfig& c, const FailAt& fail) {
  if (!c.cpu_affinity.empty()) {
    if (c.cores == 0) {
      return fail("cpu_affinity", "lists " + std::to_string(c.cpu_affinity.size()) +
                                      " CPUs but cores is auto; set cores: " +
                                      std::to_string(c.cpu_affinity.size()));
    }
    if (c.cpu_affinity.size() != c.cores) {
      return fail("cpu_affinity", "lists " + std::to_string(c.cpu_affinity.size()) + " CPUs for " +
                                      std::to_string(c.cores) + " cores; give one CPU per core");
    }
    std::set<int> cpus;
    for (int cpu : c.cpu_affinity) {
      if (cpu < 0 || cpu > 1023)
        return fail("cpu_affinity", "CPU " + std::to_string(cpu) + " is out of range 0..1023");
      if (!cpus.insert(cpu).second) {
        return fail("cpu_affinity", "CPU " + std::to_string(cpu) + " appears twice");
      }
    }
  }
  return true;
}

// Numeric listen addresses, none of them bound twice.
Result<bool> CheckAddresses(const GatewayConfig& c, const FailAt& fail) {
  if (c.listeners.empty()) return fail("listeners", "at least one listener is needed");
  for (const ListenerConfig& l : c.listeners) {
    if (!IsListenAddress(l.address)) {
      return fail("listeners", "'" + l.address + "' is not a numeric address:port");
    }
  }
  if (!c.admin.empty() && c.admin != "off" && !IsListenAddress(c.admin)) {
    return fail("admin", "'" + c.admin + "' is not a numeric address:port (or off)");
  }
  if (!c.egress.empty() && !IsListenAddress(c.egress)) {
    return fail("egress", "'" + c.egress + "' is not a numeric address:port");
  }
  // Every address this process binds, by the key that names it.
  std::vector<std::pair<std::string, std::string>> binds;
  for (size_t i = 0; i < c.listeners.size(); ++i) {
    binds.emplace_back("listeners[" + std::to_string(i) + "]", c.listeners[i].address);
  }
  if (!c.admin.empty() && c.admin != "off") binds.emplace_back("admin", c.admin);
  if (!c.egress.empty()) binds.emplace_back("egress", c.egress);
  for (size_t i = 0; i < binds.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      const std::optional<HostPort> a = ParseHostPort(binds[j].second, true);
      const std::optional<HostPort> b = ParseHostPort(binds[i].second, true);
      if (a && b && SameBind(*a, *b)) {
        return fail(binds[i].first, binds[i].second + " is also " + binds[j].first + " (" +
                                        binds[j].second + "): each address is bound once");
      }
    }
  }
  return true;
}

// The ring, buffers, connection and size limits, and timeouts.
Result<bool> CheckEngineLimits(const GatewayConfig& c, const FailAt& fail) {
  if (c.ring_entries < 64 || c.ring_entries > 32768 || !IsPowerOfTwo(c.ring_entries)) {
    return fail("ring_entries",
                std::to_string(c.ring_entries) + " must be a power of two in 64..32768");
  }
  if (c.buffer_count < 16 || c.buffer_count > 32768 || !IsPowerOfTwo(c.buffer_count)) {
    return fail("buffers.count",
                std::to_string(c.buffer_count) + " must be a power of two in 16..32768");
  }
  if (c.buffer_size < 1024 || c.buffer_size > (1u << 20)) {
    return fail("buffers.size",
                std::to_string(c.buffer_size) + " bytes is out of range 1KiB..1MiB");
  }
  if (c.sqpoll) {
    return fail("sqpoll",
                "true is not supported: each core's ring uses SINGLE_ISSUER|DEFER_TASKRUN, which "
                "the kernel refuses to combine with SQPOLL; leave sqpoll: false");
  }
  if (c.max_connections_per_core < 1) return fail("max_connections_per_core", "must be at least 1");
  if (c.upstream_pipeline_depth < 1 || c.upstream_pipeline_depth > 16) {
    return fail("upstream_pipeline_depth",
                std::to_string(c.upstream_pipeline_depth) + " is out of range 1..16 (1 = off)");
  }
  if (c.max_header_bytes < 1024 || c.max_header_bytes > 65536) {
    return fail("max_header_bytes",
                std::to_string(c.max_header_bytes) + " bytes is out of range 1KiB..64KiB");
  }
  if (c.max_body_bytes < 1) return fail("max_body_bytes", "must be at least 1 byte");
  if (c.header_timeout_ms == 0) return fail("header_timeout", "must be more than zero");
  if (c.idle_timeout_ms == 0) return fail("idle_timeout", "must be more than zero");
  if (c.drain_timeout_ms == 0) return fail("drain_timeout", "must be more than zero");
  return true;
}

// A sidecar names its service and where it listens; a gateway has no
// sidecar keys.
Result<bool> CheckRoleKeys(const GatewayConfig& c, const KeyLines* lines, const FailAt& fail) {
  if (c.role == "sidecar") {
    if (c.service.empty())
      return fail("service", "role: sidecar needs 'service' (its service's name)", "role");
    if (c.local_port == 0)
      return fail("local_port", "role: sidecar needs 'local_port' (where its service listens)",
                  "role");
    const std::string& inbound = c.listeners.front().address;
    if (c.advertise.empty() && (inbound.starts_with("0.0.0.0:") || inbound.starts_with("[::]:"))) {
      return fail("advertise",
                  "the inbound listener " + inbound +
                      " is a wildcard address; set 'advertise' to the host:port other "
                      "proxies reach it at",
                  "listeners");
    }
  } else {
    // Sidecar keys on a gateway would be silently meaningless: refuse them.
    for (const char* key : {"service", "local_port", "egress", "advertise", "registration_ttl",
                            "local_retries", "local_retry_on", "local_protocol"}) {
      if (lines != nullptr && lines->count(key) > 0) {
        return fail(key, "only a sidecar has it (set role: sidecar)");
      }
    }
  }
  return true;
}

// Cross-field rules. `lines` (may be null) maps a key to its line.
Result<bool> Validate(const GatewayConfig& c, const KeyLines* lines) {
  const FailAt fail{c, lines};
  if (c.role != "gateway" && c.role != "sidecar") {
    return fail("role", "'" + c.role + "' must be gateway or sidecar");
  }
  if (c.cores > kMaxCores) {
    return fail("cores", std::to_string(c.cores) + " is out of range 1..256 (or auto)");
  }
  if (Result<bool> ok = CheckCpuAffinity(c, fail); !ok) return ok;
  if (Result<bool> ok = CheckAddresses(c, fail); !ok) return ok;
  if (Result<bool> ok = CheckEngineLimits(c, fail); !ok) return ok;
  if (c.jwt && c.jwt->jwks.empty() == c.jwt->hs256_secret_file.empty()) {
    return fail("jwt", "needs exactly one of 'jwks' or 'hs256_secret_file'");
  }
  if (Result<bool> ok = CheckRoleKeys(c, lines, fail); !ok) return ok;
  if (!c.advertise.empty() && !ParseHostPort(c.advertise)) {
    return fail("advertise", "'" + c.advertise + "' is not host:port with a port 1..65535");
  }
  if (!c.service.empty() && !IsValidServiceName(c.service)) {
    return fail("service", "'" + c.service + "' is not a valid service name");
  }
  return true;
}

// `tracing: true|false`, or `{otlp_endpoint, sample_ratio, service_name,
// export_timeout}` (spans on).
TracingConfig ReadTracing(const Reader& r, const Field& f) {
  TracingConfig t;
  if (f.value.IsScalar()) {
    t.enabled = r.Bool(f, "");
    return t;
  }
  if (!f.value.IsMap()) {
    r.Fail(f.line, "tracing",
           "expected true, false or {otlp_endpoint, sample_ratio, service_name}");
  }
  for (const Field& g :
       r.Fields(f.value, "tracing",
                {"otlp_endpoint", "sample_ratio", "service_name", "export_timeout"})) {
    if (g.key == "otlp_endpoint") {
      const std::string url = r.String(g, "tracing");
      if (Result<bool> ok = ParseOtlpEndpoint(url, &t); !ok) {
        r.Fail(g.line, "tracing.otlp_endpoint", ok.error().message);
      }
    } else if (g.key == "sample_ratio") {
      const std::string text = r.String(g, "tracing");
      char* end = nullptr;
      t.sample_ratio = std::strtod(text.c_str(), &end);
      if (text.empty() || *end != '\0' || !(t.sample_ratio >= 0.0 && t.sample_ratio <= 1.0)) {
        r.Fail(g.line, "tracing.sample_ratio", "'" + text + "' must be a number in [0, 1]");
      }
    } else if (g.key == "service_name") {
      t.service_name = r.String(g, "tracing");
      if (t.service_name.empty()) r.Fail(g.line, "tracing.service_name", "must not be empty");
    } else {
      t.export_timeout_ms = static_cast<uint32_t>(r.DurationMs(g, "tracing", 10, 60'000));
    }
  }
  return t;
}

MeshConfig ReadMesh(const Reader& r, const YAML::Node& doc) {
  MeshConfig m;
  for (const Field& f : r.Fields(
           doc, "", {"retries", "timeout", "breaker", "keep_alive", "tracing", "trust_domain"})) {
    if (f.key == "retries") m.retries = static_cast<uint32_t>(r.Unsigned(f, "", 0, 10));
    if (f.key == "timeout")
      m.timeout_ms = static_cast<uint32_t>(r.DurationMs(f, "", 1, kMaxTimeoutMs));
    if (f.key == "breaker") {
      for (const Field& g : r.Fields(f.value, "breaker", {"failures", "open_for"})) {
        if (g.key == "failures")
          m.breaker.failures = static_cast<uint32_t>(r.Unsigned(g, "breaker", 1, 1'000'000));
        if (g.key == "open_for")
          m.breaker.open_for_ms =
              static_cast<uint32_t>(r.DurationMs(g, "breaker", 1, kMaxTimeoutMs));
      }
    }
    if (f.key == "keep_alive") m.keep_alive = r.Bool(f, "");
    if (f.key == "tracing") m.tracing = ReadTracing(r, f);
    if (f.key == "trust_domain") {
      m.trust_domain = r.String(f, "");
      // SPIFFE trust domains: lower-case letters, digits, '.', '-', '_'.
      const bool ok = !m.trust_domain.empty() &&
                      std::all_of(m.trust_domain.begin(), m.trust_domain.end(), [](char ch) {
                        return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' ||
                               ch == '-' || ch == '_';
                      });
      if (!ok)
        r.Fail(f.line, "trust_domain",
               "'" + m.trust_domain + "' is not a valid trust domain (a-z, 0-9, '.', '-', '_')");
    }
  }
  return m;
}

// Relative file names in gateway.yaml are relative to its directory, so a
// config directory can move as a whole (as nginx does with its prefix).
std::string RelativeTo(const std::string& config_path, const std::string& file) {
  if (file.empty() || file.front() == '/') return file;
  const size_t slash = config_path.rfind('/');
  if (slash == std::string::npos) return file;
  return config_path.substr(0, slash + 1) + file;
}

void ResolvePaths(const std::string& config_path, GatewayConfig* c) {
  c->mesh = RelativeTo(config_path, c->mesh);
  if (c->access_log) c->access_log->path = RelativeTo(config_path, c->access_log->path);
  if (c->jwt) {
    c->jwt->jwks = RelativeTo(config_path, c->jwt->jwks);
    c->jwt->hs256_secret_file = RelativeTo(config_path, c->jwt->hs256_secret_file);
  }
  for (ListenerConfig& l : c->listeners) {
    if (!l.tls) continue;
    l.tls->cert = RelativeTo(config_path, l.tls->cert);
    l.tls->key = RelativeTo(config_path, l.tls->key);
    l.tls->ca = RelativeTo(config_path, l.tls->ca);
    for (CertPair& p : l.tls->sni_certs) {
      p.cert = RelativeTo(config_path, p.cert);
      p.key = RelativeTo(config_path, p.key);
    }
  }
  if (!c->tls_ticket_keys.empty()) c->tls_ticket_keys = RelativeTo(config_path, c->tls_ticket_keys);
  if (c->redis) {
    c->redis->password_file = RelativeTo(config_path, c->redis->password_file);
    if (c->redis->tls) {
      c->redis->tls->ca = RelativeTo(config_path, c->redis->tls->ca);
      c->redis->tls->cert = RelativeTo(config_path, c->redis->tls->cert);
      c->redis->tls->key = RelativeTo(config_path, c->redis->tls->key);
    }
  }
  if (c->mtls) {
    c->mtls->cert = RelativeTo(config_path, c->mtls->cert);
    c->mtls->key = RelativeTo(config_path, c->mtls->key);
    c->mtls->ca = RelativeTo(config_path, c->mtls->ca);
  }
}

}  // namespace

std::string_view FallbackName(policy::FleetFallback f) {
  switch (f) {
    case policy::FleetFallback::kLocalShare:
      return "local_share";
    case policy::FleetFallback::kFailOpen:
      return "fail_open";
    case policy::FleetFallback::kFailClosed:
      return "fail_closed";
  }
  return "local_share";
}

GatewayConfig DefaultGatewayConfig() {
  GatewayConfig c;
  c.source = "<embedded>";
  c.listeners.push_back(ListenerConfig{"127.0.0.1:8080", std::nullopt, {}});
  return c;
}

Result<GatewayConfig> LoadGatewayConfig(const std::string& path) {
  try {
    const YAML::Node doc = internal::ParseDocument(internal::ReadFile(path), path);
    KeyLines lines;
    GatewayConfig c = ReadGateway(Reader(path), doc, &lines);
    Result<bool> ok = Validate(c, &lines);
    if (!ok) return ok.error();
    ResolvePaths(path, &c);
    c.lines = std::move(lines);
    return c;
  } catch (const ConfigFailure& f) {
    return ConfigError(f.message);
  } catch (const YAML::Exception& e) {
    return ConfigError(path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
}

Result<bool> ValidateGatewayConfig(const GatewayConfig& c) {
  return Validate(c, c.lines.empty() ? nullptr : &c.lines);
}

std::string WhereIs(const GatewayConfig& c, const std::string& key) {
  std::string where = c.source.empty() ? "<config>" : c.source;
  // "listeners[0].tls.cert" → "listeners[0].tls" → "listeners[0]" → "listeners".
  std::string k = key;
  while (!k.empty()) {
    if (const auto it = c.lines.find(k); it != c.lines.end()) {
      return where + ":" + std::to_string(it->second);
    }
    const size_t cut = k.find_last_of(".[");
    if (cut == std::string::npos) break;
    k.resize(cut);
  }
  return where;
}

Result<bool> CheckGatewayEnvironment(const GatewayConfig& c) {
  auto fail = [&c](const std::string& key, const std::string& reason) -> Result<bool> {
    return ConfigError(WhereIs(c, key) + ": " + key + ": " + reason);
  };
  // Every file the config names, by the key that names it.
  std::vector<std::pair<std::string, std::string>> files;
  for (size_t i = 0; i < c.listeners.size(); ++i) {
    const std::optional<ListenerTls>& t = c.listeners[i].tls;
    if (!t) continue;
    const std::string k = "listeners[" + std::to_string(i) + "].tls";
    files.emplace_back(k + ".cert", t->cert);
    files.emplace_back(k + ".key", t->key);
    if (!t->ca.empty()) files.emplace_back(k + ".ca", t->ca);
    for (size_t j = 0; j < t->sni_certs.size(); ++j) {
      const std::string sk = k + ".sni_certs[" + std::to_string(j) + "]";
      files.emplace_back(sk + ".cert", t->sni_certs[j].cert);
      files.emplace_back(sk + ".key", t->sni_certs[j].key);
    }
  }
  if (c.mtls) {
    files.emplace_back("mtls.cert", c.mtls->cert);
    files.emplace_back("mtls.key", c.mtls->key);
    files.emplace_back("mtls.ca", c.mtls->ca);
  }
  if (c.jwt) {
    if (!c.jwt->jwks.empty()) files.emplace_back("jwt.jwks", c.jwt->jwks);
    if (!c.jwt->hs256_secret_file.empty()) {
      files.emplace_back("jwt.hs256_secret_file", c.jwt->hs256_secret_file);
    }
  }
  if (!c.mesh.empty()) files.emplace_back("mesh", c.mesh);
  if (!c.tls_ticket_keys.empty()) files.emplace_back("tls.ticket_keys", c.tls_ticket_keys);
  if (c.redis) {
    if (!c.redis->password_file.empty()) {
      files.emplace_back("redis.password_file", c.redis->password_file);
    }
    if (c.redis->tls) {
      files.emplace_back("redis.tls.ca", c.redis->tls->ca);
      if (!c.redis->tls->cert.empty()) files.emplace_back("redis.tls.cert", c.redis->tls->cert);
      if (!c.redis->tls->key.empty()) files.emplace_back("redis.tls.key", c.redis->tls->key);
    }
  }
  for (const auto& [key, path] : files) {
    if (std::string why = UnreadableFile(path); !why.empty()) return fail(key, why);
  }
  if (c.access_log) {
    // Opened for appending at start (and again on SIGHUP): its directory
    // must exist and take a new file, or the file must take writes.
    const std::string& path = c.access_log->path;
    const size_t slash = path.rfind('/');
    const std::string dir =
        slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    struct stat st;
    if (stat(path.c_str(), &st) == 0) {
      if (S_ISDIR(st.st_mode)) return fail("access_log.path", path + ": is a directory");
      if (access(path.c_str(), W_OK) != 0) {
        return fail("access_log.path", path + ": cannot write: " + std::strerror(errno));
      }
    } else if (stat(dir.c_str(), &st) != 0) {
      return fail("access_log.path",
                  dir + ": cannot open the log's directory: " + std::strerror(errno));
    } else if (!S_ISDIR(st.st_mode)) {
      return fail("access_log.path", dir + ": is not a directory");
    } else if (access(dir.c_str(), W_OK | X_OK) != 0) {
      return fail("access_log.path",
                  dir + ": cannot create the log in it: " + std::strerror(errno));
    }
  }
  if (!c.cpu_affinity.empty()) {
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (sched_getaffinity(0, sizeof allowed, &allowed) == 0) {
      for (int cpu : c.cpu_affinity) {
        if (cpu < CPU_SETSIZE && CPU_ISSET(cpu, &allowed)) continue;
        std::string list;
        for (int i = 0; i < CPU_SETSIZE; ++i) {
          if (CPU_ISSET(i, &allowed)) list += (list.empty() ? "" : ", ") + std::to_string(i);
        }
        return fail("cpu_affinity", "CPU " + std::to_string(cpu) +
                                        " is not one this process may run on (allowed: " + list +
                                        ")");
      }
    }
  }
  return true;
}

Result<bool> ParseOtlpEndpoint(std::string_view url, TracingConfig* out) {
  const std::string text(url);
  if (url.starts_with("https://")) {
    return ConfigError("'" + text +
                       "': https is not supported; export over http:// (to a "
                       "collector on loopback or a trusted network)");
  }
  if (!url.starts_with("http://")) {
    return ConfigError("'" + text +
                       "' is not an http:// URL (e.g. http://127.0.0.1:4318/v1/traces)");
  }
  std::string_view rest = url.substr(7);
  const size_t slash = rest.find('/');
  std::string authority(rest.substr(0, slash));
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  for (char ch : path) {
    if (static_cast<unsigned char>(ch) <= 0x20 || ch == 0x7f || ch == '#') {
      return ConfigError("'" + text + "': the path has a space, control character or '#'");
    }
  }
  // A port-less authority takes OTLP/HTTP's port; "[v6]" and "name" have no ':' after any ']'.
  const size_t close = authority.rfind(']');
  const size_t colon = authority.rfind(':');
  if (colon == std::string::npos || (close != std::string::npos && colon < close)) {
    authority += ":4318";
  }
  const std::optional<HostPort> hp = ParseHostPort(authority);
  if (!hp) {
    return ConfigError("'" + text + "': '" + authority + "' is not HOST:PORT with a port 1..65535");
  }
  out->otlp_endpoint = text;
  out->otlp_host = hp->host;
  out->otlp_port = hp->port;
  out->otlp_path = path.empty() || path == "/" ? "/v1/traces" : std::string(path);
  return true;
}

Result<MeshConfig> LoadMeshConfig(const std::string& path) {
  try {
    const YAML::Node doc = internal::ParseDocument(internal::ReadFile(path), path);
    return ReadMesh(Reader(path), doc);
  } catch (const ConfigFailure& f) {
    return ConfigError(f.message);
  } catch (const YAML::Exception& e) {
    return ConfigError(path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
}

}  // namespace hms::config
