// The upstream side of a Worker: connections to endpoints, the per-endpoint
// idle pool, reading responses and relaying them to the client.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "hms/common/check.h"
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
  ++ex.attempts;
  ex.attempt_start = now_;
  // This attempt's time: what is left of the deadline, or the per-try
  // timeout when shorter. The upstream is told in x-hms-timeout-ms.
  uint64_t left_ms = ex.deadline > now_ ? (ex.deadline - now_ + 999'999) / 1'000'000 : 1;
  uint64_t attempt_ms = left_ms;
  ex.per_try_bound = ex.cluster->per_try_timeout_ms != 0 && ex.cluster->per_try_timeout_ms < left_ms;
  if (ex.per_try_bound) attempt_ms = ex.cluster->per_try_timeout_ms;
  timers_.Arm(&c.ex_timer, now_, attempt_ms);
  {
    char* field = ex.head->data() + ex.timeout_field;
    Writer d(field, kTimeoutDigits);
    d.U(attempt_ms);
    HMS_CHECK(!d.overflow());  // at most the route's timeout, bounded far below 10^10 ms
    std::memset(field + d.size(), ' ', kTimeoutDigits - d.size());
  }
  // Bodiless GET/HEADs of one pass to one endpoint share a connection and a
  // send (upstream_pipeline_depth): one kernel send instead of several.
  bool pipelinable = config_.upstream_pipeline_depth > 1 && !fresh &&
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
      return true;
    }
  }
  uint32_t up = kNone;
  if (!fresh && ep.id < pool_head_.size() && pool_head_[ep.id] != kNone) {
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
    if (up == kNone) {
      metrics_.upstream_connect_errors.Add();
      ReportOutcome(ex, policy::Fault::kConnectNoSocket);  // nothing the service did
      LocalResponse(slot, policy::AnswerFor(policy::Fault::kConnectNoSocket), !ex.req_done);
      FinishExchange(slot);
      return false;
    }
  }
  Upstream& u = upstreams_[up];
  u.client = slot;
  u.got_bytes = false;
  u.pipelined = pipelinable;
  u.no_reuse = false;
  u.waiting_count = 0;
  if (pipelinable && ep.id < coalesce_.size()) {
    if (coalesce_[ep.id] == kNone) coalesce_touched_.push_back(ep.id);
    coalesce_[ep.id] = up;
  }
  ex.upstream = up;
  u.out.Append(&blocks_, ex.head->data(), ex.head->end);
  if (!c.replay.empty()) {
    // A retry: the body forwarded so far goes again (at most kReplayMax, a
    // few blocks); the rest follows from the client as it arrives.
    iovec kept[16];
    int n = c.replay.Gather(kept, 16);
    for (int i = 0; i < n; ++i) u.out.Append(&blocks_, static_cast<const char*>(kept[i].iov_base), kept[i].iov_len);
  }
  MarkDirty(u, up);
  return true;
}

