#include "hms/policy/fault.h"

#include <gtest/gtest.h>

#include <set>
#include <string_view>

namespace hms::policy {
namespace {

struct Row {
  Fault fault;
  FaultSide side;
  FaultVerdict verdict;
  bool retry_may_help;
};

// What each fault says about the upstream (docs/resilience.md "What counts
// as a failure"). Any change here changes who can open a breaker.
constexpr Row kRows[] = {
    {Fault::kNone, FaultSide::kNone, FaultVerdict::kSuccess, false},
    {Fault::kConnect, FaultSide::kUpstream, FaultVerdict::kFailure, true},
    {Fault::kUpstreamReset, FaultSide::kUpstream, FaultVerdict::kFailure, true},
    {Fault::kServiceTimeout, FaultSide::kUpstream, FaultVerdict::kFailure, false},
    {Fault::kPerTryTimeout, FaultSide::kUpstream, FaultVerdict::kFailure, true},
    {Fault::kGatewayStatus, FaultSide::kUpstream, FaultVerdict::kFailure, true},
    {Fault::kServerError, FaultSide::kUpstream, FaultVerdict::kFailure, false},
    {Fault::kCallerDeadline, FaultSide::kDownstream, FaultVerdict::kNotCounted, false},
    {Fault::kClientGone, FaultSide::kDownstream, FaultVerdict::kNotCounted, false},
    {Fault::kClientBodyStalled, FaultSide::kDownstream, FaultVerdict::kNotCounted, false},
    {Fault::kRefused, FaultSide::kDownstream, FaultVerdict::kNotCounted, false},
    {Fault::kBodyRefused, FaultSide::kDownstream, FaultVerdict::kNotCounted, false},
    {Fault::kLocal, FaultSide::kInternal, FaultVerdict::kNotCounted, false},
    // The gateway's own answers: refusals count as kRefused does, the
    // upstream's broken answers as kUpstreamReset or kConnect do.
    {Fault::kMalformedRequest, FaultSide::kDownstream, FaultVerdict::kNotCounted, false},
    {Fault::kHeaderTimeout, FaultSide::kDownstream, FaultVerdict::kNotCounted, false},
    {Fault::kPlainHttpToTls, FaultSide::kDownstream, FaultVerdict::kNotCounted, false},
    {Fault::kBadPath, FaultSide::kDownstream, FaultVerdict::kNotCounted, false},
    {Fault::kNoService, FaultSide::kDownstream, FaultVerdict::kNotCounted, false},
    {Fault::kNoRoute, FaultSide::kDownstream, FaultVerdict::kNotCounted, false},
    {Fault::kMethodNotAllowed, FaultSide::kDownstream, FaultVerdict::kNotCounted, false},
    {Fault::kIdentityNotAllowed, FaultSide::kDownstream, FaultVerdict::kNotCounted, false},
    {Fault::kBodyTooLarge, FaultSide::kDownstream, FaultVerdict::kNotCounted, false},
    {Fault::kBadChunk, FaultSide::kDownstream, FaultVerdict::kNotCounted, false},
    {Fault::kBodyIncomplete, FaultSide::kDownstream, FaultVerdict::kNotCounted, false},
    {Fault::kTooManyConnectionOptions, FaultSide::kDownstream, FaultVerdict::kNotCounted, false},
    {Fault::kUnderscoreInHeader, FaultSide::kDownstream, FaultVerdict::kNotCounted, false},
    {Fault::kJwtRejected, FaultSide::kDownstream, FaultVerdict::kNotCounted, false},
    {Fault::kRateLimited, FaultSide::kDownstream, FaultVerdict::kNotCounted, false},
    {Fault::kCircuitOpen, FaultSide::kDownstream, FaultVerdict::kNotCounted, false},
    {Fault::kNoEndpoints, FaultSide::kDownstream, FaultVerdict::kNotCounted, false},
    {Fault::kHeaderTooLarge, FaultSide::kDownstream, FaultVerdict::kNotCounted, false},
    {Fault::kConnectNoSocket, FaultSide::kInternal, FaultVerdict::kNotCounted, false},
    {Fault::kUpstreamBadResponse, FaultSide::kUpstream, FaultVerdict::kFailure, true},
    {Fault::kUpstreamHeaderTooLarge, FaultSide::kUpstream, FaultVerdict::kFailure, true},
    {Fault::kUpstreamTlsFailed, FaultSide::kUpstream, FaultVerdict::kFailure, true},
    {Fault::kUpstreamIdentityMismatch, FaultSide::kUpstream, FaultVerdict::kFailure, true},
    {Fault::kNoMeshIdentity, FaultSide::kUpstream, FaultVerdict::kFailure, true},
    // A sidecar's service is down: that endpoint's failure; only another
    // endpoint may help (retry_test.cc).
    {Fault::kLocalServiceDown, FaultSide::kUpstream, FaultVerdict::kFailure, false},
    // WebSocket: refusals of the upgrade count as kRefused does; a broken
    // 101 is the upstream's failure, never retried (a 101 is an answer).
    {Fault::kBadWebSocketUpgrade, FaultSide::kDownstream, FaultVerdict::kNotCounted, false},
    {Fault::kWebSocketOff, FaultSide::kDownstream, FaultVerdict::kNotCounted, false},
    {Fault::kUpstreamBadUpgrade, FaultSide::kUpstream, FaultVerdict::kFailure, false},
    // The fleet limit's Redis is down under fail_closed: the gateway's side.
    {Fault::kFleetUnavailable, FaultSide::kDownstream, FaultVerdict::kNotCounted, false},
};

TEST(Fault, EveryFaultIsClassified) {
  ASSERT_EQ(std::size(kRows), static_cast<size_t>(Fault::kCount));
  std::set<std::string_view> names;
  for (const Row& row : kRows) {
    const FaultInfo& info = Classify(row.fault);
    SCOPED_TRACE(info.name);
    EXPECT_EQ(info.side, row.side);
    EXPECT_EQ(info.verdict, row.verdict);
    EXPECT_EQ(info.retry_may_help, row.retry_may_help);
    EXPECT_FALSE(info.name.empty());
    EXPECT_TRUE(names.insert(info.name).second) << "duplicate name";
  }
}

// Exactly the upstream's own failures count; whatever the client or the
// gateway did never does.
TEST(Fault, OnlyTheUpstreamsFailuresCount) {
  for (const Row& row : kRows) {
    SCOPED_TRACE(Classify(row.fault).name);
    EXPECT_EQ(CountsAgainstUpstream(row.fault), row.side == FaultSide::kUpstream);
    // A retry never follows what was not the upstream's fault.
    if (row.side != FaultSide::kUpstream) {
      EXPECT_FALSE(Classify(row.fault).retry_may_help);
    }
  }
}

TEST(Fault, StatusOfTheAnswerHead) {
  struct Case {
    uint32_t status;
    Fault fault;
  } cases[] = {
      {200, Fault::kNone},          {204, Fault::kNone},
      {304, Fault::kNone},          {404, Fault::kNone},
      {408, Fault::kNone},          {429, Fault::kNone},
      {499, Fault::kNone},          {500, Fault::kServerError},
      {501, Fault::kServerError},   {502, Fault::kGatewayStatus},
      {503, Fault::kGatewayStatus}, {504, Fault::kGatewayStatus},
      {505, Fault::kServerError},   {599, Fault::kServerError},
  };
  for (const Case& c : cases) EXPECT_EQ(StatusFault(c.status), c.fault) << c.status;
}

// A sidecar's "my service is down" is told from the service's own 503 by
// its reason token; any other token (or none) is the status's fault.
TEST(Fault, ASidecarsAnswerIsToldApart) {
  struct Case {
    uint32_t status;
    std::string_view reason;
    Fault fault;
  } cases[] = {
      {503, "local_service_unavailable", Fault::kLocalServiceDown},
      {503, "", Fault::kGatewayStatus},
      {503, "circuit_open", Fault::kGatewayStatus},
      {503, "Local_Service_Unavailable", Fault::kGatewayStatus},
      {502, "local_service_unavailable", Fault::kGatewayStatus},
      {500, "local_service_unavailable", Fault::kServerError},
      {200, "local_service_unavailable", Fault::kNone},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(AnswerFault(c.status, c.reason), c.fault) << c.status << " " << c.reason;
  }
}

TEST(Fault, WhoseTimeRanOut) {
  struct Case {
    bool client_owes_body, per_try_bound, caller_deadline;
    Fault fault;
  } cases[] = {
      // A body the client has not finished: its fault, whatever timer fired.
      {true, false, false, Fault::kClientBodyStalled},
      {true, true, false, Fault::kClientBodyStalled},
      {true, false, true, Fault::kClientBodyStalled},
      {true, true, true, Fault::kClientBodyStalled},
      // The service's own per-try timeout, shorter than any deadline.
      {false, true, false, Fault::kPerTryTimeout},
      {false, true, true, Fault::kPerTryTimeout},
      // The deadline: the caller's when it was shorter than the route's.
      {false, false, true, Fault::kCallerDeadline},
      {false, false, false, Fault::kServiceTimeout},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(TimeoutFault(c.client_owes_body, c.per_try_bound, c.caller_deadline), c.fault)
        << c.client_owes_body << c.per_try_bound << c.caller_deadline;
  }
}

// The answers clients, dashboards and the integration tests read: a token
// renamed here is a change users see.
TEST(Fault, AnswersNameTheirRule) {
  struct Case {
    Fault fault;
    uint16_t status;
    std::string_view reason;
  } cases[] = {
      {Fault::kConnect, 502, "upstream_connect_failed"},
      {Fault::kUpstreamReset, 502, "upstream_reset"},
      {Fault::kServiceTimeout, 504, "upstream_timeout"},
      {Fault::kPerTryTimeout, 504, "upstream_timeout"},
      {Fault::kCallerDeadline, 504, "caller_deadline"},
      {Fault::kClientBodyStalled, 408, "body_timeout"},
      {Fault::kHeaderTimeout, 408, "header_timeout"},
      {Fault::kPlainHttpToTls, 400, "plain_http_to_tls_port"},
      {Fault::kBadPath, 400, "bad_path"},
      {Fault::kNoService, 404, "no_service"},
      {Fault::kNoRoute, 404, "no_route"},
      {Fault::kMethodNotAllowed, 405, "method_not_allowed"},
      {Fault::kIdentityNotAllowed, 403, "identity_not_allowed"},
      {Fault::kBodyTooLarge, 413, "body_too_large"},
      {Fault::kBadChunk, 400, "bad_chunk"},
      {Fault::kBodyIncomplete, 400, "body_incomplete"},
      {Fault::kTooManyConnectionOptions, 400, "too_many_connection_options"},
      {Fault::kUnderscoreInHeader, 400, "underscore_in_header"},
      {Fault::kRateLimited, 429, "rate_limited"},
      {Fault::kCircuitOpen, 503, "circuit_open"},
      {Fault::kNoEndpoints, 503, "no_endpoints"},
      {Fault::kHeaderTooLarge, 431, "header_too_large"},
      {Fault::kConnectNoSocket, 502, "upstream_connect_failed"},
      {Fault::kUpstreamBadResponse, 502, "upstream_bad_response"},
      {Fault::kUpstreamHeaderTooLarge, 502, "upstream_header_too_large"},
      {Fault::kUpstreamTlsFailed, 502, "upstream_tls_failed"},
      {Fault::kUpstreamIdentityMismatch, 502, "upstream_identity_mismatch"},
      {Fault::kNoMeshIdentity, 502, "no_mesh_identity"},
      {Fault::kLocalServiceDown, 503, "local_service_unavailable"},
      {Fault::kFleetUnavailable, 503, "rate_limit_unavailable"},
  };
  for (const Case& c : cases) {
    const Answer a = AnswerFor(c.fault);
    SCOPED_TRACE(c.reason);
    EXPECT_EQ(a.status, c.status);
    EXPECT_EQ(a.reason, c.reason);
    EXPECT_FALSE(a.message.empty());
  }
}

// A row either answers (an error status, a token an x-hms-reason field can
// carry, a message) or says the gateway writes nothing of its own.
TEST(Fault, EveryAnswerIsWellFormed) {
  for (const FaultInfo& info : kFaultTable) {
    SCOPED_TRACE(info.name);
    if (info.status == 0) {
      EXPECT_TRUE(info.reason.empty());
      EXPECT_TRUE(info.message.empty());
      continue;
    }
    EXPECT_GE(info.status, 400);
    EXPECT_LE(info.status, 599);
    ASSERT_FALSE(info.reason.empty());
    EXPECT_LE(info.reason.size(), 31u);  // the access log keeps 32 bytes of it
    for (char ch : info.reason) EXPECT_TRUE((ch >= 'a' && ch <= 'z') || ch == '_') << ch;
    EXPECT_FALSE(info.message.empty());
    // Messages go into JSON unescaped by nothing special: no quote, no
    // backslash, no control character needs escaping in the table's own text.
    for (char ch : info.message) {
      EXPECT_TRUE(ch != '"' && ch != '\\' && static_cast<unsigned char>(ch) >= 0x20) << ch;
    }
  }
}

// An upstream's failure answers 5xx; the client's or the gateway's refusals
// never blame the upstream with a 502.
TEST(Fault, TheStatusSaysWhoseFault) {
  for (const FaultInfo& info : kFaultTable) {
    SCOPED_TRACE(info.name);
    if (info.status == 0) continue;
    if (info.side == FaultSide::kUpstream) {
      EXPECT_GE(info.status, 500);
    }
    if (info.side == FaultSide::kDownstream && info.status >= 500) {
      // The service's own state (breaker open, no endpoints) or the caller's
      // deadline: never "the upstream broke" (502).
      EXPECT_NE(info.status, 502);
    }
  }
}

TEST(Fault, ADetailReplacesOnlyTheMessage) {
  const Answer plain = AnswerFor(Fault::kNoRoute);
  const Answer detailed = AnswerFor(Fault::kNoRoute, "no route for GET /x");
  EXPECT_EQ(detailed.status, plain.status);
  EXPECT_EQ(detailed.reason, plain.reason);
  EXPECT_EQ(detailed.message, "no route for GET /x");
  EXPECT_EQ(plain.message, Classify(Fault::kNoRoute).message);
  static_assert(AnswerFor(Fault::kCircuitOpen).status == 503, "usable at compile time");
}

}  // namespace
}  // namespace hms::policy
