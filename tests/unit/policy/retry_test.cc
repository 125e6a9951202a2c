#include "hms/policy/retry.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string_view>

#include "hms/core/clock.h"

namespace hms::policy {
namespace {

constexpr core::Instant kNow = core::Millis(1'000'000);

// An idempotent GET to a 3-endpoint service with 2 retries and plenty of
// time: the starting point every case changes one thing of.
RetryInput Base(Fault f) {
  RetryInput in;
  in.fault = f;
  in.idempotent = true;
  in.endpoints = 3;
  in.connect_attempts = 1;
  in.transparent_done = 1;
  in.retries_done = 0;
  in.retries_allowed = 2;
  in.now = kNow;
  in.deadline = kNow + core::Millis(10'000);
  in.random = 12345;
  if (f == Fault::kGatewayStatus) in.status = 503;
  if (f == Fault::kServerError) in.status = 500;
  return in;
}

struct Case {
  std::string_view name;
  RetryInput in;
  RetryAction action;
  bool next_endpoint;
};

RetryInput With(RetryInput in, void (*change)(RetryInput&)) {
  change(in);
  return in;
}

TEST(RetryDecider, FollowsTheRulesOfResilienceMd) {
  const Case cases[] = {
      // Transparent retries: provably never reached the upstream.
      {"connect failed: next endpoint at once", Base(Fault::kConnect), RetryAction::kTransparent,
       true},
      {"connect failed on every endpoint: a policy retry",
       With(Base(Fault::kConnect), [](RetryInput& i) { i.transparent_done = 3; }),
       RetryAction::kBackoff, true},
      {"a sidecar's local service is connected twice",
       With(Base(Fault::kConnect),
            [](RetryInput& i) {
              i.endpoints = 1;
              i.connect_attempts = 2;
              i.transparent_done = 1;
            }),
       RetryAction::kTransparent, true},
      {"connect failed, non-idempotent: still retried (nothing was sent)",
       With(Base(Fault::kConnect),
            [](RetryInput& i) {
              i.idempotent = false;
              i.transparent_done = 3;
            }),
       RetryAction::kBackoff, true},
      {"stale pooled connection, bodiless: again on a fresh one",
       With(Base(Fault::kUpstreamReset), [](RetryInput& i) { i.stale_pooled = true; }),
       RetryAction::kTransparent, false},
      {"stale pooled connection, non-idempotent bodiless: still transparent",
       With(Base(Fault::kUpstreamReset),
            [](RetryInput& i) {
              i.stale_pooled = true;
              i.idempotent = false;
            }),
       RetryAction::kTransparent, false},
      {"stale pooled connection with a body: a policy retry at most",
       With(Base(Fault::kUpstreamReset),
            [](RetryInput& i) {
              i.stale_pooled = true;
              i.has_body = true;
            }),
       RetryAction::kBackoff, true},
      {"stale past every endpoint plus one",
       With(Base(Fault::kUpstreamReset),
            [](RetryInput& i) {
              i.stale_pooled = true;
              i.transparent_done = 5;
            }),
       RetryAction::kBackoff, true},
      {"h2 stream never processed (GOAWAY), a POST with a body: transparent",
       With(Base(Fault::kUpstreamReset),
            [](RetryInput& i) {
              i.never_processed = true;
              i.has_body = true;
              i.idempotent = false;
            }),
       RetryAction::kTransparent, false},
      {"never processed, 8 times past one per endpoint: no more at once",
       With(Base(Fault::kUpstreamReset),
            [](RetryInput& i) {
              i.never_processed = true;
              i.idempotent = false;
              i.transparent_done = 11;
            }),
       RetryAction::kGiveUp, false},
      {"never processed, body not kept: not again",
       With(Base(Fault::kUpstreamReset),
            [](RetryInput& i) {
              i.never_processed = true;
              i.idempotent = false;
              i.replayable = false;
            }),
       RetryAction::kGiveUp, false},
      {"breaker open: no transparent retry either",
       With(Base(Fault::kConnect), [](RetryInput& i) { i.breaker_open = true; }),
       RetryAction::kGiveUp, false},
      {"body not kept: no transparent retry",
       With(Base(Fault::kConnect), [](RetryInput& i) { i.replayable = false; }),
       RetryAction::kGiveUp, false},
      // Policy retries.
      {"reset, idempotent", Base(Fault::kUpstreamReset), RetryAction::kBackoff, true},
      {"reset, not idempotent",
       With(Base(Fault::kUpstreamReset), [](RetryInput& i) { i.idempotent = false; }),
       RetryAction::kGiveUp, false},
      {"502/503/504", Base(Fault::kGatewayStatus), RetryAction::kBackoff, true},
      {"500: the service's answer", Base(Fault::kServerError), RetryAction::kGiveUp, false},
      {"per-try timeout with time left", Base(Fault::kPerTryTimeout), RetryAction::kBackoff, true},
      {"the route's timeout: no time left", Base(Fault::kServiceTimeout), RetryAction::kGiveUp,
       false},
      {"the caller's deadline", Base(Fault::kCallerDeadline), RetryAction::kGiveUp, false},
      {"the client's stalled body", Base(Fault::kClientBodyStalled), RetryAction::kGiveUp, false},
      {"retries used up",
       With(Base(Fault::kUpstreamReset), [](RetryInput& i) { i.retries_done = 2; }),
       RetryAction::kGiveUp, false},
      {"the half-open probe is never retried",
       With(Base(Fault::kGatewayStatus), [](RetryInput& i) { i.probe = true; }),
       RetryAction::kGiveUp, false},
      {"breaker open",
       With(Base(Fault::kGatewayStatus), [](RetryInput& i) { i.breaker_open = true; }),
       RetryAction::kGiveUp, false},
      {"this failure opens the breaker: answered at once",
       With(Base(Fault::kGatewayStatus), [](RetryInput& i) { i.breaker_failures_left = 1; }),
       RetryAction::kGiveUp, false},
      {"a failed connect that opens the breaker: no backoff either",
       With(Base(Fault::kConnect),
            [](RetryInput& i) {
              i.transparent_done = 3;  // every endpoint tried
              i.breaker_failures_left = 1;
            }),
       RetryAction::kGiveUp, false},
      {"the breaker two failures from open: retried",
       With(Base(Fault::kGatewayStatus), [](RetryInput& i) { i.breaker_failures_left = 2; }),
       RetryAction::kBackoff, true},
      {"the next endpoint is still tried at once",
       With(Base(Fault::kConnect), [](RetryInput& i) { i.breaker_failures_left = 1; }),
       RetryAction::kTransparent, true},
      {"a byte of the answer went out",
       With(Base(Fault::kConnect), [](RetryInput& i) { i.response_started = true; }),
       RetryAction::kGiveUp, false},
      {"body streamed past the replay buffer",
       With(Base(Fault::kUpstreamReset), [](RetryInput& i) { i.replayable = false; }),
       RetryAction::kGiveUp, false},
      {"the backoff would end past the deadline",
       With(Base(Fault::kUpstreamReset),
            [](RetryInput& i) { i.deadline = i.now + core::Millis(5); }),
       RetryAction::kGiveUp, false},
      {"a refusal never reached the upstream", Base(Fault::kRateLimited), RetryAction::kGiveUp,
       false},
      {"a malformed answer, idempotent", Base(Fault::kUpstreamBadResponse), RetryAction::kBackoff,
       true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const RetryDecision d = DecideRetry(c.in);
    EXPECT_EQ(d.action, c.action);
    EXPECT_EQ(d.next_endpoint, c.next_endpoint);
    if (d.action == RetryAction::kBackoff) {
      EXPECT_EQ(d.backoff_ms, RetryBackoffMs(c.in.retries_done, c.in.random));
    } else {
      EXPECT_EQ(d.backoff_ms, 0u);
    }
  }
}

// The backoff grows with each retry and always ends before the deadline.
TEST(RetryDecider, BackoffGrowsAndFitsTheDeadline) {
  for (uint64_t random : {0ull, 1ull, 99ull, ~0ull}) {
    RetryInput in = Base(Fault::kGatewayStatus);
    in.retries_allowed = 10;
    in.random = random;
    uint64_t previous_cap = 0;
    for (uint32_t retry = 0; retry < 5; ++retry) {
      in.retries_done = retry;
      const RetryDecision d = DecideRetry(in);
      ASSERT_EQ(d.action, RetryAction::kBackoff);
      const uint64_t cap = std::min<uint64_t>(kBackoffBaseMs << retry, kBackoffMaxMs);
      EXPECT_GE(d.backoff_ms, cap / 2);
      EXPECT_LE(d.backoff_ms, cap);
      EXPECT_GE(cap, previous_cap);
      previous_cap = cap;
      // Exactly at the deadline is too late.
      RetryInput tight = in;
      tight.deadline = in.now + core::Millis(d.backoff_ms);
      EXPECT_EQ(DecideRetry(tight).action, RetryAction::kGiveUp);
      tight.deadline += 1;
      EXPECT_EQ(DecideRetry(tight).action, RetryAction::kBackoff);
    }
  }
}

template <size_t N>
void ExpectDecisions(const Case (&cases)[N]) {
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const RetryDecision d = DecideRetry(c.in);
    EXPECT_EQ(d.action, c.action);
    EXPECT_EQ(d.next_endpoint, c.next_endpoint);
  }
}

RetryInput On(Fault f, uint32_t status, uint32_t retry_on) {
  RetryInput in = Base(f);
  in.status = status;
  in.retry_on = retry_on;
  return in;
}

// `retry_on` selects what policy retries follow; every other rule still
// applies, and transparent retries never look at it.
TEST(RetryDecider, RetryOnListsWhatIsRetried) {
  constexpr uint32_t kAll5xx = kRetryOn500 | kRetryOn502 | kRetryOn503 | kRetryOn504;
  const Case cases[] = {
      {"500 listed", On(Fault::kServerError, 500, kRetryOnLocalDefault), RetryAction::kBackoff,
       true},
      {"500 by default: not retried", On(Fault::kServerError, 500, kRetryOnDefault),
       RetryAction::kGiveUp, false},
      {"501 is never retried", On(Fault::kServerError, 501, kAll5xx), RetryAction::kGiveUp, false},
      {"503 not listed", On(Fault::kGatewayStatus, 503, kRetryOn500 | kRetryOn502),
       RetryAction::kGiveUp, false},
      {"504 listed alone", On(Fault::kGatewayStatus, 504, kRetryOn504), RetryAction::kBackoff,
       true},
      {"500 listed, not idempotent",
       With(On(Fault::kServerError, 500, kAll5xx), [](RetryInput& i) { i.idempotent = false; }),
       RetryAction::kGiveUp, false},
      {"500 listed, the probe", With(On(Fault::kServerError, 500, kAll5xx),
                                     [](RetryInput& i) { i.probe = true; }),
       RetryAction::kGiveUp, false},
      {"reset not listed", On(Fault::kUpstreamReset, 0, kAll5xx), RetryAction::kGiveUp, false},
      {"timeout not listed", On(Fault::kPerTryTimeout, 0, kAll5xx), RetryAction::kGiveUp, false},
      {"timeout listed", On(Fault::kPerTryTimeout, 0, kRetryOnTimeout), RetryAction::kBackoff,
       true},
      {"connect failure not listed: the next endpoint still, transparently",
       On(Fault::kConnect, 0, kAll5xx), RetryAction::kTransparent, true},
      {"connect failure not listed, every endpoint tried",
       With(On(Fault::kConnect, 0, kAll5xx), [](RetryInput& i) { i.transparent_done = 3; }),
       RetryAction::kGiveUp, false},
      {"mTLS handshake failure follows connect-failure",
       With(On(Fault::kUpstreamTlsFailed, 0, kRetryOnConnectFailure),
            [](RetryInput& i) { i.transparent_done = 3; }),
       RetryAction::kBackoff, true},
      {"a sidecar retries its service's 500 once",
       With(On(Fault::kServerError, 500, kRetryOnLocalDefault),
            [](RetryInput& i) {
              i.endpoints = 1;
              i.connect_attempts = 2;
              i.retries_allowed = 1;
            }),
       RetryAction::kBackoff, true},
      {"... and not twice",
       With(On(Fault::kServerError, 500, kRetryOnLocalDefault),
            [](RetryInput& i) {
              i.endpoints = 1;
              i.retries_allowed = 1;
              i.retries_done = 1;
            }),
       RetryAction::kGiveUp, false},
  };
  ExpectDecisions(cases);
}

// A sidecar answered 503 local_service_unavailable: never that sidecar
// again, another endpoint once each, any method (the service never saw it).
TEST(RetryDecider, ASidecarsDownServiceGoesToAnotherEndpointOnly) {
  const Case cases[] = {
      {"one endpoint: give up at once (no backoff, no retry)",
       With(Base(Fault::kLocalServiceDown), [](RetryInput& i) { i.endpoints = 1; }),
       RetryAction::kGiveUp, false},
      {"another endpoint", Base(Fault::kLocalServiceDown), RetryAction::kTransparent, true},
      {"another endpoint, not idempotent",
       With(Base(Fault::kLocalServiceDown), [](RetryInput& i) { i.idempotent = false; }),
       RetryAction::kTransparent, true},
      {"every endpoint tried",
       With(Base(Fault::kLocalServiceDown), [](RetryInput& i) { i.transparent_done = 3; }),
       RetryAction::kGiveUp, false},
      {"retries left do not matter",
       With(Base(Fault::kLocalServiceDown),
            [](RetryInput& i) {
              i.endpoints = 1;
              i.retries_allowed = 10;
              i.retry_on = kRetryOnLocalDefault;
            }),
       RetryAction::kGiveUp, false},
      {"breaker open", With(Base(Fault::kLocalServiceDown),
                            [](RetryInput& i) { i.breaker_open = true; }),
       RetryAction::kGiveUp, false},
      {"body not kept", With(Base(Fault::kLocalServiceDown),
                             [](RetryInput& i) { i.replayable = false; }),
       RetryAction::kGiveUp, false},
  };
  ExpectDecisions(cases);
}

TEST(RetryDecider, RetryOnTokens) {
  EXPECT_EQ(ParseRetryOn("500"), kRetryOn500);
  EXPECT_EQ(ParseRetryOn("502"), kRetryOn502);
  EXPECT_EQ(ParseRetryOn("503"), kRetryOn503);
  EXPECT_EQ(ParseRetryOn("504"), kRetryOn504);
  EXPECT_EQ(ParseRetryOn("connect-failure"), kRetryOnConnectFailure);
  EXPECT_EQ(ParseRetryOn("reset"), kRetryOnReset);
  EXPECT_EQ(ParseRetryOn("timeout"), kRetryOnTimeout);
  for (std::string_view bad : {"", "5xx", "501", "Reset", "connect_failure", " 500"}) {
    EXPECT_EQ(ParseRetryOn(bad), 0u) << bad;
  }
  // The default is what fault.h says may help; a sidecar adds 500.
  for (Fault f : {Fault::kConnect, Fault::kUpstreamReset, Fault::kPerTryTimeout}) {
    EXPECT_EQ(RetryOnCovers(kRetryOnDefault, f, 0), Classify(f).retry_may_help);
  }
  EXPECT_FALSE(RetryOnCovers(kRetryOnDefault, Fault::kServerError, 500));
  EXPECT_TRUE(RetryOnCovers(kRetryOnLocalDefault, Fault::kServerError, 500));
  // A sidecar's refused connect is repeated transparently, not after a backoff.
  EXPECT_FALSE(RetryOnCovers(kRetryOnLocalDefault, Fault::kConnect, 0));
  EXPECT_FALSE(RetryOnCovers(~0u, Fault::kServiceTimeout, 0));
  EXPECT_FALSE(RetryOnCovers(~0u, Fault::kLocalServiceDown, 503));
}

TEST(RetryDecider, PipelinedRequestsGoAgainWhileAttemptsLast) {
  EXPECT_TRUE(RequeueBehindFailed(1, 1));
  EXPECT_TRUE(RequeueBehindFailed(2, 1));
  EXPECT_FALSE(RequeueBehindFailed(3, 1));
  EXPECT_TRUE(RequeueBehindFailed(4, 3));
  EXPECT_FALSE(RequeueBehindFailed(5, 3));
}

// A gRPC call answered with a failing grpc-status (HTTP 200, fault kNone):
// retried only when the service lists the status, never after a response
// message, and as a POST that the listing declares safe to repeat.
RetryInput Grpc(uint32_t status, uint32_t retry_on) {
  RetryInput in = Base(Fault::kNone);
  in.idempotent = false;  // every gRPC call is a POST
  in.has_body = true;
  in.grpc_status = status;
  in.grpc_retry_on = retry_on;
  return in;
}

TEST(RetryDecider, GrpcStatusesFollowTheServicesList) {
  constexpr uint32_t kUnavailable = 14, kInternal = 13, kResourceExhausted = 8;
  const uint32_t listed = GrpcRetryBit(kUnavailable) | GrpcRetryBit(kResourceExhausted);
  const Case cases[] = {
      {"listed status, no message: retried", Grpc(kUnavailable, listed), RetryAction::kBackoff,
       true},
      {"another listed status", Grpc(kResourceExhausted, listed), RetryAction::kBackoff, true},
      {"unlisted status", Grpc(kInternal, listed), RetryAction::kGiveUp, false},
      {"nothing listed (the default)", Grpc(kUnavailable, 0), RetryAction::kGiveUp, false},
      {"a response message came first: the call ran",
       With(Grpc(kUnavailable, listed), [](RetryInput& i) { i.grpc_message_seen = true; }),
       RetryAction::kGiveUp, false},
      {"a byte of the answer went out",
       With(Grpc(kUnavailable, listed), [](RetryInput& i) { i.response_started = true; }),
       RetryAction::kGiveUp, false},
      {"retries used up",
       With(Grpc(kUnavailable, listed), [](RetryInput& i) { i.retries_done = 2; }),
       RetryAction::kGiveUp, false},
      {"the request body is not kept",
       With(Grpc(kUnavailable, listed), [](RetryInput& i) { i.replayable = false; }),
       RetryAction::kGiveUp, false},
      {"breaker open",
       With(Grpc(kUnavailable, listed), [](RetryInput& i) { i.breaker_open = true; }),
       RetryAction::kGiveUp, false},
      {"the half-open probe",
       With(Grpc(kUnavailable, listed), [](RetryInput& i) { i.probe = true; }),
       RetryAction::kGiveUp, false},
      {"no time left after the backoff",
       With(Grpc(kUnavailable, listed), [](RetryInput& i) { i.deadline = i.now + 1; }),
       RetryAction::kGiveUp, false},
      // A gRPC call's reset follows the HTTP rules: not idempotent, not retried.
      {"a gRPC call reset by the upstream",
       With(Base(Fault::kUpstreamReset), [](RetryInput& i) { i.idempotent = false; }),
       RetryAction::kGiveUp, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const RetryDecision d = DecideRetry(c.in);
    EXPECT_EQ(d.action, c.action);
    EXPECT_EQ(d.next_endpoint, c.next_endpoint);
  }
  EXPECT_EQ(GrpcRetryBit(14), 1u << 14);
  EXPECT_EQ(GrpcRetryBit(40), 0u);
}

}  // namespace
}  // namespace hms::policy
