// RESP2, the Redis protocol: a request writer and an incremental reply reader
// (docs/resilience.md, "Fleet scope"). Pure functions over caller buffers:
// nothing here allocates, blocks or keeps state between calls, so any thread
// may call them; the Redis client (redis_client.h) owns the buffers.
//
// Why not hiredis's redisReader: it mallocs a reply object per reply (and per
// array element) and grows its own sds buffer on every feed, which the data
// path's no-allocation rule forbids; the gateway reads only five reply types
// from two commands, which this reader parses in place, as the HTTP parser
// does (H2O/picohttpparser's shape: > 0 consumed, kPartial, kError).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace hms::fleet {

inline constexpr int kPartial = -2;  // a reply has started but is not complete
inline constexpr int kError = -1;    // the bytes are not RESP2 (or exceed a bound)

// Bounds on what the reader accepts: the gateway's replies are a few dozen
// bytes, so anything near these is a broken or hostile peer.
inline constexpr int64_t kMaxBulkBytes = 1 << 20;
inline constexpr int64_t kMaxArrayCount = 1 << 16;
inline constexpr int kMaxDepth = 8;
// Top-level array elements kept in a Reply; further ones are consumed and
// counted, not stored.
inline constexpr uint32_t kMaxElements = 8;

enum class ReplyType : uint8_t { kSimple, kError, kInteger, kBulk, kNil, kArray };

// One scalar element of a reply: a view into the reader's input (valid while
// those bytes are), or an integer. A nested array keeps only its count.
struct Element {
  ReplyType type = ReplyType::kNil;
  int64_t integer = 0;    // kInteger; kArray: element count
  std::string_view text;  // kSimple, kError, kBulk
};

struct Reply {
  Element top;                     // for kArray: top.integer is the count
  Element elements[kMaxElements];  // the first min(count, kMaxElements)
  uint32_t stored = 0;
};

// Parses one complete reply at the start of `in`. Returns the bytes it spans
// (> 0), kPartial when `in` holds only a prefix of one, or kError. Views in
// `out` point into `in`. A nil array (`*-1`) reads as kNil.
int ParseReply(std::string_view in, Reply* out) noexcept;

// Writes one command as a RESP2 array of bulk strings into `out`. Returns the
// bytes written, or 0 when `out` is too small (nothing usable is written).
// An Arg is either text or an integer, formatted in place.
struct Arg {
  std::string_view text;
  int64_t integer = 0;
  bool is_integer = false;
  constexpr Arg() noexcept = default;
  constexpr Arg(std::string_view t) noexcept : text(t) {}  // NOLINT: implicit by design
  constexpr Arg(const char* t) noexcept : text(t) {}       // NOLINT: implicit by design
  Arg(const std::string& t) noexcept : text(t) {}          // NOLINT: implicit by design
  static constexpr Arg Int(int64_t v) noexcept {
    Arg a;
    a.integer = v;
    a.is_integer = true;
    return a;
  }
};
size_t WriteCommand(std::span<const Arg> args, std::span<char> out) noexcept;

}  // namespace hms::fleet
