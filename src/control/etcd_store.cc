// The etcd store over etcd's v3 JSON API; see include/hms/control/etcd_store.h.
// Keys and values travel base64-encoded (the gRPC gateway's encoding of
// protobuf bytes); int64 fields come back as JSON strings.
#include "hms/control/etcd_store.h"

#include <poll.h>
#include <simdjson.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "hms/config/config.h"
#include "http_client.h"

namespace hms::control {
namespace {

namespace dom = simdjson::dom;

constexpr std::string_view kPrefix = "/hms/";
constexpr std::string_view kServices = "/hms/services/";
constexpr std::string_view kSources = "/hms/sources/";
constexpr std::string_view kEndpoints = "/hms/endpoints/";
// Fleet members: outside /hms/, so the gateways' watch (and List) never see
// a member come, go or change.
constexpr std::string_view kMembers = "/hms-fleet/members/";
// The watch is probed with a small read after this long without a message:
// a peer that vanished without closing (a partition) is noticed this fast.
constexpr int kWatchIdleProbeMs = 5000;
constexpr int kBackoffMinMs = 100;
constexpr int kBackoffMaxMs = 5000;
// A watch message is a few KiB; a stream that buffers more than this without
// one complete JSON object is not etcd.
constexpr size_t kMaxWatchBuffer = 64u << 20;

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string Base64(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const uint32_t v = (static_cast<uint8_t>(in[i]) << 16) |
                       (static_cast<uint8_t>(in[i + 1]) << 8) | static_cast<uint8_t>(in[i + 2]);
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += kB64[v & 63];
  }
  if (i + 1 == in.size()) {
    const uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8);
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

bool Unbase64(std::string_view in, std::string* out) {
  out->clear();
  uint32_t acc = 0;
  int bits = 0;
  for (const char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '+' || c == '-') {
      v = 62;
    } else if (c == '/' || c == '_') {
      v = 63;
    } else if (c == '=') {
      break;
    } else {
      return false;
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return true;
}

// The end of the range of every key starting with `prefix`: the prefix with
// its last byte incremented (etcd's clientv3.GetPrefixRangeEnd).
std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (static_cast<uint8_t>(end.back()) < 0xff) {
      end.back() = static_cast<char>(end.back() + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

std::string Quote(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}  // base64/digits only

std::string KeyField(std::string_view key) { return "\"key\":" + Quote(Base64(key)); }

std::string PutOp(std::string_view key, std::string_view value, int64_t lease = 0) {
  std::string op = "{\"request_put\":{" + KeyField(key) + ",\"value\":" + Quote(Base64(value));
  if (lease != 0) op += ",\"lease\":" + Quote(std::to_string(lease));
  return op + "}}";
}

std::string DeleteOp(std::string_view key, bool prefix = false) {
  std::string op = "{\"request_delete_range\":{" + KeyField(key);
  if (prefix) op += ",\"range_end\":" + Quote(Base64(PrefixEnd(key)));
  return op + "}}";
}

std::string CountOp(std::string_view key) {
  return "{\"request_range\":{" + KeyField(key) + ",\"count_only\":true}}";
}

// result: "GREATER" with version 0 means "exists", "EQUAL" with 0 "absent".
std::string VersionCompare(std::string_view key, std::string_view result) {
  return "{" + KeyField(key) + ",\"target\":\"VERSION\",\"result\":\"" + std::string(result) +
         "\",\"version\":\"0\"}";
}

std::string Join(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ',';
    out += items[i];
  }
  return out + "]";
}

std::string Txn(const std::vector<std::string>& compare, const std::vector<std::string>& success,
                const std::vector<std::string>& failure) {
  return "{\"compare\":" + Join(compare) + ",\"success\":" + Join(success) +
         ",\"failure\":" + Join(failure) + "}";
}

// int64 fields are JSON strings in the gateway's encoding; accept numbers too.
int64_t GetInt(dom::element obj, std::string_view field) {
  dom::element v;
  if (obj[field].get(v) != simdjson::SUCCESS) return 0;
  int64_t n = 0;
  if (v.get_int64().get(n) == simdjson::SUCCESS) return n;
  uint64_t u = 0;
  if (v.get_uint64().get(u) == simdjson::SUCCESS) return static_cast<int64_t>(u);
  std::string_view s;
  if (v.get_string().get(s) == simdjson::SUCCESS) {
    int64_t r = 0;
    bool neg = false;
    size_t i = 0;
    if (!s.empty() && s[0] == '-') {
      neg = true;
      i = 1;
    }
    for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) r = r * 10 + (s[i] - '0');
    return neg ? -r : r;
  }
  return 0;
}

bool GetBool(dom::element obj, std::string_view field) {
  bool b = false;
  return obj[field].get_bool().get(b) == simdjson::SUCCESS && b;
}

std::string_view GetString(dom::element obj, std::string_view field) {
  std::string_view s;
  if (obj[field].get_string().get(s) != simdjson::SUCCESS) return {};
  return s;
}

Error UserError(std::string message) { return Error{std::move(message), Side::kConfig, false}; }

// Finds the next complete top-level JSON object in buf[from, ...): sets
// [*begin, *end) and returns true, or false when none is complete yet.
bool NextObject(std::string_view buf, size_t* begin, size_t* end) {
  const size_t start = buf.find('{');
  if (start == std::string_view::npos) return false;
  int depth = 0;
  bool in_string = false, escape = false;
  for (size_t i = start; i < buf.size(); ++i) {
    const char c = buf[i];
    if (in_string) {
      if (escape) {
        escape = false;
      } else if (c == '\\') {
        escape = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{') {
      ++depth;
    } else if (c == '}' && --depth == 0) {
      *begin = start;
      *end = i + 1;
      return true;
    }
  }
  return false;
}

class EtcdStoreImpl final : public EtcdStore {
 public:
  EtcdStoreImpl(std::string uri, std::vector<HttpTarget> targets, EtcdOptions options)
      : uri_(std::move(uri)),
        targets_(std::move(targets)),
        options_(options),
        client_(targets_, options.timeout_ms) {}

  ~EtcdStoreImpl() override {
    if (watch_thread_.joinable()) {
      const uint64_t one = 1;
      (void)!write(stop_fd_, &one, sizeof(one));
      watch_thread_.join();
    }
    if (stop_fd_ >= 0) close(stop_fd_);
    if (event_fd_ >= 0) close(event_fd_);
  }

  Result<bool> Register(const std::vector<StoredService>& services, const Check& check) override {
    if (Result<bool> ok = CheckRegistration(services); !ok.ok()) return ok.error();
    Result<std::vector<std::vector<std::string>>> chunks = RegisterChunks(services);
    if (!chunks) return chunks.error();
    if (!check) {
      for (const std::vector<std::string>& ops : chunks.value()) {
        Result<dom::element> r = Call("/v3/kv/txn", Txn({}, ops, {}));
        if (!r) return r.error();
      }
      return true;
    }
    // Read, judge, then write only if no service was written since the read
    // (a range compare over /hms/services/: every key's mod_revision below
    // the read's revision + 1). A registration of more than one txn writes
    // its chunks in order, each compared against the revision the previous
    // one wrote, so nothing else lands in between. Another writer first:
    // read and judge again (chunks already written are written again).
    for (int round = 0; round < 20; ++round) {
      int64_t revision = 0;
      Result<std::vector<StoredService>> current = ListAt(&revision);
      if (!current) return current.error();
      if (Result<bool> ok = check(current.value()); !ok.ok()) return ok.error();
      bool raced = false;
      for (const std::vector<std::string>& ops : chunks.value()) {
        const std::string unchanged =
            "{" + KeyField(kServices) + ",\"range_end\":" + Quote(Base64(PrefixEnd(kServices))) +
            ",\"target\":\"MOD\",\"result\":\"LESS\",\"mod_revision\":" +
            Quote(std::to_string(revision + 1)) + "}";
        Result<dom::element> r = Call("/v3/kv/txn", Txn({unchanged}, ops, {}));
        if (!r) return r.error();
        if (!GetBool(r.value(), "succeeded")) {
          raced = true;
          break;
        }
        dom::element header;
        if (r.value()["header"].get(header) == simdjson::SUCCESS) revision = GetInt(header, "revision");
      }
      if (!raced) return true;
    }
    return Error{"etcd: the services kept changing while this registration was judged; try again",
                 Side::kUpstream, true};
  }

  // The puts of a registration, in txns that etcd takes with its default
  // limits: at most 128 operations (--max-txn-ops) and 1.5 MiB
  // (--max-request-bytes) per request. One txn when it fits (all or
  // nothing); several otherwise, each service's source and text in the same
  // one, so a reader never sees a service half-written.
  static Result<std::vector<std::vector<std::string>>> RegisterChunks(
      const std::vector<StoredService>& services) {
    constexpr size_t kMaxOps = 128;
    constexpr size_t kMaxBytes = 1 << 20;  // of ops per txn; headroom under 1.5 MiB for the JSON
    std::vector<std::vector<std::string>> chunks(1);
    size_t bytes = 0;
    for (const StoredService& s : services) {
      std::string source = PutOp(std::string(kSources) + s.name, s.source);
      std::string text = PutOp(std::string(kServices) + s.name, s.text);
      const size_t size = source.size() + text.size();
      if (size > kMaxBytes) {
        return UserError("service '" + s.name + "': its route file (" +
                         std::to_string(s.text.size()) +
                         " bytes) is over what one etcd request carries (1 MiB of a 1.5 MiB "
                         "request once encoded); split it");
      }
      if (chunks.back().size() + 2 > kMaxOps || bytes + size > kMaxBytes) {
        chunks.emplace_back();
        bytes = 0;
      }
      chunks.back().push_back(std::move(source));
      chunks.back().push_back(std::move(text));
      bytes += size;
    }
    return chunks;
  }

  Result<bool> Deregister(const std::string& name) override {
    if (!config::IsValidServiceName(name)) {
      return UserError("'" + name + "' is not a valid service name");
    }
    const std::string key = std::string(kServices) + name;
    Result<dom::element> r =
        Call("/v3/kv/txn", Txn({VersionCompare(key, "GREATER")},
                               {DeleteOp(key), DeleteOp(std::string(kSources) + name),
                                DeleteOp(std::string(kEndpoints) + name + "/", true)},
                               {}));
    if (!r) return r.error();
    if (!GetBool(r.value(), "succeeded")) {
      return UserError("service '" + name + "' is not registered");
    }
    return true;
  }

  Result<std::vector<StoredService>> List() override { return ListAt(nullptr); }

  // List, and the store revision it read at.
  Result<std::vector<StoredService>> ListAt(int64_t* revision) {
    const std::string body =
        "{" + KeyField(kPrefix) + ",\"range_end\":" + Quote(Base64(PrefixEnd(kPrefix))) + "}";
    Result<dom::element> r = Call("/v3/kv/range", body);
    if (!r) return r.error();
    if (revision != nullptr) {
      dom::element header;
      *revision = r.value()["header"].get(header) == simdjson::SUCCESS ? GetInt(header, "revision") : 0;
    }
    struct Entry {
      StoredService service;
      bool registered = false;
      std::vector<std::pair<int64_t, std::string>> endpoints;  // (create_revision, address)
    };
    std::map<std::string, Entry> by_name;
    dom::array kvs;
    if (r.value()["kvs"].get_array().get(kvs) == simdjson::SUCCESS) {
      std::string key, value;
      for (dom::element kv : kvs) {
        if (!Unbase64(GetString(kv, "key"), &key) || !Unbase64(GetString(kv, "value"), &value)) {
          return Error{"etcd: undecodable key or value in a range response", Side::kUpstream,
                       false};
        }
        const std::string_view k = key;
        if (k.starts_with(kServices)) {
          Entry& e = by_name[std::string(k.substr(kServices.size()))];
          e.registered = true;
          e.service.text = value;
          // Register writes the source in the same txn: one revision for both.
          e.service.stamp = std::to_string(GetInt(kv, "mod_revision"));
        } else if (k.starts_with(kSources)) {
          by_name[std::string(k.substr(kSources.size()))].service.source = value;
        } else if (k.starts_with(kEndpoints)) {
          const std::string_view rest = k.substr(kEndpoints.size());
          const size_t slash = rest.find('/');
          if (slash == std::string_view::npos || slash + 1 == rest.size()) continue;
          by_name[std::string(rest.substr(0, slash))].endpoints.emplace_back(
              GetInt(kv, "create_revision"), std::string(rest.substr(slash + 1)));
        }
      }
    }
    std::vector<StoredService> out;
    for (auto& [name, e] : by_name) {  // std::map: sorted by name
      if (!e.registered) continue;     // endpoints left of a service being removed
      e.service.name = name;
      // In the order they were added, as the file store keeps them.
      std::stable_sort(e.endpoints.begin(), e.endpoints.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      for (auto& [rev, address] : e.endpoints) e.service.endpoints.push_back(std::move(address));
      out.push_back(std::move(e.service));
    }
    return out;
  }

  Result<bool> AddEndpoint(const std::string& service, const std::string& address) override {
    Result<bool> valid = CheckEndpoint(service, address);
    if (!valid) return valid;
    const std::string svc = std::string(kServices) + service;
    const std::string ep = std::string(kEndpoints) + service + "/" + address;
    Result<dom::element> r =
        Call("/v3/kv/txn", Txn({VersionCompare(svc, "GREATER"), VersionCompare(ep, "EQUAL")},
                               {PutOp(ep, "")}, {CountOp(svc)}));
    if (!r) return r.error();
    if (GetBool(r.value(), "succeeded")) return true;
    if (FailureCount(r.value()) == 0) {
      return UserError("service '" + service + "' is not registered");
    }
    return false;  // already there
  }

  Result<bool> RemoveEndpoint(const std::string& service, const std::string& address) override {
    Result<bool> valid = CheckEndpoint(service, address);
    if (!valid) return valid;
    const std::string svc = std::string(kServices) + service;
    const std::string ep = std::string(kEndpoints) + service + "/" + address;
    Result<dom::element> r =
        Call("/v3/kv/txn", Txn({VersionCompare(ep, "GREATER")}, {DeleteOp(ep)}, {CountOp(svc)}));
    if (!r) return r.error();
    if (GetBool(r.value(), "succeeded")) return true;
    if (FailureCount(r.value()) == 0) {
      return UserError("service '" + service + "' is not registered");
    }
    return UserError("service '" + service + "' has no endpoint " + address);
  }

  Result<int64_t> AddEndpointWithLease(const std::string& service, const std::string& address,
                                       int64_t ttl_s) override {
    Result<bool> valid = CheckEndpoint(service, address);
    if (!valid) return valid.error();
    if (ttl_s < 1) return UserError("a lease TTL must be at least 1 s");
    Result<dom::element> g =
        Call("/v3/lease/grant", "{\"TTL\":" + Quote(std::to_string(ttl_s)) + "}");
    if (!g) return g.error();
    const int64_t lease = GetInt(g.value(), "ID");
    if (lease == 0) {
      const std::string_view why = GetString(g.value(), "error");
      return Error{"etcd: lease grant refused" + (why.empty() ? "" : ": " + std::string(why)),
                   Side::kUpstream, false};
    }
    const std::string svc = std::string(kServices) + service;
    const std::string ep = std::string(kEndpoints) + service + "/" + address;
    // No "absent" compare: a sidecar that restarts takes its key over with
    // its new lease.
    Result<dom::element> r =
        Call("/v3/kv/txn", Txn({VersionCompare(svc, "GREATER")}, {PutOp(ep, "", lease)}, {}));
    if (!r || !GetBool(r.value(), "succeeded")) {
      Error e = r ? UserError("service '" + service + "' is not registered") : r.error();
      (void)RevokeLease(lease);
      return e;
    }
    return lease;
  }

  Result<int64_t> PutMember(const std::string& id, const std::string& record,
                            int64_t ttl_s) override {
    if (id.empty() || id.find('/') != std::string::npos) {
      return UserError("'" + id + "' is not a member id");
    }
    if (ttl_s < 1) return UserError("a lease TTL must be at least 1 s");
    Result<dom::element> g =
        Call("/v3/lease/grant", "{\"TTL\":" + Quote(std::to_string(ttl_s)) + "}");
    if (!g) return g.error();
    const int64_t lease = GetInt(g.value(), "ID");
    if (lease == 0) return Error{"etcd: lease grant refused", Side::kUpstream, false};
    Result<dom::element> r =
        Call("/v3/kv/txn", Txn({}, {PutOp(std::string(kMembers) + id, record, lease)}, {}));
    if (!r) {
      (void)RevokeLease(lease);
      return r.error();
    }
    return lease;
  }

  Result<std::vector<std::string>> ListMembers() override {
    Result<dom::element> r = Call("/v3/kv/range", "{" + KeyField(kMembers) + ",\"range_end\":" +
                                                      Quote(Base64(PrefixEnd(kMembers))) + "}");
    if (!r) return r.error();
    std::vector<std::string> out;  // etcd returns a range sorted by key
    dom::array kvs;
    if (r.value()["kvs"].get_array().get(kvs) == simdjson::SUCCESS) {
      std::string value;
      for (dom::element kv : kvs) {
        if (Unbase64(GetString(kv, "value"), &value)) out.push_back(value);
      }
    }
    return out;
  }

  Result<int64_t> KeepAlive(int64_t lease) override {
    Result<dom::element> r =
        Call("/v3/lease/keepalive", "{\"ID\":" + Quote(std::to_string(lease)) + "}");
    if (!r) return r.error();
    // A streaming method: the one answer is wrapped in "result".
    dom::element result;
    if (r.value()["result"].get(result) != simdjson::SUCCESS) result = r.value();
    const int64_t ttl = GetInt(result, "TTL");
    if (ttl <= 0) {
      return Error{"etcd: lease " + std::to_string(lease) + " has expired or is unknown",
                   Side::kUpstream, false};
    }
    return ttl;
  }

  Result<bool> RevokeLease(int64_t lease) override {
    Result<dom::element> r =
        Call("/v3/lease/revoke", "{\"ID\":" + Quote(std::to_string(lease)) + "}");
    if (!r) return r.error();
    return true;
  }

  int WatchFd() override {
    if (event_fd_ >= 0) return event_fd_;
    event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    stop_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (event_fd_ < 0 || stop_fd_ < 0) {
      if (event_fd_ >= 0) close(event_fd_);
      if (stop_fd_ >= 0) close(stop_fd_);
      event_fd_ = stop_fd_ = -1;
      return -1;
    }
    watch_started_.store(true);
    watch_thread_ = std::thread([this] { WatchLoop(); });
    return event_fd_;
  }

  bool DrainWatch() override {
    if (event_fd_ < 0) return false;
    uint64_t n;
    bool any = false;
    while (read(event_fd_, &n, sizeof(n)) > 0) any = true;
    return any;
  }

  std::string Uri() const override { return uri_; }

  bool healthy() const override {
    return calls_ok_.load() && (!watch_started_.load() || watch_ok_.load());
  }

  std::string last_error() const override {
    std::lock_guard<std::mutex> lock(error_mu_);
    return last_error_;
  }

 private:
  static Result<bool> CheckEndpoint(const std::string& service, const std::string& address) {
    if (!config::IsValidServiceName(service)) {
      return UserError("'" + service + "' is not a valid service name");
    }
    if (!config::ParseEndpoint(address)) {
      return UserError("'" + address + "' is not [mtls://]host:port with a port 1..65535");
    }
    return true;
  }

  // count of the failure branch's one range ("count" is omitted when 0).
  static int64_t FailureCount(dom::element txn) {
    dom::array responses;
    if (txn["responses"].get_array().get(responses) != simdjson::SUCCESS) return 0;
    for (dom::element resp : responses) {
      dom::element range;
      if (resp["response_range"].get(range) == simdjson::SUCCESS) return GetInt(range, "count");
    }
    return 0;
  }

  void SetError(const std::string& message) {
    std::lock_guard<std::mutex> lock(error_mu_);
    last_error_ = message;
  }

  // One unary call on the caller's connection. The element lives in parser_
  // until the next call.
  Result<dom::element> Call(std::string_view path, const std::string& body) {
    Result<HttpResponse> resp = client_.Post(path, body);
    if (!resp) {
      calls_ok_.store(false);
      const std::string message = "etcd unreachable (" + uri_ + "): " + resp.error().message;
      SetError(message);
      return Error{message, Side::kUpstream, true};
    }
    const HttpResponse& r = resp.value();
    dom::element doc;
    if (parser_.parse(r.body).get(doc) != simdjson::SUCCESS || !doc.is_object()) {
      calls_ok_.store(false);
      const std::string message =
          "etcd (" + uri_ + "): answered " + std::to_string(r.status) + " without a JSON object";
      SetError(message);
      return Error{message, Side::kUpstream, r.status >= 500};
    }
    if (r.status != 200) {
      std::string_view why = GetString(doc, "message");
      if (why.empty()) why = GetString(doc, "error");
      const std::string message =
          "etcd (" + uri_ +
          "): " + (why.empty() ? "HTTP " + std::to_string(r.status) : std::string(why));
      // 503/504: no leader, request timed out: the cluster is not serving.
      if (r.status >= 500) {
        calls_ok_.store(false);
        SetError(message);
      } else {
        calls_ok_.store(true);
      }
      return Error{message, Side::kUpstream, r.status >= 500};
    }
    calls_ok_.store(true);
    return doc;
  }

  void Notify() {
    const uint64_t one = 1;
    (void)!write(event_fd_, &one, sizeof(one));
  }

  // Sleeps ms or until stopped; true when stopped.
  bool Sleep(int ms) {
    pollfd p{stop_fd_, POLLIN, 0};
    while (true) {
      const int n = poll(&p, 1, ms);
      if (n < 0 && errno == EINTR) continue;
      return n > 0;
    }
  }

  void WatchFailed(const std::string& why) {
    watch_ok_.store(false);
    SetError("etcd unreachable (" + uri_ + "): watch: " + why);
  }

  // One message of the watch stream: moves the resume revision *next_rev
  // past what it reports and wakes the reader when it should re-list; false
  // (the reason recorded) when the stream must be opened again.
  bool OnWatchMessage(dom::element msg, int64_t* next_rev, int* backoff_ms) {
    dom::element result;
    if (msg["result"].get(result) != simdjson::SUCCESS) {
      std::string_view why = GetString(msg, "message");
      if (why.empty()) why = GetString(msg, "error");
      WatchFailed(why.empty() ? "error message" : std::string(why));
      return false;
    }
    if (GetBool(result, "created")) {
      if (*next_rev == 0) {
        dom::element header;
        if (result["header"].get(header) == simdjson::SUCCESS) {
          *next_rev = GetInt(header, "revision") + 1;
        }
      }
      watch_ok_.store(true);
      *backoff_ms = kBackoffMinMs;
      // Changes made before the watch existed (between the reader's
      // first List and now, or while etcd was away) came with no
      // event: the reader re-lists once.
      Notify();
    }
    if (GetInt(result, "compact_revision") > 0) {
      // Our resume point was compacted away: start afresh and let the
      // reader re-list.
      *next_rev = 0;
      Notify();
    }
    dom::array events;
    if (result["events"].get_array().get(events) == simdjson::SUCCESS && events.size() > 0) {
      for (dom::element ev : events) {
        dom::element kv;
        if (ev["kv"].get(kv) == simdjson::SUCCESS) {
          *next_rev = std::max(*next_rev, GetInt(kv, "mod_revision") + 1);
        }
      }
      Notify();
    }
    if (GetBool(result, "canceled")) {
      WatchFailed("cancelled by etcd");
      return false;
    }
    return true;
  }

  // The watch thread: one watch stream on /hms/ at a time, resumed from the
  // next unseen revision after a break. Never throws, never exits but on stop.
  void WatchLoop() {
    HttpClient stream(targets_, options_.timeout_ms);
    stream.set_cancel_fd(stop_fd_);
    HttpClient probe(targets_, options_.timeout_ms);
    probe.set_cancel_fd(stop_fd_);
    dom::parser parser;
    int backoff_ms = kBackoffMinMs;
    int64_t next_rev = 0;  // 0: from now
    const std::string range_end = Quote(Base64(PrefixEnd(kPrefix)));
    while (true) {
      std::string body =
          "{\"create_request\":{" + KeyField(kPrefix) + ",\"range_end\":" + range_end;
      if (next_rev > 0) body += ",\"start_revision\":" + Quote(std::to_string(next_rev));
      body += "}}";
      Result<int> status = stream.OpenStream("/v3/watch", body);
      if (!status || status.value() != 200) {
        WatchFailed(status ? "HTTP " + std::to_string(status.value()) : status.error().message);
        stream.Close();
        if (Sleep(backoff_ms)) return;
        backoff_ms = std::min(backoff_ms * 2, kBackoffMaxMs);
        continue;
      }
      std::string buf;
      bool broken = false;
      while (!broken) {
        Result<HttpClient::StreamRead> got = stream.ReadStream(&buf, kWatchIdleProbeMs);
        if (!got) {
          WatchFailed(got.error().message);
          break;
        }
        if (got.value() == HttpClient::StreamRead::kCancelled) return;
        if (got.value() == HttpClient::StreamRead::kEnd) {
          WatchFailed("the stream ended");
          break;
        }
        if (got.value() == HttpClient::StreamRead::kIdle) {
          Result<HttpResponse> p =
              probe.Post("/v3/kv/range", "{" + KeyField(kPrefix) + ",\"count_only\":true}");
          if (!p) {
            WatchFailed(p.error().message);
            break;
          }
          continue;
        }
        size_t begin, end;
        while (!broken && NextObject(buf, &begin, &end)) {
          dom::element msg;
          if (parser.parse(buf.data() + begin, end - begin).get(msg) != simdjson::SUCCESS) {
            WatchFailed("unparsable message");
            broken = true;
            break;
          }
          buf.erase(0, end);
          if (!OnWatchMessage(msg, &next_rev, &backoff_ms)) broken = true;
        }
        if (buf.size() > kMaxWatchBuffer) {
          WatchFailed("oversized message");
          break;
        }
      }
      stream.Close();
      if (Sleep(backoff_ms)) return;
      backoff_ms = std::min(backoff_ms * 2, kBackoffMaxMs);
    }
  }

  const std::string uri_;
  const std::vector<HttpTarget> targets_;
  const EtcdOptions options_;
  HttpClient client_;  // the calling thread's connection
  dom::parser parser_;
  int event_fd_ = -1;
  int stop_fd_ = -1;
  std::thread watch_thread_;
  std::atomic<bool> watch_started_{false};
  std::atomic<bool> calls_ok_{true};
  std::atomic<bool> watch_ok_{true};
  mutable std::mutex error_mu_;
  std::string last_error_;
};

}  // namespace

Result<std::unique_ptr<EtcdStore>> OpenEtcdStore(const std::string& uri, EtcdOptions options) {
  std::string_view rest = uri;
  if (!rest.starts_with("etcd:")) {
    return UserError("store URI '" + uri + "' is not etcd://HOST:PORT[,HOST:PORT...]");
  }
  rest.remove_prefix(5);
  if (rest.starts_with("//")) rest.remove_prefix(2);
  while (rest.ends_with("/")) rest.remove_suffix(1);
  std::vector<HttpTarget> targets;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string_view member = rest.substr(0, comma);
    std::optional<config::HostPort> hp = config::ParseHostPort(member);
    if (!hp) {
      return UserError("store URI '" + uri + "': '" + std::string(member) +
                       "' is not HOST:PORT with a port 1..65535");
    }
    targets.push_back(HttpTarget{hp->host, hp->port});
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  if (targets.empty()) {
    return UserError("store URI '" + uri + "' names no etcd member (etcd://HOST:PORT)");
  }
  if (options.timeout_ms <= 0) options.timeout_ms = 2000;
  return std::unique_ptr<EtcdStore>(new EtcdStoreImpl(uri, std::move(targets), options));
}

}  // namespace hms::control
