#include "hms/obs/trace.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>

namespace hms::obs {
namespace {

constexpr std::string_view kValid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(Traceparent, ParsesValidVersion00) {
  TraceContext t;
  ASSERT_TRUE(ParseTraceparent(kValid, &t));
  EXPECT_STREQ(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_STREQ(t.span_id, "00f067aa0ba902b7");
  EXPECT_STREQ(t.parent_id, "00f067aa0ba902b7");
  EXPECT_EQ(t.flags, 1);
  EXPECT_EQ(t.external_len, 0);
}

TEST(Traceparent, ParsesFlags) {
  TraceContext t;
  ASSERT_TRUE(ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", &t));
  EXPECT_EQ(t.flags, 0);
  ASSERT_TRUE(ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-a3", &t));
  EXPECT_EQ(t.flags, 0xa3);
}

struct Case {
  const char* name;
  std::string_view value;
};

TEST(Traceparent, RejectsInvalid) {
  const Case cases[] = {
      {"version ff", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
      {"version not hex", "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
      {"version upper", "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
      {"version one digit", "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
      {"all-zero trace id", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"},
      {"all-zero parent id", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"},
      {"upper trace id", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"},
      {"upper parent id", "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01"},
      {"upper flags", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A"},
      {"flags not hex", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x"},
      {"short trace id", "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"},
      {"long trace id", "00-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-01"},
      {"short parent id", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01"},
      {"one-digit flags", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"},
      {"v00 trailing data", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz"},
      {"v00 trailing dash", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-"},
      {"v00 trailing space", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 "},
      {"wrong separator", "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
      {"trace id with dash", "00-4bf92f3577b34da6a3ce929d0e0e-736-00f067aa0ba902b7-01"},
      {"empty", ""},
      {"future, junk after", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x"},
      {"future, short", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"},
  };
  for (const Case& c : cases) {
    TraceContext t;
    std::strcpy(t.trace_id, "untouched");
    EXPECT_FALSE(ParseTraceparent(c.value, &t)) << c.name;
    EXPECT_STREQ(t.trace_id, "untouched") << c.name;
  }
}

TEST(Traceparent, AcceptsFutureVersions) {
  TraceContext t;
  EXPECT_TRUE(ParseTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &t));
  EXPECT_TRUE(
      ParseTraceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds", &t));
  EXPECT_STREQ(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_STREQ(t.span_id, "00f067aa0ba902b7");
  EXPECT_TRUE(ParseTraceparent("fe-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", &t));
}

TEST(Traceparent, FormatRoundTrip) {
  TraceContext t;
  ASSERT_TRUE(ParseTraceparent(kValid, &t));
  char buf[56] = {};
  ASSERT_EQ(FormatTraceparent(t, buf), 55);
  EXPECT_EQ(std::string_view(buf, 55), kValid);

  // A future version is forwarded as the version we speak.
  ASSERT_TRUE(
      ParseTraceparent("07-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-extra", &t));
  ASSERT_EQ(FormatTraceparent(t, buf), 55);
  EXPECT_EQ(std::string_view(buf, 55), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03");
}

TEST(Traceparent, NewTraceFormatsAndParsesBack) {
  for (int i = 0; i < 1000; ++i) {
    TraceContext t;
    NewTrace(&t);
    char buf[55];
    ASSERT_EQ(FormatTraceparent(t, buf), 55);
    TraceContext back;
    ASSERT_TRUE(ParseTraceparent(std::string_view(buf, 55), &back)) << std::string_view(buf, 55);
    EXPECT_STREQ(back.trace_id, t.trace_id);
    EXPECT_STREQ(back.span_id, t.span_id);
    EXPECT_EQ(back.flags, 1);
  }
}

TEST(Traceparent, NewSpanKeepsTraceAndChangesSpan) {
  TraceContext t;
  ASSERT_TRUE(ParseTraceparent(kValid, &t));
  NewSpan(&t);
  EXPECT_STREQ(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_STREQ(t.parent_id, "00f067aa0ba902b7");
  EXPECT_STRNE(t.span_id, "00f067aa0ba902b7");
  EXPECT_EQ(std::strlen(t.span_id), 16u);
}

TEST(TraceId, AcceptsHexForms) {
  TraceContext t;
  ASSERT_TRUE(ParseTraceId("abc123", &t));
  EXPECT_STREQ(t.trace_id, "00000000000000000000000000abc123");
  EXPECT_EQ(std::string_view(t.external_id, t.external_len), "abc123");
  EXPECT_EQ(t.external_id[t.external_len], '\0');

  ASSERT_TRUE(ParseTraceId("ABCDEF0123456789abcdef0123456789", &t));
  EXPECT_STREQ(t.trace_id, "abcdef0123456789abcdef0123456789");
  EXPECT_EQ(std::string_view(t.external_id, t.external_len), "ABCDEF0123456789abcdef0123456789");

  ASSERT_TRUE(ParseTraceId("1", &t));
  EXPECT_STREQ(t.trace_id, "00000000000000000000000000000001");
  EXPECT_EQ(t.external_len, 1);
  EXPECT_STREQ(t.parent_id, "");
}

TEST(TraceId, RejectsOtherForms) {
  const Case cases[] = {
      {"empty", ""},
      {"all zero", "0000"},
      {"all zero 32", "00000000000000000000000000000000"},
      {"33 chars", "abcdef0123456789abcdef01234567890"},
      {"not hex", "abcg"},
      {"uuid dashes", "4bf92f35-77b3-4da6-a3ce-929d0e0e4736"},
      {"space", "abc 123"},
      {"traceparent", kValid},
  };
  for (const Case& c : cases) {
    TraceContext t;
    t.external_len = 7;
    EXPECT_FALSE(ParseTraceId(c.value, &t)) << c.name;
    EXPECT_EQ(t.external_len, 7) << c.name;
  }
}

TEST(TraceId, ThenNewSpanFormatsValidTraceparent) {
  TraceContext t;
  ASSERT_TRUE(ParseTraceId("DEADbeef", &t));
  NewSpan(&t);
  char buf[55];
  FormatTraceparent(t, buf);
  TraceContext back;
  ASSERT_TRUE(ParseTraceparent(std::string_view(buf, 55), &back));
  EXPECT_STREQ(back.trace_id, "000000000000000000000000deadbeef");
}

TEST(NewTrace, IdsAreUniqueOver100k) {
  std::unordered_set<std::string> traces;
  std::unordered_set<std::string> spans;
  traces.reserve(100000);
  spans.reserve(100000);
  for (int i = 0; i < 100000; ++i) {
    TraceContext t;
    NewTrace(&t);
    ASSERT_EQ(std::strlen(t.trace_id), 32u);
    ASSERT_TRUE(traces.insert(t.trace_id).second) << "duplicate trace id " << t.trace_id;
    ASSERT_TRUE(spans.insert(t.span_id).second) << "duplicate span id " << t.span_id;
  }
}

TEST(NewTrace, ThreadsGetDifferentStreams) {
  TraceContext a;
  TraceContext b;
  NewTrace(&a);
  std::thread([&b] { NewTrace(&b); }).join();
  EXPECT_STRNE(a.trace_id, b.trace_id);
}

}  // namespace
TEST(B3, ParsesTheSingleHeaderForms) {
  TraceContext t{};
  ASSERT_TRUE(ParseB3("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90", &t));
  EXPECT_STREQ(t.trace_id, "80f198ee56343ba864fe8b2a57d3eff7");
  EXPECT_STREQ(t.parent_id, "e457b5a2e4d86bd1");
  EXPECT_EQ(t.flags, 1);
  EXPECT_EQ(t.external_len, 0);
  ASSERT_TRUE(ParseB3("64fe8b2a57d3eff7-e457b5a2e4d86bd1-0", &t));  // 64-bit trace id
  EXPECT_STREQ(t.trace_id, "000000000000000064fe8b2a57d3eff7");
  EXPECT_EQ(t.flags, 0);
  ASSERT_TRUE(ParseB3("64fe8b2a57d3eff7-e457b5a2e4d86bd1-d", &t));
  EXPECT_EQ(t.flags, 1);  // debug implies sampled
  ASSERT_TRUE(ParseB3("64fe8b2a57d3eff7-e457b5a2e4d86bd1", &t));
  NewSpan(&t);
  char tp[64];
  EXPECT_EQ(FormatTraceparent(t, tp), 55);
  EXPECT_EQ(std::string(tp, 36), "00-000000000000000064fe8b2a57d3eff7-");
}

TEST(B3, RejectsWhatIsNotAContext) {
  TraceContext t{};
  for (const char* bad : {"0", "1", "d", "", "64fe8b2a57d3eff7", "64fe8b2a57d3eff7-",
                          "64FE8B2A57D3EFF7-e457b5a2e4d86bd1", "64fe8b2a57d3eff-e457b5a2e4d86bd1",
                          "0000000000000000-e457b5a2e4d86bd1", "64fe8b2a57d3eff7-0000000000000000",
                          "64fe8b2a57d3eff7-e457b5a2e4d86bd1-2", "64fe8b2a57d3eff7-e457b5a2e4d86bd1-1-x",
                          "64fe8b2a57d3eff7-e457b5a2e4d86bd1x"}) {
    EXPECT_FALSE(ParseB3(bad, &t)) << bad;
  }
}

}  // namespace hms::obs

namespace hms::obs {
namespace {

constexpr std::string_view kTrace = "4bf92f3577b34da6a3ce929d0e0e4736";

TEST(AcceptTrace, PrecedenceAndWhoDecidesSampling) {
  TraceContext t{};
  // Nothing: a new trace, decided here.
  EXPECT_EQ(AcceptTrace("", "", "", &t), TraceOrigin::kNew);
  EXPECT_EQ(t.parent_id[0], '\0');
  // traceparent alone: its parent and flags.
  EXPECT_EQ(AcceptTrace("", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "", &t),
            TraceOrigin::kTraceparent);
  EXPECT_STREQ(t.parent_id, "00f067aa0ba902b7");
  EXPECT_EQ(t.flags, 0);
  EXPECT_TRUE(CallerDecidedSampling(TraceOrigin::kTraceparent));
  // x-trace-id alone: no parent, decided here.
  EXPECT_EQ(AcceptTrace("abc", "", "", &t), TraceOrigin::kTraceId);
  EXPECT_STREQ(t.trace_id, "00000000000000000000000000000abc");
  EXPECT_EQ(t.parent_id[0], '\0');
  EXPECT_FALSE(CallerDecidedSampling(TraceOrigin::kTraceId));
  // A malformed x-trace-id falls through to the traceparent.
  EXPECT_EQ(
      AcceptTrace("not-hex", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "", &t),
      TraceOrigin::kTraceparent);
  EXPECT_STREQ(t.trace_id, kTrace.data());
}

TEST(AcceptTrace, XTraceIdWithTheSameTracesTraceparentKeepsTheParent) {
  // What one HMS hop sends the next: both headers, the same trace.
  TraceContext t{};
  EXPECT_EQ(AcceptTrace(kTrace, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "", &t),
            TraceOrigin::kTraceparent);
  EXPECT_STREQ(t.trace_id, kTrace.data());
  EXPECT_STREQ(t.parent_id, "00f067aa0ba902b7");
  EXPECT_EQ(t.flags, 1);
  EXPECT_EQ(std::string_view(t.external_id, t.external_len), kTrace);  // still returned as sent
  // A short x-trace-id and the padded trace id of the traceparent match too.
  EXPECT_EQ(AcceptTrace("ABC", "00-00000000000000000000000000000abc-00f067aa0ba902b7-00", "", &t),
            TraceOrigin::kTraceparent);
  EXPECT_STREQ(t.parent_id, "00f067aa0ba902b7");
  EXPECT_EQ(t.flags, 0);
  EXPECT_EQ(std::string_view(t.external_id, t.external_len), "ABC");
  // Different traces: x-trace-id wins, the traceparent is ignored.
  EXPECT_EQ(AcceptTrace("abd", "00-00000000000000000000000000000abc-00f067aa0ba902b7-00", "", &t),
            TraceOrigin::kTraceId);
  EXPECT_EQ(t.parent_id[0], '\0');
  EXPECT_EQ(t.flags, 1);
}

TEST(AcceptTrace, B3WithAndWithoutASamplingDecision) {
  TraceContext t{};
  EXPECT_EQ(AcceptTrace("", "", "64fe8b2a57d3eff7-e457b5a2e4d86bd1-0", &t), TraceOrigin::kB3);
  EXPECT_EQ(t.flags, 0);
  EXPECT_EQ(AcceptTrace("", "", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1", &t),
            TraceOrigin::kB3Deferred);
  EXPECT_STREQ(t.parent_id, "e457b5a2e4d86bd1");
  EXPECT_FALSE(CallerDecidedSampling(TraceOrigin::kB3Deferred));
}

TEST(AcceptTrace, SetSampledTouchesBitZeroOnly) {
  TraceContext t{};
  t.flags = 0xa3;
  SetSampled(&t, false);
  EXPECT_EQ(t.flags, 0xa2);
  SetSampled(&t, true);
  EXPECT_EQ(t.flags, 0xa3);
}

}  // namespace
}  // namespace hms::obs
