// The downstream side of a Worker: accepting, reading requests, answering.
#include <arpa/inet.h>
#include <netinet/in.h>
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
namespace {

std::string_view Find(const http::Header* h, int n, std::string_view name) {
  return http::FindHeader(h, static_cast<size_t>(n), name);
}

}  // namespace

void Worker::ArmAccept(uint16_t listener) {
  io_uring_sqe* sqe = ring_.Sqe();
  io_uring_prep_multishot_accept(sqe, listen_fds_[listener], nullptr, nullptr,
                                 SOCK_NONBLOCK | SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, core::PackUserData(kOpAccept, 0, listener));
  accept_armed_[listener] = true;
}

void Worker::OnAccept(uint16_t listener, int res, uint32_t flags) {
  if (!(flags & IORING_CQE_F_MORE)) {
    accept_armed_[listener] = false;
    if (!draining_) ArmAccept(listener);
  }
  if (res < 0) return;  // EMFILE, ECONNABORTED, ...: the listener carries on
  int fd = res;
  if (draining_ || clients_.live() >= config_.max_connections_per_core) {
    metrics_.connections_refused.Add();
    close(fd);
    return;
  }
  uint32_t slot = clients_.Alloc();
  Client& c = clients_[slot];
  c.fd = fd;
  c.state = Client::State::kHead;
  c.listener = listener;
  c.close_after_flush = c.eof = c.paused = c.dirty = c.send_inflight = c.recv_armed = false;
  c.watch_armed = c.watch_cancelling = false;
  c.sniffed = false;
  c.ops = 0;
  c.ex = Exchange{};
  c.timer.owner = c.ex_timer.owner = slot;
  c.timer.kind = kTimerClient;
  c.ex_timer.kind = kTimerExchange;
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  c.peer_len = 0;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
    const void* a = ss.ss_family == AF_INET6
                        ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr)
                        : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&ss)->sin_addr);
    if (inet_ntop(ss.ss_family, a, c.peer, sizeof c.peer) != nullptr) {
      c.peer_len = static_cast<uint8_t>(std::strlen(c.peer));
    }
  }
  metrics_.connections_accepted.Add();
  metrics_.connections_active.Add();
  const auto& tls_ctx = current_->snapshot->listener_tls;
  if (listener < tls_ctx.size() && tls_ctx[listener] != nullptr) {
    // One session per connection, made at accept (wolfSSL allocates it).
    c.tls = tls::Session::NewServer(tls_ctx[listener]);
    if (c.tls == nullptr) {
      metrics_.tls_failed.Add();
      c.state = Client::State::kClosing;
      c.phase = Client::Phase::kHard;
      MaybeFreeClient(slot);
      return;
    }
  }
  ArmRecv(clients_[slot], kOpRecvClient, slot);
  SetClientTimer(slot);
}

void Worker::SetClientTimer(uint32_t slot) {
  Client& c = clients_[slot];
  if (c.state == Client::State::kClosing) return;
  if (c.ex.active) {
    timers_.Cancel(&c.timer);
  } else if (!c.in.empty() || (c.tls != nullptr && !c.tls->handshake_done())) {
    // A handshake has header_timeout to finish, like a request head.
    timers_.Arm(&c.timer, now_, config_.header_timeout_ms);
  } else {
    timers_.Arm(&c.timer, now_, config_.idle_timeout_ms);
  }
}

void Worker::OnClientRecv(uint32_t slot, int res, uint32_t flags) {
  Client& c = clients_[slot];
  if (!(flags & IORING_CQE_F_MORE)) {
    c.recv_armed = false;
    --c.ops;
  }
  if (res > 0) {
    uint16_t bid = static_cast<uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
    metrics_.bytes_in.Add(static_cast<uint64_t>(res));
    if (c.state == Client::State::kClosing) {
      buffers_.Recycle(bid);  // flushing or lingering: read and drop
    } else {
      bool idle_before = c.in.empty() && !c.ex.active &&
                         (c.tls == nullptr || c.tls->handshake_done());
      Hold(c.tls != nullptr ? c.cipher_in : c.in, bid, 0, static_cast<uint32_t>(res));
      PumpClient(slot);
      if (idle_before && c.state != Client::State::kFree && c.state != Client::State::kClosing) {
        SetClientTimer(slot);
      }
    }
  } else if (res == 0) {
    c.eof = true;
    if (c.state == Client::State::kClosing) {
      if (c.phase != Client::Phase::kFlush) CloseClient(slot, false);  // flushing: closes when sent
    } else if (!c.ex.active) {
      CloseClient(slot, true);
    } else if (!EndAbandonedUpload(slot)) {
      c.close_after_flush = true;  // answer the request in flight, then close
    }
  } else if (res == -ENOBUFS) {
    metrics_.buffer_ring_exhausted.Add();  // back-pressure: re-armed below
  } else if (res != -ECANCELED) {
    CloseClient(slot, false);
  }
  if (!c.recv_armed && !c.eof && c.in.held_head == kNone && c.cipher_in.held_head == kNone &&
      (c.state == Client::State::kHead || c.state == Client::State::kBody ||
       c.state == Client::State::kAwaitResponse || c.phase == Client::Phase::kLinger)) {
    ArmRecv(clients_[slot], kOpRecvClient, slot);
  }
  WatchClient(slot);
  MaybeFreeClient(slot);
}

// A connection that is open but not reading (its input held while an exchange
// runs, or the peer's FIN read) would learn of its peer's reset only when it
// reads again: after a slow upstream answers, after a stalled upload's route
// timeout, or never. Its slot, descriptor, blocks, held buffers and upstream
// connection would stay taken meanwhile. A one-shot poll for POLLERR|POLLHUP
// covers that time. TCP raises both on a reset (tcp_reset: sk_err set, then
// tcp_done shuts both directions); a FIN alone raises neither (only
// POLLRDHUP), so a half-closed client still gets its answers. The error
// queue, the other source of POLLERR, is unused (SEND_ZC notifies in CQEs).
void Worker::WatchClient(uint32_t slot) {
  Client& c = clients_[slot];
  bool open = c.state == Client::State::kHead || c.state == Client::State::kBody ||
              c.state == Client::State::kAwaitResponse;
  bool reading = c.recv_armed && !c.paused;
  if (open && !reading) {
    if (c.watch_armed) return;
    io_uring_sqe* sqe = ring_.Sqe();
    io_uring_prep_poll_add(sqe, c.fd, POLLERR | POLLHUP);
    io_uring_sqe_set_data64(sqe, core::PackUserData(kOpWatchClient, c.gen, slot));
    c.watch_armed = true;
    ++c.ops;
  } else if (c.watch_armed && !c.watch_cancelling) {
    Cancel(kOpWatchClient, c.gen, slot);
    c.watch_cancelling = true;
  }
}

