// The server session driven by a real nghttp2 client in this process: heads,
// bodies, flow control, trailers, concurrency, every limit and flood, header
// validation, local answers, drain, and warm streams without allocation.
#include "hms/h2/server_session.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>

#include "peer.h"

// Counts operator new while the server session's own code runs (peer.h's
// Zone): the allocation test below proves warm streams take nothing from the
// heap outside the pools.
namespace {
thread_local uint64_t t_session_news = 0;
}  // namespace

void* operator new(std::size_t n) {
  if (hms::h2::testing::t_in_session) ++t_session_news;
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace hms::h2 {
namespace {

using testing::Core;
using testing::Fields;
using testing::Frame;
using testing::GetFields;
using testing::Hpack;
using testing::Pair;
using testing::Preface;
using testing::Zone;

// Answers every request 200 "ok:<path>" once its body is in.
void AnswerWhenDone(Pair& p) {
  p.handler.on_end = [](ServerSession& s, int32_t id) {
    Zone z(true);
    const http::Header f[] = {{"Content-Type", "text/plain"}};
    s.Respond(id, 200, f, 1, false);
    s.SendData(id, "done", 4, true);
  };
  p.handler.on_request = [](ServerSession& s, int32_t id, const http::RequestHead& h, bool end) {
    if (!end) return;
    Zone z(true);
    const http::Header f[] = {{"Content-Type", "text/plain"}};
    s.Respond(id, 200, f, 1, false);
    const std::string body = "ok:" + std::string(h.path);
    s.SendData(id, body.data(), body.size(), true);
  };
}

TEST(H2ServerSession, GetIsRoutedAndAnswered) {
  Core core;
  Pair p(&core);
  AnswerWhenDone(p);
  const int32_t id = p.client.Get("/hello?name=x", "api.example.com:8443");
  p.Pump();
  const testing::Seen& s = p.handler.seen[id];
  EXPECT_EQ(s.method, http::Method::kGet);
  EXPECT_EQ(s.method_text, "GET");
  EXPECT_EQ(s.path, "/hello");
  EXPECT_EQ(s.query, "name=x");
  EXPECT_EQ(s.target, "/hello?name=x");
  EXPECT_EQ(s.host, "api.example.com:8443");
  EXPECT_TRUE(s.end_stream);
  EXPECT_EQ(s.body_kind, http::BodyKind::kNone);
  const testing::Response& r = p.client.responses[id];
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Field("content-type"), "text/plain");  // sent lowercase
  EXPECT_EQ(r.body, "ok:/hello");
  EXPECT_TRUE(r.closed);
  EXPECT_EQ(r.code, 0u);
  EXPECT_EQ(p.handler.closed.at(id), ErrorCode::kNoError);
  EXPECT_EQ(p.server->open_streams(), 0u);
  EXPECT_EQ(core.counters.streams.Get(), 1u);
  EXPECT_EQ(core.counters.sessions.Get(), 1u);
}

TEST(H2ServerSession, SettingsCarryTheLimits) {
  Core core;
  Limits l;
  l.max_concurrent_streams = 7;
  l.max_header_list_bytes = 5000;
  l.header_table_bytes = 1024;
  l.stream_window_bytes = 100000;
  l.connection_window_bytes = 3 << 20;
  Pair p(&core, l);
  p.Pump();
  nghttp2_session* c = p.client.s;
  EXPECT_EQ(nghttp2_session_get_remote_settings(c, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS), 7u);
  EXPECT_EQ(nghttp2_session_get_remote_settings(c, NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE), 5000u);
  EXPECT_EQ(nghttp2_session_get_remote_settings(c, NGHTTP2_SETTINGS_HEADER_TABLE_SIZE), 1024u);
  EXPECT_EQ(nghttp2_session_get_remote_settings(c, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE), 100000u);
  EXPECT_EQ(nghttp2_session_get_remote_window_size(c), 3 << 20);
  // RFC 8441 §3: WebSocket over a stream is offered.
  EXPECT_EQ(nghttp2_session_get_remote_settings(c, NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL), 1u);
}

TEST(H2ServerSession, CanonicalPathAndCookies) {
  Core core;
  Pair p(&core);
  AnswerWhenDone(p);
  const int32_t id = p.client.Request({{":method", "GET"},
                                       {":scheme", "https"},
                                       {":authority", "example.com"},
                                       {":path", "/a/./b/../c//%7euser?q=%2F"},
                                       {"cookie", "a=1"},
                                       {"accept", "*/*"},
                                       {"cookie", "b=2"}});
  p.Pump();
  const testing::Seen& s = p.handler.seen[id];
  EXPECT_EQ(s.path, "/a/c/~user");
  EXPECT_EQ(s.query, "q=%2F");
  EXPECT_EQ(s.target, "/a/c/~user?q=%2F");
  // RFC 9113 §8.2.3: crumbs joined into one field for an HTTP/1.1 upstream.
  EXPECT_EQ(s.fields, (Fields{{"cookie", "a=1; b=2"}, {"accept", "*/*"}}));
  EXPECT_EQ(p.client.responses[id].body, "ok:/a/c/~user");
}

TEST(H2ServerSession, PostBodyWaitsForConsume) {
  Core core;
  Limits l;
  l.stream_window_bytes = 65535;
  l.connection_window_bytes = 1 << 20;
  Pair p(&core, l);
  AnswerWhenDone(p);
  p.handler.consume = false;  // a slow upstream: nothing is passed on yet
  const std::string body(200000, 'x');
  const int32_t id = p.client.Request({{":method", "POST"},
                                       {":scheme", "https"},
                                       {":authority", "example.com"},
                                       {":path", "/upload"},
                                       {"content-length", "200000"}},
                                      &body);
  p.Pump();
  EXPECT_EQ(p.handler.seen[id].body_kind, http::BodyKind::kContentLength);
  EXPECT_EQ(p.handler.seen[id].content_length, 200000u);
  // The client stopped at the stream's window.
  EXPECT_EQ(p.handler.seen[id].body.size(), 65535u);
  EXPECT_FALSE(p.handler.seen[id].ended);
  // The engine passes bytes on in pieces: each reopens the window by as much.
  for (int i = 0; i < 100 && !p.handler.seen[id].ended; ++i) {
    {
      Zone z(true);
      p.server->Consume(id, 40000);
    }
    p.Pump();
  }
  EXPECT_TRUE(p.handler.seen[id].ended);
  EXPECT_EQ(p.handler.seen[id].body, body);
  EXPECT_EQ(p.client.responses[id].status, 200);
  EXPECT_EQ(p.client.responses[id].body, "done");
}

TEST(H2ServerSession, ResetStreamGivesItsWindowBack) {
  Core core;
  Limits l;
  l.stream_window_bytes = 65535;
  l.connection_window_bytes = 65535;  // one stream can fill the connection
  Pair p(&core, l);
  AnswerWhenDone(p);
  p.handler.consume = false;
  const std::string body(100000, 'y');
  const Fields post = {
      {":method", "POST"}, {":scheme", "https"}, {":authority", "example.com"}, {":path", "/a"}};
  const int32_t a = p.client.Request(post, &body);
  p.Pump();
  EXPECT_EQ(p.handler.seen[a].body.size(), 65535u);
  {
    Zone z(true);
    p.server->Reset(a, ErrorCode::kCancel);  // the upstream failed: bytes never consumed
  }
  p.Pump();
  EXPECT_EQ(p.handler.closed.at(a), ErrorCode::kCancel);
  p.handler.consume = true;
  const int32_t b = p.client.Request(post, &body);
  p.Pump();
  EXPECT_TRUE(p.handler.seen[b].ended);  // without the give-back it would starve at 0 bytes
  EXPECT_EQ(p.handler.seen[b].body.size(), body.size());
}

TEST(H2ServerSession, TrailersBothWays) {
  Core core;
  Pair p(&core);
  p.handler.on_end = [](ServerSession& s, int32_t id) {
    Zone z(true);
    const http::Header head[] = {{"content-type", "application/grpc"}};
    s.Respond(id, 200, head, 1, false);
    s.SendData(id, "\0\0\0\0\0", 5, false);
    const http::Header trailers[] = {{"grpc-status", "0"}, {"Grpc-Message", "fine"}};
    s.SendTrailers(id, trailers, 2);
  };
  const std::string body = "abc";
  const int32_t id = p.client.Request({{":method", "POST"},
                                       {":scheme", "http"},
                                       {":authority", "svc"},
                                       {":path", "/calc.Calc/Sum"},
                                       {"te", "trailers"}},
                                      &body, {{"x-checksum", "42"}});
  p.Pump();
  EXPECT_EQ(p.handler.seen[id].body, "abc");
  EXPECT_EQ(p.handler.seen[id].body_kind, http::BodyKind::kChunked);  // no length: chunked upstream
  EXPECT_EQ(p.handler.seen[id].trailers, (Fields{{"x-checksum", "42"}}));
  const testing::Response& r = p.client.responses[id];
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body.size(), 5u);
  EXPECT_EQ(r.trailers, (Fields{{"grpc-status", "0"}, {"grpc-message", "fine"}}));
  EXPECT_EQ(r.code, 0u);
}

TEST(H2ServerSession, ManyConcurrentStreamsAndTheLimit) {
  Core core;
  Limits l;
  l.max_concurrent_streams = 100;
  Pair p(&core, l);
  std::vector<int32_t> ids;
  for (int i = 0; i < 150; ++i) ids.push_back(p.client.Get("/s/" + std::to_string(i)));
  p.Pump();
  // Sent before the client heard the limit: the 50 over it are refused, and
  // may be retried (RFC 9113 §8.7).
  EXPECT_EQ(p.handler.seen.size(), 100u);
  EXPECT_EQ(p.server->open_streams(), 100u);
  int refused = 0;
  for (int32_t id : ids) {
    if (p.client.responses[id].closed && p.client.responses[id].code == NGHTTP2_REFUSED_STREAM)
      ++refused;
  }
  EXPECT_EQ(refused, 50);
  EXPECT_EQ(core.counters.streams_refused.Get(), 50u);
  // The 100 held ones, answered at once, all complete.
  for (const auto& [id, seen] : p.handler.seen) {
    Zone z(true);
    p.server->Respond(id, 204, nullptr, 0, true);
  }
  p.Pump();
  int ok = 0;
  for (const auto& [id, seen] : p.handler.seen) ok += p.client.responses[id].status == 204;
  EXPECT_EQ(ok, 100);
  EXPECT_EQ(p.server->open_streams(), 0u);
}

TEST(H2ServerSession, ResponseFieldsLowercaseWithoutConnectionFields) {
  Core core;
  Pair p(&core);
  p.handler.on_request = [](ServerSession& s, int32_t id, const http::RequestHead&, bool) {
    Zone z(true);
    const http::Header f[] = {{"Connection", "close"},
                              {"Transfer-Encoding", "chunked"},
                              {"Keep-Alive", "5"},
                              {"X-Service", "calc"},
                              {"Upgrade", "h2c"}};
    s.Respond(id, 503, f, 5, true);
  };
  const int32_t id = p.client.Get("/");
  p.Pump();
  EXPECT_EQ(p.client.responses[id].status, 503);
  EXPECT_EQ(p.client.responses[id].fields, (Fields{{"x-service", "calc"}}));
}

TEST(H2ServerSession, LocalAnswersCarryTheRule) {
  Core core;
  Pair p(&core);
  p.handler.on_request = [](ServerSession& s, int32_t id, const http::RequestHead&, bool) {
    Zone z(true);
    s.Answer(id, policy::AnswerFor(policy::Fault::kNoRoute), "trace-1");
  };
  const int32_t get = p.client.Get("/nowhere");
  const int32_t head = p.client.Request({{":method", "HEAD"},
                                         {":scheme", "https"},
                                         {":authority", "example.com"},
                                         {":path", "/nowhere"}});
  p.Pump();
  const testing::Response& g = p.client.responses[get];
  EXPECT_EQ(g.status, 404);
  EXPECT_EQ(g.Field("x-hms-reason"), "no_route");
  EXPECT_EQ(g.Field("x-trace-id"), "trace-1");
  EXPECT_EQ(g.Field("content-type"), "application/json");
  EXPECT_EQ(g.body, "{\"error\":\"no route\",\"reason\":\"no_route\",\"trace_id\":\"trace-1\"}\n");
  EXPECT_EQ(g.Field("content-length"), std::to_string(g.body.size()));
  const testing::Response& h = p.client.responses[head];
  EXPECT_EQ(h.status, 404);
  EXPECT_EQ(h.body, "");  // RFC 9110 §9.3.2
  EXPECT_EQ(h.Field("content-length"), std::to_string(g.body.size()));
}

TEST(H2ServerSession, ContinueBeforeTheResponse) {
  Core core;
  Pair p(&core);
  AnswerWhenDone(p);
  p.handler.on_request = [](ServerSession& s, int32_t id, const http::RequestHead& h, bool) {
    Zone z(true);
    if (h.expect_continue) {
      EXPECT_TRUE(s.Continue(id));
    }
  };
  const std::string body = "payload";
  const int32_t id = p.client.Request({{":method", "PUT"},
                                       {":scheme", "https"},
                                       {":authority", "e"},
                                       {":path", "/f"},
                                       {"expect", "100-continue"}},
                                      &body);
  p.Pump();
  const testing::Response& r = p.client.responses[id];
  EXPECT_EQ(r.statuses, (std::vector<int>{100, 200}));
  EXPECT_EQ(r.Field("content-type"), "text/plain");
  EXPECT_EQ(r.body, "done");
  EXPECT_EQ(p.handler.seen[id].body, "payload");
  Zone z(true);
  EXPECT_FALSE(p.server->Continue(id));  // the stream is over
}

// A refused request with a body still coming: the answer ends the response
// and a NO_ERROR reset stops the upload (RFC 9113 §8.1).
TEST(H2ServerSession, RefusalStopsTheUpload) {
  Core core;
  Pair p(&core);
  const std::string body(10 << 20, 'z');
  const int32_t id = p.client.Request({{":method", "POST"},
                                       {":scheme", "https"},
                                       {":authority", "example.com"},
                                       {":path", "/%2e%2e/x"}},
                                      &body);
  p.Pump();
  EXPECT_EQ(p.client.responses[id].status, 400);
  EXPECT_EQ(p.client.responses[id].Field("x-hms-reason"), "bad_path");
  EXPECT_NE(p.client.responses[id].body.find("bad path (above_root)"), std::string::npos);
  EXPECT_TRUE(p.client.responses[id].closed);
  EXPECT_EQ(p.client.responses[id].code, 0u);
  EXPECT_EQ(p.handler.seen.count(id), 0u);  // the engine never saw a head
  EXPECT_EQ(p.handler.closed.count(id), 1u);
  EXPECT_EQ(core.counters.requests_refused.Get(), 1u);
  EXPECT_LT(p.fed_bytes(), 2u << 20);  // the client stopped sending: not 10 MiB
  // The connection goes on.
  AnswerWhenDone(p);
  const int32_t next = p.client.Get("/after");
  p.Pump();
  EXPECT_EQ(p.client.responses[next].body, "ok:/after");
}

TEST(H2ServerSession, BodyMustMatchContentLength) {
  Core core;
  Pair p(&core);
  const std::string body(100, 'b');
  const int32_t over = p.client.Request({{":method", "POST"},
                                         {":scheme", "https"},
                                         {":authority", "e"},
                                         {":path", "/"},
                                         {"content-length", "10"}},
                                        &body);
  const int32_t under = p.client.Request({{":method", "POST"},
                                          {":scheme", "https"},
                                          {":authority", "e"},
                                          {":path", "/"},
                                          {"content-length", "1000"}},
                                         &body);
  p.Pump();
  EXPECT_EQ(p.handler.closed.at(over), ErrorCode::kProtocolError);
  EXPECT_EQ(p.handler.closed.at(under), ErrorCode::kProtocolError);
  EXPECT_FALSE(p.handler.seen[over].ended);
  EXPECT_FALSE(p.handler.seen[under].ended);
  EXPECT_LE(p.handler.seen[over].body.size(), 10u);  // nothing past the declared length went on
  EXPECT_EQ(p.client.responses[over].code, static_cast<uint32_t>(NGHTTP2_PROTOCOL_ERROR));
  EXPECT_EQ(core.counters.malformed_bodies.Get(), 2u);
}

// --- Header rules: each refused with its rule named -------------------------

const Fields kBase = {
    {":method", "GET"}, {":scheme", "https"}, {":authority", "example.com"}, {":path", "/"}};
Fields With(std::initializer_list<std::pair<std::string, std::string>> extra) {
  Fields f = kBase;
  f.insert(f.end(), extra.begin(), extra.end());
  return f;
}

struct HeadCase {
  const char* name;
  Fields fields;
  uint16_t status;
  const char* reason;
};

class H2HeadRules : public ::testing::TestWithParam<HeadCase> {};

TEST_P(H2HeadRules, RefusedWithItsRule) {
  const HeadCase& c = GetParam();
  Core core;
  Pair p(&core);
  const int32_t id = p.client.Request(c.fields);
  p.Pump();
  const testing::Response& r = p.client.responses[id];
  EXPECT_EQ(r.status, c.status);
  EXPECT_EQ(r.Field("x-hms-reason"), c.reason);
  EXPECT_NE(r.body.find(std::string("\"reason\":\"") + c.reason + "\""), std::string::npos);
  EXPECT_EQ(p.handler.seen.count(id), 0u);
  EXPECT_TRUE(p.ok());  // a stream's fault, not the connection's
}

// nghttp2's client lowercases names as it sends them: an uppercase name
// comes from a hand-written HEADERS frame.
TEST(H2ServerSession, UppercaseNameRefused) {
  Core core;
  Pair p(&core);
  testing::RawClient raw;
  ASSERT_TRUE(p.Feed(Preface() + raw.Headers(1, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM,
                                             With({{"X-Forwarded-For", "6.6.6.6"}}))));
  ASSERT_EQ(p.handler.refused.count(1), 1u);
  EXPECT_EQ(p.handler.refused[1].status, 400);
  EXPECT_EQ(p.handler.refused[1].reason, "uppercase_header_name");
  EXPECT_EQ(p.handler.seen.count(1), 0u);
  const std::string answer = p.Drain();
  EXPECT_NE(answer.find("uppercase_header_name"), std::string::npos);  // in the JSON body
}

INSTANTIATE_TEST_SUITE_P(
    Rfc9113, H2HeadRules,
    ::testing::Values(
        HeadCase{"space_in_name", With({{"x foo", "1"}}), 400, "invalid_header_name"},
        HeadCase{"colon_inside", With({{"x:foo", "1"}}), 400, "invalid_header_name"},
        HeadCase{"crlf_in_value", With({{"x-a", "1\r\nx-b: 2"}}), 400, "invalid_header_value"},
        HeadCase{"nul_in_value", With({{"x-a", std::string("a\0b", 3)}}), 400,
                 "invalid_header_value"},
        HeadCase{"leading_space", With({{"x-a", " 1"}}), 400, "header_value_whitespace"},
        HeadCase{"connection", With({{"connection", "keep-alive"}}), 400,
                 "connection_specific_header"},
        HeadCase{"transfer_encoding", With({{"transfer-encoding", "chunked"}}), 400,
                 "connection_specific_header"},
        HeadCase{"upgrade", With({{"upgrade", "h2c"}}), 400, "connection_specific_header"},
        HeadCase{"proxy_connection", With({{"proxy-connection", "x"}}), 400,
                 "connection_specific_header"},
        HeadCase{"te_gzip", With({{"te", "gzip"}}), 400, "bad_te"},
        HeadCase{"unknown_pseudo", With({{":foo", "websocket"}}), 400,
                 "unknown_pseudo_header"},
        HeadCase{"protocol_without_connect", With({{":protocol", "websocket"}}), 400,
                 "bad_protocol"},
        HeadCase{"status_in_request", With({{":status", "200"}}), 400, "unknown_pseudo_header"},
        HeadCase{"pseudo_after_field",
                 Fields{{":method", "GET"},
                        {":scheme", "https"},
                        {"accept", "*/*"},
                        {":authority", "e"},
                        {":path", "/"}},
                 400, "pseudo_header_after_field"},
        HeadCase{"duplicate_path", With({{":path", "/x"}}), 400, "duplicate_pseudo_header"},
        HeadCase{"missing_path",
                 Fields{{":method", "GET"}, {":scheme", "https"}, {":authority", "e"}}, 400,
                 "missing_pseudo_header"},
        HeadCase{"missing_method",
                 Fields{{":scheme", "https"}, {":authority", "e"}, {":path", "/"}}, 400,
                 "missing_pseudo_header"},
        HeadCase{
            "bad_method",
            Fields{{":method", "GE T"}, {":scheme", "https"}, {":authority", "e"}, {":path", "/"}},
            400, "bad_method"},
        HeadCase{
            "bad_scheme",
            Fields{{":method", "GET"}, {":scheme", "ftp"}, {":authority", "e"}, {":path", "/"}},
            400, "bad_scheme"},
        HeadCase{
            "userinfo",
            Fields{
                {":method", "GET"}, {":scheme", "https"}, {":authority", "user@e"}, {":path", "/"}},
            400, "bad_host"},
        HeadCase{"no_authority", Fields{{":method", "GET"}, {":scheme", "https"}, {":path", "/"}},
                 400, "missing_host"},
        HeadCase{"host_mismatch", With({{"host", "other.example.com"}}), 400,
                 "authority_host_mismatch"},
        HeadCase{"absolute_path",
                 Fields{{":method", "GET"},
                        {":scheme", "https"},
                        {":authority", "e"},
                        {":path", "http://e/x"}},
                 400, "bad_request_target"},
        HeadCase{
            "fragment",
            Fields{
                {":method", "GET"}, {":scheme", "https"}, {":authority", "e"}, {":path", "/x#y"}},
            400, "bad_request_target"},
        HeadCase{
            "star_without_options",
            Fields{{":method", "GET"}, {":scheme", "https"}, {":authority", "e"}, {":path", "*"}},
            400, "bad_request_target"},
        HeadCase{"connect_with_path",
                 Fields{{":method", "CONNECT"}, {":authority", "e:443"}, {":path", "/"}}, 400,
                 "bad_connect"},
        HeadCase{"bad_length", With({{"content-length", "12a"}}), 400, "bad_content_length"},
        HeadCase{"two_lengths", With({{"content-length", "1"}, {"content-length", "2"}}), 400,
                 "duplicate_content_length"},
        HeadCase{
            "encoded_slash",
            Fields{
                {":method", "GET"}, {":scheme", "https"}, {":authority", "e"}, {":path", "/a%2Fb"}},
            400, "bad_path"},
        HeadCase{"above_root",
                 Fields{{":method", "GET"},
                        {":scheme", "https"},
                        {":authority", "e"},
                        {":path", "/../etc"}},
                 400, "bad_path"}),
    [](const ::testing::TestParamInfo<HeadCase>& i) { return std::string(i.param.name); });

TEST(H2ServerSession, HpackBombStopsAtTheListLimit) {
  Core core;
  Limits l;
  l.max_header_list_bytes = 4096;
  Pair p(&core, l);
  // The same 3000-byte field 1000 times: 3 MB decoded from about 4 KB sent,
  // once the encoder has indexed it (no client library sends this).
  testing::RawClient raw;
  Fields bomb = kBase;
  for (int i = 0; i < 1000; ++i) bomb.emplace_back("x-bomb", std::string(3000, 'q'));
  const std::string headers =
      raw.Headers(1, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, bomb);
  EXPECT_LT(headers.size(), 5000u);
  ASSERT_TRUE(p.Feed(Preface() + headers));
  ASSERT_EQ(p.handler.refused.count(1), 1u);
  EXPECT_EQ(p.handler.refused[1].status, 431);
  EXPECT_EQ(p.handler.refused[1].reason, "headers_too_large");
  EXPECT_EQ(core.counters.header_lists_too_large.Get(), 1u);
  // The HPACK state stayed in step: the next stream decodes and is served.
  ASSERT_TRUE(p.Feed(
      raw.Headers(3, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, GetFields("/next"))));
  EXPECT_EQ(p.handler.seen[3].path, "/next");
  EXPECT_TRUE(p.ok());
}

// A client may not make the gateway keep a bigger HPACK table than it
// announced (RFC 7541 §4.2): a size update above it ends the session.
TEST(H2ServerSession, HeaderTableAboveTheLimitIsRefused) {
  Core core;
  Limits l;
  l.header_table_bytes = 1024;  // below the protocol's 4096: the limit is ours
  Pair p(&core, l);
  // A dynamic table size update to 2048 (0x3f, then 2048 - 31 = 2017 in
  // 7-bit groups: 0xe1 0x0f) before an ordinary head, after the client
  // acknowledged the server's SETTINGS.
  const std::string block = std::string("\x3f\xe1\x0f", 3) + Hpack(GetFields("/t"));
  p.Feed(Preface() + Frame(NGHTTP2_SETTINGS, NGHTTP2_FLAG_ACK, 0, "") +
         Frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 1, block));
  const std::string goaway = p.Drain();
  ASSERT_GE(goaway.size(), 17u);
  EXPECT_EQ(static_cast<uint8_t>(goaway.back()), NGHTTP2_COMPRESSION_ERROR);
  EXPECT_EQ(p.handler.seen.count(1), 0u);
  EXPECT_EQ(core.counters.protocol_errors.Get(), 1u);
  EXPECT_TRUE(p.server->failed());
}

