// One core's connection to the fleet's Redis (docs/resilience.md "Fleet
// scope"): a TCP connection (optionally TLS, through the core's wolfSSL
// pump) on the core's own io_uring, carrying the sans-IO fleet::RedisClient,
// and the fleet-scope requests the core parks until Redis answers their
// lease call. The link's states and what moves it between them are the pure
// table below (unit-tested without sockets); the I/O is FleetLink's
// (redis_link.cc: one completion switch), on the core's ring, reached
// through the CoreContext it is given.
//
//   kOff ──Start──▶ kConnecting ──Connected──▶ kTls ──TlsDone──▶ kReady
//                                    └───────(plain)──────────────▶ kReady
//   kConnecting, kTls, kReady ──Failed──▶ kBackoff ──BackoffOver──▶ kConnecting
//
// Owned by its Worker and touched by that core's thread only. Every buffer
// is allocated before the core starts (FleetLink::Configure); nothing
// allocates per request.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "hms/config/snapshot.h"
#include "hms/core/block_pool.h"
#include "hms/core/clock.h"
#include "hms/core/timer_wheel.h"
#include "hms/fleet/redis_client.h"
#include "hms/policy/fleet_fallback.h"
#include "hms/policy/lease.h"
#include "hms/tls/session.h"
#include "src/proxy/core_context.h"

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

// What the fleet link asks of the side that owns the requests it parks (the
// core's exchanges), by the parked request's client slot. The link never
// reaches into the client slab itself.
class ParkedRequests {
 public:
  // Makes the request on `slot` wait for Redis's answer, its head kept for
  // a second parse, and gives the slot's generation in *gen. False when it
  // cannot wait (the fallback decides it then).
  virtual bool Park(uint32_t slot, uint32_t* gen) noexcept = 0;
  // The request parked on `slot` in generation `gen` still waits (its
  // client did not leave or move on meanwhile).
  virtual bool Waiting(uint32_t slot, uint32_t gen) const noexcept = 0;
  // It waits no more: parsed again this pass, decided by `pass` (kNone:
  // from scratch; kDenied answers 429 with Retry-After `retry_s`).
  virtual void Answer(uint32_t slot, FleetPass pass, uint32_t retry_s) noexcept = 0;

 protected:
  ~ParkedRequests() = default;
};

// One core's fleet-scope room: the Redis link (its connection, TLS session,
// client and one completion switch), this core's lease of each fleet route
// and the requests parked for Redis's answer. The Worker gives it the
// completions tagged `op`, the timer of kind `timer_kind`, and asks it at
// admission (ModeNow, lease, Park, Ask).
class FleetLink {
 public:
  FleetLink(const CoreContext& core, ParkedRequests& parked, uint8_t op,
            uint8_t timer_kind) noexcept
      : core_(core), parked_(parked), op_(op) {
    redis_.timer.kind = timer_kind;
  }
  FleetLink(const FleetLink&) = delete;
  FleetLink& operator=(const FleetLink&) = delete;

  // Boot (the control thread, before the core starts), with `redis:` in the
  // core's config: the client with its buffers and the password (read from
  // password_file), the TLS context (null for plain TCP), the parked queue.
  void Configure(const std::string& password, std::shared_ptr<const tls::ClientContext> tls);
  // On the core's thread before its loop: the first connect.
  void Start();
  // Configured: the core has a Redis link.
  bool on() const noexcept { return redis_.client != nullptr; }
  // A completion of one of the link's operations (user_data's slot and
  // generation); every generation's counts (a new socket waits for 0).
  void OnCqe(uint32_t what, uint32_t gen, int res);
  // The link's timer: connect timeout, backoff, call deadlines, probes.
  void OnTimer();
  // Sends what the client has queued (once per pass: the pass's lease calls
  // leave in one send).
  void Flush();
  // A snapshot was adopted (it stays current until the next ResetFor):
  // leases start over for its routes, parked requests are parsed again.
  void ResetFor(const config::Snapshot& s);

  // Admission's questions, for fleet route `route` of the current snapshot.
  // How fleet-scope requests are decided now: by the leases while Redis
  // answers, else by the fallback.
  FleetMode ModeNow() const noexcept;
  // The fallback's mode (a parked request the fallback decides).
  FleetMode FallbackModeNow() const noexcept { return FallbackMode(redis_.fallback); }
  policy::CoreLease& lease(uint32_t route) noexcept { return leases_[route]; }
  // Lease sizing: at most the route's burst spread over every core of
  // every gateway, so stocks can never hold the whole burst.
  policy::LeaseParams LeaseParamsFor(const config::Route& r) const noexcept;
  // Parks the request on `slot` until the route's lease call answers; false
  // when the queue (redis.max_waiting) is full or the request cannot wait.
  bool Park(uint32_t slot, uint32_t route) noexcept;
  // Asks Redis for the route's lease when the core's stock (or its parked
  // requests) call for it: one call in flight per route.
  void Ask(uint32_t route);
  // Requests parked now.
  size_t parked() const noexcept { return redis_.parked_count; }

  // After the loop: lets go of the socket, the TLS session and the queue's
  // blocks (the process exits; no completion is read any more).
  void Release() noexcept;

 private:
  void Connect();
  void Ready();
  void Failed(uint64_t why);
  void ArmRecv();
  void PumpInput(const char* p, size_t n);
  void TakeCompletions();
  void UpdateGauges();
  // Answers the parked requests of `route` in order (UINT32_MAX: every one):
  // `admit` granted, then `refuse` denied, then `fallback` by the fallback.
  void AnswerParked(uint32_t route, uint32_t admit, uint32_t refuse, uint32_t fallback,
                    uint32_t retry_s = 0);

  const CoreContext& core_;
  ParkedRequests& parked_;
  uint8_t op_;
  RedisLink redis_;                             // the fleet's Redis (state kOff without one)
  std::vector<policy::CoreLease> leases_;       // [route index] this core's lease
  const config::Snapshot* snapshot_ = nullptr;  // the current one (ResetFor)
};

}  // namespace hms::proxy
