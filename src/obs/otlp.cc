#include "hms/obs/otlp.h"

#include "hms/common/json_escape.h"

#include <string_view>

namespace hms::obs {
namespace {

// opentelemetry-proto trace.proto: Span.SpanKind SPAN_KIND_SERVER and
// Status.StatusCode STATUS_CODE_ERROR.
constexpr int kSpanKindServer = 2;
constexpr int kStatusCodeError = 2;

// Decimal digits of v, without a std::string per number.
void AppendInt(std::string* o, int64_t v) {
  char buf[24];
  char* end = buf + sizeof buf;
  char* p = end;
  const bool negative = v < 0;
  uint64_t u = negative ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
  do {
    *--p = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u != 0);
  if (negative) *--p = '-';
  o->append(p, static_cast<size_t>(end - p));
}

// Attributes as the KeyValue list of common.proto; `first` tracks the commas.
class Attributes {
 public:
  explicit Attributes(std::string* o) : o_(o) { o_->append("\"attributes\":["); }
  void String(std::string_view key, std::string_view value) {
    Key(key);
    o_->append("{\"stringValue\":");
    AppendJsonString(o_, value);
    o_->append("}}");
  }
  // AnyValue.int_value is an int64: a decimal string in the JSON mapping.
  void Int(std::string_view key, int64_t value) {
    Key(key);
    o_->append("{\"intValue\":\"");
    AppendInt(o_, value);
    o_->append("\"}}");
  }
  void Close() { o_->push_back(']'); }

