// The upstream connection (HTTP/1.1 client side), top to bottom: connecting,
// reading the answer (OnUpstreamRecv → PumpUpstream → ConsumeUpstream: the
// head parsed and handed to the exchange as an http::ResponseHead, then its
// body bytes, then the close where it is the body's end), a failed attempt
// classified (UpstreamFailed → the exchange's OnAttemptFailed), its close
// until the slot is free; and its UpstreamLeg calls. What the answer means
// for the exchange (retries, breaker, the client's head, the body relay) is
// exchange.cc's. Its mTLS pump is in tls_io.cc; the idle pool and the
// pipelining queue in pool.cc.
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
  u.eof_held = u.answering = false;
  u.worker = this;
  u.slot = up;
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
  if (u.state != Upstream::State::kBusy || u.client == kNone) {
    CloseUpstream(up);
    return;
  }
  if (!u.answering) {
    UpstreamFailed(up, policy::Fault::kUpstreamReset);  // closed before the answer's head
    return;
  }
  if (!u.in.empty() || !u.cipher_in.empty()) {
    // A multishot receive may report the close in the same pass as bytes
    // the client had no room for: they go first (PumpUpstream).
    u.eof_held = true;
    return;
  }
  OnAnswerEnd(u.client);  // the body's end, a tunnel's FIN, or an answer cut short
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
  const uint32_t slot = u.client;
  if (u.answering) return OnAnswerBody(slot, p, n);  // exchange.cc
  // The request's method says whether the answer has a body (HEAD).
  const int rc = http::ParseResponse(p, n, config_.max_header_bytes, clients_[slot].ex.method, &resp_);
  if (rc == http::kPartial) return 0;
  u.got_bytes = true;
  if (rc == http::kError) {
    UpstreamFailed(up, policy::Fault::kUpstreamBadResponse);
    return static_cast<int64_t>(n);
  }
  if (resp_.status < 200 && resp_.status != 101) return rc;  // interim 1xx: we answered Expect ourselves
  // What follows is the answer's body, unless the exchange lets the
  // connection go (a retry, a refusal) or it goes back whole (Release).
  u.answering = true;
  return OnAnswerHead(slot, resp_) ? rc : static_cast<int64_t>(n);
}

void Worker::UpstreamFailed(uint32_t up, policy::Fault answer, std::string_view detail) {
  Upstream& u = upstreams_[up];
  if (u.h2 != nullptr) u.h2->fault = answer;  // its streams are answered with it (CloseH2Conn)
  const uint32_t slot = u.client;
  AttemptFailure f;
  // A failed mTLS handshake is a failed connect: no request byte left. A
  // malformed answer counts with resets: the upstream broke the exchange.
  const bool connect_failed = u.state == Upstream::State::kConnecting ||
                              (u.tls != nullptr && !u.tls->handshake_done());
  f.fault = connect_failed ? policy::Fault::kConnect : policy::Fault::kUpstreamReset;
  f.answer = answer;
  f.detail = detail;
  f.stale_pooled = u.reused && !u.got_bytes;
  f.never_processed = u.h2s.never_processed;  // an h2 stream the upstream refused
  u.client = kNone;
  RedirectWaiting(up);  // pipelined requests behind this one never got an answer
  CloseUpstream(up);
  if (slot != kNone) OnAttemptFailed(slot, f);  // exchange.cc
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
  const bool drained =
      u.wire().empty() && !(u.tls != nullptr && !u.out.empty() && u.tls->handshake_done());
  if (!drained) MarkDirty(u, up);
  if (u.client != kNone) OnLegSent(u.client, drained);  // exchange.cc
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

// UpstreamLeg (upstream_leg.h) of an HTTP/1.1 connection; Release and
// Abandon, which touch the pool and the pipelining queue, are pool.cc's.
void Upstream::Send(const char* p, size_t n) noexcept {
  out.Append(&worker->blocks_, p, n);
  worker->MarkDirty(*this, slot);
}

void Upstream::Resume() noexcept { worker->PumpUpstream(slot); }

}  // namespace hms::proxy