void Worker::OnClientWatch(uint32_t slot, int res) {
  Client& c = clients_[slot];
  c.watch_armed = c.watch_cancelling = false;
  --c.ops;
  if (res > 0 && (res & (POLLERR | POLLHUP)) != 0) {
    CloseClient(slot, false);  // reset: nothing more can reach this client (frees the slot)
    return;
  }
  // Cancelled, and the need may have come back since; any other error is not
  // retried (no spin): the connection's own timers still bound it.
  if (res == -ECANCELED) WatchClient(slot);
  MaybeFreeClient(slot);
}

// Feeds pending input, then pauses or resumes the recv as the input allows.
void Worker::PumpClient(uint32_t slot) {
  Client& c = clients_[slot];
  if (c.state == Client::State::kFree) return;
  if (c.tls != nullptr) {
    PumpClientTls(slot);
  } else {
    Drive(c.in, [this, slot](const char* p, size_t n) -> int64_t { return ConsumeClient(slot, p, n); });
  }
  Client& d = clients_[slot];
  if (d.state == Client::State::kFree || d.state == Client::State::kClosing) return;
  if (!d.eof) PauseOrResume(d, kOpRecvClient, slot);
  WatchClient(slot);
}

int64_t Worker::ConsumeClient(uint32_t slot, const char* p, size_t n) {
  Client& c = clients_[slot];
  switch (c.state) {
    case Client::State::kHead: {
      if (c.ex.active) return kBlocked;
      int rc = http::ParseRequest(p, n, config_.max_header_bytes, &req_);
      if (rc == http::kPartial) return 0;
      if (rc == http::kError) {
        std::string_view reason = http::ParseErrorReason(req_.error);
        char msg[96];
        std::snprintf(msg, sizeof msg, "malformed request: %.*s", static_cast<int>(reason.size()),
                      reason.data());
        // The parser's error refines the row: its status and its token.
        policy::Answer a = policy::AnswerFor(policy::Fault::kMalformedRequest, msg);
        a.status = static_cast<uint16_t>(http::ParseErrorStatus(req_.error));
        a.reason = reason;
        // After a framing error no byte of this connection can be trusted as
        // the start of another request (DESIGN §6): answer and close.
        RejectRequest(slot, a);
        return static_cast<int64_t>(n);
      }
      return StartExchange(slot, static_cast<size_t>(rc));
    }
    case Client::State::kBody:
      return ForwardRequestBody(slot, p, n);
    case Client::State::kAwaitResponse:
      return kBlocked;
    case Client::State::kClosing:
    case Client::State::kFree:
      return static_cast<int64_t>(n);
  }
  return kBlocked;
}

// A request head arrived: the exchange begins (BeginExchange), finds its
// route (ResolveRoute), passes the stamps (Admit), and its upstream head is
// written (WriteUpstreamHead) before an upstream connection is attached. A
// step that refuses returns the fault; the answer is written in one place
// (AnswerRefusal).
int64_t Worker::StartExchange(uint32_t slot, size_t head_len) {
  Client& c = clients_[slot];
  Exchange& ex = c.ex;
  BeginExchange(slot, head_len);
  RouteChoice choice;
  policy::Fault fault = ResolveRoute(slot, &choice);
  // The caller's fields that never go upstream are decided here, before any
  // stamp spends a token or a breaker probe on a request that may be refused.
  HopByHop hop_by_hop(req_.headers, req_.header_count);
  if (fault == policy::Fault::kNone) fault = Admit(slot, choice, hop_by_hop);
  if (fault == policy::Fault::kNone && !WriteUpstreamHead(slot, choice, hop_by_hop)) {
    // The head with our fields outgrew its block (kHeadRoom past
    // max_header_bytes): only an outsized caller identity gets here today.
    // Refused whole; a cut head would reach the upstream as another message.
    fault = Refuse(policy::Fault::kHeaderTooLarge);
  }
  if (fault != policy::Fault::kNone) {
    AnswerRefusal(slot);
    return static_cast<int64_t>(head_len);
  }
  if (req_.expect_continue && !ex.req_done) {
    c.out.Append(&blocks_, "HTTP/1.1 100 Continue\r\n\r\n", 25);
  }
  c.state = ex.req_done ? Client::State::kAwaitResponse : Client::State::kBody;
  if (!AttachUpstream(slot, false)) return static_cast<int64_t>(head_len);
  if (c.out.size() > 0) MarkDirty(c, slot);
  return static_cast<int64_t>(head_len);
}

void Worker::BeginExchange(uint32_t slot, size_t head_len) {
  Client& c = clients_[slot];
  const http::RequestHead& r = req_;
  Exchange& ex = c.ex;
  ex = Exchange{};
  ex.active = true;
  ex.start = now_;
  ex.method = r.method;
  ex.version_minor = r.version_minor;
  ex.client_keep_alive = r.keep_alive;
  ex.req_body = r.body;
  ex.req_remaining = r.content_length;
  ex.req_done = r.body == http::BodyKind::kNone ||
                (r.body == http::BodyKind::kContentLength && r.content_length == 0);
  ex.route_key = kNoRouteKey;
  ex.bytes_in = head_len;
  ex.method_len = static_cast<uint8_t>(std::min(r.method_text.size(), sizeof ex.method_text));
  std::memcpy(ex.method_text, r.method_text.data(), ex.method_len);
  timers_.Cancel(&c.timer);

  // Trace: the caller's x-trace-id, else its traceparent, else its B3
  // header, else a new trace (obs::AcceptTrace), found in one pass.
  std::string_view xid, tp, b3;
  for (int i = 0; i < r.header_count; ++i) {
    const http::Header& h = r.headers[i];
    if (xid.empty() && http::EqualsIgnoreCase(h.name, "x-trace-id")) {
      xid = h.value;
    } else if (tp.empty() && http::EqualsIgnoreCase(h.name, "traceparent")) {
      tp = h.value;
    } else if (b3.empty() && http::EqualsIgnoreCase(h.name, "b3")) {
      b3 = h.value;
    }
  }
  ex.trace.external_len = 0;
  if (!obs::CallerDecidedSampling(obs::AcceptTrace(xid, tp, b3, &ex.trace))) {
    obs::SetSampled(&ex.trace, obs::SampleHit(Random(), span_sample_below_));
  }
  obs::NewSpan(&ex.trace);
  if (spans_ != nullptr && (ex.trace.flags & 1) != 0) StartSpan(ex, r);

  ex.hold = current_;
  ++current_->inflight;
}

