// The WebSocket handshake's decisions (websocket.h).
#include "src/proxy/websocket.h"

#include <iterator>

#include "hms/tls/sha1_base64.h"

namespace hms::proxy {
namespace {

// RFC 6455 §1.3: appended to the client's key before hashing.
constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

bool IsBase64Char(char c) noexcept {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

// §4.1: "a nonce consisting of a randomly selected 16-byte value that has
// been base64-encoded": 22 characters and "==" (what ws and websockets check).
bool IsKey(std::string_view v) noexcept {
  if (v.size() != 24 || v[22] != '=' || v[23] != '=') return false;
  for (size_t i = 0; i < 22; ++i) {
    if (!IsBase64Char(v[i])) return false;
  }
  return true;
}

// The value of the only field named `name`; empty when there is none, and
// *repeated when there are several.
std::string_view OnlyField(const http::Header* h, int n, std::string_view name,
                           bool* repeated) noexcept {
  std::string_view found;
  int count = 0;
  for (int i = 0; i < n; ++i) {
    if (!http::EqualsIgnoreCase(h[i].name, name)) continue;
    if (count++ == 0) found = h[i].value;
  }
  *repeated = count > 1;
  return found;
}

// Any field named `name` lists `token`.
bool AnyListHas(const http::Header* h, int n, std::string_view name,
                std::string_view token) noexcept {
  for (int i = 0; i < n; ++i) {
    if (http::EqualsIgnoreCase(h[i].name, name) && http::ListHasToken(h[i].value, token)) {
      return true;
    }
  }
  return false;
}

}  // namespace

UpgradeVerdict JudgeUpgrade(const http::RequestHead& r) noexcept {
  UpgradeVerdict v;
  const int n = r.header_count;
  bool any_upgrade = false;
  for (int i = 0; i < n && !any_upgrade; ++i) {
    any_upgrade = http::EqualsIgnoreCase(r.headers[i].name, "upgrade");
  }
  if (!any_upgrade) return v;
  if (!AnyListHas(r.headers, n, "upgrade", "websocket")) {
    v.kind = UpgradeKind::kOther;
    return v;
  }
  v.kind = UpgradeKind::kWebSocket;
  bool repeated = false;
  const std::string_view key = OnlyField(r.headers, n, "sec-websocket-key", &repeated);
  const bool key_ok = !repeated && IsKey(key);
  const std::string_view version = OnlyField(r.headers, n, "sec-websocket-version", &repeated);
  const bool version_ok = !repeated && version == "13";
  if (!AnyListHas(r.headers, n, "connection", "upgrade")) {
    v.rule = WebSocketRule::kConnection;
  } else if (r.method != http::Method::kGet) {
    v.rule = WebSocketRule::kMethod;
  } else if (r.version_minor != 1) {
    v.rule = WebSocketRule::kHttpVersion;
  } else if (r.body != http::BodyKind::kNone) {
    v.rule = WebSocketRule::kBody;
  } else if (!key_ok) {
    v.rule = WebSocketRule::kKey;
  } else if (!version_ok) {
    v.rule = WebSocketRule::kVersion;
  }
  v.key = key;
  return v;
}

namespace {

// Each rule's token, sentence and status, in WebSocketRule's order: one row
// a rule, so a new rule cannot have a token without its sentence. 426 for a
// version the gateway does not speak (§4.4), 400 for every other rule.
struct RuleRow {
  std::string_view token;
  std::string_view text;
  uint16_t status;
};
constexpr RuleRow kRuleRows[] = {
    {"", "", 400},  // kNone
    {"connection", "Upgrade: websocket without Connection: upgrade", 400},
    {"method", "a WebSocket upgrade is a GET", 400},
    {"http_version", "a WebSocket upgrade is HTTP/1.1", 400},
    {"body", "a WebSocket upgrade has no body", 400},
    {"key", "Sec-WebSocket-Key must be one base64 value of 16 bytes", 400},
    {"version", "Sec-WebSocket-Version must be 13", 426},
};
static_assert(std::size(kRuleRows) == static_cast<size_t>(WebSocketRule::kVersion) + 1,
              "one row for each WebSocketRule");

const RuleRow& RowOf(WebSocketRule rule) noexcept {
  const size_t i = static_cast<size_t>(rule);
  return i < std::size(kRuleRows) ? kRuleRows[i] : kRuleRows[0];
}

}  // namespace

std::string_view WebSocketRuleToken(WebSocketRule rule) noexcept { return RowOf(rule).token; }

std::string_view WebSocketRuleText(WebSocketRule rule) noexcept { return RowOf(rule).text; }

uint16_t WebSocketRuleStatus(WebSocketRule rule) noexcept { return RowOf(rule).status; }

void WebSocketAccept(std::string_view key, char* out) noexcept {
  static_assert(kAcceptSize == tls::kSha1Base64Size);
  tls::Sha1Base64(key, kGuid, out);
}

UpgradeAnswerRule JudgeUpgradeAnswer(const http::ResponseHead& r,
                                     std::string_view expected_accept) noexcept {
  const int n = r.header_count;
  bool repeated = false;
  const std::string_view upgrade = OnlyField(r.headers, n, "upgrade", &repeated);
  if (repeated || !http::EqualsIgnoreCase(upgrade, "websocket")) return UpgradeAnswerRule::kUpgrade;
  if (!AnyListHas(r.headers, n, "connection", "upgrade")) return UpgradeAnswerRule::kConnection;
  const std::string_view accept = OnlyField(r.headers, n, "sec-websocket-accept", &repeated);
  if (repeated || accept != expected_accept) return UpgradeAnswerRule::kAccept;
  return UpgradeAnswerRule::kNone;
}

std::string_view UpgradeAnswerText(UpgradeAnswerRule rule) noexcept {
  switch (rule) {
    case UpgradeAnswerRule::kNone:
      return "";
    case UpgradeAnswerRule::kUpgrade:
      return "the upstream's 101 does not say Upgrade: websocket";
    case UpgradeAnswerRule::kConnection:
      return "the upstream's 101 does not say Connection: upgrade";
    case UpgradeAnswerRule::kAccept:
      return "the upstream's Sec-WebSocket-Accept does not match the key (RFC 6455 §4.1)";
  }
  return "";
}

size_t WriteSwitchingHead(const http::ResponseHead& r, const HopByHop& hop_by_hop,
                          std::string_view trace_id, char* dst, size_t cap) noexcept {
  Writer w(dst, cap);
  w.S("HTTP/1.1 101 ").S(r.reason.empty() ? std::string_view("Switching Protocols") : r.reason);
  w.S("\r\n");
  for (int i = 0; i < r.header_count; ++i) {
    const http::Header& h = r.headers[i];
    if (hop_by_hop(i) || http::EqualsIgnoreCase(h.name, "x-trace-id")) continue;
    w.S(h.name).S(": ").S(h.value).S("\r\n");
  }
  w.S("connection: upgrade\r\nupgrade: websocket\r\nx-trace-id: ").S(trace_id).S("\r\n\r\n");
  return w.overflow() ? 0 : w.size();
}

}  // namespace hms::proxy
