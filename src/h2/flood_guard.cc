#include "hms/h2/flood_guard.h"

namespace hms::h2 {

FloodGuard::FloodGuard(const Limits& limits) noexcept
    : resets_(limits.resets.burst, uint64_t{limits.resets.per_second} * 1000),
      control_(limits.control_frames.burst, uint64_t{limits.control_frames.per_second} * 1000),
      max_empty_(limits.max_empty_frames) {}

Flood FloodGuard::OnFrame(uint8_t type, uint8_t flags, size_t length, core::Instant now) noexcept {
  switch (type) {
    case kFrameRstStream:
      return resets_.TryTake(now) ? Flood::kNone : Flood::kResets;
    // Acknowledgements count too: the legitimate ones answer the one SETTINGS
    // and the rare PING this side sends.
    case kFrameSettings:
    case kFramePing:
    case kFramePriority:
      return control_.TryTake(now) ? Flood::kNone : Flood::kControlFrames;
    case kFrameData:
    case kFrameHeaders:
    case kFrameContinuation: {
      // Empty means: nothing to pass on and no end to act on (RFC 9113 allows
      // such frames, which is why a run of them is the attack).
      const uint8_t ends = type == kFrameData ? kFlagEndStream : kFlagEndHeaders;
      if (length > 0 || (flags & ends) != 0) {
        empty_run_ = 0;
        return Flood::kNone;
      }
      return ++empty_run_ > max_empty_ ? Flood::kEmptyFrames : Flood::kNone;
    }
    default:
      return Flood::kNone;  // WINDOW_UPDATE, GOAWAY, unknown extension frames
  }
}

Flood FloodGuard::OnProvokedReset(core::Instant now) noexcept {
  return resets_.TryTake(now) ? Flood::kNone : Flood::kResets;
}

}  // namespace hms::h2