policy::Fault Worker::Refuse(policy::Fault fault, std::string_view detail) {
  refusal_.answer = policy::AnswerFor(fault, detail);
  refusal_.close = false;
  refusal_.fields[0] = '\0';
  return fault;
}

void Worker::AnswerRefusal(uint32_t slot) {
  Exchange& ex = clients_[slot].ex;
  LocalResponse(slot, refusal_.answer, refusal_.close || !ex.req_done,
                refusal_.fields[0] != '\0' ? refusal_.fields : nullptr);
  FinishExchange(slot);
}

policy::Fault Worker::ResolveRoute(uint32_t slot, RouteChoice* choice) {
  Client& c = clients_[slot];
  Exchange& ex = c.ex;
  const http::RequestHead& r = req_;
  const config::Snapshot& snap = *ex.hold->snapshot;
  char* msg = refusal_.detail;
  const size_t msg_size = sizeof refusal_.detail;
  constexpr size_t kShortDetail = 160;  // the bound these messages always had
  // One canonical path, checked and served (docs/engine.md "The canonical
  // path"): every listener kind routes on it and sends exactly it upstream,
  // in origin-form, so the route whose stamps were applied is the resource
  // the upstream serves. A target already canonical costs one scan.
  http::CanonicalTarget canon;
  http::PathError path_error = http::PathError::kNone;
  if (!http::CanonicalizeTarget(r, path_options_, path_scratch_.get(), path_scratch_size_, &canon,
                                &path_error)) {
    const std::string_view rule = http::PathErrorRule(path_error);
    const std::string_view why = http::PathErrorText(path_error);
    std::snprintf(msg, msg_size, "bad path (%.*s): %.*s", static_cast<int>(rule.size()),
                  rule.data(), static_cast<int>(why.size()), why.data());
    return Refuse(policy::Fault::kBadPath, msg);
  }
  req_.path = canon.path;  // r aliases req_: routing, logs and spans see the canonical path
  // Which route: the edge's table, a sidecar's inbound route, or the egress
  // route of the service the local caller names.
  uint32_t target = 0;
  choice->origin = canon.origin;  // the request-target sent upstream
  ListenerKind kind = listener_kind_[c.listener];
  route::Match m;
  if (kind == ListenerKind::kInbound) {
    target = snap.inbound_route;
  } else if (kind == ListenerKind::kEgress) {
    if (!SelectEgress(snap, r, canon, &target, &choice->origin, &choice->egress_to)) {
      std::snprintf(msg, kShortDetail,
                    "no service named by Host '%.*s' or by the path's first segment",
                    static_cast<int>(std::min<size_t>(r.host.size(), 64)), r.host.data());
      return Refuse(policy::Fault::kNoService, msg);
    }
  } else {
    m = snap.table.Find(r.host, r.method_text, r.path);
    target = m.target;
  }
  if (kind == ListenerKind::kEdge && m.kind != route::MatchKind::kFound) {
    if (m.kind == route::MatchKind::kNotFound) {
      std::snprintf(msg, kShortDetail, "no route for %.*s %.*s",
                    static_cast<int>(r.method_text.size()),
                    r.method_text.data(), static_cast<int>(std::min<size_t>(r.path.size(), 100)),
                    r.path.data());
      return Refuse(policy::Fault::kNoRoute, msg);
    }
    std::snprintf(msg, kShortDetail, "method %.*s not allowed here",
                  static_cast<int>(r.method_text.size()), r.method_text.data());
    Refuse(policy::Fault::kMethodNotAllowed, msg);
    std::snprintf(refusal_.fields, sizeof refusal_.fields, "allow: %.*s\r\n",
                  static_cast<int>(m.allow.size()), m.allow.data());
    return policy::Fault::kMethodNotAllowed;
  }
  choice->target = target;
  const config::Route& route = snap.routes[target];
  const config::Cluster& cluster = snap.clusters[route.cluster];
  ex.route = &route;
  ex.cluster = &cluster;
  ex.route_key = route.key;
  // A caller's identity is its certificate's one URI SAN, checked once per
  // request against allow_from (a reload may change the list).
  choice->peer_id = c.tls != nullptr ? c.tls->peer_identity() : std::string_view();
  if (kind == ListenerKind::kInbound && c.tls != nullptr && c.tls->handshake_done() &&
      !PeerAllowed(cluster, choice->peer_id)) {
    metrics_.identity_refused.Add();
    const std::string_view peer_id = choice->peer_id;
    std::snprintf(msg, msg_size, "identity '%.*s' is not in this service's allow_from",
                  static_cast<int>(std::min<size_t>(peer_id.size(), 120)), peer_id.data());
    if (peer_id.empty()) {
      std::snprintf(msg, msg_size, "the client certificate carries no single URI identity");
    }
    return Refuse(policy::Fault::kIdentityNotAllowed, msg);
  }
  return policy::Fault::kNone;
}

