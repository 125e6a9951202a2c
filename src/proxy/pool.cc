// Upstream connections for an exchange: onto a pipelined connection, from
// the endpoint's idle pool, or a new one; the pipelining queue's redirects;
// the endpoint pick; parking a finished connection in the per-endpoint pool;
// an HTTP/1.1 leg's Release (the pool, or the next pipelined exchange) and
// Abandon (closed, or no-reuse when queued behind another exchange).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "hms/common/check.h"
#include "hms/http/field_names.h"
#include "src/proxy/head_rewrite.h"
#include "src/proxy/wire.h"
#include "src/proxy/worker.h"

namespace hms::proxy {

bool Worker::AttachUpstream(uint32_t slot, bool fresh) {
  Client& c = clients_[slot];
  Exchange& ex = c.ex;
  // Skip ejected endpoints; when every one is ejected, a full turn comes back
  // to the first choice and the service's breaker decides.
  const std::vector<config::Endpoint>& eps = ex.cluster->endpoints;
  for (size_t i = 0; i < eps.size() && eps.size() > 1; ++i) {
    const config::Endpoint& e = eps[ex.endpoint_index % eps.size()];
    if (e.health == nullptr || e.health->Usable(now_)) break;
    ++ex.endpoint_index;
  }
  const config::Endpoint& ep = eps[ex.endpoint_index % eps.size()];
  ex.Attempt();
  ++ex.attempts;
  ex.attempt_start = now_;
  // This attempt's time: what is left of the deadline, or the per-try
  // timeout when shorter. The upstream is told in x-hms-timeout-ms.
  uint64_t left_ms = ex.deadline > now_ ? (ex.deadline - now_ + 999'999) / 1'000'000 : 1;
  uint64_t attempt_ms = left_ms;
  ex.per_try_bound = ex.cluster->per_try_timeout_ms != 0 && ex.cluster->per_try_timeout_ms < left_ms;
  if (ex.per_try_bound) attempt_ms = ex.cluster->per_try_timeout_ms;
  timers_.Arm(&c.ex.timer, now_, attempt_ms);
  {
    char* field = ex.head->data() + ex.timeout_field;
    Writer d(field, kTimeoutDigits);
    d.U(attempt_ms);
    HMS_CHECK(!d.overflow());  // at most the route's timeout, bounded far below 10^10 ms
    std::memset(field + d.size(), ' ', kTimeoutDigits - d.size());
  }
  FillGrpcTimeout(ex, attempt_ms);  // a gRPC call's grpc-timeout says the same
  // Bodiless GET/HEADs of one pass to one endpoint share a connection and a
  // send (upstream_pipeline_depth): one kernel send instead of several.
  // An h2c/h2 service multiplexes instead (h2_up.cc): no pool, no pipelining.
  const bool h2 = ex.cluster->protocol != config::UpstreamProtocol::kHttp1;
  bool pipelinable = config_.upstream_pipeline_depth > 1 && !fresh && !ex.websocket && !h2 &&
                     ex.req_body == http::BodyKind::kNone &&
                     (ex.method == http::Method::kGet || ex.method == http::Method::kHead);
  if (pipelinable && ep.id < coalesce_.size() && coalesce_[ep.id] != kNone) {
    uint32_t up = coalesce_[ep.id];
    Upstream& u = upstreams_[up];
    if ((u.state == Upstream::State::kBusy || u.state == Upstream::State::kConnecting) &&
        u.pipelined && !u.no_reuse && u.client != kNone &&
        u.waiting_count + 1u < config_.upstream_pipeline_depth) {
      u.waiting[(u.waiting_head + u.waiting_count) % Upstream::kMaxPipeline] = slot;
      ++u.waiting_count;
      ex.upstream = up;
      u.out.Append(&blocks_, ex.head->data(), ex.head->end);  // bodiless: nothing to replay
      metrics_.upstream_pipelined.Add();
      FollowConnection(up);
      return true;
    }
  }
  uint32_t up = kNone;
  if (h2) {
    up = AttachH2(ep, *ex.cluster);
  } else if (!fresh && ep.id < pool_head_.size() && pool_head_[ep.id] != kNone) {
    up = pool_head_[ep.id];
    PoolRemove(up);
    Upstream& u = upstreams_[up];
    timers_.Cancel(&u.timer);
    u.state = Upstream::State::kBusy;
    ++busy_[u.endpoint_id];
    u.reused = true;
    metrics_.upstream_connections_reused.Add();
  } else {
    up = NewUpstream(ep);
  }
  if (up == kNone) {
    metrics_.upstream_connect_errors.Add();
    ReportOutcome(ex, policy::Fault::kConnectNoSocket);  // nothing the service did
    LocalResponse(slot, policy::AnswerFor(policy::Fault::kConnectNoSocket), !ex.req_done);
    FinishExchange(slot);
    return false;
  }
  Upstream& u = upstreams_[up];
  u.client = slot;
  u.got_bytes = u.answering = false;
  u.pipelined = pipelinable;
  u.no_reuse = false;
  u.waiting_count = 0;
  if (pipelinable && ep.id < coalesce_.size()) {
    if (coalesce_[ep.id] == kNone) coalesce_touched_.push_back(ep.id);
    coalesce_[ep.id] = up;
  }
  ex.upstream = up;
  u.out.Append(&blocks_, ex.head->data(), ex.head->end);
  if (!ex.replay.empty()) {
    // A retry: the body forwarded so far goes again (at most kReplayMax, a
    // few blocks); the rest follows from the client as it arrives.
    iovec kept[16];
    int n = ex.replay.Gather(kept, 16);
    for (int i = 0; i < n; ++i) u.out.Append(&blocks_, static_cast<const char*>(kept[i].iov_base), kept[i].iov_len);
  }
  MarkDirty(u, up);
  FollowConnection(up);
  return true;
}

void Worker::FollowConnection(uint32_t up) {
  const Upstream& u = upstreams_[up];
  if (u.h2 != nullptr) {  // an h2 connection: its streams follow their own slots
    H2UpReady(up);
    return;
  }
  if (u.state != Upstream::State::kBusy || (u.tls != nullptr && !u.tls->handshake_done())) return;
  const bool sent = u.out.empty() && u.cipher_out.empty();
  auto follow = [&](uint32_t slot) {
    if (slot == kNone) return;
    Exchange& ex = clients_[slot].ex;
    if (ex.upstream != up) return;
    if (ex.state() == Exchange::State::kConnecting) ex.Connected();
    if (sent && ex.req_done && ex.state() == Exchange::State::kSending) ex.RequestSent();
  };
  follow(u.client);
  for (uint8_t i = 0; i < u.waiting_count; ++i) {
    follow(u.waiting[(u.waiting_head + i) % Upstream::kMaxPipeline]);
  }
}

void Worker::RedirectWaiting(uint32_t up) {
  Upstream& u = upstreams_[up];
  while (u.waiting_count > 0) {
    uint32_t slot = u.waiting[u.waiting_head];
    u.waiting_head = static_cast<uint8_t>((u.waiting_head + 1) % Upstream::kMaxPipeline);
    --u.waiting_count;
    if (slot == kNone) continue;
    Exchange& ex = clients_[slot].ex;
    ex.upstream = kNone;
    if (!ex.active()) continue;
    if (policy::RequeueBehindFailed(ex.attempts - ex.retries_done,
                                    static_cast<uint32_t>(ex.cluster->endpoints.size()))) {
      AttachUpstream(slot, true);
    } else {
      ReportOutcome(ex, policy::Fault::kUpstreamReset);
      LocalResponse(slot, policy::AnswerFor(policy::Fault::kUpstreamReset), true);
      FinishExchange(slot);
    }
  }
}

void Worker::ReleaseUpstream(uint32_t up, bool reusable) {
  Upstream& u = upstreams_[up];
  if (!reusable || draining_ || u.endpoint_id >= pool_head_.size() || !endpoint_live_[u.endpoint_id] ||
      pool_count_[u.endpoint_id] >= config_.upstream_idle_per_core || u.queued() > 0 ||
      u.cipher_in.held_head != kNone) {  // TLS records after the answer: not ours to keep
    CloseUpstream(up);
    return;
  }
  u.state = Upstream::State::kIdle;
  --busy_[u.endpoint_id];
  PoolPush(up);
  timers_.Arm(&u.timer, now_, std::min<uint64_t>(kUpstreamIdleMs, config_.idle_timeout_ms));
}

void Worker::PoolPush(uint32_t up) {
  Upstream& u = upstreams_[up];
  uint32_t& head = pool_head_[u.endpoint_id];
  u.pool_prev = kNone;
  u.pool_next = head;
  if (head != kNone) upstreams_[head].pool_prev = up;
  head = up;
  ++pool_count_[u.endpoint_id];
  metrics_.upstream_idle.Add();
}

void Worker::PoolRemove(uint32_t up) {
  Upstream& u = upstreams_[up];
  if (u.pool_prev != kNone) {
    upstreams_[u.pool_prev].pool_next = u.pool_next;
  } else {
    pool_head_[u.endpoint_id] = u.pool_next;
  }
  if (u.pool_next != kNone) upstreams_[u.pool_next].pool_prev = u.pool_prev;
  u.pool_next = u.pool_prev = kNone;
  --pool_count_[u.endpoint_id];
  metrics_.upstream_idle.Sub();
}

void Upstream::Release(bool reusable) noexcept {
  Worker& w = *worker;
  const uint32_t up = slot;
  reusable = reusable && !no_reuse;
  client = kNone;
  answering = false;
  if (waiting_count > 0) {
    if (reusable) {
      // The next pipelined answer follows on this connection.
      client = waiting[waiting_head];
      waiting_head = static_cast<uint8_t>((waiting_head + 1) % kMaxPipeline);
      --waiting_count;
      got_bytes = false;
    } else {
      w.RedirectWaiting(up);  // the upstream closes (or a queued client left): no more answers here
      w.CloseUpstream(up);
    }
    return;
  }
  w.ReleaseUpstream(up, reusable);
}

void Upstream::Abandon(uint32_t exchange) noexcept {
  Worker& w = *worker;
  if (client == exchange) {
    // Only a finished response returns a connection to the pool; requests
    // pipelined behind this one go elsewhere.
    client = kNone;
    w.RedirectWaiting(slot);
    w.CloseUpstream(slot);
    return;
  }
  // Queued behind another exchange: its answer will still arrive, so the
  // connection serves the current one and then closes.
  for (uint32_t i = 0; i < waiting_count; ++i) {
    uint32_t& q = waiting[(waiting_head + i) % kMaxPipeline];
    if (q == exchange) q = kNone;
  }
  no_reuse = true;
}

}  // namespace hms::proxy