TEST(H2ServerSession, TooManyFields) {
  Core core;
  Pair p(&core);
  Fields many = kBase;
  for (int i = 0; i < 101; ++i) many.emplace_back("x-" + std::to_string(i), "1");
  const int32_t id = p.client.Request(many);
  p.Pump();
  EXPECT_EQ(p.client.responses[id].status, 431);
  EXPECT_EQ(p.client.responses[id].Field("x-hms-reason"), "too_many_headers");
}

// --- Floods: each ends its own session with GOAWAY, counted; another session
// on the same core is untouched.

void ExpectOtherSessionServes(Core* core) {
  Pair other(core);
  AnswerWhenDone(other);
  const int32_t id = other.client.Get("/fine");
  other.Pump();
  EXPECT_EQ(other.client.responses[id].body, "ok:/fine");
  EXPECT_TRUE(other.ok());
}

// A GET as a raw HEADERS frame (its own encoder: nothing is indexed twice).
std::string RawGet(int32_t stream, uint8_t flags) {
  return Frame(NGHTTP2_HEADERS, flags, stream, Hpack(GetFields("/r")));
}

TEST(H2Floods, RapidReset) {
  Core core;
  Limits l;
  l.resets = {20, 5};
  Pair p(&core, l);
  std::string flood = Preface();
  for (int i = 0; i < 100; ++i) {
    const int32_t id = 1 + 2 * i;
    flood += RawGet(id, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM);
    flood += Frame(NGHTTP2_RST_STREAM, 0, id, std::string("\0\0\0\x8", 4));
  }
  EXPECT_FALSE(p.Feed(flood));
  EXPECT_EQ(core.counters.flood_resets.Get(), 1u);
  EXPECT_LE(p.handler.seen.size(), 21u);  // what arrived before the limit, no more
  nghttp2_session_mem_recv(p.client.s, nullptr, 0);
  const std::string goaway = p.Drain();
  // The GOAWAY's error code: the last 4 bytes of its 8-byte payload.
  ASSERT_GE(goaway.size(), 17u);
  EXPECT_EQ(goaway.substr(goaway.size() - 17, 9)[3], static_cast<char>(NGHTTP2_GOAWAY));
  EXPECT_EQ(static_cast<uint8_t>(goaway.back()), NGHTTP2_ENHANCE_YOUR_CALM);
  EXPECT_EQ(p.server->open_streams(), 0u);
  EXPECT_TRUE(p.server->Done());
  ExpectOtherSessionServes(&core);
}