// The admission pipeline, in order: what the request may carry (body size,
// Connection options, field names), then the stamps: JWT → rate limit →
// breaker → endpoint pick. The first that refuses ends it.
policy::Fault Worker::Admit(uint32_t slot, const RouteChoice& choice, const HopByHop& hop_by_hop) {
  Exchange& ex = clients_[slot].ex;
  const http::RequestHead& r = req_;
  const config::Snapshot& snap = *ex.hold->snapshot;
  const config::Route& route = *ex.route;
  const config::Cluster& cluster = *ex.cluster;
  if (r.body == http::BodyKind::kContentLength && r.content_length > config_.max_body_bytes) {
    Refuse(policy::Fault::kBodyTooLarge);
    refusal_.close = true;  // the body is not read
    return policy::Fault::kBodyTooLarge;
  }
  if (hop_by_hop.too_many_options()) {
    std::snprintf(refusal_.detail, sizeof refusal_.detail,
                  "the Connection fields name more than %d options", HopByHop::kMaxOptions);
    return Refuse(policy::Fault::kTooManyConnectionOptions, refusal_.detail);
  }
  policy::Fault fault = JudgeFieldNames(slot);
  if (fault != policy::Fault::kNone) return fault;
  claims_valid_ = false;
  if (snap.jwt_keys != nullptr && route.auth_mode != config::AuthMode::kNone) {
    fault = Authenticate(snap, route);
    if (fault != policy::Fault::kNone) return fault;
  }
  if (route.limiter != nullptr) {
    fault = AdmitRate(slot, choice.target);
    if (fault != policy::Fault::kNone) return fault;
  }
  if (cluster.breaker_state != nullptr) {
    policy::BreakerAdmission a = cluster.breaker_state->Admit(now_);
    if (!a.allowed) return Refuse(policy::Fault::kCircuitOpen);
    ex.breaker = cluster.breaker_state.get();
    ex.probe = a.is_probe;
  }
  if (cluster.endpoints.empty()) return Refuse(policy::Fault::kNoEndpoints);
  ex.endpoint_index = PickEndpoint(route.cluster, cluster);
  ex.retryable = http::IsIdempotent(r.method) ||
                 !Find(r.headers, r.header_count, "idempotency-key").empty();
  // This core's view of the service's retry budget is made where it is used
  // (a pointer and an index): an exchange may outlive the snapshot it began in.
  if (cluster.retry_budget != nullptr) {
    policy::CoreRetryBudget(cluster.retry_budget.get(), index_).OnRequest(now_);
  }
  return policy::Fault::kNone;
}

policy::Fault Worker::AdmitRate(uint32_t slot, uint32_t target) {
  Client& c = clients_[slot];
  Exchange& ex = c.ex;
  const http::RequestHead& r = req_;
  const config::Route& route = *ex.route;
  // One shared word per bucket: the process admits what a single global
  // bucket would, whichever core this is (docs/resilience.md).
  policy::CoreRateLimiter& limiter = limiters_[target];
  switch (route.rate_key) {
    case config::RateKey::kRoute:
      ex.rate = limiter.TryTake(now_);
      break;
    case config::RateKey::kHeader:
      ex.rate = limiter.TryTake(now_, Find(r.headers, r.header_count, route.rate_header));
      break;
    case config::RateKey::kJwtSub:
      if (claims_valid_ && !claims_.sub().empty()) {
        ex.rate = limiter.TryTake(now_, claims_.sub());
        break;
      }
      // jwt_sub without a verified subject (auth optional, no token): the
      // caller's address stands in.
      [[fallthrough]];
    case config::RateKey::kClientIp:
      ex.rate = limiter.TryTake(now_, std::string_view(c.peer, c.peer_len));
      break;
  }
  ex.rate_limited_route = true;
  metrics_.policy.Count(route.key, ex.rate.admitted ? obs::kPolicyAdmitted : obs::kPolicyLimited);
  if (ex.rate.admitted) return policy::Fault::kNone;
  Refuse(policy::Fault::kRateLimited);
  Writer f(refusal_.fields, sizeof refusal_.fields - 1);
  f.S("retry-after: ").U(ex.rate.retry_after_s).S("\r\n");
  WriteRateFields(f, ex.rate);
  HMS_CHECK(!f.overflow());  // four numbers of at most 20 digits and their names: < 160
  refusal_.fields[f.size()] = '\0';
  return policy::Fault::kRateLimited;
}

// The upstream head: request line, the caller's end-to-end fields, ours.
// Also sets the exchange's deadline (the caller's x-hms-timeout-ms is read
// here). False when the head does not fit its block.
bool Worker::WriteUpstreamHead(uint32_t slot, const RouteChoice& choice,
                               const HopByHop& hop_by_hop) {
  Client& c = clients_[slot];
  Exchange& ex = c.ex;
  const http::RequestHead& r = req_;
  const config::Route& route = *ex.route;
  const config::Cluster& cluster = *ex.cluster;
  const std::string_view origin = choice.origin;
  const std::string_view egress_to = choice.egress_to;
  ex.head = blocks_.Get();
  Writer w(ex.head->data(), blocks_.block_size());
  w.S(r.method_text).C(' ');
  if (origin.empty() || origin.front() == '?') w.C('/');  // egress "/NAME" or "/NAME?q"
  w.S(origin).S(" HTTP/1.1\r\n");
  std::string_view xff;
  std::string_view caller_ms;  // the caller's x-hms-timeout-ms (the first one)
  bool has_host = false;
  // RFC 9112 §3.2.2: a proxy forwarding an absolute-form request replaces
  // Host with the target's authority (the parser put it in r.host, which is
  // what chose the route); the origin above is already origin-form.
  const bool absolute_form = r.target.front() != '/' && !r.path.empty() && r.path.front() == '/';
  for (int i = 0; i < r.header_count; ++i) {
    const http::Header& h = r.headers[i];
    if (http::EqualsIgnoreCase(h.name, kTimeoutHeader)) {
      if (caller_ms.empty()) caller_ms = h.value;
      continue;  // ours replaces it
    }
    if (hop_by_hop(i)) continue;
    // Counted and noted by JudgeFieldNames.
    if (http::JudgeFieldName(h.name, config_.underscores_in_headers) !=
        http::FieldVerdict::kForward) {
      continue;
    }
    if (http::EqualsIgnoreCase(h.name, "x-forwarded-for")) {
      xff = h.value;
      continue;
    }
    if (http::EqualsIgnoreCase(h.name, "expect") || http::EqualsIgnoreCase(h.name, "x-forwarded-proto") ||
        http::EqualsIgnoreCase(h.name, "x-trace-id") || http::EqualsIgnoreCase(h.name, "traceparent") ||
        http::EqualsIgnoreCase(h.name, "x-hms-peer")) {
      continue;
    }
    if (http::EqualsIgnoreCase(h.name, "host")) {
      if (!egress_to.empty() || absolute_form) continue;
      has_host = true;
    }
    // Identical repeated Content-Length fields were folded by the parser: one goes out.
    if (http::EqualsIgnoreCase(h.name, "content-length")) continue;
    w.S(h.name).S(": ").S(h.value).S("\r\n");
  }
  SetDeadline(ex, route.timeout_ms, caller_ms);
  if (!egress_to.empty()) {
    w.S("host: ").S(egress_to).S("\r\n");
  } else if (absolute_form) {
    w.S("host: ").S(r.host).S("\r\n");  // the target's authority (RFC 9112 §3.2.2)
  } else if (!has_host) {
    w.S("host: ").S(cluster.endpoints[ex.endpoint_index].authority()).S("\r\n");
  }
  w.S("x-forwarded-for: ");
  if (!xff.empty()) w.S(xff).S(", ");
  w.S(std::string_view(c.peer, c.peer_len))
      .S(c.tls != nullptr ? "\r\nx-forwarded-proto: https\r\nx-trace-id: " : "\r\nx-forwarded-proto: http\r\nx-trace-id: ");
  if (ex.trace.external_len > 0) {
    w.S(std::string_view(ex.trace.external_id, ex.trace.external_len));
  } else {
    w.S(std::string_view(ex.trace.trace_id, 32));
  }
  // The verified caller, for the service behind (any such field from the
  // caller was dropped above).
  if (!choice.peer_id.empty()) w.S("\r\nx-hms-peer: ").S(choice.peer_id);
  char tpbuf[64];
  int tplen = obs::FormatTraceparent(ex.trace, tpbuf);
  w.S("\r\ntraceparent: ").S(std::string_view(tpbuf, static_cast<size_t>(tplen))).S("\r\n");
  // Filled in by each attempt (AttachUpstream): digits, then spaces (OWS).
  w.S(kTimeoutHeader).S(": ");
  ex.timeout_field = static_cast<uint32_t>(w.size());
  w.S("          \r\n");
  if (r.body == http::BodyKind::kChunked) w.S("transfer-encoding: chunked\r\n");
  if (r.body == http::BodyKind::kContentLength) w.S("content-length: ").U(r.content_length).S("\r\n");
  w.S("\r\n");
  if (w.overflow()) return false;
  ex.head->end = static_cast<uint32_t>(w.size());
  return true;
}

