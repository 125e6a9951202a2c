// The core's Redis link (redis_link.h) and the fleet-scope leases it carries
// (docs/resilience.md "Fleet scope"). One completion switch (OnRedisCqe) for
// the link's three operations: connect, recv, send. Requests that must wait
// for Redis's answer stay unparsed in their connection's input (nothing is
// copied) and are parsed again once the answer came (AnswerParked).
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
#include "src/proxy/worker.h"

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
// the password, and the TLS context when Redis speaks TLS.
void Worker::SetRedis(const std::string& password, std::shared_ptr<const tls::ClientContext> tls) {
  const config::RedisConfig& rc = *config_.redis;
  fleet::ClientOptions o;
  o.username = rc.username;
  o.password = password;
  o.timeout_ns = core::Millis(rc.timeout_ms);
  // Every route's call in flight at once, and a probe.
  o.max_in_flight = 256;
  redis_.client = std::make_unique<fleet::RedisClient>(std::move(o), fleet::kGcraScript);
  redis_.tls_ctx = std::move(tls);
}

// On the core's thread before its loop: everything the link will use
// is made here (the client's buffers, the queue, the TLS context).
void Worker::StartRedis() {
  const config::RedisConfig& rc = *config_.redis;
  RedisLink& l = redis_;
  HMS_CHECK(ParseNumericAddress(rc.address, &l.addr, &l.addr_len));  // validated at load
  l.timeout_ms = rc.timeout_ms;
  l.fallback = rc.fallback;
  l.gateways = rc.gateways;
  l.parked.resize(rc.max_waiting);
  l.rx.resize(16 * 1024);
  l.plain.resize(16 * 1024);
  l.timer.kind = kTimerRedis;
  HMS_CHECK(l.client != nullptr);  // SetRedis, before Start
  l.state = NextLinkState(l.state, LinkEvent::kStart, l.tls_ctx != nullptr);
  ConnectRedis();
}

