// The downstream connection (HTTP/1.1 server side), top to bottom: accepted,
// reading (OnClientRecv → PumpClient → ConsumeClient, by Client::State),
// its reset watch, sending, its timers, and its close (flush, linger,
// hard) until the slot is free. What it carries is the exchange
// (exchange.cc); its TLS pump is in tls_io.cc.
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

// `socket` indexes listen_fds_ (listen_of_ names its listener).
void Worker::ArmAccept(uint16_t socket) {
  io_uring_sqe* sqe = ring_.Sqe();
  io_uring_prep_multishot_accept(sqe, listen_fds_[socket], nullptr, nullptr,
                                 SOCK_NONBLOCK | SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, core::PackUserData(kOpAccept, 0, socket));
  accept_armed_[socket] = true;
}

void Worker::OnAccept(uint16_t socket, int res, uint32_t flags) {
  if (!(flags & IORING_CQE_F_MORE)) {
    accept_armed_[socket] = false;
    if (!draining_) ArmAccept(socket);
  }
  if (res < 0) return;  // EMFILE, ECONNABORTED, ...: the listener carries on
  AcceptClient(res, listen_of_[socket]);
}

void Worker::AcceptClient(int fd, uint16_t listener) {
  // After a handover a connection accepted before the cancel took effect is
  // served (its answer says Connection: close): closing it would drop it.
  // Streams share the slab; the bound is on connections.
  if ((draining_ && !handed_over_) ||
      clients_.live() - metrics_.h2_streams_open.Get() >= config_.max_connections_per_core) {
    metrics_.connections_refused.Add();
    close(fd);
    return;
  }
  const uint32_t slot = NewClient(fd, listener);
  Client& c = clients_[slot];
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  c.peer_len = 0;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0 &&
      (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)) {
    const void* a = ss.ss_family == AF_INET6
                        ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr)
                        : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&ss)->sin_addr);
    if (inet_ntop(ss.ss_family, a, c.peer, sizeof c.peer) != nullptr) {
      c.peer_len = static_cast<uint8_t>(std::strlen(c.peer));
    }
  } else {
    // An adopted socketpair end has no address: named as nginx's
    // $remote_addr names a unix socket's peer, so X-Forwarded-For never
    // gets an empty element.
    constexpr std::string_view kUnixPeer = "unix:";
    std::memcpy(c.peer, kUnixPeer.data(), kUnixPeer.size());
    c.peer_len = static_cast<uint8_t>(kUnixPeer.size());
  }
  metrics_.connections_accepted.Add();
  metrics_.connections_active.Add();
  const auto& tls_ctx = current_->snapshot->listener_tls;
  if (listener < tls_ctx.size() && tls_ctx[listener] != nullptr) {
    // One session per connection, made at accept (wolfSSL allocates it).
    c.tls = tls::Session::NewServer(tls_ctx[listener],
                                    listener < h2_config_.size() && h2_config_[listener] != nullptr);
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

uint32_t Worker::NewClient(int fd, uint16_t listener) {
  const uint32_t slot = clients_.Alloc();
  Client& c = clients_[slot];
  c.fd = fd;
  c.state = Client::State::kHead;
  c.phase = Client::Phase::kOpen;
  c.listener = listener;
  c.close_after_flush = c.eof = c.paused = c.dirty = c.send_inflight = c.recv_armed = false;
  c.watch_armed = c.watch_cancelling = false;
  c.sniffed = false;
  c.fleet_parked = false;
  c.fleet_pass = FleetPass::kNone;
  c.parent = kNone;
  c.ops = 0;
  c.ex.Reset(&blocks_);
  c.worker = this;
  c.slot = slot;
  c.timer.owner = c.ex.timer.owner = slot;
  c.timer.kind = kTimerClient;
  c.ex.timer.kind = kTimerExchange;
  return slot;
}

void Worker::SetClientTimer(uint32_t slot) {
  Client& c = clients_[slot];
  if (c.state == Client::State::kClosing) return;
  if (c.h2 != nullptr) {
    // An h2 connection is idle when no stream is open.
    if (c.h2->session.open_streams() > 0) {
      timers_.Cancel(&c.timer);
    } else {
      timers_.Arm(&c.timer, now_, config_.idle_timeout_ms);
    }
    return;
  }
  if (c.ex.active()) {
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
      bool idle_before = c.in.empty() && !c.ex.active() &&
                         (c.tls == nullptr || c.tls->handshake_done());
      inputs_.Hold(c.tls != nullptr ? c.cipher_in : c.in, bid, 0, static_cast<uint32_t>(res));
      PumpClient(slot);
      if (idle_before && c.state != Client::State::kFree && c.state != Client::State::kClosing) {
        SetClientTimer(slot);
      }
    }
  } else if (res == 0) {
    if (c.state != Client::State::kClosing) {
      OnClientEof(slot);
    } else {
      c.eof = true;
      if (c.phase != Client::Phase::kFlush) CloseClient(slot, false);  // flushing: closes when sent
    }
  } else if (res == -ENOBUFS) {
    metrics_.buffer_ring_exhausted.Add();  // back-pressure: re-armed below
  } else if (res != -ECANCELED) {
    CloseClient(slot, false);
  }
  if (!c.recv_armed && !c.eof && c.in.held_head == kNone && c.cipher_in.held_head == kNone &&
      (c.state == Client::State::kHead || c.state == Client::State::kBody ||
       c.state == Client::State::kAwaitResponse || c.state == Client::State::kTunnel ||
       c.phase == Client::Phase::kLinger)) {
    ArmRecv(clients_[slot], kOpRecvClient, slot);
  }
  WatchClient(slot);
  MaybeFreeClient(slot);
}

