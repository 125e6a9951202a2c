// Unit tests of the response head the client gets (src/proxy/head_rewrite.h):
// an upstream's head in, the bytes the gateway sends out.
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

}  // namespace
}  // namespace hms::proxy
