// Unit tests of the WebSocket handshake's decisions (src/proxy/websocket.h)
// and of a tunnel direction's next state (src/proxy/tunnel.h): request heads
// in, verdicts out; an upstream's 101 in, a verdict or the client's head out.
#include "src/proxy/websocket.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "src/proxy/tunnel.h"

namespace hms::proxy {
namespace {

constexpr std::string_view kKey = "dGhlIHNhbXBsZSBub25jZQ==";         // RFC 6455 §1.3's sample
constexpr std::string_view kAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";  // ... and its answer

UpgradeVerdict Judge(std::string_view head) {
  static http::RequestHead r;  // large: kMaxHeaders fields
  r = http::RequestHead{};
  const int rc = http::ParseRequest(head.data(), head.size(), 8192, &r);
  EXPECT_GT(rc, 0) << head;
  return JudgeUpgrade(r);
}

std::string Upgrade(std::string_view line, std::string_view fields) {
  return std::string(line) + "\r\nhost: h\r\n" + std::string(fields) + "\r\n";
}

constexpr std::string_view kGood =
    "connection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "sec-websocket-version: 13\r\n";

TEST(JudgeUpgrade, TableOfRequests) {
  struct Case {
    std::string_view name;
    std::string head;
    UpgradeKind kind;
    WebSocketRule rule;
  } cases[] = {
      {"no Upgrade", Upgrade("GET / HTTP/1.1", "connection: upgrade\r\n"), UpgradeKind::kNone,
       WebSocketRule::kNone},
      {"another protocol", Upgrade("GET / HTTP/1.1", "connection: upgrade\r\nupgrade: h2c\r\n"),
       UpgradeKind::kOther, WebSocketRule::kNone},
      {"a browser's upgrade", Upgrade("GET /ws HTTP/1.1", kGood), UpgradeKind::kWebSocket,
       WebSocketRule::kNone},
      {"tokens in any case, in lists (Firefox's keep-alive, Upgrade)",
       Upgrade("GET / HTTP/1.1",
               "Connection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"),
       UpgradeKind::kWebSocket, WebSocketRule::kNone},
      {"no Connection: upgrade",
       Upgrade("GET / HTTP/1.1",
               "connection: keep-alive\r\nupgrade: websocket\r\n"
               "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n"),
       UpgradeKind::kWebSocket, WebSocketRule::kConnection},
      {"not GET", Upgrade("POST / HTTP/1.1", kGood), UpgradeKind::kWebSocket,
       WebSocketRule::kMethod},
      {"HTTP/1.0", Upgrade("GET / HTTP/1.0", kGood), UpgradeKind::kWebSocket,
       WebSocketRule::kHttpVersion},
      {"a body", Upgrade("GET / HTTP/1.1", std::string(kGood) + "content-length: 2\r\n"),
       UpgradeKind::kWebSocket, WebSocketRule::kBody},
      {"no key",
       Upgrade("GET / HTTP/1.1",
               "connection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\n"),
       UpgradeKind::kWebSocket, WebSocketRule::kKey},
      {"a key of 15 bytes",
       Upgrade("GET / HTTP/1.1",
               "connection: upgrade\r\nupgrade: websocket\r\n"
               "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ=\r\n"
               "sec-websocket-version: 13\r\n"),
       UpgradeKind::kWebSocket, WebSocketRule::kKey},
      {"a key outside base64",
       Upgrade("GET / HTTP/1.1",
               "connection: upgrade\r\nupgrade: websocket\r\n"
               "sec-websocket-key: dGhlIHNhbXBsZSBub25jZ!==\r\n"
               "sec-websocket-version: 13\r\n"),
       UpgradeKind::kWebSocket, WebSocketRule::kKey},
      {"two keys",
       Upgrade("GET / HTTP/1.1",
               std::string(kGood) + "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"),
       UpgradeKind::kWebSocket, WebSocketRule::kKey},
      {"version 8",
       Upgrade("GET / HTTP/1.1",
               "connection: upgrade\r\nupgrade: websocket\r\n"
               "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "sec-websocket-version: 8\r\n"),
       UpgradeKind::kWebSocket, WebSocketRule::kVersion},
      {"no version",
       Upgrade("GET / HTTP/1.1",
               "connection: upgrade\r\nupgrade: websocket\r\n"
               "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"),
       UpgradeKind::kWebSocket, WebSocketRule::kVersion},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const UpgradeVerdict v = Judge(c.head);
    EXPECT_EQ(v.kind, c.kind);
    EXPECT_EQ(v.rule, c.rule);
    if (c.kind == UpgradeKind::kWebSocket && c.rule == WebSocketRule::kNone) {
      EXPECT_EQ(v.key, kKey);
    }
  }
}

TEST(JudgeUpgrade, EveryRuleHasATokenATextAndAStatus) {
  for (WebSocketRule r :
       {WebSocketRule::kConnection, WebSocketRule::kMethod, WebSocketRule::kHttpVersion,
        WebSocketRule::kBody, WebSocketRule::kKey, WebSocketRule::kVersion}) {
    EXPECT_FALSE(WebSocketRuleToken(r).empty());
    EXPECT_FALSE(WebSocketRuleText(r).empty());
    EXPECT_EQ(WebSocketRuleStatus(r), r == WebSocketRule::kVersion ? 426 : 400);
  }
}

TEST(WebSocketAccept, MatchesTheRfcExample) {
  char out[kAcceptSize];
  WebSocketAccept(kKey, out);
  EXPECT_EQ(std::string_view(out, kAcceptSize), kAccept);
}

struct Answer {
  UpgradeAnswerRule rule;
  std::string head;  // the client's 101 when the rule is kNone
};

Answer Check(std::string_view upstream, size_t cap = 4096) {
  http::ResponseHead r;
  const int rc =
      http::ParseResponse(upstream.data(), upstream.size(), 8192, http::Method::kGet, &r);
  EXPECT_GT(rc, 0) << upstream;
  Answer a{JudgeUpgradeAnswer(r, kAccept), ""};
  if (a.rule != UpgradeAnswerRule::kNone) return a;
  HopByHop hop(r.headers, r.header_count);
  std::string out(cap, '\0');
  out.resize(WriteSwitchingHead(r, hop, "0123456789abcdef0123456789abcdef", out.data(), cap));
  a.head = out;
  return a;
}

TEST(JudgeUpgradeAnswer, TableOfAnswers) {
  struct Case {
    std::string_view name;
    std::string_view upstream;
    UpgradeAnswerRule rule;
  } cases[] = {
      {"valid",
       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
       UpgradeAnswerRule::kNone},
      {"another protocol",
       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n"
       "Connection: Upgrade\r\n"
       "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
       UpgradeAnswerRule::kUpgrade},
      {"no Connection: upgrade",
       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
       "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
       UpgradeAnswerRule::kConnection},
      {"the key echoed instead of its proof",
       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Accept: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
       UpgradeAnswerRule::kAccept},
      {"no accept",
       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
       "Connection: Upgrade\r\n\r\n",
       UpgradeAnswerRule::kAccept},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(Check(c.upstream).rule, c.rule);
    if (c.rule != UpgradeAnswerRule::kNone) EXPECT_FALSE(UpgradeAnswerText(c.rule).empty());
  }
}

TEST(WriteSwitchingHead, EndToEndFieldsPassHopByHopOnesAreOurs) {
  const Answer a = Check(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade, x-secret\r\n"
      "x-secret: 1\r\nx-trace-id: theirs\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
      "Sec-WebSocket-Protocol: chat\r\n\r\n");
  ASSERT_EQ(a.rule, UpgradeAnswerRule::kNone);
  EXPECT_EQ(a.head,
            "HTTP/1.1 101 Switching Protocols\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n"
            "connection: upgrade\r\nupgrade: websocket\r\n"
            "x-trace-id: 0123456789abcdef0123456789abcdef\r\n\r\n");
}

TEST(WriteSwitchingHead, NeverCutsAHead) {
  const std::string_view upstream =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
  const std::string whole = Check(upstream).head;
  ASSERT_FALSE(whole.empty());
  http::ResponseHead r;
  ASSERT_GT(http::ParseResponse(upstream.data(), upstream.size(), 8192, http::Method::kGet, &r), 0);
  HopByHop hop(r.headers, r.header_count);
  for (size_t cap = 0; cap < whole.size(); ++cap) {
    std::string out(cap, '\0');
    EXPECT_EQ(WriteSwitchingHead(r, hop, "0123456789abcdef0123456789abcdef", out.data(), cap), 0u)
        << cap;
  }
}

// A direction is shut only once its sender's FIN arrived and nothing it
// carried waits on either side.
TEST(Tunnel, NextHalf) {
  struct Case {
    TunnelHalf from;
    bool input_left, queued;
    TunnelHalf to;
  } cases[] = {
      {TunnelHalf::kOpen, false, false, TunnelHalf::kOpen},
      {TunnelHalf::kDraining, true, false, TunnelHalf::kDraining},
      {TunnelHalf::kDraining, false, true, TunnelHalf::kDraining},
      {TunnelHalf::kDraining, false, false, TunnelHalf::kShut},
      {TunnelHalf::kShut, false, false, TunnelHalf::kShut},
  };
  for (const Case& c : cases) EXPECT_EQ(NextHalf(c.from, c.input_left, c.queued), c.to);
  Tunnel t;
  EXPECT_FALSE(t.done());
  t.to_client = t.to_upstream = TunnelHalf::kShut;
  EXPECT_TRUE(t.done());
}

}  // namespace
}  // namespace hms::proxy