void Worker::OnClientEof(uint32_t slot) {
  Client& c = clients_[slot];
  c.eof = true;
  if (c.state == Client::State::kTunnel) {
    TunnelEof(slot, true);  // passed on to the upstream (tunnel.cc)
  } else if (!c.ex.active()) {
    CloseClient(slot, true);
  } else if (!EndAbandonedUpload(slot)) {
    c.close_after_flush = true;  // answer the request in flight, then close
  }
}

// A connection that is open but not reading (its input held while an exchange
// runs, or the peer's FIN read) would learn of its peer's reset only when it
// reads again: after a slow upstream answers, after a stalled upload's route
// timeout, or never. Its slot, descriptor, blocks, held buffers and upstream
// connection would stay taken meanwhile. A poll for POLLERR|POLLHUP covers
// that time. TCP raises both on a reset (tcp_reset: sk_err set, then
// tcp_done shuts both directions); a FIN raises only POLLRDHUP (and
// POLLIN), which is not a reason to close: a half-closed client still gets
// its answers. io_uring reports POLLRDHUP whatever the mask asks
// (IO_POLL_UNMASK in io_uring/poll.c), so a one-shot poll would end at the
// FIN and a later reset would go unseen; and a one-shot armed again would
// complete at once, for ever, on a socket that stays half-closed. So the
// poll is multishot: it reports each wake-up of the socket once (a FIN, a
// reset), never a state that merely persists, and stays armed until
// cancelled. The error queue, the other source of POLLERR, is unused
// (SEND_ZC notifies in CQEs).
void Worker::WatchClient(uint32_t slot) {
  Client& c = clients_[slot];
  // A tunnel whose client sent its FIN is not watched: the POLLHUP that our
  // own FIN toward it then raises is its orderly end (tunnel.cc), not a reset.
  bool open = c.state == Client::State::kHead || c.state == Client::State::kBody ||
              c.state == Client::State::kAwaitResponse ||
              (c.state == Client::State::kTunnel && !c.eof);
  bool reading = c.recv_armed && !c.paused;
  if (open && !reading) {
    if (c.watch_armed) return;
    io_uring_sqe* sqe = ring_.Sqe();
    io_uring_prep_poll_multishot(sqe, c.fd, POLLERR | POLLHUP);
    io_uring_sqe_set_data64(sqe, core::PackUserData(kOpWatchClient, c.gen, slot));
    c.watch_armed = true;
    ++c.ops;
  } else if (c.watch_armed && !c.watch_cancelling) {
    Cancel(kOpWatchClient, c.gen, slot);
    c.watch_cancelling = true;
  }
}

void Worker::OnClientWatch(uint32_t slot, int res, uint32_t flags) {
  Client& c = clients_[slot];
  const bool ended = !(flags & IORING_CQE_F_MORE);
  if (ended) {
    c.watch_armed = c.watch_cancelling = false;
    --c.ops;
  }
  if (res > 0 && (res & (POLLERR | POLLHUP)) != 0) {
    // Reset: nothing more can reach this client. Frees the slot once the
    // watch's last completion (the cancel's) is in.
    CloseClient(slot, false);
    return;
  }
  // POLLRDHUP alone (the FIN) leaves the watch armed. Cancelled, or ended by
  // the kernel (a full completion queue ends a multishot), the need may have
  // come back or still be there: armed again, which cannot spin (a new
  // multishot reports what is already true once, then only wake-ups). Any
  // other error is not retried: the connection's own timers still bound it.
  if (ended && (res == -ECANCELED || res > 0)) WatchClient(slot);
  MaybeFreeClient(slot);
}

