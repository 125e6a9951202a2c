// The exchange: one request and its answer, between the downstream that
// carries it (Downstream, downstream.h) and, per attempt, the upstream leg
// that carries that attempt (UpstreamLeg, upstream_leg.h). Its State says
// what it is doing; the flags beside it are facts about the request (its
// body done, replayable, retryable), not states. The body forwarded so far,
// kept for a retry, is the exchange's own replay queue (at most kReplayMax).
//
// Owned by its Client in one core's slab, touched by that core's thread only.
#pragma once

#include <cstddef>
#include <cstdint>

#include "hms/common/check.h"
#include "hms/config/snapshot.h"
#include "hms/core/block_pool.h"
#include "hms/core/clock.h"
#include "hms/core/timer_wheel.h"
#include "hms/http/parser.h"
#include "hms/obs/trace.h"
#include "hms/policy/breaker.h"
#include "hms/policy/rate_limit.h"
#include "src/proxy/connection.h"
#include "src/proxy/tunnel.h"

namespace hms::proxy {

// Request bodies up to this size are kept while they stream upstream, so a
// failed attempt can be retried (docs/resilience.md); a larger body is not
// retried once its first bytes left.
inline constexpr size_t kReplayMax = 64 * 1024;

// A snapshot as seen by one core: the core's one reference plus the count of
// its exchanges still using it.
struct SnapshotHold {
  config::Snapshot* snapshot = nullptr;
  uint32_t inflight = 0;
};

// What an exchange is doing (docs/engine.md "Exchanges"):
//
//   kIdle, kDone ──Begin──▶ kAdmitting     a head arrived: route, stamps, upstream head
//   kAdmitting, an attempt,
//   kBackingOff ──Attempt──▶ kConnecting   an upstream connection is opened (and its
//                                          mTLS handshake run) for the attempt (a
//                                          transparent retry goes from one attempt to
//                                          the next)
//   kConnecting ──Connected──▶ kSending    the connection is usable (at once for a
//                                          pooled one): the request goes out
//   kSending ──RequestSent──▶ kAwaitingHead   all of it went to the kernel
//   an attempt ──BackOff──▶ kBackingOff    a policy retry waits for its backoff
//   an attempt ──HeadForwarded──▶ kStreaming   the upstream's head went to the client
//                                          (an early answer may come while sending)
//   kAdmitting, an attempt,
//   kBackingOff ──Answer──▶ kAnswered      a local answer from the fault table
//   any of them ──End──▶ kDone              accounted for, its hold let go
//
// "An attempt" is any of kConnecting, kSending, kAwaitingHead (attempting()).
enum class ExchangeState : uint8_t {
  kIdle, kAdmitting, kConnecting, kSending, kAwaitingHead, kBackingOff, kStreaming, kAnswered,
  kDone
};

// A state as one bit of a set of states (the transitions' "from" sets).
constexpr uint16_t StateBit(ExchangeState s) noexcept {
  return static_cast<uint16_t>(1u << static_cast<uint8_t>(s));
}

// What an exchange knows about its request and answer: plain values, reset
// at once by Exchange::Reset (the replay queue beside them is not copyable).
struct ExchangeFacts {
  SnapshotHold* hold = nullptr;
  const config::Route* route = nullptr;
  const config::Cluster* cluster = nullptr;
  uint32_t route_key = 0;
  http::Method method = http::Method::kOther;
  uint8_t version_minor = 1;
  bool client_keep_alive = true;
  // Request body still to forward.
  http::BodyKind req_body = http::BodyKind::kNone;
  uint64_t req_remaining = 0;
  http::ChunkedDecoder req_chunks;
  bool req_done = false;
  // Every body byte forwarded so far is kept in the replay queue (always true
  // without a body): a retry can send the request again.
  bool replayable = true;
  bool retryable = false;      // idempotent method, or an Idempotency-Key
  // Deadlines and retries.
  core::Instant deadline = 0;  // the route's timeout (or the caller's, if shorter)
  bool caller_deadline = false;  // the deadline is the caller's x-hms-timeout-ms, not the route's
  bool per_try_bound = false;  // the running attempt's timer is its per-try timeout
  uint8_t retries_done = 0;    // policy retries made (not counting transparent ones)
  uint32_t timeout_field = 0;  // offset in `head` of the x-hms-timeout-ms value
  // gRPC (grpc_call.cc): the request's content-type is application/grpc;
  // where its grpc-timeout value is in `head` (0: none); the grpc-status of
  // a trailers-only answer being judged for a retry.
  bool grpc = false;
  uint32_t grpc_timeout_field = 0;
  uint32_t grpc_status = 0;
  // The status of an upstream answer being judged for a retry (0: none).
  uint16_t judged_status = 0;
  // For the access log.
  uint64_t bytes_in = 0;       // request head and body bytes consumed
  uint64_t bytes_out = 0;      // response bytes queued to the client
  char method_text[12];        // as sent (truncated)
  uint8_t method_len = 0;
  char reason[32];             // x-hms-reason of a local answer ("" for upstream answers)
  uint8_t reason_len = 0;
  // Request fields not forwarded for their names (underscores_in_headers),
  // and the first one's name (truncated), for the access log.
  uint8_t dropped_headers = 0;
  uint8_t dropped_name_len = 0;
  char dropped_name[48];
  // Upstream side.
  uint32_t upstream = kNone;
  core::Block* head = nullptr;  // the upstream request head, kept for a retry on a stale pooled connection
  uint8_t attempts = 0;
  uint32_t endpoint_index = 0;
  core::Instant attempt_start = 0;  // the current attempt's attach (upstream-side duration)
  // Response.
  http::BodyKind resp_body = http::BodyKind::kNone;
  uint64_t resp_remaining = 0;
  http::ChunkedDecoder resp_chunks;
  bool dechunk = false;        // upstream sends chunked, client speaks HTTP/1.0
  bool resp_keep_alive = true;
  uint16_t status = 0;
  core::Instant start = 0;
  obs::TraceContext trace{};
  // A sampled exchange records a span at its end (recorder.h); the Host it
  // came with is kept for it, the rest is in the exchange already.
  bool sampled = false;
  uint8_t host_len = 0;
  char host[64];
  // Stamps.
  policy::Breaker* breaker = nullptr;  // the service's, when the attempt was admitted
  bool probe = false;                  // this attempt is the half-open probe
  bool outcome_reported = false;       // the breaker heard this attempt's outcome
  bool rate_limited_route = false;     // the answer carries RateLimit-* fields
  policy::RateDecision rate{};
  // WebSocket (websocket.h, tunnel.h): the route admitted the request's
  // upgrade, the Sec-WebSocket-Accept its key calls for, and the tunnel
  // once the upstream's 101 went out (the exchange stays kStreaming).
  bool websocket = false;
  char ws_accept[28];
  Tunnel tunnel;
};

struct Exchange : ExchangeFacts {
  using State = ExchangeState;

