#include "hms/h2/grpc.h"

#include <charconv>
#include <iterator>
#include <limits>

namespace hms::h2 {

namespace {

using policy::Fault;

constexpr std::string_view kNames[kGrpcStatusCount] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

// The status of each fault.h row, in its order (static_assert below). The
// choices follow gRPC's own mapping of HTTP answers (doc/http-grpc-status-
// mapping.md: 404 UNIMPLEMENTED, 429/502/503/504 UNAVAILABLE, 401
// UNAUTHENTICATED, 403 PERMISSION_DENIED) where the gateway's row is such an
// answer, and its status-code guide otherwise. RESOURCE_EXHAUSTED is kept for
// limits of the caller's own making (rate limit, sizes), so a client's retry
// policy on UNAVAILABLE never hammers a rate limit.
constexpr GrpcStatus kByFault[] = {
    GrpcStatus::kOk,                 // kNone
    GrpcStatus::kUnavailable,        // kConnect
    GrpcStatus::kUnavailable,        // kUpstreamReset: another connection may answer
    GrpcStatus::kDeadlineExceeded,   // kServiceTimeout
    GrpcStatus::kDeadlineExceeded,   // kPerTryTimeout
    GrpcStatus::kUnavailable,        // kGatewayStatus: 502/503/504
    GrpcStatus::kUnknown,            // kServerError: another 5xx, no grpc-status
    GrpcStatus::kDeadlineExceeded,   // kCallerDeadline: the caller's grpc-timeout
    GrpcStatus::kCancelled,          // kClientGone
    GrpcStatus::kDeadlineExceeded,   // kClientBodyStalled
    GrpcStatus::kUnavailable,        // kRefused (a class; its refinements answer)
    GrpcStatus::kInvalidArgument,    // kBodyRefused (a class)
    GrpcStatus::kInternal,           // kLocal
    GrpcStatus::kInternal,           // kMalformedRequest: a broken framing, not an argument
    GrpcStatus::kDeadlineExceeded,   // kHeaderTimeout
    GrpcStatus::kUnavailable,        // kPlainHttpToTls
    GrpcStatus::kInvalidArgument,    // kBadPath
    GrpcStatus::kUnimplemented,      // kNoService: 404
    GrpcStatus::kUnimplemented,      // kNoRoute: 404, "no such method here"
    GrpcStatus::kUnimplemented,      // kMethodNotAllowed
    GrpcStatus::kPermissionDenied,   // kIdentityNotAllowed: 403
    GrpcStatus::kResourceExhausted,  // kBodyTooLarge: gRPC's "message larger than max"
    GrpcStatus::kInternal,           // kBadChunk
    GrpcStatus::kInternal,           // kBodyIncomplete
    GrpcStatus::kInvalidArgument,    // kTooManyConnectionOptions
    GrpcStatus::kInvalidArgument,    // kUnderscoreInHeader
    GrpcStatus::kUnauthenticated,    // kJwtRejected
    GrpcStatus::kResourceExhausted,  // kRateLimited
    GrpcStatus::kUnavailable,        // kCircuitOpen
    GrpcStatus::kUnavailable,        // kNoEndpoints
    GrpcStatus::kResourceExhausted,  // kHeaderTooLarge: metadata over the limit
    GrpcStatus::kUnavailable,        // kConnectNoSocket
    GrpcStatus::kInternal,           // kUpstreamBadResponse: a broken server
    GrpcStatus::kInternal,           // kUpstreamHeaderTooLarge
    GrpcStatus::kUnavailable,        // kUpstreamTlsFailed: a connect failure
    GrpcStatus::kUnavailable,        // kUpstreamIdentityMismatch: a connect failure
    GrpcStatus::kUnavailable,        // kNoMeshIdentity: a connect failure
    GrpcStatus::kUnavailable,        // kLocalServiceDown
    GrpcStatus::kInvalidArgument,    // kBadWebSocketUpgrade (HTTP/1.1 only)
    GrpcStatus::kPermissionDenied,   // kWebSocketOff: 403
    GrpcStatus::kInternal,           // kUpstreamBadUpgrade: a broken server
    GrpcStatus::kUnavailable,        // kFleetUnavailable: 503, the fleet limit's Redis is away
};
static_assert(std::size(kByFault) == static_cast<size_t>(Fault::kCount), "one status per Fault");

char Upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : c; }

}  // namespace

std::string_view GrpcStatusName(GrpcStatus s) noexcept {
  const auto i = static_cast<size_t>(s);
  return i < kGrpcStatusCount ? kNames[i] : "UNKNOWN";
}