// The deadline: the route's timeout, or what the caller says it has left
// (a gateway's x-hms-timeout-ms reaching a sidecar), whichever is shorter.
void Worker::SetDeadline(Exchange& ex, uint64_t timeout_ms, std::string_view caller_ms) {
  if (!caller_ms.empty() && caller_ms.size() <= 9) {
    uint64_t v = 0;
    for (char ch : caller_ms) {
      if (ch < '0' || ch > '9') {
        v = 0;  // not a number: ignored
        break;
      }
      v = v * 10 + static_cast<uint64_t>(ch - '0');
    }
    if (v > 0 && v < timeout_ms) {
      timeout_ms = v;
      ex.caller_deadline = true;  // its running out is the caller's choice, not a failure
    }
  }
  ex.deadline = now_ + core::Millis(timeout_ms);
}

bool Worker::PeerAllowed(const config::Cluster& local, std::string_view identity) {
  if (identity.empty()) return false;
  if (local.allowed_peers.empty()) return true;
  for (const std::string& p : local.allowed_peers)
    if (p == identity) return true;
  return false;
}

// Egress (docs/sidecar.md): `Host: NAME` names the service; else the
// canonical path's first segment does (`/NAME/rest` goes out as `/rest`), so
// `/x/../NAME/rest` selects NAME too. Upstream the target is always
// origin-form (absolute-form, "GET http://NAME/x", a proxy-style call,
// included) and the Host is the service's name.
bool Worker::SelectEgress(const config::Snapshot& snap, const http::RequestHead& r,
                          const http::CanonicalTarget& canon, uint32_t* target,
                          std::string_view* origin, std::string_view* service) {
  std::string_view host = r.host;
  if (!host.empty() && host.front() != '[') host = host.substr(0, host.find(':'));
  if (const config::Route* route = snap.EgressRoute(host)) {
    *target = static_cast<uint32_t>(route - snap.routes.data());
    *origin = canon.origin;
    *service = snap.clusters[route->cluster].name;
    return true;
  }
  if (canon.path.size() < 2 || canon.path.front() != '/') return false;
  std::string_view segment = canon.path.substr(1, canon.path.find('/', 1) - 1);
  const config::Route* route = snap.EgressRoute(segment);
  if (route == nullptr) return false;
  *target = static_cast<uint32_t>(route - snap.routes.data());
  *origin = canon.origin.substr(1 + segment.size());  // "", "/rest...", "?query"
  *service = snap.clusters[route->cluster].name;
  return true;
}

int64_t Worker::ForwardRequestBody(uint32_t slot, const char* p, size_t n) {
  Client& c = clients_[slot];
  Exchange& ex = c.ex;
  if (ex.upstream == kNone) return kBlocked;  // connecting to another endpoint
  Upstream& u = upstreams_[ex.upstream];
  if (u.queued() >= kMaxQueued) return kBlocked;  // resumed when the upstream send drains
  size_t used = 0;
  if (ex.req_body == http::BodyKind::kContentLength) {
    used = static_cast<size_t>(std::min<uint64_t>(n, ex.req_remaining));
    u.out.Append(&blocks_, p, used);
    ex.req_remaining -= used;
    if (ex.req_remaining == 0) ex.req_done = true;
  } else {
    while (used < n && !ex.req_chunks.done()) {
      http::ChunkedDecoder::Step st;
      if (!ex.req_chunks.Next(p + used, n - used, &st)) {
        uint32_t up = ex.upstream;
        ex.upstream = kNone;
        upstreams_[up].client = kNone;
        CloseUpstream(up);
        ReportOutcome(ex, policy::Fault::kBadChunk);
        if (!ex.resp_started) {
          LocalResponse(slot, policy::AnswerFor(policy::Fault::kBadChunk), true);
          FinishExchange(slot);
        } else {
          CloseClient(slot, false);
        }
        return static_cast<int64_t>(n);
      }
      if (st.consumed == 0) break;
      u.out.Append(&blocks_, p + used, st.consumed);
      used += st.consumed;
    }
    if (ex.req_chunks.data_bytes() > config_.max_body_bytes && !ex.resp_started) {
      uint32_t up = ex.upstream;
      ex.upstream = kNone;
      upstreams_[up].client = kNone;
      CloseUpstream(up);
      ReportOutcome(ex, policy::Fault::kBodyTooLarge);
      LocalResponse(slot, policy::AnswerFor(policy::Fault::kBodyTooLarge), true);
      FinishExchange(slot);
      return static_cast<int64_t>(n);
    }
    if (ex.req_chunks.done()) ex.req_done = true;
  }
  ex.bytes_in += used;
  if (used > 0) {
    // Kept for a retry while the whole body so far fits kReplayMax.
    if (ex.replayable) {
      if (c.replay.size() + used <= kReplayMax) {
        c.replay.Append(&blocks_, p, used);
      } else {
        ex.replayable = false;
        c.replay.Clear(&blocks_);
      }
    }
    MarkDirty(u, ex.upstream);
  }
  if (ex.req_done) c.state = Client::State::kAwaitResponse;
  return static_cast<int64_t>(used);
}

