// The upstream connection (HTTP/1.1 client side), top to bottom: connecting,
// reading the answer (OnUpstreamRecv → PumpUpstream → ConsumeUpstream), its
// head rewritten toward the client and its body relayed, a failed attempt
// handed to the exchange's retry rules, and its close until the slot is
// free. Its mTLS pump is in tls_io.cc; the idle pool in pool.cc.
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
  u.recv_armed = u.send_inflight = u.dirty = u.paused = u.reused = u.got_bytes = u.eof = false;
  u.eof_held = false;
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
  FollowConnection(up);
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
      inputs_.Hold(u.tls != nullptr ? u.cipher_in : u.in, bid, 0, static_cast<uint32_t>(res));
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
  if (!u.recv_armed && !u.eof && u.in.held_head == kNone && u.cipher_in.held_head == kNone &&
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
    if (ex.tunnel.active) {
      TunnelEof(u.client, false);  // passed on to the client (tunnel.cc)
    } else if (ex.streaming() && ex.resp_body == http::BodyKind::kUntilClose) {
      if (!u.in.empty() || !u.cipher_in.empty()) {
        // A multishot receive may report the close in the same pass as bytes
        // the client had no room for: they go first (PumpUpstream).
        u.eof_held = true;
        return;
      }
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
  if (u.h2_parent != kNone) {  // an h2 stream: its answer waits in the session's form
    PumpH2Stream(up);
    return;
  }
  if (u.state != Upstream::State::kBusy) return;
  if (u.tls != nullptr) {
    PumpUpstreamTls(up);
  } else {
    inputs_.Drive(u.in, [this, up](const char* p, size_t n) -> int64_t { return ConsumeUpstream(up, p, n); });
  }
  Upstream& v = upstreams_[up];
  if (v.state != Upstream::State::kBusy && v.state != Upstream::State::kIdle) return;
  if (v.eof_held && v.in.empty() && v.cipher_in.empty()) {
    v.eof_held = false;
    OnUpstreamEof(up);  // the body its close delimits is all relayed now
    return;
  }
  if (!v.eof) PauseOrResume(v, kOpRecvUp, up);
}

int64_t Worker::ConsumeUpstream(uint32_t up, const char* p, size_t n) {
  Upstream& u = upstreams_[up];
  if (u.h2 != nullptr) return ConsumeH2Conn(up, p, n);  // h2_up.cc
  if (u.state != Upstream::State::kBusy || u.client == kNone) {
    CloseUpstream(up);  // bytes after a complete response: not a connection to reuse
    return static_cast<int64_t>(n);
  }
  uint32_t slot = u.client;
  Client& c = clients_[slot];
  Exchange& ex = c.ex;
  Downstream& down = Down(c);
  if (ex.tunnel.active) return TunnelToClient(up, p, n);
  if (ex.streaming()) return ForwardResponseBody(up, ex, down, p, n);

  int rc = http::ParseResponse(p, n, config_.max_header_bytes, ex.method, &resp_);
  if (rc == http::kPartial) return 0;
  u.got_bytes = true;
  if (rc > 0 && resp_.status == 101 && ex.websocket) {
    return OpenTunnel(up, static_cast<size_t>(rc), n);  // tunnel.cc
  }
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
                     draining_ || down.closing() || !ex.req_done;

  // Written before anything is decided on this answer: a head that does not
  // fit is a failed attempt like a malformed one, not half a head.
  const size_t head_size = WriteResponseHead(ex, down, hop_by_hop, dechunk, close);
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
  // A gRPC call's trailers-only failure is retried only on the statuses
  // the service lists (policy::DecideRetry).
  ex.grpc_status = GrpcFailureOf(ex, r);
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
  ex.HeadForwarded();
  ex.status = r.status;
  ex.resp_body = r.body;
  ex.resp_remaining = r.content_length;
  ex.resp_keep_alive = r.keep_alive && r.body != http::BodyKind::kUntilClose;
  ex.dechunk = dechunk;
  if (close) down.CloseAfterAnswer();
  down.Commit(head_size);
  ex.bytes_out += head_size;
  // From here the route's deadline is met; a stalled body is cut by idle_timeout.
  timers_.Arm(&ex.timer, now_, config_.idle_timeout_ms);
  if (r.body == http::BodyKind::kNone ||
      (r.body == http::BodyKind::kContentLength && r.content_length == 0)) {
    CompleteResponse(up);
  }
  return rc;
}

// The response head toward the client: the status line, the upstream's
// end-to-end fields, ours. Reserved in the client's queue, committed by the
// caller; 0 when it does not fit a block.
size_t Worker::WriteResponseHead(const Exchange& ex, Downstream& down, const HopByHop& hop_by_hop,
                                 bool dechunk, bool close) {
  ResponseHeadFields f;
  f.trace_id = ex.trace.external_len > 0
                   ? std::string_view(ex.trace.external_id, ex.trace.external_len)
                   : std::string_view(ex.trace.trace_id, 32);
  f.rate = ex.rate_limited_route ? &ex.rate : nullptr;
  f.dechunk = dechunk;
  f.close = close;
  f.client_version_minor = ex.version_minor;
  char* dst = down.Reserve(blocks_.block_size());
  return RewriteResponseHead(resp_, hop_by_hop, f, dst, blocks_.block_size());
}

int64_t Worker::ForwardResponseBody(uint32_t up, Exchange& ex, Downstream& down, const char* p,
                                    size_t n) {
  if (down.Full()) return kBlocked;  // resumed when the downstream has taken what is queued
  size_t used = 0;
  bool done = false;
  switch (ex.resp_body) {
    case http::BodyKind::kContentLength:
      used = static_cast<size_t>(std::min<uint64_t>(n, ex.resp_remaining));
      down.Send(p, used);
      ex.resp_remaining -= used;
      done = ex.resp_remaining == 0;
      break;
    case http::BodyKind::kUntilClose:
      used = n;
      down.Send(p, n);
      break;
    case http::BodyKind::kChunked:
      while (used < n && !ex.resp_chunks.done()) {
        http::ChunkedDecoder::Step st;
        if (!ex.resp_chunks.Next(p + used, n - used, &st)) {
          // The head already left: the client can only learn of it by the close.
          down.Abort();
          return static_cast<int64_t>(n);
        }
        if (st.consumed == 0) break;
        if (ex.dechunk) {
          if (st.data_len > 0) down.Send(p + used + st.data_offset, st.data_len);
        } else {
          down.Send(p + used, st.consumed);
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
    timers_.Arm(&ex.timer, now_, config_.idle_timeout_ms);
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

void Worker::UpstreamFailed(uint32_t up, policy::Fault answer, std::string_view detail) {
  Upstream& u = upstreams_[up];
  if (u.h2 != nullptr) u.h2->fault = answer;  // its streams are answered with it (CloseH2Conn)
  uint32_t slot = u.client;
  if (slot != kNone && clients_[slot].ex.tunnel.active) {
    // A tunnel's upstream broke (a failed send, a bad TLS record): long
    // after its answer, so nothing to retry or count; both sides close.
    CloseClient(slot, false);
    return;
  }
  // A failed mTLS handshake is a failed connect: no request byte left.
  bool connect_failed = u.state == Upstream::State::kConnecting ||
                        (u.tls != nullptr && !u.tls->handshake_done());
  bool stale = u.reused && !u.got_bytes;
  const bool never_processed = u.h2s.never_processed;  // an h2 stream the upstream refused
  u.client = kNone;
  RedirectWaiting(up);  // pipelined requests behind this one never got an answer
  CloseUpstream(up);
  if (slot == kNone) return;
  Client& c = clients_[slot];
  Exchange& ex = c.ex;
  ex.upstream = kNone;
  if (!ex.active()) return;
  // A malformed answer counts with resets: the upstream broke the exchange.
  const policy::Fault fault = connect_failed ? policy::Fault::kConnect : policy::Fault::kUpstreamReset;
  if (!stale && !never_processed) ReportEndpoint(ex, fault);  // neither is the endpoint's doing
  if (ex.response_started()) {
    // Mid-response: what already arrived still goes out, then the close is
    // the client's only signal that the body is short.
    Down(c).Abort();
    return;
  }
  // Transparent retries (a failed connect, a stale pooled connection) or a
  // policy retry: policy::DecideRetry says which.
  if (ScheduleRetry(slot, fault, stale, never_processed)) return;
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
  FollowConnection(up);
  if (!u.wire().empty() || (u.tls != nullptr && !u.out.empty() && u.tls->handshake_done())) {
    MarkDirty(u, up);
  } else if (u.client != kNone && clients_[u.client].state == Client::State::kBody) {
    Down(clients_[u.client]).ResumeBody();  // room again for the request body
  } else if (u.client != kNone && clients_[u.client].state == Client::State::kTunnel) {
    repump_.push_back(u.client);  // room again for the tunnel's bytes
  }
  if (u.client != kNone && clients_[u.client].state == Client::State::kTunnel) {
    TunnelProgress(u.client);
  }
}

void Worker::CloseUpstream(uint32_t up) {
  Upstream& u = upstreams_[up];
  if (u.state == Upstream::State::kFree || u.state == Upstream::State::kClosing) return;
  if (u.h2_parent != kNone) DetachH2Stream(up);  // h2_up.cc
  if (u.h2 != nullptr) CloseH2Conn(up);
  if (u.state == Upstream::State::kIdle) PoolRemove(up);
  if (u.state == Upstream::State::kConnecting || u.state == Upstream::State::kBusy) --busy_[u.endpoint_id];
  u.state = Upstream::State::kClosing;
  timers_.Cancel(&u.timer);
  inputs_.Clear(u.in);
  inputs_.Clear(u.cipher_in);
  shutdown(u.fd, SHUT_RDWR);  // ends the multishot recv and a pending send
  if (u.connect_inflight) Cancel(kOpConnectUp, u.gen, up);
  if (u.recv_armed) Cancel(kOpRecvUp, u.gen, up);
  MaybeFreeUpstream(up);
}

void Worker::MaybeFreeUpstream(uint32_t up) {
  Upstream& u = upstreams_[up];
  if (u.state != Upstream::State::kClosing || u.ops != 0) return;
  u.h2.reset();  // an h2 connection's session, before its bytes go
  u.h2_parent = kNone;
  u.h2s.Reset(&blocks_);
  Release(u, inputs_, blocks_);
  u.state = Upstream::State::kFree;
  ++u.gen;
  upstreams_.Free(up);
}

}  // namespace hms::proxy