// Feeds pending input, then pauses or resumes the recv as the input allows.
void Worker::PumpClient(uint32_t slot) {
  Client& c = clients_[slot];
  if (c.state == Client::State::kFree) return;
  if (c.parent != kNone) {
    // An h2 stream: a head parked for Redis starts its exchange now; its
    // body waits in its own queue.
    if (c.stream.parked_head != nullptr) ResumeStream(slot);
    if (clients_[slot].state != Client::State::kFree) PumpStream(slot);
    return;
  }
  if (c.tls != nullptr) {
    PumpClientTls(slot);
  } else {
    inputs_.Drive(c.in, [this, slot](const char* p, size_t n) -> int64_t { return ConsumeClient(slot, p, n); });
  }
  Client& d = clients_[slot];
  if (d.state == Client::State::kFree || d.state == Client::State::kClosing) return;
  if (!d.eof) PauseOrResume(d, kOpRecvClient, slot);
  WatchClient(slot);
}

int64_t Worker::ConsumeClient(uint32_t slot, const char* p, size_t n) {
  Client& c = clients_[slot];
  if (c.h2 != nullptr && c.state != Client::State::kClosing) return ConsumeH2(slot, p, n);
  switch (c.state) {
    case Client::State::kHead: {
      // A request parked for Redis's answer is parsed again only then.
      if (c.ex.active() || c.fleet_parked) return kBlocked;
      // A plain connection's first bytes may be the h2 preface (prior
      // knowledge); Upgrade: h2c is not offered (docs/http2.md).
      if (c.ex.state() == Exchange::State::kIdle && c.tls == nullptr &&
          c.listener < h2_config_.size() && h2_config_[c.listener] != nullptr) {
        const PrefaceSniff sniff = SniffPreface(p, n);
        if (sniff == PrefaceSniff::kNeedMore) return 0;
        if (sniff == PrefaceSniff::kH2) {
          if (!StartH2(slot)) return static_cast<int64_t>(n);
          return ConsumeH2(slot, p, n);
        }
      }
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
    case Client::State::kTunnel:
      return TunnelToUpstream(slot, p, n);
    case Client::State::kClosing:
    case Client::State::kFree:
      return static_cast<int64_t>(n);
  }
  return kBlocked;
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
  if (c.ex.active() && c.queued() < kMaxQueued) {
    if (UpstreamLeg* leg = Leg(c.ex)) leg->Resume();
  }
  if (c.state == Client::State::kTunnel) TunnelProgress(slot);
  if (c.h2 != nullptr) {
    // The session may have more to send (streams waiting for room), and
    // input held while the queue was full may go on.
    MarkDirty(c, slot);
    if (!c.in.empty()) repump_.push_back(slot);
  }
  MaybeFreeClient(slot);
}

void Worker::CloseClient(uint32_t slot, bool graceful) {
  Client& c = clients_[slot];
  if (c.state == Client::State::kFree) return;
  if (c.parent != kNone) {
    c.stream.Drop();  // a stream has no socket: it ends with a reset
    return;
  }
  if (c.h2 != nullptr && c.state != Client::State::kClosing) {
    // Every open stream ends (their exchanges with 499) before the socket
    // does; the GOAWAY goes with what is queued when the close is graceful.
    c.state = Client::State::kClosing;
    c.h2->session.Close(h2::ErrorCode::kNoError);
    if (graceful) {
      c.h2->session.Send(&c.out, SIZE_MAX);
      MarkDirty(c, slot);
    }
  }
  if (c.ex.active()) {
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
  inputs_.Clear(c.in);
  inputs_.Clear(c.cipher_in);
  timers_.Cancel(&c.ex.timer);
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
  Release(c, inputs_, blocks_);
  c.h2.reset();
  timers_.Cancel(&c.timer);
  timers_.Cancel(&c.ex.timer);
  c.state = Client::State::kFree;
  c.phase = Client::Phase::kOpen;
  ++c.gen;
  clients_.Free(slot);
  metrics_.connections_active.Sub();
}

bool Worker::ClientOwesBody(const Client& c) const {
  const Exchange& ex = c.ex;
  if (!ex.active() || ex.req_done) return false;
  // Held input means the gateway stopped reading for lack of room upstream.
  if (c.in.held_head != kNone || c.cipher_in.held_head != kNone) return false;
  const UpstreamLeg* leg = Leg(ex);
  if (leg == nullptr) return false;  // backing off: the gateway is not reading the body now
  return !leg->Full();
}

bool Worker::EndAbandonedUpload(uint32_t slot) {
  Client& c = clients_[slot];
  if (c.ex.response_started() || !c.OwesBody()) return false;
  ReportOutcome(c.ex, policy::Fault::kBodyIncomplete);
  LocalResponse(slot, policy::AnswerFor(policy::Fault::kBodyIncomplete), true);
  FinishExchange(slot);
  return true;
}

// Answers a request that never became an exchange (bad framing, header
// timeout) and closes the connection after the answer.
void Worker::RejectRequest(uint32_t slot, const policy::Answer& answer) {
  Client& c = clients_[slot];
  c.ex.Reset(&blocks_);
  c.ex.start = now_;
  c.ex.trace.external_len = 0;
  obs::NewTrace(&c.ex.trace);
  LocalResponse(slot, answer, true);
  metrics_.requests.Count(kNoRouteKey, answer.status);
  recorder_.Refused(c.ex, CallerOf(c));
  Down(c).Finish(false);
}

Caller Worker::CallerOf(const Client& c) const {
  Caller caller;
  caller.peer = std::string_view(c.peer, c.peer_len);
  // The mTLS identity is the connection's, a stream's as much as its own.
  const Client& conn = ConnOf(c);
  if (conn.tls != nullptr) caller.identity = conn.tls->peer_identity();
  caller.protocol = c.parent != kNone ? Protocol::kHttp2 : Protocol::kHttp1;
  switch (listener_kind_[c.listener]) {
    case ListenerKind::kEdge:
      caller.listener = obs::SpanListener::kEdge;
      break;
    case ListenerKind::kInbound:
      caller.listener = obs::SpanListener::kInbound;
      break;
    case ListenerKind::kEgress:
      caller.listener = obs::SpanListener::kEgress;
      break;
  }
  return caller;
}

// The connection's timer: lingering over, a handshake or head that took
// too long, or an idle keep-alive connection.
void Worker::OnClientTimer(uint32_t slot) {
  Client& c = clients_[slot];
  if (c.state == Client::State::kClosing) {
    CloseClient(slot, false);  // lingering over, or a client that never read its answer
  } else if (c.h2 != nullptr) {
    CloseClient(slot, true);  // an idle h2 connection: GOAWAY, then the close
  } else if (c.tls != nullptr && !c.tls->handshake_done()) {
    metrics_.tls_failed.Add();  // a handshake that stalled: no answer can be read
    CloseClient(slot, false);
  } else if (!c.in.empty() && !c.ex.active()) {
    RejectRequest(slot, policy::AnswerFor(policy::Fault::kHeaderTimeout));
  } else {
    CloseClient(slot, false);  // idle keep-alive connection
  }
}

// The Downstream of the connection's exchange (downstream.h).
char* Client::Reserve(size_t n) noexcept { return out.Reserve(&worker->blocks_, n); }

void Client::Commit(size_t n) noexcept {
  out.Commit(n);
  worker->MarkDirty(*this, slot);
}

void Client::Send(const char* p, size_t n) noexcept {
  out.Append(&worker->blocks_, p, n);
  worker->MarkDirty(*this, slot);
}

void Client::Abort() noexcept { worker->CloseClient(slot, true); }

void Client::Drop() noexcept { worker->CloseClient(slot, false); }

void Client::Continue() noexcept {
  out.Append(&worker->blocks_, "HTTP/1.1 100 Continue\r\n\r\n", 25);
  worker->MarkDirty(*this, slot);
}

// Pipelined requests, or the rest of a body, wait in the input.
void Client::ResumeBody() noexcept { worker->repump_.push_back(slot); }

bool Client::OwesBody() const noexcept { return worker->ClientOwesBody(*this); }

void Client::Finish(bool reusable) noexcept {
  if (!reusable || eof) close_after_flush = true;
  if (close_after_flush) {
    worker->CloseClient(slot, true);
    return;
  }
  state = State::kHead;
  worker->SetClientTimer(slot);
  ResumeBody();
}

}  // namespace hms::proxy