void Worker::LocalResponse(uint32_t slot, const policy::Answer& answer, bool close,
                           const char* extra_header) {
  Client& c = clients_[slot];
  Exchange& ex = c.ex;
  const uint16_t status = answer.status;
  const std::string_view reason = answer.reason;
  const std::string_view message = answer.message;
  HMS_CHECK(status >= 400 && !reason.empty());  // a fault with an answer of its own
  ex.status = status;
  ex.resp_started = true;
  ex.reason_len = static_cast<uint8_t>(std::min(reason.size(), sizeof ex.reason));
  std::memcpy(ex.reason, reason.data(), ex.reason_len);
  if (close || !ex.client_keep_alive || draining_) c.close_after_flush = true;
  char body[512];
  Writer b(body, sizeof body);
  std::string_view tid = ex.trace.external_len > 0
                             ? std::string_view(ex.trace.external_id, ex.trace.external_len)
                             : std::string_view(ex.trace.trace_id, 32);
  b.S("{\"error\":\"").Json(message).S("\",\"reason\":\"").Json(reason).S("\",\"trace_id\":\"")
      .Json(tid).S("\"}\n");
  if (b.overflow()) {
    // A message that escapes past the body (a certificate's identity full of
    // control characters): the answer keeps its reason, not half a JSON text.
    b = Writer(body, sizeof body);
    b.S("{\"error\":\"(message too long)\",\"reason\":\"")
        .Json(reason)
        .S("\",\"trace_id\":\"")
        .Json(tid)
        .S("\"}\n");
    HMS_CHECK(!b.overflow());  // a reason token and a trace id: < 300 bytes
  }
  // Head (< 800 bytes with the longest extra field, a 512-byte
  // WWW-Authenticate) and body (< 512) fit in 2 KiB.
  char* dst = c.out.Reserve(&blocks_, 2048);
  Writer w(dst, 2048);
  w.S("HTTP/1.1 ").U(static_cast<uint64_t>(status)).C(' ').S(StatusText(status)).S("\r\n");
  w.S("content-type: application/json\r\ncontent-length: ").U(b.size()).S("\r\n");
  w.S("x-hms-reason: ").S(reason).S("\r\nx-trace-id: ").S(tid).S("\r\n");
  if (extra_header != nullptr) w.S(extra_header);
  if (c.close_after_flush) {
    w.S("connection: close\r\n");
  } else if (ex.version_minor == 0) {
    w.S("connection: keep-alive\r\n");
  }
  w.S("\r\n");
  // An answer to HEAD has the same fields and no body (RFC 9110 §9.3.2).
  if (ex.method != http::Method::kHead) w.S(std::string_view(body, b.size()));
  HMS_CHECK(!w.overflow());
  c.out.Commit(w.size());
  ex.bytes_out += w.size();
  MarkDirty(c, slot);
}

policy::Fault Worker::JudgeFieldNames(uint32_t slot) {
  Exchange& ex = clients_[slot].ex;
  const http::RequestHead& r = req_;
  for (int i = 0; i < r.header_count; ++i) {
    std::string_view name = r.headers[i].name;
    http::FieldVerdict v = http::JudgeFieldName(name, config_.underscores_in_headers);
    if (v == http::FieldVerdict::kForward) continue;
    if (ex.dropped_headers++ == 0) {
      ex.dropped_name_len = static_cast<uint8_t>(std::min(name.size(), sizeof ex.dropped_name));
      std::memcpy(ex.dropped_name, name.data(), ex.dropped_name_len);
    }
    if (v == http::FieldVerdict::kReject) {
      std::snprintf(refusal_.detail, sizeof refusal_.detail,
                    "header field '%.*s' has '_' in its name (underscores_in_headers: reject)",
                    static_cast<int>(std::min<size_t>(name.size(), 64)), name.data());
      return Refuse(policy::Fault::kUnderscoreInHeader, refusal_.detail);
    }
  }
  if (ex.dropped_headers > 0) metrics_.headers_dropped_underscore.Add(ex.dropped_headers);
  return policy::Fault::kNone;
}

policy::Fault Worker::Authenticate(const config::Snapshot& snap, const config::Route& route) {
  const http::RequestHead& r = req_;
  std::string_view token = auth::BearerToken(Find(r.headers, r.header_count, "authorization"));
  if (token.empty() && route.auth_mode == config::AuthMode::kOptional) return policy::Fault::kNone;
  HMS_CHECK(verifier_ != nullptr && snap.jwt_keys != nullptr);
  auth::Verdict v = verifier_->Verify(token, now_unix_, &claims_);
  if (v.ok) v = auth::CheckRequired(claims_, route.require);
  if (v.ok) {
    claims_valid_ = true;
    return policy::Fault::kNone;
  }
  if (v.code == auth::JwtReason::kUnknownKid && snap.jwt_unknown_kid != nullptr) {
    snap.jwt_unknown_kid->store(true, std::memory_order_relaxed);
  }
  static_assert(static_cast<uint16_t>(auth::JwtReason::kInsufficientScope) < obs::kJwtReasonSlots);
  metrics_.policy.Count(
      route.key, static_cast<uint16_t>(obs::kPolicyJwtRejected + static_cast<uint16_t>(v.code)));
  std::snprintf(refusal_.detail, sizeof refusal_.detail, "%.*s",
                static_cast<int>(std::min<size_t>(v.description.size(), 159)),
                v.description.data());
  Refuse(policy::Fault::kJwtRejected, refusal_.detail);
  char* fields = refusal_.fields;
  size_t n = std::snprintf(fields, sizeof refusal_.fields, "www-authenticate: ");
  size_t w = auth::FormatWwwAuthenticate(v, fields + n, sizeof refusal_.fields - n - 3);
  std::memcpy(fields + n + w, "\r\n", 3);
  // The verifier's verdict refines the row: 401 or 403, and which check.
  std::snprintf(refusal_.reason, sizeof refusal_.reason, "jwt_%.*s",
                static_cast<int>(v.reason.size()), v.reason.data());
  refusal_.answer.status = static_cast<uint16_t>(v.status);
  refusal_.answer.reason = refusal_.reason;
  return policy::Fault::kJwtRejected;
}

