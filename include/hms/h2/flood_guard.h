// The floods of HTTP/2 that nghttp2 leaves to its user, judged frame by
// frame from the frame headers alone (docs/http2.md "Floods"): frames that
// cost the gateway work (and often an answer) but carry no request. Each
// session has one guard; time is the caller's (the core's clock, or a test's).
//
// What nghttp2 guards itself (CONTINUATION runs, unread acknowledgements,
// SETTINGS entries) is configured in session.cc from the same Limits.
// One owner thread; no allocation.
#pragma once

#include <cstddef>
#include <cstdint>

#include "hms/core/clock.h"
#include "hms/h2/limits.h"
#include "hms/policy/token_bucket.h"

namespace hms::h2 {

enum class Flood : uint8_t {
  kNone = 0,
  kResets,         // RST_STREAM received or provoked faster than Limits::resets
  kControlFrames,  // SETTINGS, PING, PRIORITY faster than Limits::control_frames
  kEmptyFrames,    // more than Limits::max_empty_frames empty frames in a row
};

// Frame types and flags of RFC 9113 §6, as they appear on the wire.
inline constexpr uint8_t kFrameData = 0x0;
inline constexpr uint8_t kFrameHeaders = 0x1;
inline constexpr uint8_t kFramePriority = 0x2;
inline constexpr uint8_t kFrameRstStream = 0x3;
inline constexpr uint8_t kFrameSettings = 0x4;
inline constexpr uint8_t kFramePing = 0x6;
inline constexpr uint8_t kFrameContinuation = 0x9;
inline constexpr uint8_t kFlagEndStream = 0x1;
inline constexpr uint8_t kFlagEndHeaders = 0x4;

class FloodGuard {
 public:
  explicit FloodGuard(const Limits& limits) noexcept;

  // A frame header from the peer, at `now`.
  Flood OnFrame(uint8_t type, uint8_t flags, size_t length, core::Instant now) noexcept;
  // A stream reset the peer provoked (a refused or malformed stream: the
  // RST_STREAM this side sends), at `now`.
  Flood OnProvokedReset(core::Instant now) noexcept;

 private:
  policy::TokenBucket resets_;
  policy::TokenBucket control_;
  uint32_t max_empty_;
  uint32_t empty_run_ = 0;
};

}  // namespace hms::h2
