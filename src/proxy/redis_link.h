// One core's connection to the fleet's Redis (docs/resilience.md "Fleet
// scope"): a TCP connection (optionally TLS, through the core's wolfSSL
// pump) on the core's own io_uring, carrying the sans-IO fleet::RedisClient,
// and the fleet-scope requests the core parks until Redis answers their
// lease call. The link's states and what moves it between them are the pure
// table below (unit-tested without sockets); the I/O is the worker's
// (redis_link.cc: one completion switch).
//
//   kOff ──Start──▶ kConnecting ──Connected──▶ kTls ──TlsDone──▶ kReady
//                                    └───────(plain)──────────────▶ kReady
//   kConnecting, kTls, kReady ──Failed──▶ kBackoff ──BackoffOver──▶ kConnecting
//
// Owned by its Worker and touched by that core's thread only. Every buffer
// is allocated when the worker is made; nothing allocates per request.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "hms/core/block_pool.h"
#include "hms/core/clock.h"
#include "hms/core/timer_wheel.h"
#include "hms/fleet/redis_client.h"
#include "hms/policy/fleet_fallback.h"
#include "hms/tls/session.h"

namespace hms::proxy {

enum class LinkState : uint8_t { kOff, kConnecting, kTls, kReady, kBackoff };
enum class LinkEvent : uint8_t {
  kStart,        // the core starts with a `redis:` config
  kConnected,    // the TCP connect completed
  kTlsDone,      // the TLS handshake with Redis completed
  kFailed,       // connect, handshake, I/O or the client failed (or timed out)
  kBackoffOver,  // the reconnect delay passed
};
// What `e` does in `s`; an event that means nothing there leaves it.
// `tls`: the link speaks TLS (kConnected leads to kTls, else to kReady).
LinkState NextLinkState(LinkState s, LinkEvent e, bool tls) noexcept;
std::string_view LinkStateName(LinkState s) noexcept;

// The delay before reconnect attempt `failures` (1 after the first failure):
// 50 ms doubled per failure up to 1 s, jittered over its upper half so a
// fleet's cores do not reconnect in step after Redis restarts.
uint64_t ReconnectDelayMs(uint32_t failures, uint64_t random) noexcept;

// Why a link last failed, as one number a gauge can carry to the admin
// thread: 0 none, kFailureErrno + errno for the socket, else a
// fleet::CallStatus + 1. RedisFailureText (engine.h) renders it.
inline constexpr uint64_t kFailureErrno = 1000;
inline uint64_t ErrnoFailure(int err) noexcept {
  return kFailureErrno + static_cast<uint64_t>(err);
}
inline uint64_t CallFailure(fleet::CallStatus s) noexcept { return static_cast<uint64_t>(s) + 1; }

// How a fleet-scope request is decided (admission.h's stamps).
enum class FleetMode : uint8_t {
  kRedis,    // by the core's lease (policy/lease.h): admit, refuse or park
  kGranted,  // a parked request Redis granted a token to
  kDenied,   // a parked request Redis had no token for (429)
  kLocal,    // fallback local_share: this gateway's share, in its own bucket
  kOpen,     // fallback fail_open
  kClosed,   // fallback fail_closed (503 rate_limit_unavailable)
};
// The fallback's mode for `f`.
FleetMode FallbackMode(policy::FleetFallback f) noexcept;

// What a parked request's connection carries into its second parse: Redis's
// answer for it (or that the fallback decides it).
enum class FleetPass : uint8_t { kNone, kGranted, kDenied, kFallback };

// A parked request: the client (its slot and generation, so one that left
// meanwhile is skipped) and the route it waits on.
struct ParkedRequest {
  uint32_t slot = 0;
  uint32_t gen = 0;
  uint32_t route = 0;  // index into the snapshot's routes, in `epoch`
};

struct RedisLink {
  LinkState state = LinkState::kOff;
  uint32_t gen = 0;  // bumped per connection: completions of an older one are ignored
  int fd = -1;
  uint32_t ops = 0;  // SQEs in flight, of every generation: a new socket waits for 0
  bool recv_armed = false;
  bool send_inflight = false;
  uint32_t failures = 0;  // connects in a row that failed (the backoff)
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  uint64_t timeout_ms = 200;
  std::unique_ptr<fleet::RedisClient> client;
  std::shared_ptr<const tls::ClientContext> tls_ctx;  // null: plain TCP
  std::unique_ptr<tls::Session> tls;
  core::ByteQueue out;  // what goes to the socket next (ciphertext with TLS)
  iovec iov[8];
  msghdr msg{};
  std::vector<char> rx;     // one recv's bytes
  std::vector<char> plain;  // TLS: one record's plaintext
  core::Timer timer;        // connect timeout, backoff, call deadlines, probes
  policy::RedisHealth health;
  policy::FleetFallback fallback = policy::FleetFallback::kLocalShare;
  uint32_t gateways = 1;
  // The parked requests, a FIFO ring of fixed capacity (redis.max_waiting).
  std::vector<ParkedRequest> parked;
  size_t parked_head = 0;
  size_t parked_count = 0;
  // Bumped when the core adopts a snapshot: route indexes of older lease
  // calls name other routes, so their answers are dropped.
  uint32_t epoch = 0;
  // Tokens each route's call in flight asked for, by route index.
  std::vector<uint32_t> asked;

  bool usable() const noexcept {
    return state == LinkState::kReady && client != nullptr &&
           client->state() != fleet::RedisClient::State::kFailed;
  }
};

}  // namespace hms::proxy