void Worker::ReportOutcome(Exchange& ex, policy::Fault fault) {
  if (ex.breaker == nullptr || ex.outcome_reported) return;
  ex.outcome_reported = true;
  switch (policy::Classify(fault).verdict) {
    case policy::FaultVerdict::kSuccess:
      ex.breaker->OnSuccess(ex.probe);
      break;
    case policy::FaultVerdict::kFailure:
      ex.breaker->OnFailure(now_, ex.probe);
      break;
    case policy::FaultVerdict::kNotCounted:
      if (ex.probe) ex.breaker->ReleaseProbe(now_);
      break;
  }
}

bool Worker::ClientOwesBody(const Client& c) const {
  const Exchange& ex = c.ex;
  if (!ex.active || ex.req_done) return false;
  // Held input means the gateway stopped reading for lack of room upstream.
  if (c.in.held_head != kNone || c.cipher_in.held_head != kNone) return false;
  if (ex.upstream == kNone) return false;  // backing off: the gateway is not reading the body now
  return upstreams_[ex.upstream].queued() < kMaxQueued;
}

bool Worker::EndAbandonedUpload(uint32_t slot) {
  Client& c = clients_[slot];
  if (c.ex.resp_started || !ClientOwesBody(c)) return false;
  ReportOutcome(c.ex, policy::Fault::kBodyIncomplete);
  LocalResponse(slot, policy::AnswerFor(policy::Fault::kBodyIncomplete), true);
  FinishExchange(slot);
  return true;
}

// Answers a request that never became an exchange (bad framing, header
// timeout) and closes the connection after the answer.
void Worker::RejectRequest(uint32_t slot, const policy::Answer& answer) {
  Client& c = clients_[slot];
  c.ex = Exchange{};
  c.ex.start = now_;
  c.ex.trace.external_len = 0;
  obs::NewTrace(&c.ex.trace);
  LocalResponse(slot, answer, true);
  metrics_.requests.Count(kNoRouteKey, answer.status);
  if (access_log_ != nullptr && Random() <= access_sample_below_) LogAccess(c);
  if (spans_ != nullptr && obs::SampleHit(Random(), span_sample_below_)) {
    c.ex.sampled = true;
    RecordSpan(c);
  }
  CloseClient(slot, true);
}

// Accounts for the exchange and lets go of what it held; the connection's
// fate is the caller's.
void Worker::EndExchange(uint32_t slot) {
  Client& c = clients_[slot];
  Exchange& ex = c.ex;
  if (!ex.active) return;
  // An exchange that ends without a reported outcome never got an answer
  // the upstream is to blame for: the client left (499), or the gateway
  // refused it after the breaker had admitted it. A probe gives its slot back.
  ReportOutcome(ex, ex.status == 499 ? policy::Fault::kClientGone : policy::Fault::kRefused);
  metrics_.Observe(ex.route_key, ex.status, (now_ - ex.start) / 1000);
  metrics_.ObserveBytes(ex.route_key, ex.bytes_in, ex.bytes_out);
  if (access_log_ != nullptr && Random() <= access_sample_below_) LogAccess(c);
  if (ex.sampled) RecordSpan(c);
  timers_.Cancel(&c.ex_timer);
  if (ex.head != nullptr) {
    blocks_.Put(ex.head);
    ex.head = nullptr;
  }
  DetachUpstream(slot);
  c.replay.Clear(&blocks_);
  SnapshotHold* h = ex.hold;
  ex.active = false;
  ex.hold = nullptr;
  if (h != nullptr && --h->inflight == 0 && h != current_) ReleaseHold(h);
}

void Worker::LogAccess(const Client& c) {
  const Exchange& ex = c.ex;
  if (now_unix_ms_ / 1000 != stamp_second_) {
    stamp_second_ = now_unix_ms_ / 1000;
    time_t t = static_cast<time_t>(stamp_second_);
    tm parts;
    gmtime_r(&t, &parts);
    std::strftime(stamp_, sizeof stamp_, "%Y-%m-%dT%H:%M:%S", &parts);
  }
  char line[1024];
  Writer w(line, sizeof line - 1);
  char ms[4] = {static_cast<char>('0' + now_unix_ms_ % 1000 / 100),
                static_cast<char>('0' + now_unix_ms_ % 100 / 10), static_cast<char>('0' + now_unix_ms_ % 10),
                0};
  std::string_view tid = ex.trace.external_len > 0
                             ? std::string_view(ex.trace.external_id, ex.trace.external_len)
                             : std::string_view(ex.trace.trace_id, 32);
  w.S("{\"time\":\"").S(std::string_view(stamp_, 19)).C('.').S(std::string_view(ms, 3)).S("Z\"");
  w.S(",\"trace_id\":\"").Json(tid).S("\",\"method\":\"").Json(std::string_view(ex.method_text, ex.method_len));
  w.S("\",\"service\":\"");
  if (ex.cluster != nullptr) w.Json(ex.cluster->name);
  w.S("\",\"route\":\"");
  if (ex.route != nullptr) w.Json(ex.route->path_template);
  w.S("\",\"status\":").U(ex.status);
  uint64_t us = (now_ - ex.start) / 1000;
  w.S(",\"duration_ms\":").U(us / 1000).C('.').C(static_cast<char>('0' + us % 1000 / 100))
      .C(static_cast<char>('0' + us % 100 / 10)).C(static_cast<char>('0' + us % 10));
  w.S(",\"upstream\":\"");
  if (ex.attempts > 0 && ex.cluster != nullptr && !ex.cluster->endpoints.empty()) {
    w.S(ex.cluster->endpoints[ex.endpoint_index % ex.cluster->endpoints.size()].address);
  }
  w.S("\",\"retries\":").U(ex.retries_done);
  w.S(",\"bytes_in\":").U(ex.bytes_in).S(",\"bytes_out\":").U(ex.bytes_out);
  w.S(",\"stamp\":\"").Json(std::string_view(ex.reason, ex.reason_len));
  w.S("\",\"peer\":\"").S(std::string_view(c.peer, c.peer_len));
  // The caller's mTLS identity (docs/tls.md); bounded so the line always fits.
  std::string_view identity = c.tls != nullptr ? c.tls->peer_identity() : std::string_view();
  w.S("\",\"peer_identity\":\"").Json(identity.substr(0, 256));
  // Fields not forwarded for their names: how many, and the first one's name
  // (a token: nothing to escape; at most sizeof ex.dropped_name bytes).
  w.S("\",\"dropped_headers\":")
      .U(ex.dropped_headers)
      .S(",\"dropped_header\":\"")
      .Json(std::string_view(ex.dropped_name, ex.dropped_name_len))
      .S("\"}");
  if (w.overflow()) {
    // Never half a line: an outsized route template or identity costs the
    // line, counted with those a full ring drops.
    metrics_.access_log_dropped.Add();
    return;
  }
  line[w.size()] = '\n';
  if (access_log_->TryWrite(line, w.size() + 1)) {
    metrics_.access_log_lines.Add();
  } else {
    metrics_.access_log_dropped.Add();
  }
}