TEST(H2Floods, ResetsRefillWithTime) {
  Core core;
  Limits l;
  l.resets = {10, 10};
  Pair p(&core, l);
  ASSERT_TRUE(p.Feed(Preface()));
  int32_t id = 1;
  // Ten a second, for three seconds: never a flood.
  for (int second = 0; second < 3; ++second) {
    std::string burst;
    for (int i = 0; i < 10; ++i, id += 2) {
      burst += RawGet(id, NGHTTP2_FLAG_END_HEADERS);
      burst += Frame(NGHTTP2_RST_STREAM, 0, id, std::string("\0\0\0\x8", 4));
    }
    EXPECT_TRUE(p.Feed(burst)) << "second " << second;
    p.now += core::Millis(1000);
  }
  EXPECT_EQ(core.counters.flood_resets.Get(), 0u);
  EXPECT_EQ(core.counters.resets_received.Get(), 30u);
}

TEST(H2Floods, ProvokedResets) {
  Core core;
  Limits l;
  l.max_concurrent_streams = 1;
  l.resets = {5, 1};
  Pair p(&core, l);
  // A client that ignores SETTINGS_MAX_CONCURRENT_STREAMS: each stream over
  // it costs a REFUSED_STREAM this side sends.
  std::string flood = Preface();
  for (int i = 0; i < 30; ++i) flood += RawGet(1 + 2 * i, NGHTTP2_FLAG_END_HEADERS);
  p.Feed(flood);
  p.Drain();
  EXPECT_EQ(core.counters.flood_resets.Get(), 1u);
  EXPECT_TRUE(p.server->failed());
  ExpectOtherSessionServes(&core);
}

