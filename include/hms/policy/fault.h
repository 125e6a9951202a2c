// Why an attempt or a request ended the way it did, and what that says about
// the upstream (docs/resilience.md "What counts as a failure").
//
// One table, Pingora's way: for each fault, which side failed, whether the
// service's breaker and the endpoint's outlier ejection hear of it, and
// whether another attempt may help. The retry budget is spent only on
// retries, and a retry is only tried for a fault the table says may help, so
// the budget follows the same table. Only the upstream's own failures count:
// connect failures, resets and malformed answers, the service's own timeout
// (route `timeout` or `per_try_timeout`) and 5xx answers. A caller's shorter
// deadline, a client that leaves or does not finish its body, and requests
// refused before they reached the upstream say nothing about the upstream,
// so any client could otherwise open a breaker for everyone.
//
// The same rows carry every answer the gateway writes itself: status,
// x-hms-reason token and message (AnswerFor), so a refusal and the rule
// that made it are named in one place.
//
// Pure data: any thread may call these; nothing allocates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace hms::policy {

enum class Fault : uint8_t {
  kNone = 0,          // the upstream answered with a status below 500
  // The upstream's failures.
  kConnect,           // connect refused or failed, or the mTLS handshake to it
  kUpstreamReset,     // it closed or reset before a complete answer, or sent a malformed one
  kServiceTimeout,    // the route's own timeout ran out before an answer head
  kPerTryTimeout,     // per_try_timeout ran out, with time left before the deadline
  kGatewayStatus,     // it answered 502, 503 or 504
  kServerError,       // it answered another 5xx
  // Not the upstream's.
  kCallerDeadline,    // the caller's x-hms-timeout-ms, shorter than the route's timeout, ran out
  kClientGone,        // the client closed or reset before the answer came
  kClientBodyStalled, // the time ran out while the client had not sent the whole body
  kRefused,           // answered by the gateway before any byte went upstream
  kBodyRefused,       // the gateway refused the request body mid-stream (bad chunk, too large)
  kLocal,             // the gateway itself could not go on (no socket)
  // The gateway's own answers, each a refinement of one of the above: it is
  // counted as that one is, and says to the client which rule answered.
  kMalformedRequest,  // the head broke RFC 9112 (status and token from the parser's error)
  kHeaderTimeout,     // the head did not arrive within header_timeout
  kPlainHttpToTls,    // plain HTTP sent to a TLS listener
  kBadPath,           // the target is ambiguous or escapes its root
  kNoService,         // a sidecar's egress request names no service
  kNoRoute,           // no route for the path (and host)
  kMethodNotAllowed,  // a route has the path, not the method
  kIdentityNotAllowed,// a sidecar's caller is not in allow_from
  kBodyTooLarge,      // the body exceeds max_body_bytes
  kBadChunk,          // a malformed chunked request body
  kBodyIncomplete,    // the client closed its side before its whole body
  kTooManyConnectionOptions,  // the Connection fields name more options than kept
  kUnderscoreInHeader,        // a field name with '_' under underscores_in_headers: reject
  kJwtRejected,       // the route's JWT rule refused (status and token from the verifier)
  kRateLimited,       // the route's rate limit refused
  kCircuitOpen,       // the service's breaker is open (or opened by this failure)
  kNoEndpoints,       // the service has no endpoints
  kHeaderTooLarge,    // the request head with the gateway's fields outgrew its buffer
  kConnectNoSocket,   // no socket for a new upstream connection
  kUpstreamBadResponse,      // a malformed or unusable response head
  kUpstreamHeaderTooLarge,   // the response head with the gateway's fields outgrew its buffer
  kUpstreamTlsFailed,        // the mTLS session to the upstream failed
  kUpstreamIdentityMismatch, // the upstream's certificate is not the service's identity
  kNoMeshIdentity,           // the endpoint takes mTLS only and this proxy has no identity
  // A sidecar could not connect to the service beside it. The sidecar
  // answers it (503 local_service_unavailable); a caller that gets that
  // answer from a sidecar counts it as one failure of that endpoint, as it
  // would count a refused connect of its own.
  kLocalServiceDown,
  // WebSocket (docs/engine.md "WebSocket").
  kBadWebSocketUpgrade,  // an upgrade that breaks RFC 6455 §4.2.1 (the rule named)
  kWebSocketOff,         // the route does not take WebSocket upgrades (no `websocket: true`)
  kUpstreamBadUpgrade,   // the upstream's 101 is not a valid WebSocket handshake answer
  // A fleet-scope rate limit could not ask Redis and its fallback is
  // fail_closed (docs/resilience.md "Fleet scope").
  kFleetUnavailable,
  kCount
};

