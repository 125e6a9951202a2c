#include "hms/h2/request_head.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace hms::h2 {
namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

// The head's views point into `fields` and `scratch`: a Built never moves.
struct Built {
  Fields fields;
  std::vector<char> scratch;
  bool ok = false;
  HeadError error = HeadError::kNone;
  http::RequestHead head;
};

// Feeds the fields in order, as HPACK decoded them; finishes the request.
std::unique_ptr<Built> Build(const Fields& f, bool end_stream = true, uint32_t max_list = 16384,
                             http::PathOptions paths = {}) {
  auto out = std::make_unique<Built>();
  out->fields = f;
  HeadBuilder b;
  b.Reset(false, max_list);
  for (const auto& [n, v] : out->fields) b.Add(n, v);
  out->scratch.assign(b.ScratchNeeded(), '\0');
  out->ok =
      b.FinishRequest(end_stream, paths, out->scratch.data(), out->scratch.size(), &out->head);
  out->error = b.error();
  return out;
}

const Fields kGet = {
    {":method", "GET"}, {":scheme", "https"}, {":authority", "a.example"}, {":path", "/"}};

Fields With(const Fields& base, const Fields& extra) {
  Fields f = base;
  f.insert(f.end(), extra.begin(), extra.end());
  return f;
}

// RFC 8441: extended CONNECT becomes the HTTP/1.1 upgrade it stands for.
TEST(H2RequestHead, ExtendedConnectBecomesAWebSocketUpgrade) {
  auto b = Build({{":method", "CONNECT"},
                  {":protocol", "websocket"},
                  {":scheme", "https"},
                  {":authority", "a.example"},
                  {":path", "/chat?room=1"},
                  {"sec-websocket-version", "13"}},
                 /*end_stream=*/false);
  ASSERT_TRUE(b->ok) << HeadErrorReason(b->error);
  EXPECT_EQ(b->head.method, http::Method::kGet);
  EXPECT_EQ(b->head.method_text, "GET");
  EXPECT_EQ(b->head.path, "/chat");
  EXPECT_EQ(b->head.query, "room=1");
  EXPECT_EQ(b->head.body, http::BodyKind::kNone);  // DATA are the tunnel's bytes
  ASSERT_EQ(b->head.header_count, 3);
  EXPECT_EQ(b->head.headers[1].name, "upgrade");
  EXPECT_EQ(b->head.headers[1].value, "websocket");
  EXPECT_EQ(b->head.headers[2].name, "connection");
  EXPECT_EQ(b->head.headers[2].value, "upgrade");
}

struct ProtocolCase {
  const char* name;
  Fields fields;
  HeadError error;
};

class H2ExtendedConnect : public ::testing::TestWithParam<ProtocolCase> {};

TEST_P(H2ExtendedConnect, RefusedWithItsRule) {
  auto b = Build(GetParam().fields, false);
  EXPECT_FALSE(b->ok);
  EXPECT_EQ(b->error, GetParam().error);
}