TEST(H2Floods, ContinuationFlood) {
  Core core;
  Limits l;
  l.max_continuations = 3;  // below nghttp2's own default (8): the limit is ours
  Pair p(&core, l);
  std::string flood = Preface();
  const std::string block = Hpack(GetFields("/c"));
  flood += Frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_STREAM, 1, block);
  const std::string field = Hpack({{"x-pad", "p"}});
  for (int i = 0; i < 6; ++i) flood += Frame(NGHTTP2_CONTINUATION, 0, 1, field);
  EXPECT_FALSE(p.Feed(flood));
  EXPECT_EQ(core.counters.flood_continuations.Get(), 1u);
  const std::string goaway = p.Drain();
  ASSERT_GE(goaway.size(), 17u);
  EXPECT_EQ(static_cast<uint8_t>(goaway.back()), NGHTTP2_ENHANCE_YOUR_CALM);
  EXPECT_EQ(p.handler.seen.size(), 0u);
  ExpectOtherSessionServes(&core);
}

struct ControlCase {
  const char* name;
  std::string frame;
};

class H2ControlFloods : public ::testing::TestWithParam<ControlCase> {};

TEST_P(H2ControlFloods, EndsTheSession) {
  Core core;
  Limits l;
  l.control_frames = {50, 10};
  Pair p(&core, l);
  std::string flood = Preface();
  for (int i = 0; i < 200; ++i) flood += GetParam().frame;
  EXPECT_FALSE(p.Feed(flood));
  EXPECT_EQ(core.counters.flood_control_frames.Get(), 1u);
  const std::string goaway = p.Drain();
  ASSERT_GE(goaway.size(), 17u);
  EXPECT_EQ(static_cast<uint8_t>(goaway.back()), NGHTTP2_ENHANCE_YOUR_CALM);
  // Fewer than 200 answers: reading stopped at the flood.
  EXPECT_LT(goaway.size(), 60u * 17u);
  ExpectOtherSessionServes(&core);
}