enum class FaultSide : uint8_t { kNone, kUpstream, kDownstream, kInternal };

// What the breaker and outlier ejection do with an outcome: a success clears
// consecutive failures (and closes a half-open breaker), a failure counts,
// and an outcome not counted changes nothing, except that a half-open probe
// that ends that way gives its slot back so the next request may probe.
enum class FaultVerdict : uint8_t { kSuccess, kFailure, kNotCounted };

// One row of the table. `status`, `reason` (the x-hms-reason token) and
// `message` are the gateway's answer when the fault ends the request;
// `status` 0 means the gateway writes no answer of its own for it (the
// upstream's answer goes out, or the client is gone).
struct FaultInfo {
  FaultSide side;
  FaultVerdict verdict;
  bool retry_may_help;    // another attempt may succeed (the other retry rules still apply)
  std::string_view name;  // for tests and logs
  uint16_t status;
  std::string_view reason;
  std::string_view message;
};

namespace fault_rows {
inline constexpr FaultSide kUp = FaultSide::kUpstream;
inline constexpr FaultSide kDown = FaultSide::kDownstream;
inline constexpr FaultVerdict kFail = FaultVerdict::kFailure;
inline constexpr FaultVerdict kNot = FaultVerdict::kNotCounted;
}  // namespace fault_rows

