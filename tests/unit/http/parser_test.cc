// Unit tests of the HTTP/1.1 head parser: one named case per rule of
// RFC 9112 / DESIGN §6, split-point sweeps for heads that arrive in pieces
// (the caller re-parses from the start), and a seeded mutation sweep
// checking that prefixes never disagree with the whole.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "hms/http/parser.h"

namespace hms::http {
namespace {

using std::string_literals::operator""s;

constexpr size_t kMax = 8192;

// The parse result keeps its own copy of the input: the head's views point
// into it, so they stay valid whatever the caller passed.
struct Parsed {
  int rc;
  std::unique_ptr<std::string> input;
  std::unique_ptr<RequestHead> head;
};

Parsed Req(std::string_view s, size_t max = kMax) {
  auto input = std::make_unique<std::string>(s);
  auto head = std::make_unique<RequestHead>();
  const int rc = ParseRequest(input->data(), input->size(), max, head.get());
  return {rc, std::move(input), std::move(head)};
}

struct ParsedResp {
  int rc;
  std::unique_ptr<std::string> input;
  std::unique_ptr<ResponseHead> head;
};

ParsedResp Resp(std::string_view s, Method m = Method::kGet, size_t max = kMax) {
  auto input = std::make_unique<std::string>(s);
  auto head = std::make_unique<ResponseHead>();
  const int rc = ParseResponse(input->data(), input->size(), max, m, head.get());
  return {rc, std::move(input), std::move(head)};
}

// ---------------------------------------------------------------------------
// Requests that must be refused, one named case per rule.

struct RejectCase {
  const char* name;
  std::string input;
  ParseError error;
};

std::string H(std::string_view fields) {
  return "POST /p HTTP/1.1\r\nHost: example.com\r\n" + std::string(fields) + "\r\n";
}

const std::vector<RejectCase>& RejectCases() {
  static const std::vector<RejectCase> cases = {
      // Content-Length and Transfer-Encoding together (request smuggling).
      {"BothLengthAndChunked", H("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
       ParseError::kBothLengthAndChunked},
      {"BothChunkedAndLength", H("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"),
       ParseError::kBothLengthAndChunked},
      // Content-Length values.
      {"DuplicateContentLengthDiffers", H("Content-Length: 5\r\nContent-Length: 6\r\n"),
       ParseError::kDuplicateContentLength},
      {"DuplicateContentLengthList", H("Content-Length: 5, 6\r\n"),
       ParseError::kDuplicateContentLength},
      {"ContentLengthNotDigits", H("Content-Length: abc\r\n"), ParseError::kBadContentLength},
      {"ContentLengthNegative", H("Content-Length: -1\r\n"), ParseError::kBadContentLength},
      {"ContentLengthPlus", H("Content-Length: +5\r\n"), ParseError::kBadContentLength},
      {"ContentLengthEmpty", H("Content-Length: \r\n"), ParseError::kBadContentLength},
      {"ContentLengthTrailingComma", H("Content-Length: 5,\r\n"), ParseError::kBadContentLength},
      {"ContentLengthInnerSpace", H("Content-Length: 1 2\r\n"), ParseError::kBadContentLength},
      {"ContentLengthHex", H("Content-Length: 0x10\r\n"), ParseError::kBadContentLength},
      {"ContentLengthOverflow", H("Content-Length: 99999999999999999999\r\n"),
       ParseError::kBadContentLength},
      {"ContentLengthOver63Bits", H("Content-Length: 9223372036854775808\r\n"),
       ParseError::kBadContentLength},
      // Transfer-Encoding must end in a single chunked; requests carry no other coding.
      {"TransferEncodingGzip", H("Transfer-Encoding: gzip\r\n"),
       ParseError::kTransferEncodingNotChunked},
      {"TransferEncodingChunkedThenGzip", H("Transfer-Encoding: chunked, gzip\r\n"),
       ParseError::kTransferEncodingNotChunked},
      {"TransferEncodingGzipChunkedInRequest", H("Transfer-Encoding: gzip, chunked\r\n"),
       ParseError::kTransferEncodingNotChunked},
      {"TransferEncodingChunkedTwice", H("Transfer-Encoding: chunked, chunked\r\n"),
       ParseError::kTransferEncodingNotChunked},
      {"TransferEncodingChunkedTwoFields",
       H("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
       ParseError::kTransferEncodingNotChunked},
      {"TransferEncodingChunkedWithParams", H("Transfer-Encoding: chunked;q=1\r\n"),
       ParseError::kTransferEncodingNotChunked},
      {"TransferEncodingEmpty", H("Transfer-Encoding: \r\n"),
       ParseError::kTransferEncodingNotChunked},
      {"TransferEncodingIdentity", H("Transfer-Encoding: identity\r\n"),
       ParseError::kTransferEncodingNotChunked},
      {"TransferEncodingNotAToken", H("Transfer-Encoding: \"chunked\"\r\n"),
       ParseError::kTransferEncodingNotChunked},
      {"TransferEncodingInHttp10",
       "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
       ParseError::kTransferEncodingNotChunked},
      // Line endings.
      {"BareLfEndsRequestLine", "GET / HTTP/1.1\nHost: a\r\n\r\n", ParseError::kBareLf},
      {"BareLfEndsField", "GET / HTTP/1.1\r\nHost: a\n\r\n", ParseError::kBareLf},
      {"BareLfEndsHead", "GET / HTTP/1.1\r\nHost: a\r\n\n", ParseError::kBareLf},
      {"BareLfInName", "GET / HTTP/1.1\r\nHost: a\r\nX-A\n\r\n", ParseError::kBareLf},
      {"BareLfBeforeRequestLine", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::kBareLf},
      {"BareCrInValue", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", ParseError::kBareCr},
      {"BareCrEndsRequestLine", "GET / HTTP/1.1\rHost: a\r\n\r\n", ParseError::kBareCr},
      {"BareCrEndsHead", "GET / HTTP/1.1\r\nHost: a\r\n\rX", ParseError::kBareCr},
      {"BareCrInName", "GET / HTTP/1.1\r\nHost: a\r\nX-A\rB: c\r\n\r\n", ParseError::kBareCr},
      // obs-fold and stray whitespace lines.
      {"ObsFoldSpace", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", ParseError::kObsFold},
      {"ObsFoldTab", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n", ParseError::kObsFold},
      {"WhitespaceBeforeFirstField", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", ParseError::kObsFold},
      // Field names.
      {"SpaceBeforeColon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", ParseError::kSpaceBeforeColon},
      {"TabBeforeColon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", ParseError::kSpaceBeforeColon},
      {"InvalidNameChar", "GET / HTTP/1.1\r\nHost: a\r\nX@A: b\r\n\r\n",
       ParseError::kInvalidHeaderName},
      {"InvalidNameSpaceInside", "GET / HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n",
       ParseError::kInvalidHeaderName},
      {"InvalidNameObsText", "GET / HTTP/1.1\r\nHost: a\r\nX\xc3\xa9: b\r\n\r\n",
       ParseError::kInvalidHeaderName},
      {"EmptyName", "GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", ParseError::kInvalidHeaderName},
      {"NameWithoutColon", "GET / HTTP/1.1\r\nHost: a\r\nX-A\r\n\r\n",
       ParseError::kInvalidHeaderName},
      // Field values.
      {"ControlInValue", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x01" "c\r\n\r\n",
       ParseError::kInvalidHeaderValue},
      {"NulInValue", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n"s,
       ParseError::kInvalidHeaderValue},
      {"DelInValue", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x7f\r\n\r\n",
       ParseError::kInvalidHeaderValue},
      {"ControlInLongValue",
       "GET / HTTP/1.1\r\nHost: a\r\nX-A: " + std::string(40, 'v') + "\x1b" +
           std::string(40, 'v') + "\r\n\r\n",
       ParseError::kInvalidHeaderValue},
      // Request line.
      {"InvalidMethodChar", "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::kBadRequestLine},
      {"MethodWithSlash", "GET/ / HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::kBadRequestLine},
      {"EmptyMethod", " / HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::kBadRequestLine},
      {"DoubleSpaceBeforeTarget", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
       ParseError::kBadRequestLine},
      {"TabAfterMethod", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::kBadRequestLine},
      {"ControlInTarget", "GET /a\x01" "b HTTP/1.1\r\nHost: a\r\n\r\n",
       ParseError::kBadRequestLine},
      {"ObsTextInTarget", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
       ParseError::kBadRequestLine},
      {"FragmentInTarget", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::kBadRequestLine},
      {"DelInLongTarget", "GET /" + std::string(30, 'a') + "\x7f" + " HTTP/1.1\r\nHost: a\r\n\r\n",
       ParseError::kBadRequestLine},
      {"HttpZeroNine", "GET /\r\n\r\n", ParseError::kBadRequestLine},
      {"AsteriskForGet", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::kBadRequestLine},
      {"RelativeTarget", "GET foo HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::kBadRequestLine},
      {"AbsoluteFormWithoutAuthority", "GET http:///p HTTP/1.1\r\nHost: a\r\n\r\n",
       ParseError::kBadRequestLine},
      {"AbsoluteFormUserinfo", "GET http://u@h/p HTTP/1.1\r\nHost: a\r\n\r\n",
       ParseError::kBadRequestLine},
      {"ConnectWithoutPort", "CONNECT example.com HTTP/1.1\r\nHost: a\r\n\r\n",
       ParseError::kBadRequestLine},
      {"ConnectOriginForm", "CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::kBadRequestLine},
      // Version.
      {"VersionOneTwo", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", ParseError::kBadVersion},
      {"VersionTwo", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", ParseError::kBadVersion},
      {"VersionLowercase", "GET / http/1.1\r\nHost: a\r\n\r\n", ParseError::kBadVersion},
      {"VersionTooLong", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", ParseError::kBadVersion},
      {"VersionTrailingSpace", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", ParseError::kBadVersion},
      {"VersionGarbagePartial", "GET / XTTP", ParseError::kBadVersion},
      // Host.
      {"MissingHost", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", ParseError::kMissingHost},
      {"DuplicateHost", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", ParseError::kDuplicateHost},
      {"DuplicateHostCase", "GET / HTTP/1.1\r\nHost: a\r\nhOST: b\r\n\r\n",
       ParseError::kDuplicateHost},
      {"HostWithSpace", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", ParseError::kBadHost},
      {"HostWithUserinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", ParseError::kBadHost},
      {"HostWithSlash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", ParseError::kBadHost},
      {"HostBadPort", "GET / HTTP/1.1\r\nHost: a:80x\r\n\r\n", ParseError::kBadHost},
      {"HostBadPctEncoding", "GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n", ParseError::kBadHost},
      {"HostUnclosedIpv6", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", ParseError::kBadHost},
      {"HostObsText", "GET / HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n", ParseError::kBadHost},
  };
  return cases;
}

void PrintTo(const RejectCase& c, std::ostream* os) { *os << c.name; }

class RejectTest : public ::testing::TestWithParam<RejectCase> {};

TEST_P(RejectTest, RefusesWithReason) {
  const RejectCase& c = GetParam();
  Parsed p = Req(c.input);
  EXPECT_EQ(p.rc, kError) << c.name;
  EXPECT_EQ(p.head->error, c.error)
      << c.name << ": got " << ParseErrorReason(p.head->error) << ", want "
      << ParseErrorReason(c.error);
  EXPECT_EQ(ParseErrorStatus(p.head->error), 400);
}

INSTANTIATE_TEST_SUITE_P(HttpParser, RejectTest, ::testing::ValuesIn(RejectCases()),
                         [](const ::testing::TestParamInfo<RejectCase>& info) {
                           return std::string(info.param.name);
                         });

// ---------------------------------------------------------------------------
// Requests that must be accepted.

TEST(HttpParser, ParsesSimpleGet) {
  const std::string s =
      "GET /api/v1/items?limit=10&x=y HTTP/1.1\r\n"
      "Host: example.com:8080\r\n"
      "User-Agent:   curl/8.0 \t\r\n"
      "Accept:*/*\r\n"
      "X-Empty:\r\n"
      "\r\n";
  Parsed p = Req(s);
  ASSERT_EQ(p.rc, static_cast<int>(s.size()));
  const RequestHead& h = *p.head;
  EXPECT_EQ(h.error, ParseError::kNone);
  EXPECT_EQ(h.method, Method::kGet);
  EXPECT_EQ(h.method_text, "GET");
  EXPECT_EQ(h.target, "/api/v1/items?limit=10&x=y");
  EXPECT_EQ(h.path, "/api/v1/items");
  EXPECT_EQ(h.query, "limit=10&x=y");
  EXPECT_EQ(h.version_minor, 1);
  EXPECT_EQ(h.host, "example.com:8080");
  ASSERT_EQ(h.header_count, 4);
  EXPECT_EQ(h.headers[0].name, "Host");
  EXPECT_EQ(h.headers[1].name, "User-Agent");
  EXPECT_EQ(h.headers[1].value, "curl/8.0");
  EXPECT_EQ(h.headers[2].value, "*/*");
  EXPECT_EQ(h.headers[3].name, "X-Empty");
  EXPECT_EQ(h.headers[3].value, "");
  EXPECT_EQ(h.body, BodyKind::kNone);
  EXPECT_TRUE(h.keep_alive);
  EXPECT_FALSE(h.expect_continue);
  // Views point into the caller's buffer: nothing is copied.
  EXPECT_EQ(h.path.data(), p.input->data() + 4);
  EXPECT_EQ(h.headers[1].value.data(), p.input->data() + s.find("curl"));
}

TEST(HttpParser, KeepsObsTextAndTabInValues) {
  const std::string s = "GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\xc3\xa9\tlatte\r\n\r\n";
  Parsed p = Req(s);
  ASSERT_EQ(p.rc, static_cast<int>(s.size()));
  EXPECT_EQ(p.head->headers[1].value, "caf\xc3\xa9\tlatte");
}

TEST(HttpParser, EmptyQueryAndQuestionMarkInQuery) {
  Parsed p = Req("GET /a? HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_GT(p.rc, 0);
  EXPECT_EQ(p.head->path, "/a");
  EXPECT_EQ(p.head->query, "");
  // The first '?' splits, even deep into a long target (past the SIMD block).
  const std::string long_path = "/" + std::string(40, 'p');
  p = Req("GET " + long_path + "?q=1?2 HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_GT(p.rc, 0);
  EXPECT_EQ(p.head->path, long_path);
  EXPECT_EQ(p.head->query, "q=1?2");
}

TEST(HttpParser, AbsoluteFormSplitsPathAndUsesAuthority) {
  Parsed p = Req("GET http://h.example:81/p/q?x=1 HTTP/1.1\r\nHost: other\r\n\r\n");
  ASSERT_GT(p.rc, 0);
  EXPECT_EQ(p.head->target, "http://h.example:81/p/q?x=1");
  EXPECT_EQ(p.head->path, "/p/q");
  EXPECT_EQ(p.head->query, "x=1");
  EXPECT_EQ(p.head->host, "h.example:81");  // RFC 9112 §3.2.2
  p = Req("GET https://h HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_GT(p.rc, 0);
  EXPECT_EQ(p.head->path, "/");
  EXPECT_EQ(p.head->query, "");
  p = Req("GET http://h?z HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_GT(p.rc, 0);
  EXPECT_EQ(p.head->path, "/");
  EXPECT_EQ(p.head->query, "z");
}

TEST(HttpParser, AsteriskOnlyForOptions) {
  Parsed p = Req("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_GT(p.rc, 0);
  EXPECT_EQ(p.head->method, Method::kOptions);
  EXPECT_EQ(p.head->path, "*");
}

TEST(HttpParser, ConnectAuthorityForm) {
  Parsed p = Req("CONNECT h.example:443 HTTP/1.1\r\nHost: h.example:443\r\n\r\n");
  ASSERT_GT(p.rc, 0);
  EXPECT_EQ(p.head->method, Method::kConnect);
  EXPECT_EQ(p.head->host, "h.example:443");
  EXPECT_EQ(p.head->path, "");
}

TEST(HttpParser, MapsMethods) {
  const struct {
    const char* text;
    Method method;
  } cases[] = {
      {"GET", Method::kGet},         {"HEAD", Method::kHead},     {"POST", Method::kPost},
      {"PUT", Method::kPut},         {"DELETE", Method::kDelete}, {"PATCH", Method::kPatch},
      {"OPTIONS", Method::kOptions}, {"TRACE", Method::kTrace},   {"PURGE", Method::kOther},
      {"get", Method::kOther},  // methods are case-sensitive (RFC 9110 §9.1)
      {"M-SEARCH", Method::kOther},
  };
  for (const auto& c : cases) {
    Parsed p = Req(std::string(c.text) + " / HTTP/1.1\r\nHost: a\r\n\r\n");
    ASSERT_GT(p.rc, 0) << c.text;
    EXPECT_EQ(p.head->method, c.method) << c.text;
    EXPECT_EQ(p.head->method_text, c.text);
  }
}

TEST(HttpParser, EqualDuplicateContentLengthIsFolded) {
  for (const char* fields : {"Content-Length: 5\r\nContent-Length: 5\r\n",
                             "Content-Length: 5, 5\r\n", "Content-Length: 5 ,5,  5\r\n"}) {
    Parsed p = Req(H(fields));
    ASSERT_GT(p.rc, 0) << fields << ParseErrorReason(p.head->error);
    EXPECT_EQ(p.head->body, BodyKind::kContentLength);
    EXPECT_EQ(p.head->content_length, 5u);
  }
}

TEST(HttpParser, ContentLengthLimits) {
  Parsed p = Req(H("Content-Length: 9223372036854775807\r\n"));
  ASSERT_GT(p.rc, 0);
  EXPECT_EQ(p.head->content_length, 9223372036854775807ull);
  p = Req(H("content-length: 0\r\n"));
  ASSERT_GT(p.rc, 0);
  EXPECT_EQ(p.head->body, BodyKind::kContentLength);
  EXPECT_EQ(p.head->content_length, 0u);
}

TEST(HttpParser, ChunkedRequest) {
  for (const char* fields : {"Transfer-Encoding: chunked\r\n", "transfer-encoding: CHUNKED\r\n",
                             "Transfer-Encoding: , chunked\r\n"}) {
    Parsed p = Req(H(fields));
    ASSERT_GT(p.rc, 0) << fields;
    EXPECT_EQ(p.head->body, BodyKind::kChunked);
  }
}

TEST(HttpParser, KeepAliveRules) {
  const struct {
    const char* version;
    const char* connection;  // nullptr: no Connection field
    bool keep_alive;
  } cases[] = {
      {"1.1", nullptr, true},
      {"1.1", "close", false},
      {"1.1", "Close", false},
      {"1.1", "keep-alive", true},
      {"1.1", "Upgrade, close", false},
      {"1.1", "closed", true},  // tokens, not substrings
      {"1.0", nullptr, false},
      {"1.0", "keep-alive", true},
      {"1.0", "Keep-Alive", true},
      {"1.0", "foo , keep-alive", true},
      {"1.0", "keep-alive, close", false},
      {"1.0", "close", false},
  };
  for (const auto& c : cases) {
    std::string s = std::string("GET / HTTP/") + c.version + "\r\nHost: a\r\n";
    if (c.connection != nullptr) s += std::string("Connection: ") + c.connection + "\r\n";
    s += "\r\n";
    Parsed p = Req(s);
    ASSERT_GT(p.rc, 0) << s;
    EXPECT_EQ(p.head->keep_alive, c.keep_alive) << s;
    EXPECT_EQ(p.head->version_minor, c.version[2] - '0');
  }
}

TEST(HttpParser, Http10WithoutHostIsAccepted) {
  Parsed p = Req("GET / HTTP/1.0\r\n\r\n");
  ASSERT_GT(p.rc, 0);
  EXPECT_EQ(p.head->host, "");
  EXPECT_EQ(p.head->version_minor, 0);
}

TEST(HttpParser, HostForms) {
  for (const char* host : {"a", "example.com:8080", "[::1]:8443", "[2001:db8::1]", "10.0.0.1:80",
                           "a%41b", "xn--caf-dma.example", "h:", ""}) {
    Parsed p = Req(std::string("GET / HTTP/1.1\r\nHost: ") + host + "\r\n\r\n");
    ASSERT_GT(p.rc, 0) << host << " " << ParseErrorReason(p.head->error);
    EXPECT_EQ(p.head->host, host);
  }
}

TEST(HttpParser, ExpectContinue) {
  Parsed p = Req(H("Expect: 100-Continue\r\nContent-Length: 3\r\n"));
  ASSERT_GT(p.rc, 0);
  EXPECT_TRUE(p.head->expect_continue);
  p = Req(H("Expect: 200-ok\r\n"));
  ASSERT_GT(p.rc, 0);
  EXPECT_FALSE(p.head->expect_continue);
  // RFC 9110 §10.1.1: ignored from HTTP/1.0 clients.
  p = Req("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n");
  ASSERT_GT(p.rc, 0);
  EXPECT_FALSE(p.head->expect_continue);
}

TEST(HttpParser, SkipsLeadingEmptyLines) {
  const std::string s = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
  Parsed p = Req(s);
  ASSERT_EQ(p.rc, static_cast<int>(s.size()));
  EXPECT_EQ(p.head->method, Method::kGet);
}

TEST(HttpParser, PipelinedRequestsReturnFirstHeadLength) {
  const std::string first = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n";
  const std::string second = "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi";
  const std::string third = "GET /3 HTTP/1.1\r\nHost: a\r\n\r\n";
  const std::string all = first + second + third;
  Parsed p = Req(all);
  ASSERT_EQ(p.rc, static_cast<int>(first.size()));
  EXPECT_EQ(p.head->path, "/1");
  p = Req(std::string_view(all).substr(first.size()));
  ASSERT_EQ(p.rc, static_cast<int>(second.size() - 2));
  EXPECT_EQ(p.head->path, "/2");
  EXPECT_EQ(p.head->content_length, 2u);
  p = Req(std::string_view(all).substr(first.size() + second.size()));
  ASSERT_EQ(p.rc, static_cast<int>(third.size()));
  EXPECT_EQ(p.head->path, "/3");
}

const char kBrowserRequest[] =
    "GET /wp-content/uploads/2010/03/hello-kitty-darth-vader-pink.jpg HTTP/1.1\r\n"
    "Host: www.kittyhell.com\r\n"
    "User-Agent: Mozilla/5.0 (Macintosh; U; Intel Mac OS X 10_6_3; ja-JP-mac; rv:1.9.2.3) "
    "Gecko/20100401 Firefox/3.6.3 Pathtraq/0.9\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    "Accept-Language: ja,en-us;q=0.7,en;q=0.3\r\n"
    "Accept-Encoding: gzip,deflate\r\n"
    "Accept-Charset: Shift_JIS,utf-8;q=0.7,*;q=0.7\r\n"
    "Keep-Alive: 115\r\n"
    "Connection: keep-alive\r\n"
    "Cookie: wp_ozh_wsa_visits=2; wp_ozh_wsa_visit_lasttime=xxxxxxxxxx; "
    "__utma=xxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.x; "
    "__utmz=xxxxxxxxx.xxxxxxxxxx.x.x.utmccn=(referral)|utmcsr=reader.livedoor.com|utmcct=/reader/|"
    "utmcmd=referral\r\n"
    "\r\n";

TEST(HttpParser, PartialAtEverySplitPointUntilComplete) {
  const std::vector<std::string> heads = {
      kBrowserRequest,
      "\r\nPOST /x?y HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
      "GET http://h/p HTTP/1.0\r\nConnection: keep-alive\r\nX:\r\n\r\n",
      "OPTIONS * HTTP/1.1\r\nHost: [::1]:80\r\nContent-Length: 5, 5\r\n\r\n",
  };
  for (const std::string& s : heads) {
    for (size_t i = 0; i < s.size(); ++i) {
      Parsed p = Req(std::string_view(s).substr(0, i));
      ASSERT_EQ(p.rc, kPartial) << "split at " << i << " of " << s << ": "
                                << ParseErrorReason(p.head->error);
    }
    Parsed p = Req(s);
    EXPECT_EQ(p.rc, static_cast<int>(s.size()));
  }
}

TEST(HttpParser, BrowserRequest) {
  Parsed p = Req(kBrowserRequest);
  ASSERT_EQ(p.rc, static_cast<int>(sizeof(kBrowserRequest) - 1));
  EXPECT_EQ(p.head->header_count, 9);
  EXPECT_EQ(p.head->host, "www.kittyhell.com");
  EXPECT_EQ(p.head->headers[8].name, "Cookie");
  EXPECT_TRUE(p.head->keep_alive);
}

// ---------------------------------------------------------------------------
// Size limits: 431.

TEST(HttpParser, HeadLongerThanLimitIs431) {
  const std::string s = "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(200, 'b') + "\r\n\r\n";
  Parsed p = Req(s, s.size());
  EXPECT_EQ(p.rc, static_cast<int>(s.size()));  // exactly at the limit fits
  p = Req(s, s.size() - 1);
  EXPECT_EQ(p.rc, kError);
  EXPECT_EQ(p.head->error, ParseError::kHeadersTooLarge);
  EXPECT_EQ(ParseErrorStatus(p.head->error), 431);
}

TEST(HttpParser, PartialHeadAlreadyOverLimitIs431) {
  const std::string s = "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(200, 'b');
  Parsed p = Req(s, 100);
  EXPECT_EQ(p.rc, kError);
  EXPECT_EQ(p.head->error, ParseError::kHeadersTooLarge);
  p = Req(s, 1000);
  EXPECT_EQ(p.rc, kPartial);
  // A complete head within the limit is fine even when body bytes follow past it.
  const std::string with_body = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 300\r\n\r\n" +
                                std::string(300, 'x');
  p = Req(with_body, 100);
  EXPECT_GT(p.rc, 0);
}

TEST(HttpParser, TooManyHeadersIs431) {
  std::string s = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 1; i < kMaxHeaders; ++i) s += "X-" + std::to_string(i) + ": v\r\n";
  Parsed p = Req(s + "\r\n", 1 << 20);
  ASSERT_GT(p.rc, 0);
  EXPECT_EQ(p.head->header_count, kMaxHeaders);
  EXPECT_EQ(p.head->headers[kMaxHeaders - 1].name, "X-99");
  s += "X-100: v\r\n\r\n";
  p = Req(s, 1 << 20);
  EXPECT_EQ(p.rc, kError);
  EXPECT_EQ(p.head->error, ParseError::kTooManyHeaders);
  EXPECT_EQ(ParseErrorStatus(p.head->error), 431);
}

// ---------------------------------------------------------------------------
// A seeded mutation sweep: whatever the bytes, a prefix never reports an
// error the whole input does not report, and never a complete head.

TEST(HttpParser, PrefixesAgreeWithWholeUnderMutation) {
  std::mt19937 rng(12345);
  const std::string base = std::string(kBrowserRequest) +
                           "GET /next HTTP/1.1\r\nHost: b\r\n\r\n";
  const char alphabet[] = {'\r', '\n', ' ', '\t', ':', ',', '\0', '\x7f', 'a', '0', '\x80', '#'};
  auto req = std::make_unique<RequestHead>();
  for (int iter = 0; iter < 300; ++iter) {
    std::string s = base;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      s[rng() % s.size()] = alphabet[rng() % sizeof(alphabet)];
    }
    const int whole = ParseRequest(s.data(), s.size(), kMax, req.get());
    const ParseError whole_error = req->error;
    for (size_t i = 0; i < s.size(); i += 7) {
      const int rc = ParseRequest(s.data(), i, kMax, req.get());
      if (rc == kError) {
        ASSERT_EQ(whole, kError) << "prefix " << i << " of mutation " << iter;
        ASSERT_EQ(req->error, whole_error);
      } else if (rc > 0) {
        ASSERT_EQ(rc, whole) << "prefix " << i << " of mutation " << iter;
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Responses.

TEST(HttpParser, ResponseWithContentLength) {
  const std::string s = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\nServer: x\r\n\r\nhello world!";
  ParsedResp r = Resp(s);
  ASSERT_EQ(r.rc, static_cast<int>(s.size() - 12));
  EXPECT_EQ(r.head->status, 200);
  EXPECT_EQ(r.head->reason, "OK");
  EXPECT_EQ(r.head->header_count, 2);
  EXPECT_EQ(r.head->body, BodyKind::kContentLength);
  EXPECT_EQ(r.head->content_length, 12u);
  EXPECT_TRUE(r.head->keep_alive);
}

TEST(HttpParser, ResponseBodyRules) {
  const struct {
    const char* name;
    std::string input;
    Method method;
    BodyKind body;
    bool keep_alive;
  } cases[] = {
      {"NoContent", "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", Method::kGet,
       BodyKind::kNone, true},
      {"NotModified", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", Method::kGet,
       BodyKind::kNone, true},
      {"HeadRequest", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", Method::kHead,
       BodyKind::kNone, true},
      {"HeadRequestChunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
       Method::kHead, BodyKind::kNone, true},
      {"Continue", "HTTP/1.1 100 Continue\r\n\r\n", Method::kPost, BodyKind::kNone, true},
      {"EarlyHints", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", Method::kGet,
       BodyKind::kNone, true},
      {"Chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", Method::kGet,
       BodyKind::kChunked, true},
      {"GzipThenChunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
       Method::kGet, BodyKind::kChunked, true},
      {"UntilClose", "HTTP/1.1 200 OK\r\nServer: x\r\n\r\n", Method::kGet, BodyKind::kUntilClose,
       false},
      {"ConnectTunnel", "HTTP/1.1 200 Connection established\r\n\r\n", Method::kConnect,
       BodyKind::kNone, true},
      {"Http10Default", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", Method::kGet,
       BodyKind::kContentLength, false},
      {"Http10KeepAlive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n",
       Method::kGet, BodyKind::kContentLength, true},
      {"Http11Close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
       Method::kGet, BodyKind::kContentLength, false},
      {"NoReason", "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", Method::kGet,
       BodyKind::kContentLength, true},
      {"NoReasonNoSpace", "HTTP/1.1 204\r\n\r\n", Method::kGet, BodyKind::kNone, true},
  };
  for (const auto& c : cases) {
    ParsedResp r = Resp(c.input, c.method);
    ASSERT_EQ(r.rc, static_cast<int>(c.input.size()))
        << c.name << ": " << ParseErrorReason(r.head->error);
    EXPECT_EQ(r.head->body, c.body) << c.name;
    EXPECT_EQ(r.head->keep_alive, c.keep_alive) << c.name;
  }
}

TEST(HttpParser, ResponseRejects) {
  const struct {
    const char* name;
    std::string input;
    ParseError error;
  } cases[] = {
      {"StatusTooLow", "HTTP/1.1 099 X\r\n\r\n", ParseError::kBadStatusLine},
      {"StatusTooHigh", "HTTP/1.1 600 X\r\n\r\n", ParseError::kBadStatusLine},
      {"StatusNotDigits", "HTTP/1.1 2x0 X\r\n\r\n", ParseError::kBadStatusLine},
      {"StatusFourDigits", "HTTP/1.1 2000 X\r\n\r\n", ParseError::kBadStatusLine},
      {"ControlInReason", "HTTP/1.1 200 O\x01K\r\n\r\n", ParseError::kBadStatusLine},
      {"BadVersion", "HTTP/2 200 OK\r\n\r\n", ParseError::kBadVersion},
      {"NoSpaceAfterVersion", "HTTP/1.1200 OK\r\n\r\n", ParseError::kBadVersion},
      {"BareLfStatusLine", "HTTP/1.1 200 OK\n\r\n", ParseError::kBareLf},
      {"BothLengthAndChunked",
       "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
       ParseError::kBothLengthAndChunked},
      {"ChunkedNotLast", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
       ParseError::kTransferEncodingNotChunked},
      {"OnlyGzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
       ParseError::kTransferEncodingNotChunked},
      {"DuplicateContentLength", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
       ParseError::kDuplicateContentLength},
      {"ObsFold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", ParseError::kObsFold},
      {"SpaceBeforeColon", "HTTP/1.1 200 OK\r\nX : a\r\n\r\n", ParseError::kSpaceBeforeColon},
  };
  for (const auto& c : cases) {
    ParsedResp r = Resp(c.input);
    EXPECT_EQ(r.rc, kError) << c.name;
    EXPECT_EQ(r.head->error, c.error) << c.name << ": " << ParseErrorReason(r.head->error);
  }
}

TEST(HttpParser, ResponsePartialAtEverySplitPoint) {
  const std::vector<std::string> heads = {
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 17\r\n"
      "Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\n",
      "HTTP/1.0 204\r\n\r\n",
      "HTTP/1.1 404 \r\nTransfer-Encoding: chunked\r\n\r\n",
  };
  for (const std::string& s : heads) {
    for (size_t i = 0; i < s.size(); ++i) {
      ParsedResp r = Resp(std::string_view(s).substr(0, i));
      ASSERT_EQ(r.rc, kPartial) << "split at " << i << " of " << s;
    }
    EXPECT_EQ(Resp(s).rc, static_cast<int>(s.size()));
  }
}

TEST(HttpParser, ResponseOverLimitIs431Reason) {
  const std::string s = "HTTP/1.1 200 OK\r\nX: " + std::string(100, 'x');
  ParsedResp r = Resp(s, Method::kGet, 50);
  EXPECT_EQ(r.rc, kError);
  EXPECT_EQ(r.head->error, ParseError::kHeadersTooLarge);
}

// ---------------------------------------------------------------------------
// Helpers.

TEST(HttpParser, ErrorReasonsAreStableTokens) {
  const struct {
    ParseError e;
    const char* token;
  } cases[] = {
      {ParseError::kNone, "none"},
      {ParseError::kBadRequestLine, "bad_request_line"},
      {ParseError::kBadVersion, "bad_version"},
      {ParseError::kBadStatusLine, "bad_status_line"},
      {ParseError::kInvalidHeaderName, "invalid_header_name"},
      {ParseError::kSpaceBeforeColon, "space_before_colon"},
      {ParseError::kObsFold, "obs_fold"},
      {ParseError::kBareCr, "bare_cr"},
      {ParseError::kBareLf, "bare_lf"},
      {ParseError::kInvalidHeaderValue, "invalid_header_value"},
      {ParseError::kTooManyHeaders, "too_many_headers"},
      {ParseError::kHeadersTooLarge, "headers_too_large"},
      {ParseError::kBothLengthAndChunked, "both_length_and_chunked"},
      {ParseError::kDuplicateContentLength, "duplicate_content_length"},
      {ParseError::kBadContentLength, "bad_content_length"},
      {ParseError::kTransferEncodingNotChunked, "transfer_encoding_not_chunked"},
      {ParseError::kMissingHost, "missing_host"},
      {ParseError::kDuplicateHost, "duplicate_host"},
      {ParseError::kBadHost, "bad_host"},
      {ParseError::kBadChunkSize, "bad_chunk_size"},
      {ParseError::kBadChunkFraming, "bad_chunk_framing"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(ParseErrorReason(c.e), c.token);
    const bool is_431 = c.e == ParseError::kTooManyHeaders || c.e == ParseError::kHeadersTooLarge;
    EXPECT_EQ(ParseErrorStatus(c.e), is_431 ? 431 : 400) << c.token;
  }
}

TEST(HttpParser, EqualsIgnoreCase) {
  EXPECT_TRUE(EqualsIgnoreCase("Content-Length", "content-length"));
  EXPECT_TRUE(EqualsIgnoreCase("", ""));
  EXPECT_FALSE(EqualsIgnoreCase("Host", "Hosts"));
  EXPECT_FALSE(EqualsIgnoreCase("a-b", "a\rb"));  // not fooled by OR-ing 0x20
  EXPECT_FALSE(EqualsIgnoreCase("@", "`"));
}

TEST(HttpParser, HopByHop) {
  for (const char* name : {"Connection", "keep-alive", "Proxy-Connection", "TE", "Trailer",
                           "Transfer-Encoding", "UPGRADE", "Proxy-Authenticate",
                           "Proxy-Authorization"}) {
    EXPECT_TRUE(IsHopByHop(name, "")) << name;
  }
  EXPECT_FALSE(IsHopByHop("Content-Length", ""));
  EXPECT_FALSE(IsHopByHop("Host", "close"));
  EXPECT_TRUE(IsHopByHop("X-Secret", "close, x-secret"));
  EXPECT_TRUE(IsHopByHop("x-secret", " X-Secret "));
  EXPECT_FALSE(IsHopByHop("X-Sec", "x-secret"));
  EXPECT_FALSE(IsHopByHop("", "a,,b"));
}

TEST(HttpParser, ListHasToken) {
  EXPECT_TRUE(ListHasToken("Upgrade", "upgrade"));
  EXPECT_TRUE(ListHasToken("keep-alive, Upgrade", "upgrade"));
  EXPECT_TRUE(ListHasToken("a ,\tUPGRADE\t, b", "upgrade"));
  EXPECT_FALSE(ListHasToken("upgrade-insecure", "upgrade"));
  EXPECT_FALSE(ListHasToken("keep-alive", "upgrade"));
  EXPECT_FALSE(ListHasToken("", "upgrade"));
  EXPECT_FALSE(ListHasToken("a,,b", "upgrade"));
}

TEST(HttpParser, Idempotent) {
  EXPECT_TRUE(IsIdempotent(Method::kGet));
  EXPECT_TRUE(IsIdempotent(Method::kHead));
  EXPECT_TRUE(IsIdempotent(Method::kPut));
  EXPECT_TRUE(IsIdempotent(Method::kDelete));
  EXPECT_TRUE(IsIdempotent(Method::kOptions));
  EXPECT_TRUE(IsIdempotent(Method::kTrace));
  EXPECT_FALSE(IsIdempotent(Method::kPost));
  EXPECT_FALSE(IsIdempotent(Method::kPatch));
  EXPECT_FALSE(IsIdempotent(Method::kConnect));
  EXPECT_FALSE(IsIdempotent(Method::kOther));
}

}  // namespace
}  // namespace hms::http
