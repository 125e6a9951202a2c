// Head rewriting, both ways: pure functions, headers in, bytes out
// (docs/engine.md "Header fields"). The request side (toward the upstream)
// is in head_rewrite.cc, the response side (toward the client) here. No
// state, no allocation; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "hms/http/field_names.h"
#include "hms/http/parser.h"
#include "hms/obs/trace.h"
#include "hms/policy/rate_limit.h"
#include "hms/h2/grpc.h"
#include "src/proxy/wire.h"

namespace hms::proxy {

// The request header carrying the time an attempt has left, in ms (written
// upstream on every attempt; read from callers, so a sidecar keeps within
// the gateway's deadline). Its value is kTimeoutDigits wide: digits, then
// spaces (OWS), filled in by each attempt.
inline constexpr std::string_view kTimeoutHeader = "x-hms-timeout-ms";
inline constexpr size_t kTimeoutDigits = 10;

// What the gateway adds to or decides about a caller's request head.
struct RequestHeadFields {
  std::string_view origin;        // the request-target sent upstream (origin-form)
  std::string_view egress_to;     // a sidecar's egress: the service, sent as Host
  std::string_view peer_id;       // the caller's verified mTLS identity, sent as x-hms-peer
  std::string_view default_host;  // Host when the caller sent none: the endpoint's authority
  std::string_view client_ip;     // appended to X-Forwarded-For
  bool tls = false;               // X-Forwarded-Proto: https
  // A WebSocket upgrade the route admits (websocket.h): its Upgrade and
  // Connection go upstream as `upgrade: websocket` and `connection: upgrade`
  // (any other Upgrade is dropped as hop-by-hop).
  bool websocket = false;
  // A gRPC call: the caller's grpc-timeout is replaced by ours, written by
  // each attempt (h2::kGrpcTimeoutBytes wide, padded with spaces).
  bool grpc = false;
  http::UnderscorePolicy underscores = http::UnderscorePolicy::kDrop;
  const obs::TraceContext* trace = nullptr;  // x-trace-id and traceparent (required)
};

// What RewriteRequestHead found or placed in the head.
struct RequestHeadOut {
  size_t size = 0;             // bytes written; 0 when the head did not fit
  size_t timeout_field = 0;    // offset of the x-hms-timeout-ms value (kTimeoutDigits spaces)
  std::string_view caller_ms;  // the caller's x-hms-timeout-ms (the first one), unparsed
  size_t grpc_timeout_field = 0;      // a gRPC call: offset of the grpc-timeout value
  std::string_view caller_grpc_timeout;  // the caller's grpc-timeout (the first one), unparsed
};

// The request fields the gateway writes itself (replaced by its own, or
// extended: the trace context, x-forwarded-for and x-forwarded-proto,
// x-hms-peer, the deadline's x-hms-timeout-ms and grpc-timeout, Expect): a
// caller's never reach the upstream as sent, in the head (below) or in
// trailers (KeptInRequestTrailers).
bool WrittenByGateway(std::string_view name) noexcept;

// Whether a field of a request's trailer section goes on to the upstream,
// as HTTP/2 trailers (h2_up.cc) or in the HTTP/1.1 last chunk the gateway
// frames for an h2 client's request (h2_down.cc): not one RFC 9110 §6.5.1
// forbids in a trailer section, nor one the gateway writes itself (a
// trailer must not speak in its name where the head could not), nor a name
// the head's underscore rule would not forward.
bool KeptInRequestTrailers(std::string_view name, http::UnderscorePolicy underscores) noexcept;

// Writes the upstream's request head for `r` into dst[0, cap): the request
// line with `f.origin`, the caller's end-to-end fields, then ours. Dropped
// from the caller: hop-by-hop fields (as `hop_by_hop` marked them), fields
// whose names JudgeFieldName does not forward, Expect, X-Forwarded-Proto,
// x-trace-id, traceparent, x-hms-peer and x-hms-timeout-ms (each replaced by
// ours; Upgrade and Connection too for a WebSocket upgrade); X-Forwarded-For
// is extended; Host is replaced for egress and for an absolute-form target
// (RFC 9112 §3.2.2); one Content-Length goes out. A head that does not fit
// returns size 0: a cut head would reach the upstream as another message.
RequestHeadOut RewriteRequestHead(const http::RequestHead& r, const HopByHop& hop_by_hop,
                                  const RequestHeadFields& f, char* dst, size_t cap) noexcept;

// The RateLimit-* fields of a rate-limited route's decision.
inline void WriteRateFields(Writer& w, const policy::RateDecision& d) noexcept {
  w.S("ratelimit-limit: ").U(d.limit).S("\r\nratelimit-remaining: ").U(d.remaining);
  w.S("\r\nratelimit-reset: ").U(d.reset_s).S("\r\n");
}

// What the gateway adds to or decides about an upstream's answer head.
struct ResponseHeadFields {
  std::string_view trace_id;                  // sent as x-trace-id (the caller's, else ours)
  const policy::RateDecision* rate = nullptr; // a rate-limited route: its RateLimit-* fields
  bool dechunk = false;       // chunked from the upstream, sent to an HTTP/1.0 client unframed
  bool close = false;         // the connection closes after this answer
  uint8_t client_version_minor = 1;
};

// Writes the client's response head for `r` into dst[0, cap): the status
// line, the upstream's end-to-end fields (hop-by-hop ones, as `hop_by_hop`
// marked them, and its x-trace-id dropped; one Content-Length), then ours.
// Returns the bytes written, or 0 when the head does not fit: a cut head is
// never sent.
inline size_t RewriteResponseHead(const http::ResponseHead& r, const HopByHop& hop_by_hop,
                                  const ResponseHeadFields& f, char* dst, size_t cap) noexcept {
  Writer w(dst, cap);
  w.S("HTTP/1.1 ").U(r.status).C(' ').S(r.reason).S("\r\n");
  for (int i = 0; i < r.header_count; ++i) {
    const http::Header& h = r.headers[i];
    // Identical repeated Content-Length fields were folded by the parser: one
    // goes out (for bodiless answers, such as to HEAD, they pass as sent).
    if (hop_by_hop(i) || http::EqualsIgnoreCase(h.name, "x-trace-id") ||
        (r.body == http::BodyKind::kContentLength &&
         http::EqualsIgnoreCase(h.name, "content-length"))) {
      continue;
    }
    w.S(h.name).S(": ").S(h.value).S("\r\n");
  }
  if (r.body == http::BodyKind::kChunked && !f.dechunk) w.S("transfer-encoding: chunked\r\n");
  if (r.body == http::BodyKind::kContentLength) {
    w.S("content-length: ").U(r.content_length).S("\r\n");
  }
  w.S("x-trace-id: ").S(f.trace_id).S("\r\n");
  if (f.rate != nullptr) WriteRateFields(w, *f.rate);
  if (f.close) {
    w.S("connection: close\r\n");
  } else if (f.client_version_minor == 0) {
    w.S("connection: keep-alive\r\n");
  }
  w.S("\r\n");
  return w.overflow() ? 0 : w.size();
}

// Whether a field of an answer's trailer section goes on to the client, as
// HTTP/2 trailers or in an HTTP/1.1 last chunk the gateway frames itself:
// not one RFC 9110 §6.5.1 forbids in trailers (framing, routing,
// authentication, response control data, how to process the content,
// hop-by-hop: §6.5.2 lets a recipient merge trailers into the head, where
// these would change what the head said), nor x-trace-id, which the head
// above replaces with the gateway's. The request side's rule
// (http::ForbiddenInTrailers) with the response's own field.
inline bool KeptInResponseTrailers(std::string_view name) noexcept {
  return !http::ForbiddenInTrailers(name) && !http::EqualsIgnoreCase(name, "x-trace-id");
}

}  // namespace hms::proxy
