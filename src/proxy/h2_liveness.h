// When an HTTP/2 upstream connection's one timer has something to do
// (docs/http2.md "HTTP/2 to upstreams", "Liveness"): a liveness PING after
// `interval` without a frame from the upstream, the connection's end when
// neither that PING's ACK nor any other frame came for `timeout` after it
// (a peer that vanished without a FIN or RST: its open streams fail as a
// reset instead of waiting for their deadlines), and the close of a
// connection left with no stream for the idle pool's time. A pure function
// of the connection's times: the caller acts on the verdict, then asks
// again for the next deadline, so one timer of the core's wheel per
// connection serves all three and nothing is re-armed when a frame arrives
// (the timer finds the time moved on).
//
// Called by the core that owns the connection (h2_up.cc); no state.
#pragma once

#include <algorithm>
#include <cstdint>

#include "hms/core/clock.h"

namespace hms::proxy {

// A connection's times (core::Instant, 0 = none) and its service's settings.
struct H2LivenessInput {
  core::Instant now = 0;
  // The upstream's last bytes (or the connect); 0 before it is usable.
  core::Instant last_frame = 0;
  // The unanswered liveness PING; 0 when none.
  core::Instant ping_sent = 0;
  // When its last stream left; 0 while it carries any.
  core::Instant idle_since = 0;
  uint64_t interval_ms = 0;  // 0: no liveness PINGs (connection_keepalive: off)
  uint64_t timeout_ms = 0;
  uint64_t idle_ms = 0;  // an unused connection's life
};

enum class H2LivenessDue : uint8_t {
  kWait,  // nothing yet: arm the timer for `after_ms` (0: leave it unarmed)
  kPing,  // send a liveness PING, then ask again
  kDead,  // the PING went unanswered for `timeout`: close the connection
  kIdle,  // no stream for the idle time: close the connection
};

struct H2LivenessVerdict {
  H2LivenessDue due = H2LivenessDue::kWait;
  uint64_t after_ms = 0;
};

inline H2LivenessVerdict DecideH2Liveness(const H2LivenessInput& in) noexcept {
  constexpr uint64_t kNever = ~0ull;
  const bool pinging = in.interval_ms > 0 && in.last_frame != 0;
  // The unanswered PING first: a dead peer is counted as such even when
  // the connection would have gone idle at the same time. Any frame after
  // the PING extends its timeout (as Envoy's connection_keepalive): a peer
  // still sending DATA is alive, its ACK only queued behind them.
  const core::Instant dead_at = pinging && in.ping_sent != 0
                                    ? std::max(in.ping_sent, in.last_frame) +
                                          core::Millis(in.timeout_ms)
                                    : kNever;
  const core::Instant idle_at =
      in.idle_since != 0 ? in.idle_since + core::Millis(in.idle_ms) : kNever;
  const core::Instant ping_at =
      pinging && in.ping_sent == 0 ? in.last_frame + core::Millis(in.interval_ms) : kNever;
  if (in.now >= dead_at) return {H2LivenessDue::kDead, 0};
  if (in.now >= idle_at) return {H2LivenessDue::kIdle, 0};
  if (in.now >= ping_at) return {H2LivenessDue::kPing, 0};
  const core::Instant next = std::min({dead_at, idle_at, ping_at});
  if (next == kNever) return {H2LivenessDue::kWait, 0};
  // Rounded up: the timer never fires before the deadline it was armed for.
  return {H2LivenessDue::kWait, (next - in.now + core::Millis(1) - 1) / core::Millis(1)};
}

}  // namespace hms::proxy
