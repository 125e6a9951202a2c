// Unit tests of head rewriting (src/proxy/head_rewrite.h), both ways: a
// caller's head in, the bytes the upstream gets; an upstream's head in, the
// bytes the client gets.
#include "src/proxy/head_rewrite.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <string_view>

namespace hms::proxy {
namespace {

constexpr std::string_view kTrace = "0123456789abcdef0123456789abcdef";

struct Rewritten {
  bool ok;
  std::string head;
};

Rewritten Rewrite(std::string_view upstream, const ResponseHeadFields& f, size_t cap = 4096,
                  http::Method method = http::Method::kGet) {
  http::ResponseHead r;
  const int rc = http::ParseResponse(upstream.data(), upstream.size(), 8192, method, &r);
  EXPECT_GT(rc, 0) << upstream;
  HopByHop hop(r.headers, r.header_count);
  std::string out(cap, '\0');
  const size_t n = RewriteResponseHead(r, hop, f, out.data(), cap);
  return {n > 0, out.substr(0, n)};
}

ResponseHeadFields Fields() {
  ResponseHeadFields f;
  f.trace_id = kTrace;
  return f;
}

TEST(RewriteResponseHead, TableOfHeads) {
  struct Case {
    std::string_view name;
    std::string_view upstream;
    bool dechunk, close;
    uint8_t minor;
    std::string_view want;
  } cases[] = {
      {"end-to-end fields pass, ours follow",
       "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\n", false, false, 1,
       "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n"
       "x-trace-id: 0123456789abcdef0123456789abcdef\r\n\r\n"},
      {"hop-by-hop and Connection-named fields dropped",
       "HTTP/1.1 200 OK\r\nconnection: x-secret, keep-alive\r\nx-secret: 1\r\n"
       "keep-alive: timeout=5\r\nx-kept: 2\r\ncontent-length: 0\r\n\r\n",
       false, false, 1,
       "HTTP/1.1 200 OK\r\nx-kept: 2\r\ncontent-length: 0\r\n"
       "x-trace-id: 0123456789abcdef0123456789abcdef\r\n\r\n"},
      {"the upstream's x-trace-id is replaced by ours",
       "HTTP/1.1 204 No Content\r\nx-trace-id: theirs\r\n\r\n", false, false, 1,
       "HTTP/1.1 204 No Content\r\nx-trace-id: 0123456789abcdef0123456789abcdef\r\n\r\n"},
      {"repeated identical Content-Length goes out once",
       "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 3\r\n\r\n", false, false, 1,
       "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n"
       "x-trace-id: 0123456789abcdef0123456789abcdef\r\n\r\n"},
      {"chunked stays chunked for HTTP/1.1",
       "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", false, false, 1,
       "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n"
       "x-trace-id: 0123456789abcdef0123456789abcdef\r\n\r\n"},
      {"dechunked for HTTP/1.0: no framing, the close ends it",
       "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", true, true, 0,
       "HTTP/1.1 200 OK\r\nx-trace-id: 0123456789abcdef0123456789abcdef\r\n"
       "connection: close\r\n\r\n"},
      {"HTTP/1.0 client kept alive is told so",
       "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", false, false, 0,
       "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n"
       "x-trace-id: 0123456789abcdef0123456789abcdef\r\nconnection: keep-alive\r\n\r\n"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ResponseHeadFields f = Fields();
    f.dechunk = c.dechunk;
    f.close = c.close;
    f.client_version_minor = c.minor;
    const Rewritten got = Rewrite(c.upstream, f);
    ASSERT_TRUE(got.ok);
    EXPECT_EQ(got.head, c.want);
  }
}

TEST(RewriteResponseHead, RateLimitFieldsOnARateLimitedRoute) {
  policy::RateDecision d{};
  d.admitted = true;
  d.limit = 100;
  d.remaining = 99;
  d.reset_s = 1;
  ResponseHeadFields f = Fields();
  f.rate = &d;
  const Rewritten got = Rewrite("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", f);
  ASSERT_TRUE(got.ok);
  EXPECT_NE(got.head.find("ratelimit-limit: 100\r\nratelimit-remaining: 99\r\nratelimit-reset: 1\r\n"),
            std::string::npos);
}

// A head that does not fit is refused whole: 0, never a cut head.
TEST(RewriteResponseHead, NeverCutsAHead) {
  const std::string_view upstream = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
  const Rewritten full = Rewrite(upstream, Fields());
  ASSERT_TRUE(full.ok);
  EXPECT_TRUE(Rewrite(upstream, Fields(), full.head.size()).ok);
  EXPECT_FALSE(Rewrite(upstream, Fields(), full.head.size() - 1).ok);
}

// ---- The request side: a caller's head in, the upstream's head out. ----

constexpr std::string_view kSpan = "fedcba9876543210";
constexpr std::string_view kOurs =
    "x-forwarded-for: 192.0.2.7\r\nx-forwarded-proto: http\r\n"
    "x-trace-id: 0123456789abcdef0123456789abcdef\r\n"
    "traceparent: 00-0123456789abcdef0123456789abcdef-fedcba9876543210-01\r\n"
    "x-hms-timeout-ms:           \r\n";

obs::TraceContext Trace() {
  obs::TraceContext t{};
  std::memcpy(t.trace_id, kTrace.data(), 32);
  std::memcpy(t.span_id, kSpan.data(), 16);
  t.flags = 1;
  return t;
}

struct Request {
  RequestHeadOut out;
  std::string head;
};

// Parses `caller` and rewrites it with `f` (its origin, when unset, the
// parsed target, as the canonical path is for a target already canonical).
Request RewriteRequest(std::string_view caller, RequestHeadFields f, size_t cap = 4096) {
  static http::RequestHead r;  // large: kMaxHeaders fields
  r = http::RequestHead{};
  const int rc = http::ParseRequest(caller.data(), caller.size(), 8192, &r);
  EXPECT_GT(rc, 0) << caller;
  HopByHop hop(r.headers, r.header_count);
  static const obs::TraceContext trace = Trace();
  if (f.trace == nullptr) f.trace = &trace;
  if (f.origin.empty()) f.origin = r.target;
  std::string out(cap, '\0');
  const RequestHeadOut o = RewriteRequestHead(r, hop, f, out.data(), cap);
  return {o, out.substr(0, o.size)};
}

RequestHeadFields Caller() {
  RequestHeadFields f;
  f.client_ip = "192.0.2.7";
  f.default_host = "10.0.0.1:8080";
  return f;
}

TEST(RewriteRequestHead, TableOfHeads) {
  struct Case {
    std::string_view name;
    std::string_view caller;
    std::string_view want;  // the head up to our fields, then kOurs, then `framing`
    std::string_view framing;
  } cases[] = {
      {"end-to-end fields pass, ours follow",
       "GET /a?q=1 HTTP/1.1\r\nhost: api\r\naccept: */*\r\n\r\n",
       "GET /a?q=1 HTTP/1.1\r\nhost: api\r\naccept: */*\r\n", ""},
      {"no Host: the endpoint's authority",
       "GET / HTTP/1.0\r\n\r\n", "GET / HTTP/1.1\r\nhost: 10.0.0.1:8080\r\n", ""},
      {"hop-by-hop and Connection-named fields dropped",
       "GET / HTTP/1.1\r\nhost: h\r\nconnection: x-secret, keep-alive\r\nx-secret: 1\r\n"
       "te: trailers\r\nupgrade: h2c\r\nx-kept: 2\r\n\r\n",
       "GET / HTTP/1.1\r\nhost: h\r\nx-kept: 2\r\n", ""},
      {"names with '_' dropped by default",
       "GET / HTTP/1.1\r\nhost: h\r\nx_forwarded_for: 6.6.6.6\r\nx-ok: 1\r\n\r\n",
       "GET / HTTP/1.1\r\nhost: h\r\nx-ok: 1\r\n", ""},
      {"the caller's identity, proto, trace and timeout fields replaced by ours",
       "GET / HTTP/1.1\r\nhost: h\r\nx-hms-peer: spiffe://evil\r\nx-forwarded-proto: https\r\n"
       "x-trace-id: abc\r\ntraceparent: 00-1-2-01\r\nx-hms-timeout-ms: 5\r\nexpect: 100-continue\r\n"
       "content-length: 1\r\n\r\n",
       "GET / HTTP/1.1\r\nhost: h\r\n", "content-length: 1\r\n"},
      {"chunked stays chunked, written once by us",
       "POST /u HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n",
       "POST /u HTTP/1.1\r\nhost: h\r\n", "transfer-encoding: chunked\r\n"},
      {"repeated identical Content-Length goes out once",
       "PUT /u HTTP/1.1\r\nhost: h\r\ncontent-length: 3\r\ncontent-length: 3\r\n\r\n",
       "PUT /u HTTP/1.1\r\nhost: h\r\n", "content-length: 3\r\n"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const Request got = RewriteRequest(c.caller, Caller());
    ASSERT_GT(got.out.size, 0u);
    EXPECT_EQ(got.head, std::string(c.want) + std::string(kOurs) + std::string(c.framing) + "\r\n");
  }
}

// A WebSocket upgrade the route admits: its own Upgrade and Connection go
// upstream, written by us; what its Connection field named is still dropped.
TEST(RewriteRequestHead, AWebSocketUpgradeGoesUpstreamAsAnUpgrade) {
  RequestHeadFields f = Caller();
  f.websocket = true;
  const Request got = RewriteRequest(
      "GET /ws HTTP/1.1\r\nhost: h\r\nconnection: keep-alive, Upgrade, x-secret\r\n"
      "upgrade: websocket\r\nx-secret: 1\r\nsec-websocket-key: k\r\n"
      "sec-websocket-version: 13\r\n\r\n",
      f);
  EXPECT_EQ(got.head, std::string("GET /ws HTTP/1.1\r\nhost: h\r\nsec-websocket-key: k\r\n"
                                  "sec-websocket-version: 13\r\nconnection: upgrade\r\n"
                                  "upgrade: websocket\r\n") +
                          std::string(kOurs) + "\r\n");
}

TEST(RewriteRequestHead, ForwardedForIsExtended) {
  const Request got = RewriteRequest(
      "GET / HTTP/1.1\r\nhost: h\r\nx-forwarded-for: 198.51.100.1\r\n\r\n", Caller());
  EXPECT_NE(got.head.find("x-forwarded-for: 198.51.100.1, 192.0.2.7\r\n"), std::string::npos);
  EXPECT_EQ(got.head.find("x-forwarded-for", got.head.find("x-forwarded-for") + 1),
            std::string::npos);
}

TEST(RewriteRequestHead, TlsCallerIsForwardedAsHttps) {
  RequestHeadFields f = Caller();
  f.tls = true;
  const Request got = RewriteRequest("GET / HTTP/1.1\r\nhost: h\r\n\r\n", f);
  EXPECT_NE(got.head.find("x-forwarded-proto: https\r\n"), std::string::npos);
}

TEST(RewriteRequestHead, UnderscoresAllowedPassUnchanged) {
  RequestHeadFields f = Caller();
  f.underscores = http::UnderscorePolicy::kAllow;
  const Request got = RewriteRequest("GET / HTTP/1.1\r\nhost: h\r\nmy_field: 1\r\n\r\n", f);
  EXPECT_NE(got.head.find("\r\nmy_field: 1\r\n"), std::string::npos);
}

TEST(RewriteRequestHead, VerifiedPeerIsSentOnlyByUs) {
  RequestHeadFields f = Caller();
  f.peer_id = "spiffe://mesh/ns/a/sa/b";
  const Request got =
      RewriteRequest("GET / HTTP/1.1\r\nhost: h\r\nx-hms-peer: spiffe://forged\r\n\r\n", f);
  EXPECT_NE(got.head.find("\r\nx-hms-peer: spiffe://mesh/ns/a/sa/b\r\n"), std::string::npos);
  EXPECT_EQ(got.head.find("forged"), std::string::npos);
}

TEST(RewriteRequestHead, HostReplacedForEgressAndAbsoluteForm) {
  RequestHeadFields egress = Caller();
  egress.egress_to = "billing";
  egress.origin = "/rest?x=1";
  Request got = RewriteRequest("GET /billing/rest?x=1 HTTP/1.1\r\nhost: localhost\r\n\r\n", egress);
  EXPECT_EQ(got.head.rfind("GET /rest?x=1 HTTP/1.1\r\nhost: billing\r\n", 0), 0u) << got.head;
  EXPECT_EQ(got.head.find("localhost"), std::string::npos);

  // Egress "/NAME" and "/NAME?q" leave an empty or query-only origin.
  egress.origin = "?x=1";
  got = RewriteRequest("GET /billing?x=1 HTTP/1.1\r\nhost: billing\r\n\r\n", egress);
  EXPECT_EQ(got.head.rfind("GET /?x=1 HTTP/1.1\r\n", 0), 0u) << got.head;

  RequestHeadFields absolute = Caller();
  absolute.origin = "/x";
  got = RewriteRequest("GET http://api.example/x HTTP/1.1\r\nhost: other\r\n\r\n", absolute);
  EXPECT_EQ(got.head.rfind("GET /x HTTP/1.1\r\nhost: api.example\r\n", 0), 0u) << got.head;
  EXPECT_EQ(got.head.find("other"), std::string::npos);
}

TEST(RewriteRequestHead, CallerTimeoutIsReportedAndTheFieldPlaced) {
  const Request got = RewriteRequest(
      "GET / HTTP/1.1\r\nhost: h\r\nx-hms-timeout-ms: 250\r\nx-hms-timeout-ms: 9\r\n\r\n",
      Caller());
  EXPECT_EQ(got.out.caller_ms, "250");  // the first one
  ASSERT_LT(got.out.timeout_field + kTimeoutDigits + 2, got.head.size());
  EXPECT_EQ(got.head.substr(got.out.timeout_field - 18, 18), "x-hms-timeout-ms: ");
  EXPECT_EQ(got.head.substr(got.out.timeout_field, kTimeoutDigits + 2), "          \r\n");
}

TEST(RewriteRequestHead, AGrpcCallsTimeoutIsReportedAndReplaced) {
  RequestHeadFields f = Caller();
  f.grpc = true;
  const Request got = RewriteRequest(
      "POST /calc.Calc/Sum HTTP/1.1\r\nhost: h\r\ncontent-type: application/grpc\r\n"
      "grpc-timeout: 300m\r\ngrpc-timeout: 9S\r\ncontent-length: 0\r\n\r\n",
      f);
  EXPECT_EQ(got.out.caller_grpc_timeout, "300m");  // the first one
  EXPECT_EQ(got.head.find("300m"), std::string::npos);  // ours replaces it
  ASSERT_GT(got.out.grpc_timeout_field, 14u);
  EXPECT_EQ(got.head.substr(got.out.grpc_timeout_field - 14, 14), "grpc-timeout: ");
  EXPECT_EQ(got.head.substr(got.out.grpc_timeout_field, h2::kGrpcTimeoutBytes + 2),
            "         \r\n");
  // Not a gRPC call: the field is the caller's, passed on.
  const Request plain = RewriteRequest(
      "GET / HTTP/1.1\r\nhost: h\r\ngrpc-timeout: 300m\r\n\r\n", Caller());
  EXPECT_NE(plain.head.find("grpc-timeout: 300m\r\n"), std::string::npos);
  EXPECT_EQ(plain.out.grpc_timeout_field, 0u);
}

TEST(RewriteRequestHead, TheCallersExternalTraceIdIsForwarded) {
  obs::TraceContext t = Trace();
  std::memcpy(t.external_id, "abc123", 6);
  t.external_len = 6;
  RequestHeadFields f = Caller();
  f.trace = &t;
  const Request got = RewriteRequest("GET / HTTP/1.1\r\nhost: h\r\n\r\n", f);
  EXPECT_NE(got.head.find("\r\nx-trace-id: abc123\r\n"), std::string::npos);
}

// A head that does not fit is refused whole: size 0, never a cut head.
TEST(RewriteRequestHead, NeverCutsAHead) {
  const std::string_view caller = "GET / HTTP/1.1\r\nhost: h\r\n\r\n";
  const Request full = RewriteRequest(caller, Caller());
  ASSERT_GT(full.out.size, 0u);
  EXPECT_EQ(RewriteRequest(caller, Caller(), full.head.size()).out.size, full.head.size());
  EXPECT_EQ(RewriteRequest(caller, Caller(), full.head.size() - 1).out.size, 0u);
}

// An answer's trailers: RFC 9110 §6.5.1's forbidden fields and the
// gateway's own x-trace-id are left out, the rest keep their order.
TEST(KeptInResponseTrailers, TableOfFields) {
  struct Case {
    std::string_view name;
    bool kept;
  };
  const Case cases[] = {
      {"grpc-status", true},      {"grpc-message", true},        {"x-checksum", true},
      {"server-timing", true},    {"Content-Type", false},       {"content-length", false},
      {"transfer-encoding", false}, {"Set-Cookie", false},       {"www-authenticate", false},
      {"cache-control", false},   {"date", false},               {"location", false},
      {"content-encoding", false}, {"trailer", false},           {"connection", false},
      {"X-Trace-Id", false},      {"x-trace-idx", true},
  };
  for (const Case& c : cases) EXPECT_EQ(KeptInResponseTrailers(c.name), c.kept) << c.name;
}

// A request's trailers, toward an h2 upstream or in the last chunk framed
// for an h2 client's request: neither RFC 9110 §6.5.1's forbidden fields
// nor those the gateway writes itself, nor names the underscore rule drops.
TEST(KeptInRequestTrailers, TableOfFields) {
  struct Case {
    std::string_view name;
    http::UnderscorePolicy underscores;
    bool kept;
  };
  constexpr auto kAllow = http::UnderscorePolicy::kAllow;
  const Case cases[] = {
      {"x-checksum", kAllow, true},        {"grpc-status", kAllow, true},
      {"x-hms-peer", kAllow, false},       {"X-Forwarded-For", kAllow, false},
      {"x-forwarded-proto", kAllow, false}, {"x-trace-id", kAllow, false},
      {"traceparent", kAllow, false},      {"x-hms-timeout-ms", kAllow, false},
      {"grpc-timeout", kAllow, false},     {"authorization", kAllow, false},
      {"content-length", kAllow, false},   {"host", kAllow, false},
      {"x_id", kAllow, true},              {"x_id", http::UnderscorePolicy::kDrop, false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(KeptInRequestTrailers(c.name, c.underscores), c.kept) << c.name;
  }
}

}  // namespace
}  // namespace hms::proxy