inline constexpr FaultInfo kFaultTable[] = {
    // kNone
    {FaultSide::kNone, FaultVerdict::kSuccess, false, "none", 0, "", ""},
    // kConnect: nothing was sent; the next endpoint may accept.
    {fault_rows::kUp, fault_rows::kFail, true, "connect", 502, "upstream_connect_failed",
     "cannot connect to the upstream"},
    // kUpstreamReset: another connection or endpoint may answer.
    {fault_rows::kUp, fault_rows::kFail, true, "upstream_reset", 502, "upstream_reset",
     "the upstream closed the connection before a complete response"},
    // kServiceTimeout: the deadline is spent; no time is left to retry.
    {fault_rows::kUp, fault_rows::kFail, false, "service_timeout", 504, "upstream_timeout",
     "the upstream did not answer in time"},
    // kPerTryTimeout: the attempt ran out, the request has time left.
    {fault_rows::kUp, fault_rows::kFail, true, "per_try_timeout", 504, "upstream_timeout",
     "the upstream did not answer in time"},
    // kGatewayStatus: 502/503/504 say "not now" or "not here".
    {fault_rows::kUp, fault_rows::kFail, true, "gateway_status", 0, "", ""},
    // kServerError: 500 and the rest are the service's answer; asking again
    // would usually get the same one (a service's `retry_on` may list 500:
    // retry.h).
    {fault_rows::kUp, fault_rows::kFail, false, "server_error", 0, "", ""},
    // kCallerDeadline: the caller chose to wait less than the service may take.
    {fault_rows::kDown, fault_rows::kNot, false, "caller_deadline", 504, "caller_deadline",
     "the upstream did not answer within the caller's x-hms-timeout-ms"},
    // kClientGone: nobody is left to answer (logged as 499).
    {fault_rows::kDown, fault_rows::kNot, false, "client_gone", 0, "", ""},
    // kClientBodyStalled: the upstream cannot answer a request it has not got.
    {fault_rows::kDown, fault_rows::kNot, false, "client_body_stalled", 408, "body_timeout",
     "request body not received in time"},
    // kRefused: rate limit, JWT, no endpoints, ...: the upstream never saw
    // it. The class of the refinements below; they carry the answers.
    {fault_rows::kDown, fault_rows::kNot, false, "refused", 0, "", ""},
    // kBodyRefused: the class of kBadChunk and kBodyTooLarge.
    {fault_rows::kDown, fault_rows::kNot, false, "body_refused", 0, "", ""},
    // kLocal
    {FaultSide::kInternal, fault_rows::kNot, false, "local", 0, "", ""},
    // The gateway's own answers. Refusals before the upstream saw anything
    // are counted as kRefused is; the upstream's broken answers as
    // kUpstreamReset or kConnect are.
    {fault_rows::kDown, fault_rows::kNot, false, "malformed_request", 400, "bad_request",
     "malformed request"},
    {fault_rows::kDown, fault_rows::kNot, false, "header_timeout", 408, "header_timeout",
     "request head not received in time"},
    {fault_rows::kDown, fault_rows::kNot, false, "plain_http_to_tls", 400, "plain_http_to_tls_port",
     "this listener speaks TLS: use https"},
    {fault_rows::kDown, fault_rows::kNot, false, "bad_path", 400, "bad_path", "bad path"},
    {fault_rows::kDown, fault_rows::kNot, false, "no_service", 404, "no_service",
     "no service named by the request"},
    {fault_rows::kDown, fault_rows::kNot, false, "no_route", 404, "no_route", "no route"},
    {fault_rows::kDown, fault_rows::kNot, false, "method_not_allowed", 405, "method_not_allowed",
     "method not allowed here"},
    {fault_rows::kDown, fault_rows::kNot, false, "identity_not_allowed", 403,
     "identity_not_allowed", "the caller's identity is not in this service's allow_from"},
    {fault_rows::kDown, fault_rows::kNot, false, "body_too_large", 413, "body_too_large",
     "request body exceeds max_body_bytes"},
    {fault_rows::kDown, fault_rows::kNot, false, "bad_chunk", 400, "bad_chunk",
     "malformed chunked request body"},
    {fault_rows::kDown, fault_rows::kNot, false, "body_incomplete", 400, "body_incomplete",
     "the client closed its side before sending the whole request body"},
    {fault_rows::kDown, fault_rows::kNot, false, "too_many_connection_options", 400,
     "too_many_connection_options", "the Connection fields name too many options"},
    {fault_rows::kDown, fault_rows::kNot, false, "underscore_in_header", 400,
     "underscore_in_header", "a header field has '_' in its name"},
    {fault_rows::kDown, fault_rows::kNot, false, "jwt_rejected", 401, "jwt_invalid_token",
     "the request's token was refused"},
    {fault_rows::kDown, fault_rows::kNot, false, "rate_limited", 429, "rate_limited",
     "rate limit exceeded for this route"},
    {fault_rows::kDown, fault_rows::kNot, false, "circuit_open", 503, "circuit_open",
     "the service's circuit breaker is open"},
    // kNoEndpoints: says what gives the service one, since a newcomer's
    // first gateway meets it before any endpoint exists.
    {fault_rows::kDown, fault_rows::kNot, false, "no_endpoints", 503, "no_endpoints",
     "the service has no endpoints: add one with hms-api endpoints add SERVICE HOST:PORT "
     "(or endpoints: in its route file), or start its sidecar"},
    {fault_rows::kDown, fault_rows::kNot, false, "header_too_large", 431, "header_too_large",
     "the request head with the fields the gateway adds does not fit its buffer"},
    // kConnectNoSocket: as kLocal, nothing the service did.
    {FaultSide::kInternal, fault_rows::kNot, false, "connect_no_socket", 502,
     "upstream_connect_failed", "cannot open a connection to the upstream"},
    {fault_rows::kUp, fault_rows::kFail, true, "upstream_bad_response", 502,
     "upstream_bad_response", "the upstream sent a malformed response"},
    {fault_rows::kUp, fault_rows::kFail, true, "upstream_header_too_large", 502,
     "upstream_header_too_large",
     "the upstream's response head with the gateway's fields does not fit its buffer"},
    {fault_rows::kUp, fault_rows::kFail, true, "upstream_tls_failed", 502, "upstream_tls_failed",
     "mTLS handshake with the upstream failed"},
    {fault_rows::kUp, fault_rows::kFail, true, "upstream_identity_mismatch", 502,
     "upstream_identity_mismatch", "the upstream's certificate is not the service's identity"},
    // kNoMeshIdentity: counted as the failed connect it ends (the engine
    // classifies an attempt that fails before its handshake as kConnect).
    {fault_rows::kUp, fault_rows::kFail, true, "no_mesh_identity", 502, "no_mesh_identity",
     "the endpoint takes mTLS only and this proxy has no mtls identity"},
    // kLocalServiceDown: the service never saw the request, but the sidecar
    // that answered cannot reach it: only another endpoint may help
    // (DecideRetry), never this one again. 503 rather than 502: the mesh
    // hop is up, the service behind it is not.
    {fault_rows::kUp, fault_rows::kFail, false, "local_service_down", 503,
     "local_service_unavailable", "the service behind this sidecar does not accept connections"},
    // kBadWebSocketUpgrade: 400, or 426 with Sec-WebSocket-Version: 13 for
    // a version the gateway does not speak (RFC 6455 §4.4).
    {fault_rows::kDown, fault_rows::kNot, false, "bad_websocket_upgrade", 400,
     "bad_websocket_upgrade", "malformed WebSocket upgrade"},
    // kWebSocketOff: 403 as Envoy answers an upgrade its route does not allow.
    {fault_rows::kDown, fault_rows::kNot, false, "websocket_off", 403, "websocket_not_enabled",
     "this route does not take WebSocket upgrades (websocket: true in its route file)"},
    // kUpstreamBadUpgrade: the upstream switched protocols wrongly; never
    // retried (a 101 is an answer, and the upstream may hold the connection
    // as a WebSocket already).
    {fault_rows::kUp, fault_rows::kFail, false, "upstream_bad_upgrade", 502,
     "upstream_bad_upgrade", "the upstream's 101 is not a valid WebSocket handshake answer"},
    // kFleetUnavailable: the gateway's own store is down, not the service.
    {fault_rows::kDown, fault_rows::kNot, false, "fleet_unavailable", 503, "rate_limit_unavailable",
     "the fleet rate limit cannot reach Redis and this gateway is set to fail closed"},
};
static_assert(sizeof kFaultTable / sizeof kFaultTable[0] == static_cast<size_t>(Fault::kCount),
              "one row per Fault");