void Worker::DetachUpstream(uint32_t slot) {
  Exchange& ex = clients_[slot].ex;
  if (ex.upstream == kNone) return;
  uint32_t up = ex.upstream;
  ex.upstream = kNone;
  Upstream& u = upstreams_[up];
  if (u.client == slot) {
    // Only a finished response returns a connection to the pool; requests
    // pipelined behind this one go elsewhere.
    u.client = kNone;
    RedirectWaiting(up);
    CloseUpstream(up);
  } else {
    // Queued behind another exchange: its answer will still arrive, so the
    // connection serves the current one and then closes.
    for (uint32_t i = 0; i < u.waiting_count; ++i) {
      uint32_t& w = u.waiting[(u.waiting_head + i) % Upstream::kMaxPipeline];
      if (w == slot) w = kNone;
    }
    u.no_reuse = true;
  }
}

void Worker::FinishExchange(uint32_t slot) {
  Client& c = clients_[slot];
  if (!c.ex.active) return;
  EndExchange(slot);
  if (!c.ex.req_done || !c.ex.client_keep_alive || draining_ || c.eof) c.close_after_flush = true;
  if (c.close_after_flush) {
    CloseClient(slot, true);
    return;
  }
  c.state = Client::State::kHead;
  SetClientTimer(slot);
  repump_.push_back(slot);  // pipelined requests wait in the input
}

void Worker::OnClientSent(uint32_t slot, int res) {
  Client& c = clients_[slot];
  c.send_inflight = false;
  --c.ops;
  if (c.phase == Client::Phase::kHard) {
    MaybeFreeClient(slot);  // closed for good meanwhile: what was queued is dropped
    return;
  }
  if (res < 0) {
    CloseClient(slot, false);
    return;
  }
  metrics_.bytes_out.Add(static_cast<uint64_t>(res));
  c.wire().Consume(&blocks_, static_cast<size_t>(res));
  if (c.queued() > 0) {
    MarkDirty(c, slot);
  } else if (c.phase == Client::Phase::kFlush) {
    CloseClient(slot, true);
    return;
  }
  // The queue drained below the bound: let the upstream side go on.
  if (c.ex.active && c.ex.upstream != kNone && c.queued() < kMaxQueued) {
    PumpUpstream(c.ex.upstream);
  }
  MaybeFreeClient(slot);
}

void Worker::CloseClient(uint32_t slot, bool graceful) {
  Client& c = clients_[slot];
  if (c.state == Client::State::kFree) return;
  if (c.ex.active) {
    if (c.ex.status == 0) c.ex.status = 499;  // the client went away first (nginx's convention)
    EndExchange(slot);
  }
  if (c.tls != nullptr && graceful && c.phase == Client::Phase::kOpen && c.tls->handshake_done()) {
    // What is queued goes out sealed, then close_notify (RFC 8446 §6.1).
    tls::Wire w{nullptr, 0, &c.cipher_out, &blocks_};
    if (TlsSeal(c)) c.tls->Shutdown(w);
    MarkDirty(c, slot);
  }
  c.state = Client::State::kClosing;
  ClearInput(c.in);
  ClearInput(c.cipher_in);
  timers_.Cancel(&c.ex_timer);
  WatchClient(slot);  // not open any more: the watch is cancelled
  if (graceful && (c.queued() > 0 || c.send_inflight)) {
    c.phase = Client::Phase::kFlush;
    timers_.Arm(&c.timer, now_, config_.idle_timeout_ms);  // a client that never reads
    return;
  }
  if (graceful && !c.eof && c.phase != Client::Phase::kLinger) {
    c.phase = Client::Phase::kLinger;
    shutdown(c.fd, SHUT_WR);
    timers_.Arm(&c.timer, now_, kLingerMs);
    if (!c.recv_armed) ArmRecv(clients_[slot], kOpRecvClient, slot);
    return;
  }
  // Already closing for good: it may be the last operation's completion that
  // called (a failed send), so the slot may be free now.
  if (c.phase == Client::Phase::kHard) {
    MaybeFreeClient(slot);
    return;
  }
  c.phase = Client::Phase::kHard;
  timers_.Cancel(&c.timer);
  shutdown(c.fd, SHUT_RDWR);  // ends the multishot recv and any pending send
  if (c.recv_armed) Cancel(kOpRecvClient, c.gen, slot);
  MaybeFreeClient(slot);
}

void Worker::MaybeFreeClient(uint32_t slot) {
  Client& c = clients_[slot];
  if (c.state != Client::State::kClosing || c.phase != Client::Phase::kHard || c.ops != 0) return;
  close(c.fd);
  c.fd = -1;
  ClearInput(c.in);
  c.out.Clear(&blocks_);
  ClearInput(c.cipher_in);
  c.cipher_out.Clear(&blocks_);
  c.tls.reset();
  timers_.Cancel(&c.timer);
  timers_.Cancel(&c.ex_timer);
  c.state = Client::State::kFree;
  c.phase = Client::Phase::kOpen;
  ++c.gen;
  clients_.Free(slot);
  metrics_.connections_active.Sub();
}

}  // namespace hms::proxy