bool ParseGrpcStatusName(std::string_view name, GrpcStatus* out) noexcept {
  for (uint8_t i = 0; i < kGrpcStatusCount; ++i) {
    const std::string_view n = kNames[i];
    if (n.size() != name.size()) continue;
    bool same = true;
    for (size_t k = 0; k < n.size() && same; ++k) {
      const char c = name[k] == '-' ? '_' : Upper(name[k]);
      same = c == n[k];
    }
    if (same) {
      *out = static_cast<GrpcStatus>(i);
      return true;
    }
  }
  return false;
}

bool ParseGrpcStatus(std::string_view value, GrpcStatus* out) noexcept {
  if (value.empty() || value.size() > 10) return false;
  uint64_t v = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = v < kGrpcStatusCount ? static_cast<GrpcStatus>(v) : GrpcStatus::kUnknown;
  return true;
}

bool IsGrpcContentType(std::string_view ct) noexcept {
  constexpr std::string_view kType = "application/grpc";
  if (ct.size() < kType.size() || !http::EqualsIgnoreCase(ct.substr(0, kType.size()), kType)) {
    return false;
  }
  return ct.size() == kType.size() || ct[kType.size()] == '+' || ct[kType.size()] == ';';
}

namespace {

// Nanoseconds per unit, in the order FormatGrpcTimeout tries them.
struct Unit {
  char name;
  uint64_t ns;
};
constexpr Unit kUnits[] = {
    {'n', 1},
    {'u', 1'000},
    {'m', 1'000'000},
    {'S', 1'000'000'000},
    {'M', 60'000'000'000},
    {'H', 3'600'000'000'000},
};
constexpr uint64_t kMaxTimeoutValue = 99'999'999;  // 8 digits

}  // namespace

bool ParseGrpcTimeout(std::string_view value, core::Instant* duration) noexcept {
  if (value.size() < 2 || value.size() > 9) return false;
  uint64_t v = 0;
  for (size_t i = 0; i + 1 < value.size(); ++i) {
    const char c = value[i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  for (const Unit& u : kUnits) {
    if (u.name != value.back()) continue;
    // 99999999 H is about 3.6e20 ns: above 2^64, so saturate.
    constexpr uint64_t kMax = std::numeric_limits<core::Instant>::max();
    *duration = v > kMax / u.ns ? kMax : v * u.ns;
    return true;
  }
  return false;
}

size_t FormatGrpcTimeout(core::Instant remaining, char* out) noexcept {
  const Unit* unit = &kUnits[std::size(kUnits) - 1];
  for (const Unit& u : kUnits) {
    if (remaining / u.ns <= kMaxTimeoutValue) {
      unit = &u;
      break;
    }
  }
  uint64_t v = remaining / unit->ns;
  if (v > kMaxTimeoutValue) v = kMaxTimeoutValue;
  char* end = std::to_chars(out, out + kGrpcTimeoutBytes - 1, v).ptr;  // 8 digits fit
  *end = unit->name;
  return static_cast<size_t>(end - out) + 1;
}

GrpcStatus GrpcStatusFor(policy::Fault f) noexcept {
  const auto i = static_cast<size_t>(f);
  return i < std::size(kByFault) ? kByFault[i] : GrpcStatus::kUnknown;
}

size_t PercentEncodeGrpcMessage(std::string_view message, char* out, size_t cap) noexcept {
  static constexpr char kHex[] = "0123456789ABCDEF";
  size_t n = 0;
  for (char ch : message) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c <= 0x7e && c != '%') {
      if (n + 1 > cap) break;
      out[n++] = ch;
    } else {
      if (n + 3 > cap) break;
      out[n++] = '%';
      out[n++] = kHex[c >> 4];
      out[n++] = kHex[c & 0xf];
    }
  }
  return n;
}

uint16_t GrpcAnswerFields(policy::Fault f, const policy::Answer& answer, GrpcAnswerBuffer* buf,
                          http::Header* fields) noexcept {
  const auto code = static_cast<unsigned>(GrpcStatusFor(f));
  size_t s = 0;
  if (code >= 10) buf->status[s++] = static_cast<char>('0' + code / 10);
  buf->status[s++] = static_cast<char>('0' + code % 10);
  const size_t m = PercentEncodeGrpcMessage(answer.message, buf->message, sizeof buf->message);
  fields[0] = {"content-type", "application/grpc"};
  fields[1] = {"grpc-status", std::string_view(buf->status, s)};
  fields[2] = {"grpc-message", std::string_view(buf->message, m)};
  fields[3] = {"x-hms-reason", answer.reason};
  return kGrpcFieldCount;
}

}  // namespace hms::h2
