// The retry decider: every rule of docs/resilience.md "Retries" in one pure
// function. The engine classifies a failed attempt (a policy::Fault plus
// what it knows about the exchange) and asks; it never decides itself.
//
// Two kinds of retry. A transparent one goes again at once, uses no policy
// retry and no backoff, and says nothing about the service's health: a
// connect that failed (each endpoint tried once, a sidecar's local service
// twice), or a pooled connection the upstream had closed before reading our
// bodiless request; and a sidecar's 503 local_service_unavailable (fault.h),
// which goes to another endpoint, never to that sidecar again. A policy
// retry waits a jittered backoff (backoff.h), follows only what the
// service's `retry_on` lists, and spends one of the route's `retries` and,
// after this decision, one token of the service's retry budget
// (retry_budget.h, the one stateful check, made by the caller).
//
// Pure: any thread may call it; nothing allocates; time comes in as values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "hms/core/clock.h"
#include "hms/policy/backoff.h"
#include "hms/policy/fault.h"

namespace hms::policy {

// What a service's policy retries may follow (`retry_on` in its route file,
// `local_retry_on` in a sidecar's config): one bit per kind of failed
// attempt. Transparent retries (a refused connect to the next endpoint, a
// stale pooled connection) are not policy retries and do not look at it.
enum RetryOn : uint32_t {
  kRetryOn500 = 1u << 0,
  kRetryOn502 = 1u << 1,
  kRetryOn503 = 1u << 2,
  kRetryOn504 = 1u << 3,
  kRetryOnConnectFailure = 1u << 4,  // connect refused or failed, mTLS handshake failed
  kRetryOnReset = 1u << 5,           // closed or reset before a complete answer, malformed answer
  kRetryOnTimeout = 1u << 6,         // per_try_timeout ran out with time left
};

// The tokens of `retry_on`, in the order /config lists them.
struct RetryOnToken {
  std::string_view name;
  uint32_t bit;
};
inline constexpr RetryOnToken kRetryOnTokens[] = {
    {"500", kRetryOn500},         {"502", kRetryOn502},
    {"503", kRetryOn503},         {"504", kRetryOn504},
    {"connect-failure", kRetryOnConnectFailure}, {"reset", kRetryOnReset},
    {"timeout", kRetryOnTimeout},
};

// A route's default: what fault.h says another attempt may help with. A 500
// is the service's own answer and asking again usually gets the same one.
inline constexpr uint32_t kRetryOnDefault = kRetryOn502 | kRetryOn503 | kRetryOn504 |
                                            kRetryOnConnectFailure | kRetryOnReset |
                                            kRetryOnTimeout;
// A sidecar toward its own service (the seed's "retries once on 5xx"): 5xx
// as well as 500, resets and timeouts. Not a refused connect: the sidecar
// repeats that one at once (transparently); a policy retry after a backoff
// would only delay "the service is down" (local_service_unavailable), which
// callers' breakers are waiting to count.
inline constexpr uint32_t kRetryOnLocalDefault =
    kRetryOn500 | kRetryOn502 | kRetryOn503 | kRetryOn504 | kRetryOnReset | kRetryOnTimeout;

// The bit of one `retry_on` token; 0 when it is none.
constexpr uint32_t ParseRetryOn(std::string_view token) noexcept {
  for (const RetryOnToken& t : kRetryOnTokens) {
    if (t.name == token) return t.bit;
  }
  return 0;
}

// Whether `retry_on` lists the failed attempt: `fault` as classified, and
// `status` the upstream's answer for kGatewayStatus and kServerError. Other
// 5xx (501, 505, ...) are never retried; nor is any fault that fault.h says
// another attempt cannot help with.
constexpr bool RetryOnCovers(uint32_t retry_on, Fault fault, uint32_t status) noexcept {
  switch (fault) {
    case Fault::kGatewayStatus:
    case Fault::kServerError:
      return (status == 500 && (retry_on & kRetryOn500) != 0) ||
             (status == 502 && (retry_on & kRetryOn502) != 0) ||
             (status == 503 && (retry_on & kRetryOn503) != 0) ||
             (status == 504 && (retry_on & kRetryOn504) != 0);
    case Fault::kConnect:
    case Fault::kUpstreamTlsFailed:
    case Fault::kUpstreamIdentityMismatch:
    case Fault::kNoMeshIdentity:
      return (retry_on & kRetryOnConnectFailure) != 0;
    case Fault::kUpstreamReset:
    case Fault::kUpstreamBadResponse:
    case Fault::kUpstreamHeaderTooLarge:
      return (retry_on & kRetryOnReset) != 0;
    case Fault::kPerTryTimeout:
      return (retry_on & kRetryOnTimeout) != 0;
    default:
      return false;
  }
}

// gRPC calls (h2/grpc.h): a service's retryable gRPC statuses, one bit per
// code (`1u << code`, UNAVAILABLE is 14). None by default, as in gRPC's own
// retry policy (gRFC A6): listing a status says that calls answered with it
// are safe to repeat, since every gRPC call is a POST.
constexpr uint32_t GrpcRetryBit(uint32_t code) noexcept { return code < 32 ? 1u << code : 0; }

// One failed attempt, as the engine saw it.
struct RetryInput {
  Fault fault = Fault::kNone;    // classified (fault.h): kConnect, kUpstreamReset, a timeout, a 5xx
  bool stale_pooled = false;     // a pooled connection that gave no byte of an answer
  // An HTTP/2 upstream said it never processed the request (a GOAWAY below
  // its stream id, REFUSED_STREAM: RFC 9113 §8.7): safe again, any method.
  bool never_processed = false;
  bool response_started = false; // a byte of the answer went to the client
  bool probe = false;            // the attempt was the breaker's half-open probe
  bool replayable = true;        // every body byte sent so far is kept
  bool idempotent = false;       // idempotent method, or an Idempotency-Key
  bool has_body = false;         // the request carries a body
  bool breaker_open = false;     // the service's breaker is not closed
  // Counted failures the service's closed breaker takes before it opens
  // (its threshold less its consecutive failures); UINT32_MAX without one.
  uint32_t breaker_failures_left = UINT32_MAX;
  uint32_t endpoints = 1;        // the service's endpoints
  uint32_t connect_attempts = 1; // the service's connect attempts (>= 1)
  uint32_t transparent_done = 0; // attempts made that were not policy retries
  uint32_t retries_done = 0;     // policy retries made
  uint32_t retries_allowed = 0;  // the service's `retries`
  uint32_t retry_on = kRetryOnDefault;  // the service's `retry_on` (RetryOn bits)
  uint32_t status = 0;           // the upstream's status, for kGatewayStatus and kServerError
  // A gRPC call answered with a grpc-status other than OK (fault kNone):
  uint32_t grpc_status = 0;      // that status; 0 when not a gRPC failure
  uint32_t grpc_retry_on = 0;    // the service's retryable statuses (GrpcRetryBit)
  bool grpc_message_seen = false;// the upstream sent a response message on this attempt
  core::Instant now = 0;
  core::Instant deadline = 0;    // the exchange's deadline
  uint64_t random = 0;           // uniformly distributed: the backoff's jitter
};

enum class RetryAction : uint8_t {
  kTransparent,  // go again now, on a fresh connection
  kBackoff,      // a policy retry after `backoff_ms` (if the budget allows)
  kGiveUp,       // answer the client with the fault
};

struct RetryDecision {
  RetryAction action = RetryAction::kGiveUp;
  uint64_t backoff_ms = 0;     // kBackoff
  bool next_endpoint = false;  // move to the next endpoint first
};

// A request an HTTP/2 upstream never processed goes again at once this many
// times beyond one per endpoint: a connection that ends with GOAWAY every
// few streams may send back the same waiting request several times in a
// row, and each time it provably did nothing with it. Bounded all the same.
inline constexpr uint32_t kNeverProcessedAgain = 8;

constexpr RetryDecision DecideRetry(const RetryInput& in) noexcept {
  RetryDecision give_up{};
  if (in.response_started) return give_up;  // what went out cannot be taken back
  const bool connect_failed = in.fault == Fault::kConnect;
  if (in.fault == Fault::kLocalServiceDown) {
    // The sidecar that answered cannot reach its service: asking it again
    // would only wait for the same answer. Another endpoint's sidecar may
    // reach its own copy, and the service never saw the request, so any
    // method may go there, once per endpoint.
    if (in.replayable && !in.breaker_open && in.transparent_done < in.endpoints) {
      return RetryDecision{RetryAction::kTransparent, 0, true};
    }
    return give_up;
  }
  // Transparent: provably never reached the upstream.
  if (in.replayable && !in.breaker_open) {
    const uint32_t connects = in.connect_attempts > in.endpoints ? in.connect_attempts : in.endpoints;
    if (connect_failed && in.transparent_done < connects) {
      return RetryDecision{RetryAction::kTransparent, 0, true};
    }
    if (in.stale_pooled && !in.has_body && in.transparent_done <= in.endpoints + 1) {
      return RetryDecision{RetryAction::kTransparent, 0, false};
    }
    if (in.never_processed && in.transparent_done < in.endpoints + kNeverProcessedAgain) {
      return RetryDecision{RetryAction::kTransparent, 0, false};
    }
  }
  // Policy retries. A gRPC status is retried only when the service lists it,
  // and never once a response message came: the call has run (gRFC A6).
  const bool grpc = in.grpc_status != 0;
  if (grpc) {
    if (in.grpc_message_seen || (in.grpc_retry_on & GrpcRetryBit(in.grpc_status)) == 0) {
      return give_up;
    }
  } else if (!RetryOnCovers(in.retry_on, in.fault, in.status)) {
    return give_up;
  }
  if (in.probe || !in.replayable || in.retries_done >= in.retries_allowed) return give_up;
  // Only a failed connect provably never reached the upstream: anything
  // else is retried only when repeating it is harmless (a listed gRPC
  // status says so).
  if (!connect_failed && !in.idempotent && !grpc) return give_up;
  if (in.breaker_open) return give_up;
  // The request whose failure opens the breaker is not retried: the service
  // failed every request before it, each after its own retries, so waiting
  // out backoffs against it only delays the answer the breaker is about to
  // give (docs/resilience.md, "The request that opens the breaker").
  if (in.breaker_failures_left <= 1 && CountsAgainstUpstream(in.fault)) return give_up;
  const uint64_t backoff_ms = RetryBackoffMs(in.retries_done, in.random);
  if (in.now + core::Millis(backoff_ms) >= in.deadline) return give_up;  // no time left after it
  return RetryDecision{RetryAction::kBackoff, backoff_ms, true};
}

// An exchange queued behind a pipelined one whose connection failed got no
// byte of an answer: it goes again on a fresh connection while its
// transparent attempts last (each endpoint once, plus one).
constexpr bool RequeueBehindFailed(uint32_t transparent_done, uint32_t endpoints) noexcept {
  return transparent_done <= endpoints + 1;
}

}  // namespace hms::policy