uint32_t Worker::NewUpstream(const config::Endpoint& ep) {
  int fd = socket(ep.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return kNone;
  int one = 1;
  // Each request head and body leaves in one send per pass; Nagle would hold
  // the next one back for a delayed ACK (FIELD-NOTES: 40 ms stalls).
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  uint32_t up = upstreams_.Alloc();
  Upstream& u = upstreams_[up];
  u.fd = fd;
  u.state = Upstream::State::kConnecting;
  u.endpoint_id = ep.id;
  ++busy_[ep.id];
  u.client = kNone;
  u.ops = 0;
  u.recv_armed = u.send_inflight = u.dirty = u.paused = u.reused = u.got_bytes = false;
  u.mtls = ep.mtls;
  u.tls_saved = false;
  u.pool_next = u.pool_prev = kNone;
  u.timer.owner = up;
  u.timer.kind = kTimerUpstream;
  io_uring_sqe* sqe = ring_.Sqe();
  io_uring_prep_connect(sqe, fd, reinterpret_cast<const sockaddr*>(&ep.addr), ep.addr_len);
  io_uring_sqe_set_data64(sqe, core::PackUserData(kOpConnectUp, u.gen, up));
  u.connect_inflight = true;
  ++u.ops;
  metrics_.upstream_connections_new.Add();
  return up;
}

void Worker::OnConnect(uint32_t up, int res) {
  Upstream& u = upstreams_[up];
  u.connect_inflight = false;
  --u.ops;
  if (u.state != Upstream::State::kConnecting) {
    MaybeFreeUpstream(up);
    return;
  }
  if (res < 0) {
    metrics_.upstream_connect_errors.Add();
    UpstreamFailed(up, policy::Fault::kConnect, "cannot connect to the upstream");
    return;
  }
  u.state = Upstream::State::kBusy;
  ArmRecv(upstreams_[up], kOpRecvUp, up);
  if (u.mtls && !StartUpstreamTls(up)) return;
  MarkDirty(upstreams_[up], up);
}

void Worker::OnUpstreamRecv(uint32_t up, int res, uint32_t flags) {
  Upstream& u = upstreams_[up];
  if (!(flags & IORING_CQE_F_MORE)) {
    u.recv_armed = false;
    --u.ops;
  }
  if (res > 0) {
    uint16_t bid = static_cast<uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
    if (u.state == Upstream::State::kBusy) {
      Hold(u.tls != nullptr ? u.cipher_in : u.in, bid, 0, static_cast<uint32_t>(res));
      PumpUpstream(up);
    } else {
      buffers_.Recycle(bid);
      // Bytes on an idle pooled connection belong to no request: drop it.
      if (u.state == Upstream::State::kIdle) CloseUpstream(up);
    }
  } else if (res == -ENOBUFS) {
    metrics_.buffer_ring_exhausted.Add();
  } else if (res != -ECANCELED || u.state == Upstream::State::kIdle) {
    OnUpstreamEof(up);  // EOF or error
  }
  if (!u.recv_armed && u.in.held_head == kNone && u.cipher_in.held_head == kNone &&
      (u.state == Upstream::State::kBusy || u.state == Upstream::State::kIdle) &&
      (res > 0 || res == -ENOBUFS || res == -ECANCELED)) {
    ArmRecv(upstreams_[up], kOpRecvUp, up);
  }
  MaybeFreeUpstream(up);
}

void Worker::OnUpstreamEof(uint32_t up) {
  Upstream& u = upstreams_[up];
  if (u.state == Upstream::State::kBusy && u.client != kNone) {
    Exchange& ex = clients_[u.client].ex;
    if (ex.resp_head_done && ex.resp_body == http::BodyKind::kUntilClose) {
      CompleteResponse(up);  // the close delimits the body
    } else {
      UpstreamFailed(up, policy::Fault::kUpstreamReset);
    }
  } else {
    CloseUpstream(up);
  }
}

void Worker::PumpUpstream(uint32_t up) {
  Upstream& u = upstreams_[up];
  if (u.state != Upstream::State::kBusy) return;
  if (u.tls != nullptr) {
    PumpUpstreamTls(up);
  } else {
    Drive(u.in, [this, up](const char* p, size_t n) -> int64_t { return ConsumeUpstream(up, p, n); });
  }
  Upstream& v = upstreams_[up];
  if (v.state != Upstream::State::kBusy && v.state != Upstream::State::kIdle) return;
  PauseOrResume(v, kOpRecvUp, up);
}

int64_t Worker::ConsumeUpstream(uint32_t up, const char* p, size_t n) {
  Upstream& u = upstreams_[up];
  if (u.state != Upstream::State::kBusy || u.client == kNone) {
    CloseUpstream(up);  // bytes after a complete response: not a connection to reuse
    return static_cast<int64_t>(n);
  }
  uint32_t slot = u.client;
  Client& c = clients_[slot];
  Exchange& ex = c.ex;
  if (ex.resp_head_done) return ForwardResponseBody(up, c, p, n);

  int rc = http::ParseResponse(p, n, config_.max_header_bytes, ex.method, &resp_);
  if (rc == http::kPartial) return 0;
  u.got_bytes = true;
  if (rc == http::kError || resp_.status == 101) {
    UpstreamFailed(up, policy::Fault::kUpstreamBadResponse);
    return static_cast<int64_t>(n);
  }
  if (resp_.status < 200) return rc;  // interim 1xx: we answered Expect ourselves
  const http::ResponseHead& r = resp_;
  HopByHop hop_by_hop(r.headers, r.header_count);
  if (hop_by_hop.too_many_options()) {
    UpstreamFailed(up, policy::Fault::kUpstreamBadResponse,
                   "the upstream's response names too many Connection options");
    return static_cast<int64_t>(n);
  }
  const bool dechunk = r.body == http::BodyKind::kChunked && ex.version_minor == 0;
  const bool close = !ex.client_keep_alive || r.body == http::BodyKind::kUntilClose || dechunk ||
                     draining_ || c.close_after_flush || !ex.req_done;

  // Written before anything is decided on this answer: a head that does not
  // fit is a failed attempt like a malformed one, not half a head.
  const size_t head_size = WriteResponseHead(c, hop_by_hop, dechunk, close);
  if (head_size == 0) {
    // Not reachable with today's fields (kHeadRoom): kept so that a field
    // added later fails this way rather than sending a cut head.
    UpstreamFailed(up, policy::Fault::kUpstreamHeaderTooLarge);
    return static_cast<int64_t>(n);
  }

  // Every attempt with a final head counts, a 5xx about to be retried too.
  metrics_.ObserveUpstream(ex.route_key, (now_ - ex.attempt_start) / 1000);
  const policy::Fault fault =
      policy::AnswerFault(r.status, http::FindHeader(r.headers, r.header_count, "x-hms-reason"));
  ReportEndpoint(ex, fault);
  if (fault == policy::Fault::kLocalServiceDown) {
    // A sidecar's "my service is down" is our refused connect one hop later
    // (docs/resilience.md): its answer goes with its connection, and the
    // request goes on as UpstreamFailed takes it on after a failed connect.
    u.client = kNone;
    ex.upstream = kNone;
    RedirectWaiting(up);
    CloseUpstream(up);
    if (!ScheduleRetry(slot, fault)) {
      ReportOutcome(ex, fault);
      const bool opened = BreakerOpen(ex);  // this failure opened it: say so
      LocalResponse(slot, policy::AnswerFor(opened ? policy::Fault::kCircuitOpen : fault),
                    !ex.req_done);
      FinishExchange(slot);
    }
    return static_cast<int64_t>(n);
  }
  if (ScheduleRetry(slot, fault)) {
    // A gateway error from upstream, and a retry is allowed: this answer is
    // dropped with its connection (its body is never read; the head written
    // above is never committed).
    u.client = kNone;
    ex.upstream = kNone;
    RedirectWaiting(up);
    CloseUpstream(up);
    return static_cast<int64_t>(n);
  }
  ReportOutcome(ex, fault);
  ex.resp_head_done = true;
  ex.resp_started = true;
  ex.status = r.status;
  ex.resp_body = r.body;
  ex.resp_remaining = r.content_length;
  ex.resp_keep_alive = r.keep_alive && r.body != http::BodyKind::kUntilClose;
  ex.dechunk = dechunk;
  if (close) c.close_after_flush = true;
  c.out.Commit(head_size);
  ex.bytes_out += head_size;
  MarkDirty(c, slot);
  // From here the route's deadline is met; a stalled body is cut by idle_timeout.
  timers_.Arm(&c.ex_timer, now_, config_.idle_timeout_ms);
  if (r.body == http::BodyKind::kNone ||
      (r.body == http::BodyKind::kContentLength && r.content_length == 0)) {
    CompleteResponse(up);
  }
  return rc;
}

// The response head toward the client: the status line, the upstream's
// end-to-end fields, ours. Reserved in the client's queue, committed by the
// caller; 0 when it does not fit a block.
size_t Worker::WriteResponseHead(Client& c, const HopByHop& hop_by_hop, bool dechunk, bool close) {
  const Exchange& ex = c.ex;
  ResponseHeadFields f;
  f.trace_id = ex.trace.external_len > 0
                   ? std::string_view(ex.trace.external_id, ex.trace.external_len)
                   : std::string_view(ex.trace.trace_id, 32);
  f.rate = ex.rate_limited_route ? &ex.rate : nullptr;
  f.dechunk = dechunk;
  f.close = close;
  f.client_version_minor = ex.version_minor;
  char* dst = c.out.Reserve(&blocks_, blocks_.block_size());
  return RewriteResponseHead(resp_, hop_by_hop, f, dst, blocks_.block_size());
}

int64_t Worker::ForwardResponseBody(uint32_t up, Client& c, const char* p, size_t n) {
  Exchange& ex = c.ex;
  uint32_t slot = upstreams_[up].client;
  if (c.queued() >= kMaxQueued) return kBlocked;  // resumed when the client's send drains
  size_t used = 0;
  bool done = false;
  switch (ex.resp_body) {
    case http::BodyKind::kContentLength:
      used = static_cast<size_t>(std::min<uint64_t>(n, ex.resp_remaining));
      c.out.Append(&blocks_, p, used);
      ex.resp_remaining -= used;
      done = ex.resp_remaining == 0;
      break;
    case http::BodyKind::kUntilClose:
      used = n;
      c.out.Append(&blocks_, p, n);
      break;
    case http::BodyKind::kChunked:
      while (used < n && !ex.resp_chunks.done()) {
        http::ChunkedDecoder::Step st;
        if (!ex.resp_chunks.Next(p + used, n - used, &st)) {
          // The head already left: the client can only learn of it by the close.
          CloseClient(slot, true);
          return static_cast<int64_t>(n);
        }
        if (st.consumed == 0) break;
        if (ex.dechunk) {
          if (st.data_len > 0) c.out.Append(&blocks_, p + used + st.data_offset, st.data_len);
        } else {
          c.out.Append(&blocks_, p + used, st.consumed);
        }
        used += st.consumed;
      }
      done = ex.resp_chunks.done();
      break;
    case http::BodyKind::kNone:
      done = true;
      break;
  }
  if (used > 0) {
    ex.bytes_out += used;
    MarkDirty(c, slot);
    timers_.Arm(&c.ex_timer, now_, config_.idle_timeout_ms);
  }
  if (done) CompleteResponse(up);
  return static_cast<int64_t>(used);
}

void Worker::CompleteResponse(uint32_t up) {
  Upstream& u = upstreams_[up];
  uint32_t slot = u.client;
  Client& c = clients_[slot];
  Exchange& ex = c.ex;
  bool reusable = ex.resp_keep_alive && ex.req_done && !u.no_reuse;
  ex.upstream = kNone;
  u.client = kNone;
  if (u.waiting_count > 0) {
    if (reusable) {
      // The next pipelined answer follows on this connection.
      u.client = u.waiting[u.waiting_head];
      u.waiting_head = static_cast<uint8_t>((u.waiting_head + 1) % Upstream::kMaxPipeline);
      --u.waiting_count;
      u.got_bytes = false;
    } else {
      RedirectWaiting(up);  // the upstream closes (or a queued client left): no more answers here
      CloseUpstream(up);
    }
    FinishExchange(slot);
    return;
  }
  ReleaseUpstream(up, reusable);
  FinishExchange(slot);
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
    if (!ex.active) continue;
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

void Worker::UpstreamFailed(uint32_t up, policy::Fault answer, std::string_view detail) {
  Upstream& u = upstreams_[up];
  uint32_t slot = u.client;
  // A failed mTLS handshake is a failed connect: no request byte left.
  bool connect_failed = u.state == Upstream::State::kConnecting ||
                        (u.tls != nullptr && !u.tls->handshake_done());
  bool stale = u.reused && !u.got_bytes;
  u.client = kNone;
  RedirectWaiting(up);  // pipelined requests behind this one never got an answer
  CloseUpstream(up);
  if (slot == kNone) return;
  Client& c = clients_[slot];
  Exchange& ex = c.ex;
  ex.upstream = kNone;
  if (!ex.active) return;
  // A malformed answer counts with resets: the upstream broke the exchange.
  const policy::Fault fault = connect_failed ? policy::Fault::kConnect : policy::Fault::kUpstreamReset;
  if (!stale) ReportEndpoint(ex, fault);
  if (ex.resp_started) {
    // Mid-response: what already arrived still goes out, then the close is
    // the client's only signal that the body is short.
    CloseClient(slot, true);
    return;
  }
  // Transparent retries (a failed connect, a stale pooled connection) or a
  // policy retry: policy::DecideRetry says which.
  if (ScheduleRetry(slot, fault, stale)) return;
  // The request failed: one failure for the service's breaker, whatever
  // number of attempts it took (docs/resilience.md).
  ReportOutcome(ex, fault);
  if (BreakerOpen(ex)) {
    // This failure opened the breaker (or it opened meanwhile): say so.
    LocalResponse(slot, policy::AnswerFor(policy::Fault::kCircuitOpen), !ex.req_done);
  } else if (ex.cluster->local && fault == policy::Fault::kConnect) {
    // A sidecar whose own service refuses connects says so (fault.h).
    LocalResponse(slot, policy::AnswerFor(policy::Fault::kLocalServiceDown), !ex.req_done);
  } else {
    LocalResponse(slot, policy::AnswerFor(answer, detail), !ex.req_done);
  }
  FinishExchange(slot);
}

void Worker::ReportEndpoint(const Exchange& ex, policy::Fault fault) {
  const config::Endpoint& e = ex.cluster->endpoints[ex.endpoint_index % ex.cluster->endpoints.size()];
  if (e.health == nullptr) return;
  switch (policy::Classify(fault).verdict) {
    case policy::FaultVerdict::kSuccess:
      e.health->OnSuccess();
      break;
    case policy::FaultVerdict::kFailure:
      e.health->OnFailure(now_);
      break;
    case policy::FaultVerdict::kNotCounted:
      break;
  }
}

bool Worker::BreakerOpen(const Exchange& ex) {
  return ex.breaker != nullptr && ex.breaker->Status(now_).state != policy::BreakerState::kClosed;
}

bool Worker::ScheduleRetry(uint32_t slot, policy::Fault fault, bool stale_pooled) {
  Client& c = clients_[slot];
  Exchange& ex = c.ex;
  const config::Cluster& cl = *ex.cluster;
  policy::RetryInput in;
  in.fault = fault;
  in.stale_pooled = stale_pooled;
  in.response_started = ex.resp_started;
  in.probe = ex.probe;
  in.replayable = ex.replayable;
  in.idempotent = ex.retryable;
  in.has_body = ex.req_body != http::BodyKind::kNone;
  in.breaker_open = BreakerOpen(ex);
  in.endpoints = static_cast<uint32_t>(cl.endpoints.size());
  in.connect_attempts = cl.connect_attempts;
  in.transparent_done = static_cast<uint32_t>(ex.attempts - ex.retries_done);
  in.retries_done = ex.retries_done;
  in.retries_allowed = cl.retries;
  in.retry_on = cl.retry_on;
  const bool status_fault =
      fault == policy::Fault::kGatewayStatus || fault == policy::Fault::kServerError;
  in.status = status_fault ? resp_.status : 0;  // the answer head ConsumeUpstream just parsed
  in.now = now_;
  in.deadline = ex.deadline;
  in.random = Random();
  const policy::RetryDecision d = policy::DecideRetry(in);
  if (d.action == policy::RetryAction::kGiveUp) return false;
  if (d.action == policy::RetryAction::kTransparent) {
    HMS_CHECK(ex.upstream == kNone);  // the failed attempt's connection is let go first
    if (d.next_endpoint) ++ex.endpoint_index;
    AttachUpstream(slot, true);
    return true;
  }
  const uint64_t backoff_ms = d.backoff_ms;
  if (cl.retry_budget != nullptr && !policy::CoreRetryBudget(cl.retry_budget.get(), index_).TryRetry(now_)) {
    metrics_.policy.Count(ex.route_key, obs::kPolicyBudgetRefused);
    return false;
  }
  metrics_.policy.Count(ex.route_key, obs::kPolicyRetried);
  ++ex.retries_done;
  ++ex.endpoint_index;  // another endpoint when there is one
  ex.backing_off = true;
  timers_.Arm(&c.ex_timer, now_, backoff_ms);
  return true;
}

uint32_t Worker::PickEndpoint(uint32_t cluster_index, const config::Cluster& cluster) {
  size_t n = cluster.endpoints.size();
  if (!cluster.least_request || n < 2) return static_cast<uint32_t>(rr_[cluster_index]++ % n);
  // Power of two choices: two distinct random endpoints, the less busy wins.
  uint32_t a = static_cast<uint32_t>(Random() % n);
  uint32_t b = static_cast<uint32_t>(Random() % (n - 1));
  if (b >= a) ++b;
  uint32_t ia = cluster.endpoints[a].id, ib = cluster.endpoints[b].id;
  uint32_t busy_a = ia < busy_.size() ? busy_[ia] : 0;
  uint32_t busy_b = ib < busy_.size() ? busy_[ib] : 0;
  return busy_a <= busy_b ? a : b;
}

uint64_t Worker::Random() noexcept {
  // xorshift64*: jitter and load-balancing picks, not secrets.
  rng_ ^= rng_ >> 12;
  rng_ ^= rng_ << 25;
  rng_ ^= rng_ >> 27;
  return rng_ * 0x2545F4914F6CDD1Dull;
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

void Worker::CloseUpstream(uint32_t up) {
  Upstream& u = upstreams_[up];
  if (u.state == Upstream::State::kFree || u.state == Upstream::State::kClosing) return;
  if (u.state == Upstream::State::kIdle) PoolRemove(up);
  if (u.state == Upstream::State::kConnecting || u.state == Upstream::State::kBusy) --busy_[u.endpoint_id];
  u.state = Upstream::State::kClosing;
  timers_.Cancel(&u.timer);
  ClearInput(u.in);
  ClearInput(u.cipher_in);
  shutdown(u.fd, SHUT_RDWR);  // ends the multishot recv and a pending send
  if (u.connect_inflight) Cancel(kOpConnectUp, u.gen, up);
  if (u.recv_armed) Cancel(kOpRecvUp, u.gen, up);
  MaybeFreeUpstream(up);
}

void Worker::MaybeFreeUpstream(uint32_t up) {
  Upstream& u = upstreams_[up];
  if (u.state != Upstream::State::kClosing || u.ops != 0) return;
  close(u.fd);
  u.fd = -1;
  ClearInput(u.in);
  u.out.Clear(&blocks_);
  ClearInput(u.cipher_in);
  u.cipher_out.Clear(&blocks_);
  u.tls.reset();
  u.state = Upstream::State::kFree;
  ++u.gen;
  upstreams_.Free(up);
}

void Worker::OnUpstreamSent(uint32_t up, int res) {
  Upstream& u = upstreams_[up];
  u.send_inflight = false;
  --u.ops;
  if (u.state != Upstream::State::kBusy) {
    MaybeFreeUpstream(up);
    return;
  }
  if (res < 0) {
    UpstreamFailed(up, policy::Fault::kUpstreamReset, "the upstream closed the connection");
    MaybeFreeUpstream(up);
    return;
  }
  u.wire().Consume(&blocks_, static_cast<size_t>(res));
  if (!u.wire().empty() || (u.tls != nullptr && !u.out.empty() && u.tls->handshake_done())) {
    MarkDirty(u, up);
  } else if (u.client != kNone && clients_[u.client].state == Client::State::kBody) {
    repump_.push_back(u.client);  // room again for the request body
  }
}

}  // namespace hms::proxy