 private:
  void Key(std::string_view key) {
    if (!first_) o_->push_back(',');
    first_ = false;
    o_->append("{\"key\":");
    AppendJsonString(o_, key);
    o_->append(",\"value\":");
  }
  std::string* o_;
  bool first_ = true;
};

// The methods semantic conventions name; any other is reported as "_OTHER"
// with the original in http.request.method_original.
bool IsKnownMethod(std::string_view m) {
  for (std::string_view k :
       {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}) {
    if (m == k) return true;
  }
  return false;
}

std::string_view ListenerName(SpanListener l) {
  switch (l) {
    case SpanListener::kInbound:
      return "inbound";
    case SpanListener::kEgress:
      return "egress";
    case SpanListener::kEdge:
      break;
  }
  return "edge";
}

void AppendSpan(std::string* o, const SpanRecord& s) {
  const std::string_view method(s.method, s.method_len);
  const std::string_view route(s.route, s.route_len);
  const std::string_view reason(s.reason, s.reason_len);
  const std::string_view host(s.host, s.host_len);
  const bool known = IsKnownMethod(method);
  // Only an edge route is a template of the application's paths; a
  // sidecar's "(inbound)"/"(egress)" routes are not (http.route is left out).
  const bool templated = s.listener == SpanListener::kEdge && !route.empty();

  o->append("{\"traceId\":");
  AppendJsonString(o, std::string_view(s.trace_id, 32));
  o->append(",\"spanId\":");
  AppendJsonString(o, std::string_view(s.span_id, 16));
  if (s.parent_id[0] != '\0') {
    o->append(",\"parentSpanId\":");
    AppendJsonString(o, std::string_view(s.parent_id, 16));
  }
  // Span name: "{method} {http.route}", or the method alone (semantic
  // conventions, "HTTP server span name"; "HTTP" for an unknown method).
  o->append(",\"name\":\"");
  AppendJsonEscaped(o, known ? method : std::string_view("HTTP"));
  if (templated) {
    o->push_back(' ');
    AppendJsonEscaped(o, route);
  }
  o->push_back('"');
  o->append(",\"kind\":");
  AppendInt(o, kSpanKindServer);
  o->append(",\"startTimeUnixNano\":\"");
  AppendInt(o, s.start_unix_ns);
  o->append("\",\"endTimeUnixNano\":\"");
  AppendInt(o, s.end_unix_ns);
  o->append("\",");

  Attributes a(o);
  a.String("http.request.method", known ? method : std::string_view("_OTHER"));
  if (!known && !method.empty()) a.String("http.request.method_original", method);
  if (templated) a.String("http.route", route);
  a.Int("http.response.status_code", s.status);
  if (!host.empty()) {
    // Host is "name", "name:port", "[v6]" or "[v6]:port".
    std::string_view name_part = host;
    std::string_view port_part;
    const size_t close = host.front() == '[' ? host.find(']') : std::string_view::npos;
    const size_t colon = host.rfind(':');
    if (colon != std::string_view::npos && (close == std::string_view::npos || colon > close)) {
      name_part = host.substr(0, colon);
      port_part = host.substr(colon + 1);
    }
    if (close != std::string_view::npos && name_part.size() >= 2) {
      name_part = name_part.substr(1, name_part.size() - 2);
    }
    a.String("server.address", name_part);
    int64_t port = 0;
    // At most five digits are read: the Host field can hold a longer "port"
    // (up to the record's 64 bytes), whose value would overflow int64_t.
    bool digits = !port_part.empty() && port_part.size() <= 5;
    for (size_t i = 0; digits && i < port_part.size(); ++i) {
      const char ch = port_part[i];
      digits = ch >= '0' && ch <= '9';
      port = port * 10 + (ch - '0');
    }
    if (digits && port > 0 && port <= 65535) a.Int("server.port", port);
  }
  a.String("network.protocol.version", s.version_minor == 0 ? "1.0" : "1.1");
  if (s.peer_len > 0) a.String("network.peer.address", std::string_view(s.peer, s.peer_len));
  // Conditionally required "if and only if the request was retried".
  if (s.retries > 0) a.Int("http.request.resend_count", s.retries);
  if (s.status >= 500) {
    const std::string code = std::to_string(s.status);
    a.String("error.type", reason.empty() ? std::string_view(code) : reason);
  }
  // The project's own: which service, endpoint and stamp, and the caller's
  // mesh identity.
  a.String("hms.listener", ListenerName(s.listener));
  if (s.service_len > 0) a.String("hms.service", std::string_view(s.service, s.service_len));
  if (s.upstream_len > 0)
    a.String("hms.upstream.address", std::string_view(s.upstream, s.upstream_len));
  if (!reason.empty()) a.String("hms.stamp", reason);
  if (s.peer_identity_len > 0) {
    a.String("hms.peer.identity", std::string_view(s.peer_identity, s.peer_identity_len));
  }
  a.Close();
  // A server span's status is Error for 5xx only; 4xx is the caller's
  // fault, left Unset (semantic conventions, "Status").
  if (s.status >= 500) {
    o->append(",\"status\":{\"code\":");
    AppendInt(o, kStatusCodeError);
    if (!reason.empty()) {
      o->append(",\"message\":");
      AppendJsonString(o, reason);
    }
    o->push_back('}');
  }
  o->push_back('}');
}

}  // namespace

void EncodeOtlpTraces(const OtlpResource& resource, const SpanRecord* spans, size_t n,
                      std::string* out) {
  std::string& o = *out;
  o.clear();
  o.reserve(512 + n * 900);
  o.append("{\"resourceSpans\":[{\"resource\":{");
  Attributes r(&o);
  r.String("service.name", resource.service_name);
  if (!resource.service_version.empty()) r.String("service.version", resource.service_version);
  if (!resource.role.empty()) r.String("hms.role", resource.role);
  r.Close();
  o.append("},\"scopeSpans\":[{\"scope\":{\"name\":\"hms-gateway\"");
  if (!resource.service_version.empty()) {
    o.append(",\"version\":");
    AppendJsonString(&o, resource.service_version);
  }
  o.append("},\"spans\":[");
  for (size_t i = 0; i < n; ++i) {
    if (i > 0) o.push_back(',');
    AppendSpan(&o, spans[i]);
  }
  o.append("]}]}]}");
}

}  // namespace hms::obs
