// Unit tests of the field-name rules the proxy applies before forwarding
// (include/hms/http/field_names.h), table-driven.
#include "hms/http/field_names.h"

#include <gtest/gtest.h>

#include <string_view>

namespace hms::http {
namespace {

struct NameCase {
  std::string_view name;
  UnderscorePolicy policy;
  FieldVerdict verdict;
};

constexpr UnderscorePolicy kAllow = UnderscorePolicy::kAllow;
constexpr UnderscorePolicy kDrop = UnderscorePolicy::kDrop;
constexpr UnderscorePolicy kReject = UnderscorePolicy::kReject;
constexpr FieldVerdict kForward = FieldVerdict::kForward;

const NameCase kNames[] = {
    // The spoofing cases: names a CGI/WSGI-style framework folds into ones the gateway sets.
    {"X_Forwarded_For", kDrop, FieldVerdict::kDrop},
    {"Transfer_Encoding", kDrop, FieldVerdict::kDrop},
    {"X_Forwarded_For", kReject, FieldVerdict::kReject},
    {"Transfer_Encoding", kReject, FieldVerdict::kReject},
    {"X_Forwarded_For", kAllow, kForward},
    // '_' anywhere in the name.
    {"_", kDrop, FieldVerdict::kDrop},
    {"_leading", kDrop, FieldVerdict::kDrop},
    {"trailing_", kDrop, FieldVerdict::kDrop},
    {"x-mixed_name", kReject, FieldVerdict::kReject},
    // Names without '_' pass under every policy.
    {"X-Forwarded-For", kDrop, kForward},
    {"X-Forwarded-For", kReject, kForward},
    {"Transfer-Encoding", kReject, kForward},
    {"host", kDrop, kForward},
    {"x.dotted~name!", kReject, kForward},
    {"", kReject, kForward},
};

TEST(FieldNames, UnderscoreRule) {
  for (const NameCase& c : kNames) {
    EXPECT_EQ(JudgeFieldName(c.name, c.policy), c.verdict)
        << c.name << " under " << UnderscorePolicyName(c.policy);
  }
}

TEST(FieldNames, ForbiddenInTrailers) {
  const struct {
    std::string_view name;
    bool forbidden;
  } cases[] = {
      {"content-length", true},   {"Transfer-Encoding", true}, {"host", true},
      {"te", true},               {"If-None-Match", true},     {"authorization", true},
      {"cookie", true},           {"set-cookie", true},        {"retry-after", true},
      {"content-type", true},     {"trailer", true},           {"connection", true},
      {"keep-alive", true},       {"upgrade", true},
      // What trailers are for: checksums, statuses, timings.
      {"grpc-status", false},     {"grpc-message", false},     {"x-checksum", false},
      {"server-timing", false},   {"digest", false},           {"content-length2", false},
      {"", false},
  };
  for (const auto& c : cases) EXPECT_EQ(ForbiddenInTrailers(c.name), c.forbidden) << c.name;
}

TEST(FieldNames, PolicySpellingsRoundTrip) {
  for (UnderscorePolicy p : {kAllow, kDrop, kReject}) {
    UnderscorePolicy back = p == kDrop ? kAllow : kDrop;
    ASSERT_TRUE(ParseUnderscorePolicy(UnderscorePolicyName(p), &back));
    EXPECT_EQ(back, p);
  }
  EXPECT_EQ(UnderscorePolicyName(kDrop), "drop");
  UnderscorePolicy untouched = kReject;
  for (std::string_view bad : {"", "off", "on", "Drop", "deny", "allow "}) {
    EXPECT_FALSE(ParseUnderscorePolicy(bad, &untouched)) << bad;
    EXPECT_EQ(untouched, kReject);
  }
}

}  // namespace
}  // namespace hms::http
