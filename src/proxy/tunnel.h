// The WebSocket tunnel of an exchange (docs/engine.md "WebSocket"): once the
// upstream's 101 went to the client, the client's and the upstream's
// connections carry bytes both ways, each direction on its own, until both
// have ended. The worker's side of it is tunnel.cc; this is its state and
// its one decision.
//
// Each direction:
//
//   kOpen ──its sender's FIN (or TLS close_notify)──▶ kDraining
//   kDraining ──every byte it carried was sent on, and the FIN passed on
//               (shutdown(SHUT_WR), after a close_notify on TLS)──▶ kShut
//
// The tunnel ends when both are kShut; at once on a reset, a failed send,
// the idle timeout or the drain deadline. Owned by its Exchange, touched by
// that core's thread only.
#pragma once

#include <cstdint>

#include "hms/core/clock.h"

namespace hms::proxy {

enum class TunnelHalf : uint8_t { kOpen, kDraining, kShut };

struct Tunnel {
  bool active = false;                         // the 101 went to the client: bytes flow
  TunnelHalf to_upstream = TunnelHalf::kOpen;  // the client's bytes
  TunnelHalf to_client = TunnelHalf::kOpen;    // the upstream's bytes
  bool client_notified = false;                // our close_notify is queued toward a TLS client
  bool upstream_notified = false;              // ... toward an mTLS upstream
  uint32_t idle_ms = 0;      // the longest silence (both ways) before it is closed
  core::Instant opened = 0;  // when the 101 went out
  bool done() const noexcept {
    return to_upstream == TunnelHalf::kShut && to_client == TunnelHalf::kShut;
  }
};

// The next state of a direction: a draining one is shut once nothing it
// carried waits on either side (`input_left`: its sender's bytes not yet
// taken; `queued`: bytes toward its receiver not yet sent).
constexpr TunnelHalf NextHalf(TunnelHalf h, bool input_left, bool queued) noexcept {
  return h == TunnelHalf::kDraining && !input_left && !queued ? TunnelHalf::kShut : h;
}

}  // namespace hms::proxy