  State state() const noexcept { return state_; }
  // Begun and not yet ended: the connection's current exchange.
  bool active() const noexcept { return state_ != State::kIdle && state_ != State::kDone; }
  // A byte of the answer went into the client's queue (the upstream's head,
  // or a local answer): no other answer can be given, no attempt made.
  bool response_started() const noexcept {
    return state_ == State::kStreaming || state_ == State::kAnswered;
  }
  // The upstream's head went to the client; its body follows.
  bool streaming() const noexcept { return state_ == State::kStreaming; }
  // Waiting for a retry: the exchange timer is the backoff.
  bool backing_off() const noexcept { return state_ == State::kBackingOff; }
  // On an upstream connection, before its head: connecting, sending or
  // awaiting the head.
  bool attempting() const noexcept { return (kAttempt & Bit(state_)) != 0; }

  // The transitions (the table above); any other is a bug and crashes.
  void Begin() noexcept { Move(kFromIdle, State::kAdmitting); }
  void Attempt() noexcept { Move(kFromWaiting, State::kConnecting); }
  void Connected() noexcept { Move(Bit(State::kConnecting), State::kSending); }
  void RequestSent() noexcept { Move(Bit(State::kSending), State::kAwaitingHead); }
  void BackOff() noexcept { Move(kAttempt, State::kBackingOff); }
  void HeadForwarded() noexcept { Move(kAttempt, State::kStreaming); }
  void Answer() noexcept { Move(kFromWaiting, State::kAnswered); }
  void End() noexcept { Move(kFromActive, State::kDone); }

  // Back to kIdle with every fact at its default; the replay queue's blocks go
  // back to `blocks`. A connection's next exchange starts from here.
  void Reset(core::BlockPool* blocks) noexcept {
    replay.Clear(blocks);
    static_cast<ExchangeFacts&>(*this) = ExchangeFacts{};
    state_ = State::kIdle;
  }

  // The request body forwarded so far, kept for a retry while `replayable`.
  core::ByteQueue replay;
  // The deadline (an attempt's share of it), then the backoff, then the
  // longest silence while the answer's body streams. Armed by the engine;
  // Reset leaves it (and the owner it names) alone.
  core::Timer timer;

 private:
  static constexpr uint16_t kFromIdle = StateBit(State::kIdle) | StateBit(State::kDone);
  static constexpr uint16_t kAttempt = StateBit(State::kConnecting) | StateBit(State::kSending) |
                                       StateBit(State::kAwaitingHead);
  static constexpr uint16_t kFromWaiting =
      StateBit(State::kAdmitting) | kAttempt | StateBit(State::kBackingOff);
  static constexpr uint16_t kFromActive = static_cast<uint16_t>(~kFromIdle);
  static constexpr uint16_t Bit(State s) noexcept { return StateBit(s); }
  void Move(uint16_t from, State to) noexcept {
    HMS_CHECK((from & StateBit(state_)) != 0);
    state_ = to;
  }

  State state_ = State::kIdle;
};

}  // namespace hms::proxy
