// The request head toward the upstream (head_rewrite.h).
#include "src/proxy/head_rewrite.h"

namespace hms::proxy {
namespace {

// Caller fields that never go upstream as sent: ours replace them.
bool ReplacedByOurs(std::string_view name) noexcept {
  return http::EqualsIgnoreCase(name, "expect") ||
         http::EqualsIgnoreCase(name, "x-forwarded-proto") ||
         http::EqualsIgnoreCase(name, "x-trace-id") ||
         http::EqualsIgnoreCase(name, "traceparent") ||
         http::EqualsIgnoreCase(name, "x-hms-peer");
}

}  // namespace

bool WrittenByGateway(std::string_view name) noexcept {
  return ReplacedByOurs(name) || http::EqualsIgnoreCase(name, "x-forwarded-for") ||
         http::EqualsIgnoreCase(name, "x-hms-timeout-ms") ||
         http::EqualsIgnoreCase(name, "grpc-timeout");
}

bool KeptInRequestTrailers(std::string_view name, http::UnderscorePolicy underscores) noexcept {
  return !http::ForbiddenInTrailers(name) && !WrittenByGateway(name) &&
         http::JudgeFieldName(name, underscores) == http::FieldVerdict::kForward;
}

RequestHeadOut RewriteRequestHead(const http::RequestHead& r, const HopByHop& hop_by_hop,
                                  const RequestHeadFields& f, char* dst, size_t cap) noexcept {
  RequestHeadOut out;
  Writer w(dst, cap);
  w.S(r.method_text).C(' ');
  if (f.origin.empty() || f.origin.front() == '?') w.C('/');  // egress "/NAME" or "/NAME?q"
  w.S(f.origin).S(" HTTP/1.1\r\n");
  std::string_view xff;
  bool has_host = false;
  // RFC 9112 §3.2.2: a proxy forwarding an absolute-form request replaces
  // Host with the target's authority (the parser put it in r.host, which is
  // what chose the route); the origin above is already origin-form.
  const bool absolute_form = r.target.front() != '/' && !r.path.empty() && r.path.front() == '/';
  for (int i = 0; i < r.header_count; ++i) {
    const http::Header& h = r.headers[i];
    if (http::EqualsIgnoreCase(h.name, kTimeoutHeader)) {
      if (out.caller_ms.empty()) out.caller_ms = h.value;
      continue;  // ours replaces it
    }
    if (f.grpc && http::EqualsIgnoreCase(h.name, "grpc-timeout")) {
      if (out.caller_grpc_timeout.empty()) out.caller_grpc_timeout = h.value;
      continue;  // ours replaces it
    }
    if (hop_by_hop(i)) continue;
    // Counted and noted (or refused) by the worker's JudgeFieldNames.
    if (http::JudgeFieldName(h.name, f.underscores) != http::FieldVerdict::kForward) continue;
    if (http::EqualsIgnoreCase(h.name, "x-forwarded-for")) {
      xff = h.value;
      continue;
    }
    if (ReplacedByOurs(h.name)) continue;
    if (http::EqualsIgnoreCase(h.name, "host")) {
      if (!f.egress_to.empty() || absolute_form) continue;
      has_host = true;
    }
    // Identical repeated Content-Length fields were folded by the parser: one goes out.
    if (http::EqualsIgnoreCase(h.name, "content-length")) continue;
    w.S(h.name).S(": ").S(h.value).S("\r\n");
  }
  if (!f.egress_to.empty()) {
    w.S("host: ").S(f.egress_to).S("\r\n");
  } else if (absolute_form) {
    w.S("host: ").S(r.host).S("\r\n");  // the target's authority (RFC 9112 §3.2.2)
  } else if (!has_host) {
    w.S("host: ").S(f.default_host).S("\r\n");
  }
  if (f.websocket) w.S("connection: upgrade\r\nupgrade: websocket\r\n");
  w.S("x-forwarded-for: ");
  if (!xff.empty()) w.S(xff).S(", ");
  w.S(f.client_ip)
      .S(f.tls ? "\r\nx-forwarded-proto: https\r\nx-trace-id: "
               : "\r\nx-forwarded-proto: http\r\nx-trace-id: ");
  const obs::TraceContext& t = *f.trace;
  if (t.external_len > 0) {
    w.S(std::string_view(t.external_id, t.external_len));
  } else {
    w.S(std::string_view(t.trace_id, 32));
  }
  // The verified caller, for the service behind (any such field from the
  // caller was dropped above).
  if (!f.peer_id.empty()) w.S("\r\nx-hms-peer: ").S(f.peer_id);
  char tpbuf[64];
  const int tplen = obs::FormatTraceparent(t, tpbuf);
  w.S("\r\ntraceparent: ").S(std::string_view(tpbuf, static_cast<size_t>(tplen))).S("\r\n");
  w.S(kTimeoutHeader).S(": ");
  out.timeout_field = w.size();
  w.S("          \r\n");
  static_assert(kTimeoutDigits == 10, "the spaces above are the field's width");
  if (f.grpc) {
    w.S("grpc-timeout: ");
    out.grpc_timeout_field = w.size();
    w.S("         \r\n");
    static_assert(h2::kGrpcTimeoutBytes == 9, "the spaces above are the field's width");
  }
  if (r.body == http::BodyKind::kChunked) w.S("transfer-encoding: chunked\r\n");
  if (r.body == http::BodyKind::kContentLength) {
    w.S("content-length: ").U(r.content_length).S("\r\n");
  }
  w.S("\r\n");
  out.size = w.overflow() ? 0 : w.size();
  return out;
}

}  // namespace hms::proxy
