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
// Pure data: any thread may call these; nothing allocates.
#pragma once

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
  kCount
};

enum class FaultSide : uint8_t { kNone, kUpstream, kDownstream, kInternal };

// What the breaker and outlier ejection do with an outcome: a success clears
// consecutive failures (and closes a half-open breaker), a failure counts,
// and an outcome not counted changes nothing, except that a half-open probe
// that ends that way gives its slot back so the next request may probe.
enum class FaultVerdict : uint8_t { kSuccess, kFailure, kNotCounted };

struct FaultInfo {
  FaultSide side;
  FaultVerdict verdict;
  bool retry_may_help;    // another attempt may succeed (the other retry rules still apply)
  std::string_view name;  // for tests and logs
};

inline constexpr FaultInfo kFaultTable[] = {
    // kNone
    {FaultSide::kNone, FaultVerdict::kSuccess, false, "none"},
    // kConnect: nothing was sent; the next endpoint may accept.
    {FaultSide::kUpstream, FaultVerdict::kFailure, true, "connect"},
    // kUpstreamReset: another connection or endpoint may answer.
    {FaultSide::kUpstream, FaultVerdict::kFailure, true, "upstream_reset"},
    // kServiceTimeout: the deadline is spent; no time is left to retry.
    {FaultSide::kUpstream, FaultVerdict::kFailure, false, "service_timeout"},
    // kPerTryTimeout: the attempt ran out, the request has time left.
    {FaultSide::kUpstream, FaultVerdict::kFailure, true, "per_try_timeout"},
    // kGatewayStatus: 502/503/504 say "not now" or "not here".
    {FaultSide::kUpstream, FaultVerdict::kFailure, true, "gateway_status"},
    // kServerError: 500 and the rest are the service's answer; asking again
    // would get the same one.
    {FaultSide::kUpstream, FaultVerdict::kFailure, false, "server_error"},
    // kCallerDeadline: the caller chose to wait less than the service may take.
    {FaultSide::kDownstream, FaultVerdict::kNotCounted, false, "caller_deadline"},
    // kClientGone
    {FaultSide::kDownstream, FaultVerdict::kNotCounted, false, "client_gone"},
    // kClientBodyStalled: the upstream cannot answer a request it has not got.
    {FaultSide::kDownstream, FaultVerdict::kNotCounted, false, "client_body_stalled"},
    // kRefused: rate limit, JWT, no endpoints, ...: the upstream never saw it.
    {FaultSide::kDownstream, FaultVerdict::kNotCounted, false, "refused"},
    // kBodyRefused
    {FaultSide::kDownstream, FaultVerdict::kNotCounted, false, "body_refused"},
    // kLocal
    {FaultSide::kInternal, FaultVerdict::kNotCounted, false, "local"},
};
static_assert(sizeof kFaultTable / sizeof kFaultTable[0] == static_cast<size_t>(Fault::kCount),
              "one row per Fault");

constexpr const FaultInfo& Classify(Fault f) noexcept { return kFaultTable[static_cast<size_t>(f)]; }

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
