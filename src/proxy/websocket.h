// WebSocket over HTTP/1.1 (RFC 6455 §4), the decisions: whether a request
// asks for a WebSocket upgrade and whether it is a well-formed one
// (§4.2.1), the Sec-WebSocket-Accept its key calls for (§4.2.2), whether an
// upstream's 101 is a valid answer to it (§4.1), and the 101 head toward the
// client. The tunnel that follows is tunnel.cc's. Pure functions: headers
// in, verdicts or bytes out; no state, no allocation; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "hms/http/parser.h"
#include "src/proxy/wire.h"

namespace hms::proxy {

// What a request's Upgrade field asks for (RFC 9110 §7.8).
enum class UpgradeKind : uint8_t {
  kNone,       // no Upgrade field
  kWebSocket,  // Upgrade lists "websocket": a WebSocket handshake, judged by the rules below
  kOther,      // any other protocol (h2c, ...): dropped as hop-by-hop, the request goes on
};

// The rule of RFC 6455 §4.2.1 an upgrade request broke; each has a token
// for the answer's message and the access log.
enum class WebSocketRule : uint8_t {
  kNone,
  kConnection,   // Connection does not list "upgrade"
  kMethod,       // not GET
  kHttpVersion,  // not HTTP/1.1
  kBody,         // a request body (Content-Length or chunked)
  kKey,          // Sec-WebSocket-Key missing, repeated, or not 16 bytes in base64
  kVersion,      // Sec-WebSocket-Version missing, repeated, or not 13 (426)
};

struct UpgradeVerdict {
  UpgradeKind kind = UpgradeKind::kNone;
  WebSocketRule rule = WebSocketRule::kNone;  // kWebSocket: the first rule broken
  std::string_view key;                       // kWebSocket: Sec-WebSocket-Key's value
};

// Judges the request's Upgrade and the WebSocket fields (RFC 6455 §4.2.1).
UpgradeVerdict JudgeUpgrade(const http::RequestHead& r) noexcept;

// "connection", "method", ...: the rule's token; and why, in a sentence.
std::string_view WebSocketRuleToken(WebSocketRule rule) noexcept;
std::string_view WebSocketRuleText(WebSocketRule rule) noexcept;
// 426 Upgrade Required for a version the gateway does not speak (§4.4,
// answered with Sec-WebSocket-Version: 13), 400 for every other rule.
uint16_t WebSocketRuleStatus(WebSocketRule rule) noexcept;

// Characters of a Sec-WebSocket-Accept value (base64 of a SHA-1).
inline constexpr size_t kAcceptSize = 28;
// The Sec-WebSocket-Accept that `key` calls for: base64(SHA-1(key ‖ the
// GUID of §1.3)), into out[0, kAcceptSize).
void WebSocketAccept(std::string_view key, char* out) noexcept;

// What is wrong with an upstream's 101 to a WebSocket upgrade (§4.1, the
// client's checks, made by the gateway for its client).
enum class UpgradeAnswerRule : uint8_t {
  kNone,
  kUpgrade,     // Upgrade is not "websocket"
  kConnection,  // Connection does not list "upgrade"
  kAccept,      // Sec-WebSocket-Accept missing, repeated, or not the key's
};
UpgradeAnswerRule JudgeUpgradeAnswer(const http::ResponseHead& r,
                                     std::string_view expected_accept) noexcept;
std::string_view UpgradeAnswerText(UpgradeAnswerRule rule) noexcept;

// Writes the client's 101 head for the upstream's `r` into dst[0, cap): the
// status line, the upstream's end-to-end fields (Sec-WebSocket-Accept,
// -Protocol, -Extensions among them; hop-by-hop ones, as `hop_by_hop` marked
// them, and its x-trace-id dropped), then `connection: upgrade`, `upgrade:
// websocket` and our x-trace-id. Returns the bytes written, or 0 when the
// head does not fit: a cut head is never sent.
size_t WriteSwitchingHead(const http::ResponseHead& r, const HopByHop& hop_by_hop,
                          std::string_view trace_id, char* dst, size_t cap) noexcept;

}  // namespace hms::proxy