INSTANTIATE_TEST_SUITE_P(
    Frames, H2ControlFloods,
    ::testing::Values(ControlCase{"ping", Frame(NGHTTP2_PING, 0, 0, std::string(8, 'p'))},
                      ControlCase{"settings", Frame(NGHTTP2_SETTINGS, 0, 0, "")},
                      ControlCase{"priority",
                                  Frame(NGHTTP2_PRIORITY, 0, 3, std::string("\0\0\0\x1\x10", 5))}),
    [](const ::testing::TestParamInfo<ControlCase>& i) { return std::string(i.param.name); });

TEST(H2Floods, UnreadAcknowledgements) {
  Core core;
  Limits l;
  l.control_frames = {100000, 100000};  // only nghttp2's own guard is left
  l.max_outbound_ack = 10;
  Pair p(&core, l);
  std::string flood = Preface();
  for (int i = 0; i < 50; ++i) flood += Frame(NGHTTP2_PING, 0, 0, std::string(8, 'p'));
  EXPECT_FALSE(p.Feed(flood));  // never reading the answers
  EXPECT_EQ(core.counters.flood_unread_acks.Get(), 1u);
  ExpectOtherSessionServes(&core);
}

TEST(H2Floods, EmptyFrames) {
  Core core;
  Limits l;
  l.max_empty_frames = 10;
  Pair p(&core, l);
  std::string flood = Preface() + RawGet(1, NGHTTP2_FLAG_END_HEADERS);
  for (int i = 0; i < 100; ++i) flood += Frame(NGHTTP2_DATA, 0, 1, "");
  EXPECT_FALSE(p.Feed(flood));
  EXPECT_EQ(core.counters.flood_empty_frames.Get(), 1u);
  EXPECT_EQ(p.handler.closed.count(1), 1u);  // the open stream is reported over
  ExpectOtherSessionServes(&core);
}

