// The retry decider: every rule of docs/resilience.md "Retries" in one pure
// function. The engine classifies a failed attempt (a policy::Fault plus
// what it knows about the exchange) and asks; it never decides itself.
//
// Two kinds of retry. A transparent one goes again at once, uses no policy
// retry and no backoff, and says nothing about the service's health: a
// connect that failed (each endpoint tried once, a sidecar's local service
// twice), or a pooled connection the upstream had closed before reading our
// bodiless request. A policy retry waits a jittered backoff (backoff.h) and
// spends one of the route's `retries` and, after this decision, one token of
// the service's retry budget (retry_budget.h, the one stateful check, made
// by the caller).
//
// Pure: any thread may call it; nothing allocates; time comes in as values.
#pragma once

#include <cstdint>

#include "hms/core/clock.h"
#include "hms/policy/backoff.h"
#include "hms/policy/fault.h"

namespace hms::policy {

// One failed attempt, as the engine saw it.
struct RetryInput {
  Fault fault = Fault::kNone;    // classified (fault.h): kConnect, kUpstreamReset, a timeout, a 5xx
  bool stale_pooled = false;     // a pooled connection that gave no byte of an answer
  bool response_started = false; // a byte of the answer went to the client
  bool probe = false;            // the attempt was the breaker's half-open probe
  bool replayable = true;        // every body byte sent so far is kept
  bool idempotent = false;       // idempotent method, or an Idempotency-Key
  bool has_body = false;         // the request carries a body
  bool breaker_open = false;     // the service's breaker is not closed
  uint32_t endpoints = 1;        // the service's endpoints
  uint32_t connect_attempts = 1; // the service's connect attempts (>= 1)
  uint32_t transparent_done = 0; // attempts made that were not policy retries
  uint32_t retries_done = 0;     // policy retries made
  uint32_t retries_allowed = 0;  // the service's `retries`
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

constexpr RetryDecision DecideRetry(const RetryInput& in) noexcept {
  RetryDecision give_up{};
  if (in.response_started) return give_up;  // what went out cannot be taken back
  const bool connect_failed = in.fault == Fault::kConnect;
  // Transparent: provably never reached the upstream.
  if (in.replayable && !in.breaker_open) {
    const uint32_t connects = in.connect_attempts > in.endpoints ? in.connect_attempts : in.endpoints;
    if (connect_failed && in.transparent_done < connects) {
      return RetryDecision{RetryAction::kTransparent, 0, true};
    }
    if (in.stale_pooled && !in.has_body && in.transparent_done <= in.endpoints + 1) {
      return RetryDecision{RetryAction::kTransparent, 0, false};
    }
  }
  // Policy retries.
  if (!Classify(in.fault).retry_may_help) return give_up;
  if (in.probe || !in.replayable || in.retries_done >= in.retries_allowed) return give_up;
  // Only a failed connect provably never reached the upstream: anything
  // else is retried only when repeating it is harmless.
  if (!connect_failed && !in.idempotent) return give_up;
  if (in.breaker_open) return give_up;
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
