// The core's Redis link (redis_link.h) and the fleet-scope leases it carries
// (docs/resilience.md "Fleet scope"), FleetLink. One completion switch
// (OnCqe) for the link's three operations: connect, recv, send. Requests
// that must wait for Redis's answer stay unparsed in their connection's
// input (nothing is copied) and are parsed again once the answer came
// (AnswerParked, through the ParkedRequests side).
#include "src/proxy/redis_link.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "hms/common/address.h"
#include "hms/common/check.h"
#include "hms/fleet/gcra_script.h"
#include "hms/policy/backoff.h"
#include "hms/proxy/engine.h"

namespace hms::proxy {
namespace {

// The link's operations, in the slot field of their user_data.
enum RedisOp : uint32_t { kRedisConnect = 0, kRedisRecv = 1, kRedisSend = 2 };
// The tag of a call that only asks whether Redis answers (want 0).
constexpr uint64_t kProbeTag = ~0ull;
// While degraded with a live connection, a probe this often.
constexpr uint64_t kProbeEveryMs = 500;
// The most tokens a core holds for a route whose burst allows it. A lease
// call costs the core a send and a receive, and one is in flight per route:
// measured at full speed, 16 tokens a call cost 1.2 µs a request over a
// gateway-scope limit, 256 about 0.25 (bench/RESULTS.md), and let a core
// pass 100,000 requests/s on one route over a 2 ms round trip.
constexpr uint32_t kMaxLease = 256;

constexpr uint64_t Tag(uint32_t epoch, uint32_t route) noexcept {
  return (static_cast<uint64_t>(epoch) << 32) | route;
}

}  // namespace

LinkState NextLinkState(LinkState s, LinkEvent e, bool tls) noexcept {
  switch (e) {
    case LinkEvent::kStart:
      return s == LinkState::kOff ? LinkState::kConnecting : s;
    case LinkEvent::kConnected:
      if (s != LinkState::kConnecting) return s;
      return tls ? LinkState::kTls : LinkState::kReady;
    case LinkEvent::kTlsDone:
      return s == LinkState::kTls ? LinkState::kReady : s;
    case LinkEvent::kFailed:
      return s == LinkState::kOff ? s : LinkState::kBackoff;
    case LinkEvent::kBackoffOver:
      return s == LinkState::kBackoff ? LinkState::kConnecting : s;
  }
  return s;
}

std::string_view LinkStateName(LinkState s) noexcept {
  switch (s) {
    case LinkState::kOff:
      return "off";
    case LinkState::kConnecting:
      return "connecting";
    case LinkState::kTls:
      return "tls_handshake";
    case LinkState::kReady:
      return "ready";
    case LinkState::kBackoff:
      return "backoff";
  }
  return "unknown";
}

uint64_t ReconnectDelayMs(uint32_t failures, uint64_t random) noexcept {
  return policy::JitteredBackoffMs(failures > 0 ? failures - 1 : 0, 50, 1000, random);
}

std::string RedisFailureText(uint64_t code) {
  if (code == 0) return "";
  if (code >= kFailureErrno) {
    return std::string("connect: ") + std::strerror(static_cast<int>(code - kFailureErrno));
  }
  const auto status = static_cast<fleet::CallStatus>(code - 1);
  std::string text(fleet::CallStatusName(status));
  if (status == fleet::CallStatus::kAuthFailed)
    text += " (Redis refused AUTH: check password_file)";
  if (status == fleet::CallStatus::kTimeout) text += " (Redis did not answer within redis.timeout)";
  return text;
}

FleetMode FallbackMode(policy::FleetFallback f) noexcept {
  switch (f) {
    case policy::FleetFallback::kFailOpen:
      return FleetMode::kOpen;
    case policy::FleetFallback::kFailClosed:
      return FleetMode::kClosed;
    case policy::FleetFallback::kLocalShare:
      break;
  }
  return FleetMode::kLocal;
}

// Boot (the control thread, before Start): the client with its buffers and
// the password, the TLS context when Redis speaks TLS, and every buffer the
// link will use (the parked queue, one recv's bytes, one record's plaintext).
void FleetLink::Configure(const std::string& password,
                          std::shared_ptr<const tls::ClientContext> tls) {
  const config::RedisConfig& rc = *core_.config.redis;
  fleet::ClientOptions o;
  o.username = rc.username;
  o.password = password;
  o.timeout_ns = core::Millis(rc.timeout_ms);
  // Every route's call in flight at once, and a probe.
  o.max_in_flight = 256;
  RedisLink& l = redis_;
  l.client = std::make_unique<fleet::RedisClient>(std::move(o), fleet::kGcraScript);
  l.tls_ctx = std::move(tls);
  l.timeout_ms = rc.timeout_ms;
  l.fallback = rc.fallback;
  l.gateways = rc.gateways;
  l.parked.resize(rc.max_waiting);
  l.rx.resize(16 * 1024);
  l.plain.resize(16 * 1024);
}

// On the core's thread before its loop: the first connect.
void FleetLink::Start() {
  const config::RedisConfig& rc = *core_.config.redis;
  RedisLink& l = redis_;
  HMS_CHECK(ParseNumericAddress(rc.address, &l.addr, &l.addr_len));  // validated at load
  HMS_CHECK(l.client != nullptr);                                    // Configure ran first
  l.state = NextLinkState(l.state, LinkEvent::kStart, l.tls_ctx != nullptr);
  Connect();
}

void FleetLink::Connect() {
  RedisLink& l = redis_;
  ++l.gen;
  l.fd = socket(l.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (l.fd < 0) {
    Failed(ErrnoFailure(errno));
    return;
  }
  int one = 1;
  // Lease calls are small and answered one by one: never wait for Nagle.
  setsockopt(l.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  io_uring_sqe* sqe = core_.ring.Sqe();
  io_uring_prep_connect(sqe, l.fd, reinterpret_cast<const sockaddr*>(&l.addr), l.addr_len);
  io_uring_sqe_set_data64(sqe, core::PackUserData(op_, l.gen, kRedisConnect));
  ++l.ops;
  core_.metrics.fleet_connects.Add();
  core_.timers.Arm(&l.timer, core_.now, l.timeout_ms);  // the connect's (and handshake's) bound
}

// The link failed: its socket is shut (so its operations end at once) and
// closed, its calls complete as lost, and the reconnect waits a backoff.
void FleetLink::Failed(uint64_t why) {
  RedisLink& l = redis_;
  if (l.fd >= 0) {
    shutdown(l.fd, SHUT_RDWR);
    close(l.fd);
    l.fd = -1;
  }
  ++l.gen;
  l.recv_armed = l.send_inflight = false;
  l.tls.reset();
  l.out.Clear(&core_.blocks);
  if (l.client != nullptr) l.client->Disconnected();
  ++l.failures;
  core_.metrics.fleet_errors.Add();
  core_.metrics.fleet_redis_failure.Set(why);
  policy::OnRedisDown(l.health, core_.now);
  l.state = NextLinkState(l.state, LinkEvent::kFailed, l.tls_ctx != nullptr);
  TakeCompletions();  // the parked requests take the fallback
  core_.timers.Arm(&l.timer, core_.now, ReconnectDelayMs(l.failures, core_.Random()));
  UpdateGauges();
}

void FleetLink::OnTimer() {
  RedisLink& l = redis_;
  switch (l.state) {
    case LinkState::kConnecting:
    case LinkState::kTls:
      Failed(ErrnoFailure(ETIMEDOUT));
      return;
    case LinkState::kBackoff:
      if (core_.draining) return;
      if (l.ops > 0) {
        // The last connection's operations are still ending.
        core_.timers.Arm(&l.timer, core_.now, 10);
        return;
      }
      l.state = NextLinkState(l.state, LinkEvent::kBackoffOver, l.tls_ctx != nullptr);
      Connect();
      return;
    case LinkState::kReady:
      l.client->Tick(core_.now);
      if (l.client->state() == fleet::RedisClient::State::kFailed) {
        Failed(CallFailure(l.client->failure()));
        return;
      }
      if (l.health.degraded && l.client->in_flight() == 0 && l.client->script_loaded()) {
        const int64_t args[] = {1'000'000, 1, 0};
        if (l.client->Call(kProbeTag, "hms:probe", args, core_.now))
          core_.metrics.fleet_calls.Add();
      }
      TakeCompletions();
      if (l.health.degraded) {
        core_.timers.Arm(&l.timer, core_.now, kProbeEveryMs);
      } else if (l.client->in_flight() > 0) {
        core_.timers.Arm(&l.timer, core_.now, l.timeout_ms);
      }
      return;
    case LinkState::kOff:
      return;
  }
}

void FleetLink::OnCqe(uint32_t what, uint32_t gen, int res) {
  RedisLink& l = redis_;
  --l.ops;
  if ((l.gen & 0xffffff) != gen || l.fd < 0) return;  // an older connection's
  switch (what) {
    case kRedisConnect:
      if (res < 0) return Failed(ErrnoFailure(-res));
      l.state = NextLinkState(l.state, LinkEvent::kConnected, l.tls_ctx != nullptr);
      ArmRecv();
      if (l.state == LinkState::kTls) {
        l.tls = tls::Session::NewClient(*l.tls_ctx, nullptr);
        if (l.tls == nullptr) return Failed(ErrnoFailure(ENOMEM));
        PumpInput(nullptr, 0);  // the ClientHello
      } else {
        Ready();
      }
      return;
    case kRedisRecv:
      l.recv_armed = false;
      if (res <= 0) return Failed(res == 0 ? ErrnoFailure(ECONNRESET) : ErrnoFailure(-res));
      PumpInput(l.rx.data(), static_cast<size_t>(res));
      if (l.fd >= 0 && !l.recv_armed) ArmRecv();
      return;
    case kRedisSend:
      l.send_inflight = false;
      if (res < 0) return Failed(ErrnoFailure(-res));
      l.out.Consume(&core_.blocks, static_cast<size_t>(res));
      Flush();
      return;
    default:
      return;
  }
}

// The connection (and its TLS session) is up: the client queues its
// handshake (AUTH, SCRIPT LOAD); Redis is trusted again once it answers.
void FleetLink::Ready() {
  RedisLink& l = redis_;
  core_.timers.Cancel(&l.timer);
  l.client->Connected(core_.now);
  core_.timers.Arm(&l.timer, core_.now, l.timeout_ms);
  Flush();
}

void FleetLink::ArmRecv() {
  RedisLink& l = redis_;
  io_uring_sqe* sqe = core_.ring.Sqe();
  io_uring_prep_recv(sqe, l.fd, l.rx.data(), l.rx.size(), 0);
  io_uring_sqe_set_data64(sqe, core::PackUserData(op_, l.gen, kRedisRecv));
  l.recv_armed = true;
  ++l.ops;
}

// Bytes from Redis: through the TLS session when there is one (its
// handshake first), then to the client, whose finished calls are answered.
void FleetLink::PumpInput(const char* p, size_t n) {
  RedisLink& l = redis_;
  const bool loaded = l.client->script_loaded();
  if (l.tls == nullptr) {
    l.client->Received(std::string_view(p, n), core_.now);
  } else {
    tls::Wire w{p, n, &l.out, &core_.blocks};
    for (;;) {
      const size_t before = w.in_len;
      if (!l.tls->handshake_done()) {
        const tls::Step st = l.tls->Handshake(w);
        if (st == tls::Step::kFailed)
          return Failed(CallFailure(fleet::CallStatus::kHandshakeFailed));
        if (st == tls::Step::kDone) {
          l.state = NextLinkState(l.state, LinkEvent::kTlsDone, true);
          Ready();
          continue;
        }
      } else {
        const int got = l.tls->Read(w, l.plain.data(), l.plain.size());
        if (got < 0) return Failed(ErrnoFailure(ECONNRESET));
        if (got > 0) {
          l.client->Received(std::string_view(l.plain.data(), static_cast<size_t>(got)), core_.now);
          continue;
        }
      }
      if (w.in_len == 0 || w.in_len == before) break;
    }
  }
  if (l.client->state() == fleet::RedisClient::State::kFailed) {
    return Failed(CallFailure(l.client->failure()));
  }
  // SCRIPT LOAD answered: Redis answers this connection (AUTH passed).
  if (!loaded && l.client->script_loaded()) {
    l.failures = 0;  // only now: a Redis that refuses AUTH is retried ever more slowly
    core_.metrics.fleet_redis_failure.Set(0);
    policy::OnRedisOutcome(l.health, true, core_.now, policy::RedisHealthParams{});
    UpdateGauges();
  }
  TakeCompletions();
  Flush();
}

// Everything the client wants sent goes out in one send per pass at most
// (sealed first with TLS); more waits for that send's completion.
void FleetLink::Flush() {
  RedisLink& l = redis_;
  if (l.fd < 0 || l.client == nullptr || l.state == LinkState::kConnecting) return;
  const std::span<const char> pending = l.client->Output();
  if (!pending.empty() && (l.tls == nullptr || l.tls->handshake_done())) {
    if (l.tls != nullptr) {
      tls::Wire w{nullptr, 0, &l.out, &core_.blocks};
      if (!l.tls->Write(w, pending.data(), pending.size())) {
        return Failed(CallFailure(fleet::CallStatus::kProtocolError));
      }
    } else {
      l.out.Append(&core_.blocks, pending.data(), pending.size());
    }
    l.client->Sent(pending.size());
  }
  if (l.send_inflight || l.out.empty()) return;
  const int n = l.out.Gather(l.iov, 8);
  l.msg = msghdr{};
  l.msg.msg_iov = l.iov;
  l.msg.msg_iovlen = static_cast<size_t>(n);
  io_uring_sqe* sqe = core_.ring.Sqe();
  io_uring_prep_sendmsg(sqe, l.fd, &l.msg, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, core::PackUserData(op_, l.gen, kRedisSend));
  l.send_inflight = true;
  ++l.ops;
}

void FleetLink::UpdateGauges() {
  const RedisLink& l = redis_;
  core_.metrics.fleet_redis_up.Set(l.usable() && !l.health.degraded && l.client->script_loaded());
  core_.metrics.fleet_degraded.Set(ModeNow() != FleetMode::kRedis);
}

FleetMode FleetLink::ModeNow() const noexcept {
  const RedisLink& l = redis_;
  if (l.usable() && !l.health.degraded && l.client->script_loaded()) return FleetMode::kRedis;
  return FallbackMode(l.fallback);
}

// A snapshot was adopted: leases start over for the new routes (unspent
// tokens are dropped, which only admits less), and parked requests are
// parsed again under the new snapshot.
void FleetLink::ResetFor(const config::Snapshot& s) {
  RedisLink& l = redis_;
  snapshot_ = &s;
  ++l.epoch;
  leases_.assign(s.routes.size(), policy::CoreLease{});
  l.asked.assign(s.routes.size(), 0);
  AnswerParked(UINT32_MAX, 0, 0, 0);
}

// Parks the request on `slot` until its route's lease call answers; false
// when the queue is full (the fallback then decides it).
bool FleetLink::Park(uint32_t slot, uint32_t route) noexcept {
  RedisLink& l = redis_;
  if (l.parked_count == l.parked.size()) return false;
  uint32_t gen = 0;
  if (!parked_.Park(slot, &gen)) return false;
  ParkedRequest& p = l.parked[(l.parked_head + l.parked_count) % l.parked.size()];
  p.slot = slot;
  p.gen = gen;
  p.route = route;
  ++l.parked_count;
  core_.metrics.fleet_waits.Add();
  return true;
}

// Asks Redis for the route's lease when the core's stock (or its parked
// requests) call for it: one call in flight per route.
void FleetLink::Ask(uint32_t route) {
  RedisLink& l = redis_;
  const config::Route& r = snapshot_->routes[route];
  policy::CoreLease& lease = leases_[route];
  const policy::LeaseParams params = LeaseParamsFor(r);
  const uint32_t want = policy::StartAsk(lease, core_.now, params);
  if (want == 0) return;
  const policy::Limit limit = policy::Limit::PerSecondX1000(
      r.rate_limit->rate_per_sec_x1000, std::max<uint32_t>(1, r.rate_limit->burst));
  const int64_t args[] = {static_cast<int64_t>((limit.interval_ns + 999) / 1000),
                          static_cast<int64_t>(limit.burst), static_cast<int64_t>(want)};
  if (!l.usable() || !l.client->Call(Tag(l.epoch, route), r.fleet_key, args, core_.now)) {
    // Not sent: the parked requests take the fallback now.
    core_.metrics.fleet_errors.Add();
    AnswerParked(route, 0, 0, policy::OnAskFailed(lease));
    return;
  }
  l.asked[route] = want;
  core_.metrics.fleet_calls.Add();
  if (!l.timer.armed()) core_.timers.Arm(&l.timer, core_.now, l.timeout_ms);
}

// Lease sizing for a fleet route: at most the route's burst spread over
// every core of every gateway, so stocks can never hold the whole burst.
policy::LeaseParams FleetLink::LeaseParamsFor(const config::Route& r) const noexcept {
  policy::LeaseParams p;
  const uint32_t holders = std::max<uint32_t>(1, core_.cores * redis_.gateways);
  p.max_lease = std::clamp<uint32_t>(r.rate_limit->burst / holders, 1, kMaxLease);
  return p;
}

void FleetLink::TakeCompletions() {
  RedisLink& l = redis_;
  if (l.client == nullptr) return;
  fleet::Completion done;
  while (l.client->PopCompletion(&done)) {
    const bool ok = done.status == fleet::CallStatus::kOk && done.count >= 2;
    if (policy::OnRedisOutcome(l.health, ok, core_.now, policy::RedisHealthParams{}))
      UpdateGauges();
    if (!ok) {
      core_.metrics.fleet_errors.Add();
      core_.metrics.fleet_redis_failure.Set(CallFailure(done.status));
    }
    const uint32_t route = static_cast<uint32_t>(done.tag);
    if (done.tag == kProbeTag || (done.tag >> 32) != l.epoch || route >= leases_.size()) continue;
    policy::CoreLease& lease = leases_[route];
    if (!ok) {
      AnswerParked(route, 0, 0, policy::OnAskFailed(lease));
      continue;
    }
    const uint32_t granted = static_cast<uint32_t>(std::max<int64_t>(done.values[0], 0));
    const uint64_t retry_ns = static_cast<uint64_t>(std::max<int64_t>(done.values[1], 0)) * 1000;
    const uint32_t waiting = lease.waiting;
    policy::LeaseAnswer a = policy::OnGrant(lease, granted, retry_ns, core_.now,
                                            LeaseParamsFor(snapshot_->routes[route]));
    if (granted > waiting) core_.metrics.fleet_lease_refills.Add();
    // Requests parked after the call left were not asked for: when Redis
    // granted all it was asked and has tokens left, they wait for the next
    // call instead of being refused.
    if (a.refuse > 0 && granted >= l.asked[route] && retry_ns == 0) {
      lease.waiting = a.refuse;
      a.refuse = 0;
    }
    const uint32_t retry_s =
        static_cast<uint32_t>(std::max<uint64_t>(1, (retry_ns + 999'999'999) / 1'000'000'000));
    AnswerParked(route, a.admit, a.refuse, 0, retry_s);
    if (lease.waiting > 0 || lease.tokens == 0) Ask(route);
  }
}

// Answers the parked requests of `route` in order (UINT32_MAX: every one):
// `admit` of them granted, then `refuse` denied (429 after `retry_s`), then
// `fallback` decided by the fallback; each is parsed again this pass.
// Requests whose client left are skipped without counting.
void FleetLink::AnswerParked(uint32_t route, uint32_t admit, uint32_t refuse, uint32_t fallback,
                             uint32_t retry_s) {
  RedisLink& l = redis_;
  const bool all = route == UINT32_MAX;
  size_t kept = 0;
  for (size_t i = 0; i < l.parked_count; ++i) {
    const ParkedRequest p = l.parked[(l.parked_head + i) % l.parked.size()];
    if (!all && p.route != route) {
      l.parked[(l.parked_head + kept++) % l.parked.size()] = p;
      continue;
    }
    if (!parked_.Waiting(p.slot, p.gen)) continue;
    FleetPass pass = FleetPass::kNone;
    if (all) {
      pass = FleetPass::kNone;
    } else if (admit > 0) {
      --admit;
      pass = FleetPass::kGranted;
    } else if (refuse > 0) {
      --refuse;
      pass = FleetPass::kDenied;
    } else if (fallback > 0) {
      --fallback;
      pass = FleetPass::kFallback;
    } else {
      l.parked[(l.parked_head + kept++) % l.parked.size()] = p;  // still waiting
      continue;
    }
    parked_.Answer(p.slot, pass, retry_s);
  }
  l.parked_count = kept;
}

// After the loop (Worker::ReleaseAll): the link's socket, session and
// queued blocks go; the client and its buffers go with the worker.
void FleetLink::Release() noexcept {
  redis_.out.Clear(&core_.blocks);
  redis_.tls.reset();
  if (redis_.fd >= 0) close(redis_.fd);
  redis_.fd = -1;
}

}  // namespace hms::proxy