TEST(H2Floods, EmptyFramesBetweenDataAreFine) {
  Core core;
  Limits l;
  l.max_empty_frames = 3;
  Pair p(&core, l);
  std::string s = Preface() + RawGet(1, NGHTTP2_FLAG_END_HEADERS);
  for (int i = 0; i < 50; ++i) {
    s += Frame(NGHTTP2_DATA, 0, 1, "");
    s += Frame(NGHTTP2_DATA, 0, 1, "x");
  }
  s += Frame(NGHTTP2_DATA, NGHTTP2_FLAG_END_STREAM, 1, "");
  EXPECT_TRUE(p.Feed(s));
  EXPECT_TRUE(p.handler.seen[1].ended);
  EXPECT_EQ(p.handler.seen[1].body, std::string(50, 'x'));
}

TEST(H2ServerSession, BadPrefaceIsAProtocolError) {
  Core core;
  Pair p(&core);
  EXPECT_FALSE(p.Feed("GET / HTTP/1.1\r\nHost: e\r\n\r\n"));
  EXPECT_EQ(core.counters.protocol_errors.Get(), 1u);
}

// --- Drain -------------------------------------------------------------------

TEST(H2ServerSession, DrainLetsOpenStreamsFinish) {
  Core core;
  Pair p(&core);
  const int32_t first = p.client.Get("/slow");
  p.Pump();
  ASSERT_EQ(p.handler.seen.count(first), 1u);  // held: the upstream is slow
  // A stream the client sends while the drain's GOAWAY is on its way.
  const int32_t in_flight = p.client.Get("/late");
  {
    Zone z(true);
    p.server->Drain();
  }
  p.Pump();
  EXPECT_EQ(p.handler.seen.count(in_flight), 1u);  // arrived before the PING's answer: taken
  EXPECT_EQ(p.client.goaways, 2);                  // the notice, then the final one
  EXPECT_EQ(p.client.goaway_code, 0u);
  EXPECT_EQ(p.client.goaway_last, in_flight);
  EXPECT_FALSE(p.server->Done());  // streams are open
  for (int32_t id : {first, in_flight}) {
    Zone z(true);
    p.server->Respond(id, 200, nullptr, 0, false);
    p.server->SendData(id, "bye", 3, true);
  }
  p.Pump();
  EXPECT_EQ(p.client.responses[first].body, "bye");
  EXPECT_EQ(p.client.responses[in_flight].body, "bye");
  EXPECT_TRUE(p.server->Done());
  EXPECT_EQ(core.counters.goaways_sent.Get(), 2u);
}

