// gRPC over the gateway (docs/http2.md "gRPC"): what the engine needs to tell
// a gRPC call from other requests, honour and propagate its deadline, answer
// it in its own terms when the gateway refuses it, and read the upstream's
// status for retries (policy/retry.h). The wire format is gRPC's "PROTOCOL-HTTP2"
// document (grpc/grpc doc/PROTOCOL-HTTP2.md); status codes are
// grpc/grpc doc/statuscodes.md.
//
// Pure functions over caller buffers: any thread may call them; nothing
// allocates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "hms/core/clock.h"
#include "hms/http/parser.h"
#include "hms/policy/fault.h"

namespace hms::h2 {

enum class GrpcStatus : uint8_t {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};
inline constexpr uint8_t kGrpcStatusCount = 17;

// The canonical name ("UNAVAILABLE"), as gRPC's service configs spell them.
std::string_view GrpcStatusName(GrpcStatus s) noexcept;
// The status a name stands for, case-insensitive, '-' read as '_'
// ("unavailable", "DEADLINE_EXCEEDED", "resource-exhausted"). False: none.
bool ParseGrpcStatusName(std::string_view name, GrpcStatus* out) noexcept;
// A grpc-status value (1*DIGIT, 0..16; an unknown code is read as UNKNOWN,
// as gRPC clients do). False when it is not digits.
bool ParseGrpcStatus(std::string_view value, GrpcStatus* out) noexcept;

// A request is a gRPC call when its content-type is application/grpc,
// alone or followed by '+' (a codec: +proto, +json) or ';' (parameters),
// case-insensitive.
bool IsGrpcContentType(std::string_view content_type) noexcept;

// grpc-timeout: 1*8DIGIT followed by one unit, H M S m u n (hours, minutes,
// seconds, milliseconds, microseconds, nanoseconds). The duration in
// nanoseconds, saturated at the largest Instant. False when malformed (the
// call is then refused, or the field ignored: the engine's choice).
bool ParseGrpcTimeout(std::string_view value, core::Instant* duration) noexcept;
// The remaining time toward the upstream, in the finest unit whose value
// fits 8 digits (rounded down, so the upstream never waits longer than the
// caller will). Writes at most kGrpcTimeoutBytes; returns the length.
inline constexpr size_t kGrpcTimeoutBytes = 9;
size_t FormatGrpcTimeout(core::Instant remaining, char* out) noexcept;

// The status a fault is answered with when the gateway answers a gRPC call
// itself (docs/http2.md has the table, with why for each row).
GrpcStatus GrpcStatusFor(policy::Fault f) noexcept;

// grpc-message: percent-encoded UTF-8 (bytes outside %x20-%x7E, and '%'
// itself, as %XX). Writes at most `cap` bytes, never half an escape;
// returns the length.
size_t PercentEncodeGrpcMessage(std::string_view message, char* out, size_t cap) noexcept;

// A gRPC answer of the gateway's own: HTTP 200, trailers-only (one HEADERS
// frame with END_STREAM), carrying grpc-status, the percent-encoded message
// and x-hms-reason, which names the rule as every local answer does.
inline constexpr uint16_t kGrpcFieldCount = 4;
inline constexpr size_t kGrpcAnswerBytes = 512;
struct GrpcAnswerBuffer {
  char status[4];
  char message[kGrpcAnswerBytes];
};
// Fills `fields` (kGrpcFieldCount of them, views into `answer` and `buf`)
// for `answer` (AnswerFor's row for `f`, with its detail); returns how many.
uint16_t GrpcAnswerFields(policy::Fault f, const policy::Answer& answer, GrpcAnswerBuffer* buf,
                          http::Header* fields) noexcept;

}  // namespace hms::h2