constexpr const FaultInfo& Classify(Fault f) noexcept { return kFaultTable[static_cast<size_t>(f)]; }

// What the gateway answers for a fault: the table's row, with the message
// replaced by `detail` when one is given (a detail names the path, the
// method, the identity, ...; it never changes the status or the token).
struct Answer {
  uint16_t status;
  std::string_view reason;
  std::string_view message;
};

constexpr Answer AnswerFor(Fault f, std::string_view detail = {}) noexcept {
  const FaultInfo& info = Classify(f);
  return Answer{info.status, info.reason, detail.empty() ? info.message : detail};
}

// Whether the fault is one of the upstream's failures: counted by its
// service's breaker and by its endpoint's outlier ejection.
constexpr bool CountsAgainstUpstream(Fault f) noexcept {
  return Classify(f).verdict == FaultVerdict::kFailure;
}

// The fault of an answer head with status `status` from the upstream.
constexpr Fault StatusFault(uint32_t status) noexcept {
  if (status < 500) return Fault::kNone;
  if (status >= 502 && status <= 504) return Fault::kGatewayStatus;
  return Fault::kServerError;
}

// The fault of an answer head from upstream: its status, refined by its
// x-hms-reason (`reason`, empty when absent). A sidecar's "my service is
// down" is told apart from the service's own 503 so the caller neither
// retries it on the same sidecar nor forwards it as the service's answer.
constexpr Fault AnswerFault(uint32_t status, std::string_view reason) noexcept {
  if (status == 503 && reason == Classify(Fault::kLocalServiceDown).reason) {
    return Fault::kLocalServiceDown;
  }
  return StatusFault(status);
}

// The fault of an exchange whose timer ran out before an answer head:
// `client_owes_body` (the body is incomplete and the gateway holds none of it
// back) makes it the client's; else a per-try timer is the service's; else
// the deadline is the caller's when its x-hms-timeout-ms made it shorter
// than the route's timeout, and the service's otherwise.
constexpr Fault TimeoutFault(bool client_owes_body, bool per_try_bound,
                             bool caller_deadline) noexcept {
  if (client_owes_body) return Fault::kClientBodyStalled;
  if (per_try_bound) return Fault::kPerTryTimeout;
  if (caller_deadline) return Fault::kCallerDeadline;
  return Fault::kServiceTimeout;
}

}  // namespace hms::policy