TEST(H2ServerSession, CloseReportsEveryOpenStream) {
  Core core;
  Pair p(&core);
  for (int i = 0; i < 3; ++i) p.client.Get("/held");
  p.Pump();
  EXPECT_EQ(p.server->open_streams(), 3u);
  {
    Zone z(true);
    p.server->Close(ErrorCode::kInternalError);
  }
  EXPECT_EQ(p.handler.closed.size(), 3u);
  for (const auto& [id, code] : p.handler.closed) EXPECT_EQ(code, ErrorCode::kInternalError);
  EXPECT_EQ(p.server->open_streams(), 0u);
}

TEST(H2ServerSession, SendableAfterTheQueueDrains) {
  Core core;
  testing::ClientOptions slow;
  slow.manual_window = true;  // a client that has stopped reading
  Pair p(&core, Limits{}, slow);
  p.handler.on_request = [](ServerSession& s, int32_t id, const http::RequestHead&, bool) {
    Zone z(true);
    s.Respond(id, 200, nullptr, 0, false);
    const std::string chunk(100000, 'd');
    s.SendData(id, chunk.data(), chunk.size(), false);
  };
  const int32_t id = p.client.Get("/big");
  p.Pump();
  // The client's window (64 KiB) took part of it; the rest waits, queued.
  EXPECT_EQ(p.client.responses[id].body.size(), 65535u);
  EXPECT_EQ(p.server->Queued(id), 100000u - 65535u);
  EXPECT_EQ(p.handler.sendable.count(id), 0u);
  nghttp2_session_consume(p.client.s, id, 65535);  // it reads again
  p.Pump();
  EXPECT_EQ(p.client.responses[id].body.size(), 100000u);
  EXPECT_EQ(p.server->Queued(id), 0u);
  EXPECT_EQ(p.handler.sendable[id], 1);  // the engine may read its upstream again
}