void Worker::ConnectRedis() {
  RedisLink& l = redis_;
  ++l.gen;
  l.fd = socket(l.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (l.fd < 0) {
    RedisFailed(ErrnoFailure(errno));
    return;
  }
  int one = 1;
  // Lease calls are small and answered one by one: never wait for Nagle.
  setsockopt(l.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  io_uring_sqe* sqe = ring_.Sqe();
  io_uring_prep_connect(sqe, l.fd, reinterpret_cast<const sockaddr*>(&l.addr), l.addr_len);
  io_uring_sqe_set_data64(sqe, core::PackUserData(kOpRedis, l.gen, kRedisConnect));
  ++l.ops;
  metrics_.fleet_connects.Add();
  timers_.Arm(&l.timer, now_, l.timeout_ms);  // the connect's (and handshake's) bound
}

// The link failed: its socket is shut (so its operations end at once) and
// closed, its calls complete as lost, and the reconnect waits a backoff.
void Worker::RedisFailed(uint64_t why) {
  RedisLink& l = redis_;
  if (l.fd >= 0) {
    shutdown(l.fd, SHUT_RDWR);
    close(l.fd);
    l.fd = -1;
  }
  ++l.gen;
  l.recv_armed = l.send_inflight = false;
  l.tls.reset();
  l.out.Clear(&blocks_);
  if (l.client != nullptr) l.client->Disconnected();
  ++l.failures;
  metrics_.fleet_errors.Add();
  metrics_.fleet_redis_failure.Set(why);
  policy::OnRedisDown(l.health, now_);
  l.state = NextLinkState(l.state, LinkEvent::kFailed, l.tls_ctx != nullptr);
  TakeRedisCompletions();  // the parked requests take the fallback
  timers_.Arm(&l.timer, now_, ReconnectDelayMs(l.failures, Random()));
  UpdateFleetGauges();
}

void Worker::OnRedisTimer() {
  RedisLink& l = redis_;
  switch (l.state) {
    case LinkState::kConnecting:
    case LinkState::kTls:
      RedisFailed(ErrnoFailure(ETIMEDOUT));
      return;
    case LinkState::kBackoff:
      if (draining_) return;
      if (l.ops > 0) {
        timers_.Arm(&l.timer, now_, 10);  // the last connection's operations are still ending
        return;
      }
      l.state = NextLinkState(l.state, LinkEvent::kBackoffOver, l.tls_ctx != nullptr);
      ConnectRedis();
      return;
    case LinkState::kReady:
      l.client->Tick(now_);
      if (l.client->state() == fleet::RedisClient::State::kFailed) {
        RedisFailed(CallFailure(l.client->failure()));
        return;
      }
      if (l.health.degraded && l.client->in_flight() == 0 && l.client->script_loaded()) {
        const int64_t args[] = {1'000'000, 1, 0};
        if (l.client->Call(kProbeTag, "hms:probe", args, now_)) metrics_.fleet_calls.Add();
      }
      TakeRedisCompletions();
      if (l.health.degraded) {
        timers_.Arm(&l.timer, now_, kProbeEveryMs);
      } else if (l.client->in_flight() > 0) {
        timers_.Arm(&l.timer, now_, l.timeout_ms);
      }
      return;
    case LinkState::kOff:
      return;
  }
}

void Worker::OnRedisCqe(uint32_t what, uint32_t gen, int res) {
  RedisLink& l = redis_;
  --l.ops;
  if ((l.gen & 0xffffff) != gen || l.fd < 0) return;  // an older connection's
  switch (what) {
    case kRedisConnect:
      if (res < 0) return RedisFailed(ErrnoFailure(-res));
      l.state = NextLinkState(l.state, LinkEvent::kConnected, l.tls_ctx != nullptr);
      ArmRedisRecv();
      if (l.state == LinkState::kTls) {
        l.tls = tls::Session::NewClient(*l.tls_ctx, nullptr);
        if (l.tls == nullptr) return RedisFailed(ErrnoFailure(ENOMEM));
        PumpRedisInput(nullptr, 0);  // the ClientHello
      } else {
        RedisReady();
      }
      return;
    case kRedisRecv:
      l.recv_armed = false;
      if (res <= 0) return RedisFailed(res == 0 ? ErrnoFailure(ECONNRESET) : ErrnoFailure(-res));
      PumpRedisInput(l.rx.data(), static_cast<size_t>(res));
      if (l.fd >= 0 && !l.recv_armed) ArmRedisRecv();
      return;
    case kRedisSend:
      l.send_inflight = false;
      if (res < 0) return RedisFailed(ErrnoFailure(-res));
      l.out.Consume(&blocks_, static_cast<size_t>(res));
      FlushRedis();
      return;
    default:
      return;
  }
}

// The connection (and its TLS session) is up: the client queues its
// handshake (AUTH, SCRIPT LOAD); Redis is trusted again once it answers.
void Worker::RedisReady() {
  RedisLink& l = redis_;
  timers_.Cancel(&l.timer);
  l.client->Connected(now_);
  timers_.Arm(&l.timer, now_, l.timeout_ms);
  FlushRedis();
}

void Worker::ArmRedisRecv() {
  RedisLink& l = redis_;
  io_uring_sqe* sqe = ring_.Sqe();
  io_uring_prep_recv(sqe, l.fd, l.rx.data(), l.rx.size(), 0);
  io_uring_sqe_set_data64(sqe, core::PackUserData(kOpRedis, l.gen, kRedisRecv));
  l.recv_armed = true;
  ++l.ops;
}

// Bytes from Redis: through the TLS session when there is one (its
// handshake first), then to the client, whose finished calls are answered.
void Worker::PumpRedisInput(const char* p, size_t n) {
  RedisLink& l = redis_;
  const bool loaded = l.client->script_loaded();
  if (l.tls == nullptr) {
    l.client->Received(std::string_view(p, n), now_);
  } else {
    tls::Wire w{p, n, &l.out, &blocks_};
    for (;;) {
      const size_t before = w.in_len;
      if (!l.tls->handshake_done()) {
        const tls::Step st = l.tls->Handshake(w);
        if (st == tls::Step::kFailed)
          return RedisFailed(CallFailure(fleet::CallStatus::kHandshakeFailed));
        if (st == tls::Step::kDone) {
          l.state = NextLinkState(l.state, LinkEvent::kTlsDone, true);
          RedisReady();
          continue;
        }
      } else {
        const int got = l.tls->Read(w, l.plain.data(), l.plain.size());
        if (got < 0) return RedisFailed(ErrnoFailure(ECONNRESET));
        if (got > 0) {
          l.client->Received(std::string_view(l.plain.data(), static_cast<size_t>(got)), now_);
          continue;
        }
      }
      if (w.in_len == 0 || w.in_len == before) break;
    }
  }
  if (l.client->state() == fleet::RedisClient::State::kFailed) {
    return RedisFailed(CallFailure(l.client->failure()));
  }
  // SCRIPT LOAD answered: Redis answers this connection (AUTH passed).
  if (!loaded && l.client->script_loaded()) {
    l.failures = 0;  // only now: a Redis that refuses AUTH is retried ever more slowly
    metrics_.fleet_redis_failure.Set(0);
    policy::OnRedisOutcome(l.health, true, now_, policy::RedisHealthParams{});
    UpdateFleetGauges();
  }
  TakeRedisCompletions();
  FlushRedis();
}

// Everything the client wants sent goes out in one send per pass at most
// (sealed first with TLS); more waits for that send's completion.
void Worker::FlushRedis() {
  RedisLink& l = redis_;
  if (l.fd < 0 || l.client == nullptr || l.state == LinkState::kConnecting) return;
  const std::span<const char> pending = l.client->Output();
  if (!pending.empty() && (l.tls == nullptr || l.tls->handshake_done())) {
    if (l.tls != nullptr) {
      tls::Wire w{nullptr, 0, &l.out, &blocks_};
      if (!l.tls->Write(w, pending.data(), pending.size())) {
        return RedisFailed(CallFailure(fleet::CallStatus::kProtocolError));
      }
    } else {
      l.out.Append(&blocks_, pending.data(), pending.size());
    }
    l.client->Sent(pending.size());
  }
  if (l.send_inflight || l.out.empty()) return;
  const int n = l.out.Gather(l.iov, 8);
  l.msg = msghdr{};
  l.msg.msg_iov = l.iov;
  l.msg.msg_iovlen = static_cast<size_t>(n);
  io_uring_sqe* sqe = ring_.Sqe();
  io_uring_prep_sendmsg(sqe, l.fd, &l.msg, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, core::PackUserData(kOpRedis, l.gen, kRedisSend));
  l.send_inflight = true;
  ++l.ops;
}

void Worker::UpdateFleetGauges() {
  const RedisLink& l = redis_;
  metrics_.fleet_redis_up.Set(l.usable() && !l.health.degraded && l.client->script_loaded());
  metrics_.fleet_degraded.Set(FleetModeNow() != FleetMode::kRedis);
}

FleetMode Worker::FleetModeNow() const {
  const RedisLink& l = redis_;
  if (l.usable() && !l.health.degraded && l.client->script_loaded()) return FleetMode::kRedis;
  return FallbackMode(l.fallback);
}

// A snapshot was adopted: leases start over for the new routes (unspent
// tokens are dropped, which only admits less), and parked requests are
// parsed again under the new snapshot.
void Worker::ResetFleetFor(const config::Snapshot& s) {
  RedisLink& l = redis_;
  ++l.epoch;
  leases_.assign(s.routes.size(), policy::CoreLease{});
  l.asked.assign(s.routes.size(), 0);
  AnswerParked(UINT32_MAX, 0, 0, 0);
}

// Parks the request on `slot` until its route's lease call answers; false
// when the queue is full (the fallback then decides it).
bool Worker::ParkFleet(uint32_t slot, uint32_t route) {
  RedisLink& l = redis_;
  if (l.parked_count == l.parked.size()) return false;
  // An HTTP/1.1 head stays in its connection's input; an h2 stream's is in
  // none, so the stream keeps a copy (h2_down.cc).
  if (clients_[slot].parent != kNone && !KeepStreamHead(slot)) return false;
  ParkedRequest& p = l.parked[(l.parked_head + l.parked_count) % l.parked.size()];
  p.slot = slot;
  p.gen = clients_[slot].gen;
  p.route = route;
  ++l.parked_count;
  clients_[slot].fleet_parked = true;
  metrics_.fleet_waits.Add();
  return true;
}

// Asks Redis for the route's lease when the core's stock (or its parked
// requests) call for it: one call in flight per route.
void Worker::AskFleet(uint32_t route) {
  RedisLink& l = redis_;
  const config::Route& r = current_->snapshot->routes[route];
  policy::CoreLease& lease = leases_[route];
  const policy::LeaseParams params = LeaseParamsFor(r);
  const uint32_t want = policy::StartAsk(lease, now_, params);
  if (want == 0) return;
  const policy::Limit limit = policy::Limit::PerSecondX1000(
      r.rate_limit->rate_per_sec_x1000, std::max<uint32_t>(1, r.rate_limit->burst));
  const int64_t args[] = {static_cast<int64_t>((limit.interval_ns + 999) / 1000),
                          static_cast<int64_t>(limit.burst), static_cast<int64_t>(want)};
  if (!l.usable() || !l.client->Call(Tag(l.epoch, route), r.fleet_key, args, now_)) {
    // Not sent: the parked requests take the fallback now.
    metrics_.fleet_errors.Add();
    AnswerParked(route, 0, 0, policy::OnAskFailed(lease));
    return;
  }
  l.asked[route] = want;
  metrics_.fleet_calls.Add();
  if (!l.timer.armed()) timers_.Arm(&l.timer, now_, l.timeout_ms);
}

// Lease sizing for a fleet route: at most the route's burst spread over
// every core of every gateway, so stocks can never hold the whole burst.
policy::LeaseParams Worker::LeaseParamsFor(const config::Route& r) const {
  policy::LeaseParams p;
  const uint32_t holders = std::max<uint32_t>(1, cores_ * redis_.gateways);
  p.max_lease = std::clamp<uint32_t>(r.rate_limit->burst / holders, 1, kMaxLease);
  return p;
}

void Worker::TakeRedisCompletions() {
  RedisLink& l = redis_;
  if (l.client == nullptr) return;
  fleet::Completion done;
  while (l.client->PopCompletion(&done)) {
    const bool ok = done.status == fleet::CallStatus::kOk && done.count >= 2;
    if (policy::OnRedisOutcome(l.health, ok, now_, policy::RedisHealthParams{}))
      UpdateFleetGauges();
    if (!ok) {
      metrics_.fleet_errors.Add();
      metrics_.fleet_redis_failure.Set(CallFailure(done.status));
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
    policy::LeaseAnswer a = policy::OnGrant(lease, granted, retry_ns, now_,
                                            LeaseParamsFor(current_->snapshot->routes[route]));
    if (granted > waiting) metrics_.fleet_lease_refills.Add();
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
    if (lease.waiting > 0 || lease.tokens == 0) AskFleet(route);
  }
}

// Answers the parked requests of `route` in order (UINT32_MAX: every one):
// `admit` of them granted, then `refuse` denied (429 after `retry_s`), then
// `fallback` decided by the fallback; each is parsed again this pass.
// Requests whose client left are skipped without counting.
void Worker::AnswerParked(uint32_t route, uint32_t admit, uint32_t refuse, uint32_t fallback,
                          uint32_t retry_s) {
  RedisLink& l = redis_;
  const bool all = route == UINT32_MAX;
  size_t kept = 0;
  for (size_t i = 0; i < l.parked_count; ++i) {
    const ParkedRequest p = l.parked[(l.parked_head + i) % l.parked.size()];
    Client& c = clients_[p.slot];
    const bool alive = c.gen == p.gen && c.state == Client::State::kHead && !c.ex.active();
    if (!all && p.route != route) {
      l.parked[(l.parked_head + kept++) % l.parked.size()] = p;
      continue;
    }
    if (!alive) continue;
    c.fleet_parked = false;
    if (all) {
      c.fleet_pass = FleetPass::kNone;
    } else if (admit > 0) {
      --admit;
      c.fleet_pass = FleetPass::kGranted;
    } else if (refuse > 0) {
      --refuse;
      c.fleet_pass = FleetPass::kDenied;
      c.fleet_retry_s = retry_s;
    } else if (fallback > 0) {
      --fallback;
      c.fleet_pass = FleetPass::kFallback;
    } else {
      c.fleet_parked = true;
      l.parked[(l.parked_head + kept++) % l.parked.size()] = p;  // still waiting
      continue;
    }
    repump_.push_back(p.slot);
  }
  l.parked_count = kept;
}

}  // namespace hms::proxy
