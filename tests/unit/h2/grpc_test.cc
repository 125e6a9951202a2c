// The gRPC helpers: content types, grpc-timeout both ways, grpc-status,
// the fault table's statuses, grpc-message encoding and the gateway's own
// trailers-only answers.
#include "hms/h2/grpc.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace hms::h2 {
namespace {

using policy::Fault;

TEST(Grpc, ContentTypes) {
  struct Case {
    std::string_view ct;
    bool grpc;
  };
  const Case cases[] = {
      {"application/grpc", true},
      {"application/grpc+proto", true},
      {"application/grpc+json", true},
      {"Application/GRPC", true},
      {"application/grpc; charset=x", true},
      {"application/grpc-web", false},
      {"application/grpcx", false},
      {"application/json", false},
      {"application/grp", false},
      {"", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.ct);
    EXPECT_EQ(IsGrpcContentType(c.ct), c.grpc);
  }
}

TEST(Grpc, ParsesTimeouts) {
  struct Case {
    std::string_view value;
    bool ok;
    core::Instant ns;
  };
  const Case cases[] = {
      {"1H", true, 3'600'000'000'000},
      {"2M", true, 120'000'000'000},
      {"3S", true, 3'000'000'000},
      {"250m", true, 250'000'000},
      {"7u", true, 7'000},
      {"9n", true, 9},
      {"0S", true, 0},
      {"99999999n", true, 99'999'999},
      {"000000100m", false, 0},  // 9 digits
      {"123456789S", false, 0},
      {"S", false, 0},
      {"10", false, 0},
      {"10s", false, 0},  // units are case-sensitive: s is not S
      {"1.5S", false, 0},
      {"-1S", false, 0},
      {" 1S", false, 0},
      {"", false, 0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.value);
    core::Instant d = 12345;
    EXPECT_EQ(ParseGrpcTimeout(c.value, &d), c.ok);
    if (c.ok) {
      EXPECT_EQ(d, c.ns);
    }
  }
  core::Instant d = 0;
  ASSERT_TRUE(ParseGrpcTimeout("99999999H", &d));  // beyond 2^64 ns: saturated
  EXPECT_EQ(d, ~core::Instant{0});
}

TEST(Grpc, WritesTheRemainingTime) {
  struct Case {
    core::Instant ns;
    std::string_view text;
  };
  const Case cases[] = {
      {0, "0n"},
      {999, "999n"},
      {99'999'999, "99999999n"},
      {100'000'000, "100000u"},  // no longer fits 8 digits in n
      {1'500'000'000, "1500000u"},
      {250'000'000'000, "250000m"},
      {100'000'000'000'000, "100000S"},  // 27.7 hours
      {~core::Instant{0}, "5124095H"},   // the largest Instant
      {99'999'999'999, "99999999u"},     // rounded down, never longer
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    char out[kGrpcTimeoutBytes];
    const size_t n = FormatGrpcTimeout(c.ns, out);
    ASSERT_LE(n, kGrpcTimeoutBytes);
    const std::string_view text(out, n);
    EXPECT_EQ(text, c.text);
    core::Instant back = 0;
    ASSERT_TRUE(ParseGrpcTimeout(text, &back));
    EXPECT_LE(back, c.ns);
  }
}

TEST(Grpc, StatusValuesAndNames) {
  GrpcStatus s = GrpcStatus::kOk;
  EXPECT_TRUE(ParseGrpcStatus("14", &s));
  EXPECT_EQ(s, GrpcStatus::kUnavailable);
  EXPECT_TRUE(ParseGrpcStatus("0", &s));
  EXPECT_EQ(s, GrpcStatus::kOk);
  EXPECT_TRUE(ParseGrpcStatus("99", &s));
  EXPECT_EQ(s, GrpcStatus::kUnknown);  // an unknown code, as gRPC clients read it
  EXPECT_FALSE(ParseGrpcStatus("", &s));
  EXPECT_FALSE(ParseGrpcStatus("1a", &s));
  EXPECT_FALSE(ParseGrpcStatus("-1", &s));
  for (uint8_t i = 0; i < kGrpcStatusCount; ++i) {
    const auto st = static_cast<GrpcStatus>(i);
    GrpcStatus back = GrpcStatus::kOk;
    ASSERT_TRUE(ParseGrpcStatusName(GrpcStatusName(st), &back));
    EXPECT_EQ(back, st);
  }
  EXPECT_TRUE(ParseGrpcStatusName("resource-exhausted", &s));
  EXPECT_EQ(s, GrpcStatus::kResourceExhausted);
  EXPECT_TRUE(ParseGrpcStatusName("unavailable", &s));
  EXPECT_EQ(s, GrpcStatus::kUnavailable);
  EXPECT_FALSE(ParseGrpcStatusName("UNAVAILABLEX", &s));
  EXPECT_FALSE(ParseGrpcStatusName("14", &s));
}

TEST(Grpc, EveryFaultHasAStatus) {
  struct Case {
    Fault fault;
    GrpcStatus status;
  };
  // The rows issue 13 names, and a few more that gRPC's own mapping fixes.
  const Case cases[] = {
      {Fault::kJwtRejected, GrpcStatus::kUnauthenticated},
      {Fault::kRateLimited, GrpcStatus::kResourceExhausted},
      {Fault::kCircuitOpen, GrpcStatus::kUnavailable},
      {Fault::kNoEndpoints, GrpcStatus::kUnavailable},
      {Fault::kConnect, GrpcStatus::kUnavailable},
      {Fault::kConnectNoSocket, GrpcStatus::kUnavailable},
      {Fault::kUpstreamTlsFailed, GrpcStatus::kUnavailable},
      {Fault::kLocalServiceDown, GrpcStatus::kUnavailable},
      {Fault::kFleetUnavailable, GrpcStatus::kUnavailable},
      {Fault::kServiceTimeout, GrpcStatus::kDeadlineExceeded},
      {Fault::kPerTryTimeout, GrpcStatus::kDeadlineExceeded},
      {Fault::kCallerDeadline, GrpcStatus::kDeadlineExceeded},
      {Fault::kNoRoute, GrpcStatus::kUnimplemented},
      {Fault::kIdentityNotAllowed, GrpcStatus::kPermissionDenied},
      {Fault::kClientGone, GrpcStatus::kCancelled},
      {Fault::kUpstreamBadResponse, GrpcStatus::kInternal},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(policy::Classify(c.fault).name);
    EXPECT_EQ(GrpcStatusFor(c.fault), c.status);
  }
  // Only kNone is OK: every failure is answered as one.
  for (size_t i = 1; i < static_cast<size_t>(Fault::kCount); ++i) {
    SCOPED_TRACE(policy::Classify(static_cast<Fault>(i)).name);
    EXPECT_NE(GrpcStatusFor(static_cast<Fault>(i)), GrpcStatus::kOk);
  }
  EXPECT_EQ(GrpcStatusFor(Fault::kNone), GrpcStatus::kOk);
}

TEST(Grpc, PercentEncodesMessages) {
  struct Case {
    std::string_view in;
    size_t cap;
    std::string_view out;
  };
  const Case cases[] = {
      {"plain text", 64, "plain text"},
      {"100% sure", 64, "100%25 sure"},
      {"line\nbreak", 64, "line%0Abreak"},
      {"caf\xc3\xa9", 64, "caf%C3%A9"},  // UTF-8 bytes, each escaped
      {"tab\there", 64, "tab%09here"},
      {"~", 64, "~"},
      {"\x7f", 64, "%7F"},
      {"ab%", 4, "ab"},  // never half an escape
      {"abc", 2, "ab"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.in);
    char out[64];
    const size_t n = PercentEncodeGrpcMessage(c.in, out, c.cap);
    EXPECT_EQ(std::string_view(out, n), c.out);
  }
}

TEST(Grpc, TheGatewaysOwnAnswerIsTrailersOnly) {
  GrpcAnswerBuffer buf;
  http::Header f[kGrpcFieldCount];
  const policy::Answer a = policy::AnswerFor(Fault::kRateLimited);
  ASSERT_EQ(GrpcAnswerFields(Fault::kRateLimited, a, &buf, f), kGrpcFieldCount);
  EXPECT_EQ(f[0].name, "content-type");
  EXPECT_EQ(f[0].value, "application/grpc");
  EXPECT_EQ(f[1].name, "grpc-status");
  EXPECT_EQ(f[1].value, "8");
  EXPECT_EQ(f[2].name, "grpc-message");
  EXPECT_EQ(f[2].value, "rate limit exceeded for this route");
  EXPECT_EQ(f[3].name, "x-hms-reason");
  EXPECT_EQ(f[3].value, "rate_limited");
  const policy::Answer j = policy::AnswerFor(Fault::kJwtRejected, "token expired: 100%");
  GrpcAnswerFields(Fault::kJwtRejected, j, &buf, f);
  EXPECT_EQ(f[1].value, "16");
  EXPECT_EQ(f[2].value, "token expired: 100%25");
  EXPECT_EQ(f[3].value, "jwt_invalid_token");
}

}  // namespace
}  // namespace hms::h2