// --- Allocation -----------------------------------------------------------------

TEST(H2ServerSession, WarmStreamsAllocateNothing) {
  Core core;
  Pair p(&core);
  p.handler.on_request = [](ServerSession& s, int32_t id, const http::RequestHead& h, bool end) {
    if (!end) return;
    Zone z(true);
    const http::Header f[] = {{"content-type", "text/plain"}, {"x-path", h.path}};
    s.Respond(id, 200, f, 2, false);
    s.SendData(id, "hello, world", 12, true);
  };
  p.handler.on_end = [](ServerSession& s, int32_t id) {
    Zone z(true);
    s.Respond(id, 201, nullptr, 0, false);
    const http::Header t[] = {{"grpc-status", "0"}};
    s.SendData(id, "x", 1, false);
    s.SendTrailers(id, t, 1);
  };
  const std::string body(3000, 'u');
  const Fields post = {{":method", "POST"}, {":scheme", "https"}, {":authority", "example.com"},
                       {":path", "/p/./q"}, {"cookie", "a=1"},    {"cookie", "b=2"}};
  const auto round = [&](int n) {
    for (int i = 0; i < n; ++i) {
      p.client.Get("/w/" + std::to_string(i % 7));
      p.client.Request(post, &body, {{"x-t", "1"}});
      if (i % 10 == 9) p.Pump();
    }
    p.Pump();
  };
  round(200);  // warm-up: pools grow to the peak
  const uint64_t heap = core.pool.heap_allocations();
  const size_t blocks = core.blocks.allocated();
  t_session_news = 0;
  round(1000);
  EXPECT_EQ(core.pool.heap_allocations(), heap);
  EXPECT_EQ(core.blocks.allocated(), blocks);
  EXPECT_EQ(t_session_news, 0u);
  EXPECT_EQ(p.client.responses.size(), 2400u);
  for (const auto& [id, r] : p.client.responses) ASSERT_TRUE(r.status == 200 || r.status == 201);
}

TEST(H2ServerSession, PoolIsWhole_AfterTheSessionEnds) {
  Core core;
  {
    Pair p(&core);
    // Before any stream: what is in use is nghttp2's own session state.
    EXPECT_GT(core.pool.bytes_in_use(), 1000u);
    AnswerWhenDone(p);
    for (int i = 0; i < 20; ++i) p.client.Get("/x");
    p.client.Get("/held");
    p.Pump();
  }
  EXPECT_EQ(core.pool.blocks_in_use(), 0u);
  EXPECT_EQ(core.pool.bytes_in_use(), 0u);
  EXPECT_GT(core.pool.bytes_cached(), 0u);
}

TEST(H2ServerConfig, RefusesLimitsTheProtocolCannotCarry) {
  struct Case {
    void (*set)(Limits&);
    const char* says;
  } cases[] = {
      {[](Limits& l) { l.max_concurrent_streams = 0; }, "max_concurrent_streams"},
      {[](Limits& l) { l.stream_window_bytes = 0; }, "stream_window_bytes"},
      {[](Limits& l) { l.stream_window_bytes = 0x80000000u; }, "stream_window_bytes"},
      {[](Limits& l) { l.connection_window_bytes = 1000; }, "connection_window_bytes"},
      {[](Limits& l) { l.max_header_list_bytes = 100; }, "max_header_list_bytes"},
      {[](Limits& l) { l.header_table_bytes = 1 << 20; }, "header_table_bytes"},
      {[](Limits& l) { l.max_continuations = 0; }, "max_continuations"},
      {[](Limits& l) { l.resets.burst = 0; }, "burst"},
  };
  for (const Case& c : cases) {
    Limits l;
    c.set(l);
    auto r = ServerConfig::Make(l);
    ASSERT_FALSE(r.ok()) << c.says;
    EXPECT_NE(r.error().message.find(c.says), std::string::npos) << r.error().message;
    EXPECT_EQ(r.error().side, Side::kConfig);
  }
  EXPECT_TRUE(ServerConfig::Make(Limits{}).ok());
}

// What an idle connection holds after a request: nghttp2's session, its
// HPACK tables, no stream, no head block.
TEST(H2ServerSession, IdleSessionMemory) {
  Core core;
  Pair p(&core);
  AnswerWhenDone(p);
  p.client.Get("/x");
  p.Pump();
  EXPECT_EQ(p.server->open_streams(), 0u);
  std::printf("idle session after one request: %llu bytes in %llu pool blocks\n",
              static_cast<unsigned long long>(core.pool.bytes_in_use()),
              static_cast<unsigned long long>(core.pool.blocks_in_use()));
  // 26 KB here, 16 KB of it nghttp2's outbound frame buffer.
  EXPECT_LT(core.pool.bytes_in_use(), 32u * 1024);
}

}  // namespace
}  // namespace hms::h2