INSTANTIATE_TEST_SUITE_P(
    Rfc8441, H2ExtendedConnect,
    ::testing::Values(
        ProtocolCase{"not_connect",
                     {{":method", "GET"}, {":protocol", "websocket"}, {":scheme", "https"},
                      {":authority", "a"}, {":path", "/"}},
                     HeadError::kBadProtocol},
        ProtocolCase{"other_protocol",
                     {{":method", "CONNECT"}, {":protocol", "connect-udp"}, {":scheme", "https"},
                      {":authority", "a"}, {":path", "/"}},
                     HeadError::kBadProtocol},
        ProtocolCase{"no_path",
                     {{":method", "CONNECT"}, {":protocol", "websocket"}, {":scheme", "https"},
                      {":authority", "a"}},
                     HeadError::kBadConnect},
        ProtocolCase{"twice",
                     {{":method", "CONNECT"}, {":protocol", "websocket"}, {":protocol", "websocket"},
                      {":scheme", "https"}, {":authority", "a"}, {":path", "/"}},
                     HeadError::kDuplicatePseudo}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(H2RequestHead, AGetBecomesTheRoutersHead) {
  auto b = Build(With({{":method", "GET"},
                       {":scheme", "https"},
                       {":authority", "a.example:8443"},
                       {":path", "/v1/items?limit=2"}},
                      {{"accept", "*/*"}, {"x-b3", "1"}}));
  ASSERT_TRUE(b->ok);
  EXPECT_EQ(b->head.method, http::Method::kGet);
  EXPECT_EQ(b->head.method_text, "GET");
  EXPECT_EQ(b->head.host, "a.example:8443");
  EXPECT_EQ(b->head.path, "/v1/items");
  EXPECT_EQ(b->head.query, "limit=2");
  EXPECT_EQ(b->head.target, "/v1/items?limit=2");
  EXPECT_EQ(b->head.version_minor, 1);
  EXPECT_TRUE(b->head.keep_alive);
  EXPECT_EQ(b->head.body, http::BodyKind::kNone);
  ASSERT_EQ(b->head.header_count, 2);
  EXPECT_EQ(b->head.headers[0].name, "accept");
  EXPECT_EQ(b->head.headers[1].value, "1");
}

TEST(H2RequestHead, BodyKinds) {
  EXPECT_EQ(Build(kGet, false)->head.body, http::BodyKind::kChunked);
  auto b = Build(With(kGet, {{"content-length", "12"}, {"content-length", "12"}}), false);
  ASSERT_TRUE(b->ok);
  EXPECT_EQ(b->head.body, http::BodyKind::kContentLength);
  EXPECT_EQ(b->head.content_length, 12u);
  EXPECT_TRUE(Build(With(kGet, {{"expect", "100-continue"}}), false)->head.expect_continue);
  EXPECT_FALSE(Build(With(kGet, {{"expect", "100-continue"}}), true)->head.expect_continue);
}

TEST(H2RequestHead, CanonicalPathAsForHttp1) {
  struct {
    const char* path;
    const char* canonical;
    const char* query;
  } cases[] = {
      {"/a/./b/../c", "/a/c", ""},           {"//x///y", "/x/y", ""},
      {"/%61dmin?x=%2F", "/admin", "x=%2F"}, {"/a/%2e%2e/b", "/b", ""},
      {"/caf%c3%a9", "/caf%C3%A9", ""},      {"/", "/", ""},
  };
  for (const auto& c : cases) {
    auto b =
        Build({{":method", "GET"}, {":scheme", "http"}, {":authority", "h"}, {":path", c.path}});
    ASSERT_TRUE(b->ok) << c.path;
    EXPECT_EQ(b->head.path, c.canonical) << c.path;
    EXPECT_EQ(b->head.query, c.query) << c.path;
  }
  // Options as configured: %2F kept.
  http::PathOptions keep;
  keep.keep_encoded_slashes = true;
  auto b =
      Build({{":method", "GET"}, {":scheme", "http"}, {":authority", "h"}, {":path", "/a%2fb"}},
            true, 16384, keep);
  ASSERT_TRUE(b->ok);
  EXPECT_EQ(b->head.path, "/a%2Fb");
}

TEST(H2RequestHead, OptionsStarAndConnect) {
  auto star =
      Build({{":method", "OPTIONS"}, {":scheme", "https"}, {":authority", "h"}, {":path", "*"}});
  ASSERT_TRUE(star->ok);
  EXPECT_EQ(star->head.target, "*");
  EXPECT_EQ(star->head.path, "");
  auto connect = Build({{":method", "CONNECT"}, {":authority", "db.internal:5432"}});
  ASSERT_TRUE(connect->ok);
  EXPECT_EQ(connect->head.method, http::Method::kConnect);
  EXPECT_EQ(connect->head.target, "db.internal:5432");
  EXPECT_EQ(connect->head.host, "db.internal:5432");
}

TEST(H2RequestHead, HostStandsInForAuthority) {
  auto b = Build({{":method", "GET"}, {":scheme", "https"}, {":path", "/"}, {"host", "h.example"}});
  ASSERT_TRUE(b->ok);
  EXPECT_EQ(b->head.host, "h.example");
  // The same host in both: fine (case-insensitively).
  EXPECT_TRUE(Build(With(kGet, {{"host", "A.Example"}}))->ok);
}

TEST(H2RequestHead, CookieCrumbsJoined) {
  auto b = Build(With(kGet, {{"cookie", "a=1"}, {"x", "y"}, {"cookie", "b=2"}, {"cookie", "c=3"}}));
  ASSERT_TRUE(b->ok);
  ASSERT_EQ(b->head.header_count, 2);
  EXPECT_EQ(b->head.headers[0].name, "cookie");
  EXPECT_EQ(b->head.headers[0].value, "a=1; b=2; c=3");
  EXPECT_EQ(b->head.headers[1].name, "x");
}

TEST(H2RequestHead, Refusals) {
  struct Case {
    Fields fields;
    HeadError error;
  } cases[] = {
      {With(kGet, {{"Accept", "x"}}), HeadError::kUppercaseFieldName},
      {With(kGet, {{"", "x"}}), HeadError::kInvalidFieldName},
      {With(kGet, {{"a(b", "x"}}), HeadError::kInvalidFieldName},
      {With(kGet, {{"a", "x\ny"}}), HeadError::kInvalidFieldValue},
      {With(kGet, {{"a", "x\x7f"}}), HeadError::kInvalidFieldValue},
      {With(kGet, {{"a", "x\t"}}), HeadError::kFieldValueWhitespace},
      {With(kGet, {{"keep-alive", "1"}}), HeadError::kConnectionSpecific},
      {With(kGet, {{"te", "trailers, deflate"}}), HeadError::kBadTe},
      {With(kGet, {{"a", "1"}, {":path", "/again"}}), HeadError::kPseudoAfterField},
      {With(kGet, {{":path", "/again"}}), HeadError::kDuplicatePseudo},
      {With(kGet, {{"host", "a.example"}, {"host", "a.example"}}), HeadError::kDuplicateHost},
      {With(kGet, {{"host", "b.example"}}), HeadError::kAuthorityHostMismatch},
      {{{":method", "GET"}, {":method", "GET"}}, HeadError::kDuplicatePseudo},
      {{{":method", "GET"}, {":scheme", "https"}, {":authority", ""}, {":path", "/"}},
       HeadError::kBadAuthority},
      {{{":method", "GET"}, {":scheme", "https"}, {":authority", "a b"}, {":path", "/"}},
       HeadError::kBadAuthority},
      {{{":method", "GET"}, {":scheme", "https"}, {":authority", "h"}, {":path", ""}},
       HeadError::kBadTarget},
      {{{":method", "GET"}, {":scheme", "https"}, {":authority", "h"}, {":path", "/a b"}},
       HeadError::kBadTarget},
      {{{":method", "GET"}, {":scheme", "https"}, {":authority", "h"}, {":path", "/\xc3\xa9"}},
       HeadError::kBadTarget},
      {{{":method", "CONNECT"}, {":scheme", "https"}, {":authority", "h:1"}},
       HeadError::kBadConnect},
      {{{":method", "CONNECT"}}, HeadError::kBadConnect},
      {{{":method", "GET"}, {":scheme", "https"}, {":authority", "h"}, {":path", "/a\\b"}},
       HeadError::kBadPath},
      {With(kGet, {{"content-length", "-1"}}), HeadError::kBadContentLength},
  };
  for (const Case& c : cases) {
    auto b = Build(c.fields);
    EXPECT_FALSE(b->ok);
    EXPECT_EQ(b->error, c.error) << HeadErrorReason(c.error) << " got "
                                 << HeadErrorReason(b->error);
  }
}

TEST(H2RequestHead, FirstRuleBrokenIsNamed) {
  HeadBuilder b;
  b.Reset(false, 16384);
  EXPECT_TRUE(b.Add(":method", "GET"));
  EXPECT_FALSE(b.Add("X-A", "1"));
  EXPECT_FALSE(b.Add("connection", "close"));
  EXPECT_EQ(b.error(), HeadError::kUppercaseFieldName);
}

TEST(H2RequestHead, ListSizeCountsEveryField) {
  HeadBuilder b;
  b.Reset(false, 1000);
  EXPECT_TRUE(b.Add(":method", "GET"));  // 7 + 3 + 32
  EXPECT_EQ(b.list_bytes(), 42u);
  EXPECT_FALSE(b.Add("x-big", std::string(1000, 'v')));
  EXPECT_EQ(b.error(), HeadError::kHeaderListTooLarge);
  // Refused fields are still counted (an HPACK bomb's size is known), not kept.
  EXPECT_FALSE(b.Add("x-more", "1"));
  EXPECT_EQ(b.list_bytes(), 42u + 5 + 1000 + 32 + 6 + 1 + 32);
  EXPECT_EQ(b.field_count(), 0);
}

TEST(H2RequestHead, TooManyFields) {
  Fields f = kGet;
  for (int i = 0; i < http::kMaxHeaders; ++i) f.emplace_back("x" + std::to_string(i), "1");
  EXPECT_TRUE(Build(f)->ok);
  f.emplace_back("one-more", "1");
  EXPECT_EQ(Build(f)->error, HeadError::kTooManyFields);
}

TEST(H2RequestHead, Trailers) {
  HeadBuilder b;
  b.Reset(true, 16384);
  EXPECT_TRUE(b.Add("grpc-status", "0"));
  EXPECT_TRUE(b.Add("x-sum", "abc"));
  EXPECT_EQ(b.field_count(), 2);
  EXPECT_EQ(b.fields()[1].value, "abc");
  b.Reset(true, 16384);
  EXPECT_FALSE(b.Add(":status", "200"));
  EXPECT_EQ(b.error(), HeadError::kPseudoInTrailers);
  b.Reset(true, 16384);
  EXPECT_FALSE(b.Add("transfer-encoding", "chunked"));
  EXPECT_EQ(b.error(), HeadError::kConnectionSpecific);
}

TEST(H2RequestHead, RefusalsAnswerFromTheFaultTable) {
  HeadBuilder b;
  char detail[160];
  b.Reset(false, 16384);
  b.Add("X-A", "1");
  policy::Answer a = b.Refusal(detail, sizeof detail);
  EXPECT_EQ(a.status, 400);
  EXPECT_EQ(a.reason, "uppercase_header_name");
  EXPECT_EQ(a.message, "malformed request: uppercase_header_name");
  b.Reset(false, 100);
  b.Add("x-a", std::string(200, 'v'));
  a = b.Refusal(detail, sizeof detail);
  EXPECT_EQ(a.status, 431);
  EXPECT_EQ(a.reason, "headers_too_large");
  // Path rules answer as the HTTP/1.1 path does: bad_path naming the rule.
  auto p =
      Build({{":method", "GET"}, {":scheme", "https"}, {":authority", "h"}, {":path", "/a%2fb"}});
  ASSERT_FALSE(p->ok);
  b.Reset(false, 16384);
  const Fields slash = {{":method", "GET"}, {":scheme", "https"}, {":authority", "h"},
                        {":path", "/a%2fb"}};  // the builder keeps views into these
  for (const auto& [n, v] : slash) b.Add(n, v);
  char scratch[64];
  http::RequestHead head;
  ASSERT_FALSE(b.FinishRequest(true, {}, scratch, sizeof scratch, &head));
  a = b.Refusal(detail, sizeof detail);
  EXPECT_EQ(a.status, 400);
  EXPECT_EQ(a.reason, "bad_path");
  EXPECT_EQ(std::string(a.message).rfind("bad path (encoded_slash): ", 0), 0u);
  // Every token is distinct and lowercase.
  for (int e = 1; e <= static_cast<int>(HeadError::kBadPath); ++e) {
    const std::string_view r = HeadErrorReason(static_cast<HeadError>(e));
    EXPECT_NE(r, "unknown");
    for (char c : r) EXPECT_TRUE((c >= 'a' && c <= 'z') || c == '_') << r;
  }
}

}  // namespace
}  // namespace hms::h2
