// HTTP/2 toward upstreams (h2_up.h): the endpoint's connection and its
// session, each exchange a stream slot on it and the stream its UpstreamLeg;
// the request's HTTP/1.1 form turned into HEADERS and DATA; the answer's
// HEADERS kept as an http::ResponseHead (h2_answer.h) and its DATA as body
// bytes, handed to the exchange as events once the session returned;
// streams the upstream never processed, or that broke, handed to the
// exchange's retry rules as any failed attempt.
#include <algorithm>
#include <cstring>

#include "hms/common/check.h"
#include "hms/http/field_names.h"
#include "src/proxy/h2_answer.h"
#include "src/proxy/head_rewrite.h"
#include "src/proxy/wire.h"
#include "src/proxy/worker.h"

namespace hms::proxy {

namespace {

uint64_t TagOf(const Upstream& u, uint32_t up) { return (static_cast<uint64_t>(u.gen) << 32) | up; }

// The streams of a connection not yet opened (waiting for a slot).
size_t WaitingOn(const H2UpConn& h, const core::Slab<Upstream>& ups) {
  size_t n = 0;
  for (uint32_t s : h.streams) n += ups[s].h2s.submitted ? 0 : 1;
  return n;
}

}  // namespace

uint32_t Worker::AttachH2(const config::Endpoint& ep, const config::Cluster& cl) {
  if (h2_client_config_ == nullptr || ep.id >= h2_conn_.size()) return kNone;
  uint32_t conn = h2_conn_[ep.id];
  if (conn != kNone) {
    // A connection that is going away takes no more streams; one with many
    // waiting for a slot gets a sibling (it keeps its streams).
    const H2UpConn& h = *upstreams_[conn].h2;
    if (h.closing || h.session.goaway_received() || h.session.failed() ||
        WaitingOn(h, upstreams_) >= kH2UpMaxPending) {
      conn = kNone;
    }
  }
  if (conn == kNone) {
    conn = NewUpstream(ep);
    if (conn == kNone) return kNone;
    Upstream& c = upstreams_[conn];
    c.h2 = std::make_unique<H2UpConn>(this, conn, h2_client_config_.get(), &h2_pool_, &blocks_,
                                      &h2_up_counters_);
    c.h2->identity = cl.identity;
    c.h2->keepalive_interval_ms = cl.connection_keepalive.interval_ms;
    c.h2->keepalive_timeout_ms = cl.connection_keepalive.timeout_ms;
    if (!c.h2->session.Start()) {
      CloseUpstream(conn);
      return kNone;
    }
    c.waiting_count = 0;
    h2_conn_[ep.id] = conn;
  }
  if (upstreams_[conn].h2->idle_since != 0) {
    upstreams_[conn].h2->idle_since = 0;  // no longer idle
    ArmH2Liveness(conn);
  }
  const uint32_t up = upstreams_.Alloc();
  Upstream& u = upstreams_[up];
  u.fd = -1;
  u.state = Upstream::State::kConnecting;  // until its HEADERS go: a failure is a failed connect
  u.endpoint_id = ep.id;
  ++busy_[ep.id];
  u.ops = 0;
  u.connect_inflight = u.recv_armed = u.send_inflight = u.dirty = u.paused = false;
  u.reused = u.got_bytes = u.eof = u.eof_held = u.mtls = u.tls_saved = u.answering = false;
  u.waiting_count = 0;
  u.worker = u.h2s.worker = this;
  u.slot = u.h2s.slot = up;
  u.pool_next = u.pool_prev = kNone;
  u.timer.owner = up;
  u.timer.kind = kTimerUpstream;
  u.h2_parent = conn;
  u.h2s.Reset(&blocks_);
  u.h2s.conn_gen = upstreams_[conn].gen;
  upstreams_[conn].h2->streams.push_back(up);
  return up;
}

void Worker::H2UpReady(uint32_t conn) {
  Upstream& c = upstreams_[conn];
  if (c.state != Upstream::State::kBusy || (c.tls != nullptr && !c.tls->handshake_done())) return;
  H2UpConn& h = *c.h2;
  if (h.closing) return;
  if (!h.ready) {
    // Once, when it becomes usable: this runs after every send too, and a
    // send is no frame from the upstream (a silent peer must still be
    // PINGed while requests keep going out), nor a reason to re-arm.
    h.ready = true;
    h.last_frame = now_;  // the PINGs' clock starts
    ArmH2Liveness(conn);
  }
  SubmitWaiting(conn);
  if (h.session.WantsWrite()) MarkDirty(c, conn);
}

void Worker::SubmitWaiting(uint32_t conn) {
  for (uint32_t s : upstreams_[conn].h2->streams) {
    if (!upstreams_[s].h2s.submitted) MarkDirty(upstreams_[s], s);
  }
}

bool Worker::SubmitStream(uint32_t conn, uint32_t up) {
  Upstream& u = upstreams_[up];
  H2UpConn& h = *upstreams_[conn].h2;
  if (!h.session.CanOpen() && !h.session.goaway_received()) return false;  // waits for a slot
  Exchange& ex = clients_[u.client].ex;
  const int rc = http::ParseRequest(ex.head->data(), ex.head->end, ex.head->end, &h2_req_);
  HMS_CHECK(rc > 0);  // the gateway's own rewritten head
  // `te: trailers` says the gateway takes trailers (it carries them to
  // either kind of client): gRPC servers refuse a call without it. The
  // client's own TE was hop-by-hop and did not get here.
  if (h2_req_.header_count < http::kMaxHeaders) {
    h2_req_.headers[h2_req_.header_count++] = http::Header{"te", "trailers"};
  }
  const bool tls = upstreams_[conn].mtls;
  const h2::RequestLine line = h2::LineOf(h2_req_, tls ? "https" : "http");
  const bool bodiless = h2_req_.body == http::BodyKind::kNone ||
                        (h2_req_.body == http::BodyKind::kContentLength && h2_req_.content_length == 0);
  const int32_t id = h.session.Submit(line, h2_req_.headers,
                                      static_cast<uint16_t>(h2_req_.header_count), TagOf(u, up),
                                      bodiless);
  if (id == h2::ClientSession::kNoCapacity) return false;
  if (id < 0) {
    // Going away (or failed): the upstream never saw it; another connection.
    u.h2s.never_processed = true;
    UpstreamFailed(up, policy::Fault::kUpstreamReset);
    return false;
  }
  u.out.Consume(&blocks_, static_cast<size_t>(rc));  // the head went as HEADERS
  u.h2s.id = id;
  u.h2s.submitted = true;
  u.h2s.end_sent = bodiless;
  u.state = Upstream::State::kBusy;
  return true;
}

void Worker::FeedStream(uint32_t up) {
  Upstream& u = upstreams_[up];
  if (u.client == kNone) return;
  const uint32_t conn = u.h2_parent;
  Upstream& c = upstreams_[conn];
  if (c.gen != u.h2s.conn_gen || c.h2 == nullptr || !c.h2->ready || c.h2->closing) return;
  if (!u.h2s.submitted && !SubmitStream(conn, up)) return;
  Upstream& v = upstreams_[up];
  if (v.h2_parent == kNone || !v.h2s.submitted || v.client == kNone) return;  // failed meanwhile
  Client& cl = clients_[v.client];
  Exchange& ex = cl.ex;
  h2::ClientSession& s = c.h2->session;
  const bool chunked = ex.req_body == http::BodyKind::kChunked;
  while (!v.h2s.end_sent && !v.out.empty() && s.Queued(v.h2s.id) < kH2UpStreamQueued) {
    iovec piece;
    v.out.Gather(&piece, 1);
    const char* p = static_cast<const char*>(piece.iov_base);
    size_t used = piece.iov_len;
    if (chunked) {
      // The exchange framed it for HTTP/1.1; DATA carries the chunks' data.
      used = 0;
      while (used < piece.iov_len && !v.h2s.req_chunks.done()) {
        http::ChunkedDecoder::Step st;
        if (!v.h2s.req_chunks.Next(p + used, piece.iov_len - used, &st) || st.consumed == 0) break;
        if (st.data_len > 0) {
          s.SendData(v.h2s.id, p + used + st.data_offset, st.data_len, false);
          v.h2s.req_tail.Data();
        } else {
          v.h2s.req_tail.Framing(p + used, st.consumed);
        }
        used += st.consumed;
      }
      if (used == 0) break;
    } else {
      s.SendData(v.h2s.id, p, used, false);
    }
    v.out.Consume(&blocks_, used);
  }
  if (!v.h2s.end_sent && v.out.empty() && ex.req_done) {
    // A chunked body's trailers end the stream as HTTP/2 trailers (RFC 9113
    // §8.1), those a proxy must not pass on left out.
    http::Header fields[16];
    const uint16_t n =
        chunked ? v.h2s.req_tail.Trailers(fields, 16,
                                          [this](std::string_view name) {
                                            return KeptInRequestTrailers(
                                                name, config_.underscores_in_headers);
                                          })
                : 0;
    if (n == 0 || !s.SendTrailers(v.h2s.id, fields, n)) s.SendData(v.h2s.id, nullptr, 0, true);
    v.h2s.end_sent = true;
  }
  MarkDirty(c, conn);
  FollowConnection(up);  // connected; sent once the whole request is in the session
  if (v.out.empty()) OnLegSent(v.client, true);  // room again for the request body
}

int64_t Worker::ConsumeH2Conn(uint32_t conn, const char* p, size_t n) {
  if (upstreams_[conn].h2->closing) return static_cast<int64_t>(n);
  upstreams_[conn].h2->last_frame = now_;  // alive: the timer finds the PING later due
  const bool ok = upstreams_[conn].h2->session.Receive(p, n, now_);
  SettleH2Conn(conn);
  Upstream& c = upstreams_[conn];
  if (c.h2 == nullptr || c.h2->closing) return static_cast<int64_t>(n);
  if (!ok) {
    // A flood or a protocol error: the session queued its GOAWAY; the
    // connection and what is still open on it end.
    CloseUpstream(conn);
    return static_cast<int64_t>(n);
  }
  MarkDirty(c, conn);  // acknowledgements, window updates
  return static_cast<int64_t>(n);
}

void Worker::SettleH2Conn(uint32_t conn) {
  upstreams_[conn].h2->unsettled = false;
  // The streams as they are now: pumping one may end it (its slot leaves
  // the list) or retry it onto this connection (a slot joins it).
  h2_settle_.assign(upstreams_[conn].h2->streams.begin(), upstreams_[conn].h2->streams.end());
  const uint32_t conn_gen = upstreams_[conn].gen;
  for (uint32_t s : h2_settle_) {
    Upstream& u = upstreams_[s];
    if (u.h2_parent != conn || u.h2s.conn_gen != conn_gen) continue;
    if (u.state == Upstream::State::kFree || u.state == Upstream::State::kClosing) continue;
    if (u.h2s.answer != nullptr || !u.h2s.resp.empty() || u.h2s.closed) PumpH2Stream(s);
  }
  Upstream& c = upstreams_[conn];
  if (c.gen == conn_gen && c.h2 != nullptr && !c.h2->closing) SubmitWaiting(conn);
}

void Worker::PumpH2Stream(uint32_t up) {
  const uint32_t gen = upstreams_[up].gen;
  auto gone = [&] {
    const Upstream& u = upstreams_[up];
    return u.gen != gen || u.state == Upstream::State::kFree || u.state == Upstream::State::kClosing;
  };
  if (upstreams_[up].client == kNone) {
    // Released whole before its END_STREAM (H2UpStream::Release): it ended.
    if (upstreams_[up].h2s.closed) CloseUpstream(up);
    return;
  }
  if (upstreams_[up].h2s.answer != nullptr && upstreams_[up].client != kNone) {
    // The head first, read back from the stream's block into the core's
    // scratch. The block is taken off the stream before the exchange runs
    // (it may end the stream) and goes back only once the exchange has
    // returned: the fields' names and values are in it, and the exchange
    // reads some (x-hms-reason, grpc-status) after it wrote the client's
    // head into a block that would otherwise be this very one.
    H2UpStream& h = upstreams_[up].h2s;
    http::ResponseHead& r = h2_up_resp_;
    r.status = h.status;
    r.header_count = h.field_count;
    std::memcpy(static_cast<void*>(r.headers), h.answer->data(), h.field_count * sizeof(http::Header));
    r.body = h.body;
    r.content_length = h.content_length;
    core::Block* fields = h.answer;
    h.answer = nullptr;
    h.answered = true;
    const bool taken = OnAnswerHead(upstreams_[up].client, r);  // exchange.cc
    blocks_.Put(fields);
    if (gone() || !taken) return;  // complete, retried or failed: the slot is let go
  }
  while (upstreams_[up].h2s.answered && !upstreams_[up].h2s.resp.empty() &&
         upstreams_[up].client != kNone) {
    Upstream& u = upstreams_[up];
    iovec piece;
    u.h2s.resp.Gather(&piece, 1);
    const int64_t n = OnAnswerBody(u.client, static_cast<const char*>(piece.iov_base), piece.iov_len);
    if (gone()) return;  // the answer is complete (or failed): the slot is let go
    if (n == kBlocked || n <= 0) break;
    u.h2s.resp.Consume(&blocks_, static_cast<size_t>(n));
    // Passed on: the upstream's windows reopen by as much (a chunked
    // answer's framing counted too: a little early, never late).
    Upstream& c = upstreams_[u.h2_parent];
    if (u.h2s.id != 0 && u.h2s.unconsumed > 0 && c.gen == u.h2s.conn_gen && c.h2 != nullptr) {
      const uint64_t m = std::min<uint64_t>(u.h2s.unconsumed, static_cast<uint64_t>(n));
      c.h2->session.Consume(u.h2s.id, m);
      u.h2s.unconsumed -= m;
      MarkDirty(c, u.h2_parent);
    }
  }
  Upstream& u = upstreams_[up];
  // Ended before the answer was whole; or whole by the session's count and
  // all relayed, yet the exchange still waits for more (a body shorter than
  // its length): a failed attempt either way.
  if (u.h2s.closed && u.h2s.resp.empty() && !u.h2s.end.by_engine &&
      (!u.h2s.end.complete || (u.h2s.answered && u.client != kNone))) {
    H2StreamFailed(up);
  }
}

void Worker::H2StreamFailed(uint32_t up) {
  Upstream& u = upstreams_[up];
  // Counted once, by the session: every stream it had was reported closed
  // (its own close, or Close() when the connection ends under it), and
  // ClientSession::CloseStream counts the never-processed ones.
  u.h2s.never_processed = u.h2s.end.never_processed;
  const policy::Fault fault = h2::FaultOf(u.h2s.end);
  UpstreamFailed(up, fault == policy::Fault::kNone ? policy::Fault::kUpstreamReset : fault);
}

void Worker::DetachH2Stream(uint32_t up) {
  Upstream& u = upstreams_[up];
  const uint32_t conn = u.h2_parent;
  Upstream& c = upstreams_[conn];
  if (c.gen != u.h2s.conn_gen || c.h2 == nullptr || c.h2->closing) return;
  H2UpConn& h = *c.h2;
  if (u.h2s.id != 0 && !u.h2s.closed) {
    u.h2s.closed = true;  // its close event, if the reset brings one, is ours
    h.session.Reset(u.h2s.id, h2::ErrorCode::kCancel);
  }
  u.h2s.id = 0;
  auto it = std::find(h.streams.begin(), h.streams.end(), up);
  if (it != h.streams.end()) h.streams.erase(it);
  u.h2s.conn_gen = ~0u;  // no longer the connection's
  MarkDirty(c, conn);
  // A connection no longer the endpoint's (or draining) closes once empty.
  if (h.streams.empty() &&
      (draining_ || c.endpoint_id >= h2_conn_.size() || h2_conn_[c.endpoint_id] != conn)) {
    CloseUpstream(conn);
    return;
  }
  // The endpoint's connection with nothing on it closes after the idle
  // pool's time (its timer, OnH2ConnTimer), as a pooled one does.
  if (h.streams.empty()) {
    h.idle_since = now_;
    ArmH2Liveness(conn);
  }
  SubmitWaiting(conn);
}

H2LivenessVerdict Worker::H2Liveness(uint32_t conn) const {
  const H2UpConn& h = *upstreams_[conn].h2;
  H2LivenessInput in;
  in.now = now_;
  in.last_frame = h.ready ? h.last_frame : 0;
  in.ping_sent = h.session.ping_outstanding_since();
  in.idle_since = h.idle_since;
  in.interval_ms = h.keepalive_interval_ms;
  in.timeout_ms = h.keepalive_timeout_ms;
  in.idle_ms = std::min<uint64_t>(kUpstreamIdleMs, config_.idle_timeout_ms);
  return DecideH2Liveness(in);
}

void Worker::ArmH2Liveness(uint32_t conn) {
  Upstream& c = upstreams_[conn];
  const H2LivenessVerdict v = H2Liveness(conn);
  if (v.due != H2LivenessDue::kWait) {
    timers_.Arm(&c.timer, now_, 0);  // due now: the next timer round acts on it
  } else if (v.after_ms > 0) {
    timers_.Arm(&c.timer, now_, v.after_ms);
  } else {
    timers_.Cancel(&c.timer);
  }
}

void Worker::OnH2ConnTimer(uint32_t conn) {
  Upstream& c = upstreams_[conn];
  if (c.h2->closing) return;
  switch (H2Liveness(conn).due) {
    case H2LivenessDue::kDead:
      // No ACK: the peer is gone without a FIN or RST (or hung). Its open
      // streams fail as a reset, under the retry rules; the endpoint's next
      // stream opens a new connection.
      h2_up_counters_.pings_timed_out.Add();
      CloseUpstream(conn);
      return;
    case H2LivenessDue::kIdle:
      CloseUpstream(conn);
      return;
    case H2LivenessDue::kPing:
      if (c.h2->session.Ping(now_)) MarkDirty(c, conn);
      break;
    case H2LivenessDue::kWait:
      break;
  }
  ArmH2Liveness(conn);
}

void Worker::CloseH2Conn(uint32_t conn) {
  Upstream& c = upstreams_[conn];
  H2UpConn& h = *c.h2;
  if (h.closing) return;
  if (c.endpoint_id < h2_conn_.size() && h2_conn_[c.endpoint_id] == conn) {
    h2_conn_[c.endpoint_id] = kNone;
  }
  // The session reports each open stream's end first: it knows those whose
  // HEADERS never left (never processed, whatever the method) and those
  // above a GOAWAY's last stream id. Its later events are ignored.
  h.session.Close(h2::ErrorCode::kNoError);
  h.closing = true;
  std::vector<uint32_t> streams;
  streams.swap(h.streams);
  for (uint32_t s : streams) {
    Upstream& u = upstreams_[s];
    if (u.state == Upstream::State::kFree || u.state == Upstream::State::kClosing) continue;
    u.h2s.conn_gen = ~0u;
    u.h2s.id = 0;
    if (u.h2s.closed && u.h2s.end.complete) continue;  // its answer is whole: relayed still
    const bool ended = u.h2s.closed;  // the session said how (its end is kept)
    u.h2s.closed = true;
    if (u.client == kNone) {
      CloseUpstream(s);
    } else if (!u.h2s.submitted) {
      // Never opened: nothing reached the upstream. On a connection that
      // worked (it went away under them) they go again as never processed;
      // otherwise it is a failed connect.
      u.h2s.never_processed = h.ready;
      if (h.fault == policy::Fault::kNone || h.fault == policy::Fault::kConnect) {
        UpstreamFailed(s, policy::Fault::kConnect, "cannot connect to the upstream");
      } else {
        UpstreamFailed(s, h.fault);  // the handshake's verdict (identity, TLS, ALPN)
      }
    } else {
      if (!ended) u.h2s.end = h2::StreamEnd{};
      H2StreamFailed(s);
    }
  }
}

bool Worker::KeepH2Head(Upstream& u, uint16_t status, const http::Header* fields,
                        uint16_t count, bool end_stream) {
  const http::Method method = u.client != kNone ? clients_[u.client].ex.method : http::Method::kGet;
  H2UpStream& h = u.h2s;
  if (h.answer == nullptr) h.answer = blocks_.Get();
  // The block: the fields (http::Header, at most `count`) at its start,
  // their names and values behind them.
  const size_t table = static_cast<size_t>(count) * sizeof(http::Header);
  http::ResponseHead& r = h2_up_resp_;
  const H2HeadResult read =
      table > blocks_.block_size()
          ? H2HeadResult::kTooManyFields
          : H2ResponseHead(status, fields, count, end_stream, method, h.answer->data() + table,
                           blocks_.block_size() - table, &r);
  if (read != H2HeadResult::kOk) {
    blocks_.Put(h.answer);
    h.answer = nullptr;
    // Why, for the stream's end (h2::FaultOf): fields that do not fit a
    // block are too large a head; a status or a length that cannot be read
    // is a malformed answer, as the HTTP/1.1 parser judges one.
    const bool too_large = read == H2HeadResult::kTooLarge || read == H2HeadResult::kTooManyFields;
    h.end.head_too_large = too_large;
    h.end.code = too_large ? h2::ErrorCode::kInternalError : h2::ErrorCode::kProtocolError;
    return false;
  }
  std::memcpy(h.answer->data(), static_cast<const void*>(r.headers), r.header_count * sizeof(http::Header));
  if (!end_stream && r.body == http::BodyKind::kContentLength && u.client != kNone &&
      clients_[u.client].parent != kNone) {
    // Toward an HTTP/2 client a body with a length goes chunked all the
    // same: trailers may follow its DATA (a unary gRPC answer's
    // grpc-status), and only a chunked body's end carries them to the
    // client's stream (H2Stream). An HTTP/1.1 client keeps the length.
    r.body = http::BodyKind::kChunked;
    r.content_length = 0;
  }
  h.status = r.status;
  h.field_count = r.header_count;
  h.body = r.body;
  h.content_length = r.content_length;
  h.chunked = r.body == http::BodyKind::kChunked;
  h.head_end = r.body == http::BodyKind::kNone ||
               (r.body == http::BodyKind::kContentLength && r.content_length == 0);
  return true;
}

Upstream* Worker::UpStreamOf(uint64_t tag) {
  const uint32_t up = static_cast<uint32_t>(tag);
  if (up >= upstreams_.capacity()) return nullptr;
  Upstream& u = upstreams_[up];
  if (u.gen != static_cast<uint32_t>(tag >> 32) || u.h2_parent == kNone ||
      u.state == Upstream::State::kFree || u.state == Upstream::State::kClosing) {
    return nullptr;
  }
  return &u;
}

// The session's events: each keeps the stream's answer (its head, its body
// bytes); the exchange reads it when the session returns (SettleH2Conn).
void H2UpConn::OnResponse(h2::ClientSession& s, int32_t id, uint64_t tag, uint16_t status,
                          const http::Header* fields, uint16_t count, bool end_stream) {
  Upstream* u = closing ? nullptr : worker->UpStreamOf(tag);
  if (u == nullptr || u->h2s.closed) return;
  if (!worker->KeepH2Head(*u, status, fields, count, end_stream)) {
    // It cannot be read as an answer: its end says why (KeepH2Head).
    u->h2s.closed = true;
    u->h2s.id = 0;
    s.Reset(id, u->h2s.end.code);
  }
}

void H2UpConn::OnData(h2::ClientSession& s, int32_t id, uint64_t tag, const char* p, size_t n) {
  Upstream* u = closing ? nullptr : worker->UpStreamOf(tag);
  if (u == nullptr || u->h2s.closed || u->h2s.head_end || u->client == kNone || n == 0) {
    s.Consume(id, n);  // nobody reads it (a released answer's: none is due)
    return;
  }
  core::BlockPool* blocks = &worker->blocks_;
  u->h2s.unconsumed += n;
  if (!u->h2s.chunked) {
    u->h2s.resp.Append(blocks, p, n);  // a length: the bytes as they are
    return;
  }
  AppendChunk(&u->h2s.resp, blocks, p, n);
}

void H2UpConn::OnResponseEnd(h2::ClientSession&, int32_t, uint64_t tag,
                             const http::Header* trailers, uint16_t count) {
  Upstream* u = closing ? nullptr : worker->UpStreamOf(tag);
  // An answer with a length ends with its last byte; its trailers, if any,
  // have no place in it toward an HTTP/1.1 client and are dropped. In the
  // last chunk go those a proxy may pass on (KeptInResponseTrailers).
  if (u == nullptr || u->h2s.closed || u->h2s.head_end || !u->h2s.chunked) return;
  core::BlockPool* blocks = &worker->blocks_;
  const size_t room = blocks->block_size();
  char* dst = u->h2s.resp.Reserve(blocks, room);
  Writer w(dst, room);
  w.S("0\r\n");
  for (uint16_t i = 0; i < count; ++i) {
    if (KeptInResponseTrailers(trailers[i].name)) {
      w.S(trailers[i].name).S(": ").S(trailers[i].value).S("\r\n");
    }
  }
  w.S("\r\n");
  if (w.overflow()) {
    // Trailers past a block (the session holds them to max_header_list_bytes):
    // the body ends without them rather than with half of them.
    Writer last(dst, room);
    last.S("0\r\n\r\n");
    u->h2s.resp.Commit(last.size());
    return;
  }
  u->h2s.resp.Commit(w.size());
}

void H2UpConn::OnSendable(h2::ClientSession&, int32_t, uint64_t tag) {
  Upstream* u = closing ? nullptr : worker->UpStreamOf(tag);
  if (u == nullptr) return;
  worker->MarkDirty(*u, static_cast<uint32_t>(tag));  // more of the body goes at the flush
}

void H2UpConn::OnStreamClose(h2::ClientSession&, int32_t, uint64_t tag, const h2::StreamEnd& end) {
  Upstream* u = closing ? nullptr : worker->UpStreamOf(tag);
  if (u == nullptr || u->h2s.closed) return;
  u->h2s.closed = true;
  u->h2s.end = end;
  u->h2s.id = 0;
  unsettled = true;  // its exchange learns of it when the session returns (SettleH2Conn)
}

// UpstreamLeg (upstream_leg.h) of a stream: the request waits in the
// slot's `out` until the flush gives it to the session (FeedStream).
void H2UpStream::Send(const char* p, size_t n) noexcept {
  Upstream& u = worker->upstreams_[slot];
  u.out.Append(&worker->blocks_, p, n);
  worker->MarkDirty(u, slot);
}

bool H2UpStream::Full() const noexcept { return worker->upstreams_[slot].queued() >= kMaxQueued; }

bool H2UpStream::Sending() const noexcept { return !worker->upstreams_[slot].out.empty(); }

void H2UpStream::Resume() noexcept { worker->PumpH2Stream(slot); }

void H2UpStream::Release(bool reusable) noexcept {
  // The connection stays for the other streams; the slot goes.
  Worker& w = *worker;
  Upstream& u = w.upstreams_[slot];
  u.client = kNone;
  if (reusable && end_sent && id != 0 && !closed && !w.draining_) {
    // Whole by its length, its END_STREAM still to come (an empty DATA
    // frame of its own): the stream is left to end rather than reset, as a
    // chunked answer ends with it; a RST_STREAM per answer is what an
    // upstream's rapid-reset defence counts. The slot goes at the end
    // (PumpH2Stream), or at the idle pool's time (kTimerUpstream).
    w.timers_.Arm(&u.timer, w.now_, std::min<uint64_t>(kUpstreamIdleMs, w.config_.idle_timeout_ms));
    return;
  }
  w.CloseUpstream(slot);
}

void H2UpStream::Abandon(uint32_t) noexcept {
  worker->upstreams_[slot].client = kNone;
  worker->CloseUpstream(slot);  // resets the stream if it is still open (DetachH2Stream)
}

}  // namespace hms::proxy
