// The HTTP/2 downstream (h2_down.h), top to bottom: a connection switched to
// h2 (the preface on a plain listener, ALPN on TLS), the client's bytes into
// its session and the session's out, each stream made a Client slot whose
// exchange runs as an HTTP/1.1 one does, its request body framed for the
// HTTP/1.1 upstream at the client's pace, and its answer (written by the
// exchange in HTTP/1.1 form) turned into HEADERS, DATA and trailers.
#include "src/proxy/h2_down.h"

#include <algorithm>
#include <cstring>
#include <new>

#include "hms/auth/base64url.h"
#include "hms/common/check.h"
#include "src/proxy/head_rewrite.h"
#include "src/proxy/wire.h"
#include "src/proxy/worker.h"

namespace hms::proxy {
namespace {

// A session's tag for a stream: its slot and generation, with the top bit
// set so that no tag is 0 (the session's "none yet").
uint64_t TagOf(uint32_t slot, uint32_t gen) {
  return (uint64_t{1} << 63) | (uint64_t{gen & 0x7fffffffu} << 32) | slot;
}

// A parked stream's head, at the start of the block that keeps it.
const http::RequestHead& KeptHead(core::Block* b) {
  return *reinterpret_cast<const http::RequestHead*>(b->data());
}

// A Sec-WebSocket-Key (RFC 6455 §4.1: 16 random bytes in padded base64)
// into out[0, 24).
void NewWebSocketKey(uint64_t a, uint64_t b, char* out) {
  uint8_t nonce[16];
  std::memcpy(nonce, &a, 8);
  std::memcpy(nonce + 8, &b, 8);
  const size_t n = auth::EncodeBase64Url(nonce, sizeof nonce, out);  // 22 characters
  for (size_t i = 0; i < n; ++i) {
    if (out[i] == '-') out[i] = '+';  // base64url → base64 (RFC 4648 §5 → §4)
    if (out[i] == '_') out[i] = '/';
  }
  out[22] = out[23] = '=';
}

// Only an extended CONNECT's head carries upgrade (request_head.h: from a
// client the field is connection-specific, refused); h2 names are lowercase.
bool IsExtendedConnect(const http::RequestHead& h) {
  for (uint16_t i = 0; i < h.header_count; ++i) {
    if (h.headers[i].name == "upgrade") return true;
  }
  return false;
}

}  // namespace

PrefaceSniff SniffPreface(const char* p, size_t n) noexcept {
  const size_t k = std::min(n, kH2PrefaceLen);
  if (std::memcmp(p, kH2Preface, k) != 0) return PrefaceSniff::kHttp1;
  return n >= kH2PrefaceLen ? PrefaceSniff::kH2 : PrefaceSniff::kNeedMore;
}

// --- The connection --------------------------------------------------------

bool Worker::StartH2(uint32_t slot) {
  Client& c = clients_[slot];
  // One session per connection, made at the switch as a TLS session is made
  // at accept; nghttp2's own state comes from the core's pool.
  c.h2 = std::make_unique<H2Conn>(this, slot, h2_config_[c.listener].get(), &h2_pool_, &blocks_,
                                  &metrics_.h2);
  if (!c.h2->session.Start()) {
    c.h2.reset();
    CloseClient(slot, false);
    return false;
  }
  SetClientTimer(slot);
  MarkDirty(c, slot);  // the server's SETTINGS
  return true;
}

int64_t Worker::ConsumeH2(uint32_t slot, const char* p, size_t n) {
  Client& c = clients_[slot];
  // A client that does not read what it asked for is not read either
  // (resumed by OnClientSent).
  if (c.queued() >= kMaxQueued) return kBlocked;
  if (!c.h2->session.Receive(p, n, now_)) {
    // A flood or a protocol error: the GOAWAY the session queued goes out
    // with what is queued, then the connection closes.
    CloseClient(slot, true);
    return static_cast<int64_t>(n);
  }
  SetClientTimer(slot);
  MarkDirty(c, slot);
  return static_cast<int64_t>(n);
}

bool Worker::FlushH2(uint32_t slot) {
  Client& c = clients_[slot];
  if (!c.h2->session.Send(&c.out, kMaxQueued)) {
    CloseClient(slot, false);
    return false;
  }
  if (c.h2->session.Done()) {
    CloseClient(slot, true);  // drained, or the client's GOAWAY with nothing left open
  } else {
    SetClientTimer(slot);
  }
  return clients_[slot].phase != Client::Phase::kHard;
}

// --- Streams ---------------------------------------------------------------

uint32_t Worker::NewStream(uint32_t conn, int32_t id) {
  const uint32_t s = NewClient(-1, clients_[conn].listener);  // no socket of its own
  metrics_.h2_streams_open.Add();
  Client& c = clients_[s];
  const Client& p = clients_[conn];
  c.peer_len = p.peer_len;
  std::memcpy(c.peer, p.peer, p.peer_len);
  c.parent = conn;
  H2Stream& st = c.stream;
  st.worker = this;
  st.slot = s;
  st.conn = conn;
  st.id = id;
  st.unconsumed = 0;
  st.head_sent = st.ended = false;
  st.resp_body = http::BodyKind::kNone;
  st.resp_remaining = 0;
  st.chunks.Reset();
  st.tail.Data();
  clients_[conn].h2->session.SetTag(id, TagOf(s, c.gen));
  return s;
}

uint32_t Worker::StreamOf(uint64_t tag) const {
  if ((tag >> 63) == 0) return kNone;
  const uint32_t s = static_cast<uint32_t>(tag);
  if (s >= clients_.capacity()) return kNone;
  const Client& c = clients_[s];
  if (c.state == Client::State::kFree || c.parent == kNone ||
      (c.gen & 0x7fffffffu) != ((tag >> 32) & 0x7fffffffu)) {
    return kNone;
  }
  return s;
}

void Worker::FreeStream(uint32_t slot) {
  Client& c = clients_[slot];
  H2Stream& st = c.stream;
  Client& conn = clients_[st.conn];
  // Body bytes never forwarded reopen the windows: the stream's end must
  // not starve the connection's other streams.
  if (st.unconsumed > 0 && conn.h2 != nullptr) conn.h2->session.Consume(st.id, st.unconsumed);
  st.unconsumed = 0;
  st.body.Clear(&blocks_);
  if (st.parked_head != nullptr) {
    blocks_.Put(st.parked_head);
    st.parked_head = nullptr;
  }
  timers_.Cancel(&c.timer);
  timers_.Cancel(&c.ex.timer);
  if (c.ex.head != nullptr) {
    blocks_.Put(c.ex.head);
    c.ex.head = nullptr;
  }
  c.ex.replay.Clear(&blocks_);
  c.state = Client::State::kFree;
  c.parent = kNone;
  ++c.gen;
  clients_.Free(slot);
  metrics_.h2_streams_open.Sub();
  MarkDirty(conn, st.conn);  // what the stream's end queued (END_STREAM, RST_STREAM)
}

void Worker::OnH2Request(uint32_t conn, int32_t id, const http::RequestHead& head,
                         bool end_stream) {
  (void)end_stream;  // the head's body kind says it (kNone)
  const uint32_t s = NewStream(conn, id);
  // The exchange's steps read the head being started from req_, as an
  // HTTP/1.1 one; its views live until this call returns, and the exchange
  // keeps nothing of them past StartExchange.
  req_ = head;
  // An extended CONNECT: the upstream's handshake gets a key of the
  // stream's own, its 101 checked against it (tunnel.cc).
  if (IsExtendedConnect(req_)) {
    H2Stream& st = clients_[s].stream;
    NewWebSocketKey(Random(), Random(), st.ws_key);
    req_.headers[req_.header_count++] =
        http::Header{"sec-websocket-key", std::string_view(st.ws_key, sizeof st.ws_key)};
  }
  StartExchange(s, 0);
}

void Worker::OnH2Refused(uint32_t conn, int32_t id, const policy::Answer& answer) {
  const uint32_t s = NewStream(conn, id);
  RejectRequest(s, answer);  // answered, counted, logged as an HTTP/1.1 refusal is
}

void Worker::OnH2Data(uint32_t conn, int32_t id, uint64_t tag, const char* p, size_t n) {
  const uint32_t s = StreamOf(tag);
  // A stream parked for Redis keeps its body (bounded by its window) for
  // the exchange that starts when Redis answers.
  core::Block* kept = s != kNone ? clients_[s].stream.parked_head : nullptr;
  // A WebSocket stream's DATA are the tunnel's bytes (its head had no body).
  const bool tunnel = s != kNone && clients_[s].ex.active() && clients_[s].ex.websocket;
  if (s == kNone ||
      (kept == nullptr && !tunnel && (!clients_[s].ex.active() || clients_[s].ex.req_done))) {
    // Nobody reads it (answered early, or reset): the windows reopen at once.
    clients_[conn].h2->session.Consume(id, n);
    return;
  }
  Client& c = clients_[s];
  H2Stream& st = c.stream;
  const http::BodyKind kind = kept != nullptr ? KeptHead(kept).body : c.ex.req_body;
  if (kind == http::BodyKind::kChunked) {
    // No content-length: the HTTP/1.1 upstream gets the body chunked.
    AppendChunk(&st.body, &blocks_, p, n);
  } else {
    st.body.Append(&blocks_, p, n);
  }
  st.unconsumed += n;
  PumpStream(s);
}

void Worker::OnH2RequestEnd(uint32_t conn, uint64_t tag, const http::Header* trailers,
                            uint16_t count) {
  (void)conn;
  const uint32_t s = StreamOf(tag);
  if (s == kNone) return;
  Client& c = clients_[s];
  if (c.ex.active() && c.ex.websocket) {
    // END_STREAM of a WebSocket stream: the client's FIN, passed on once
    // its bytes are (tunnel.cc); before the 101, OpenTunnel sees it.
    c.eof = true;
    if (c.state == Client::State::kTunnel) TunnelEof(s, true);
    return;
  }
  core::Block* kept = c.stream.parked_head;
  const bool chunked = kept != nullptr ? KeptHead(kept).body == http::BodyKind::kChunked
                                       : c.ex.active() && !c.ex.req_done &&
                                             c.ex.req_body == http::BodyKind::kChunked;
  if (!chunked) return;
  // The last chunk, with the request's trailers as the trailer section:
  // those a proxy may pass on, as toward an h2 upstream.
  H2Stream& st = c.stream;
  st.body.Append(&blocks_, "0\r\n", 3);
  for (uint16_t i = 0; i < count; ++i) {
    if (!KeptInRequestTrailers(trailers[i].name, config_.underscores_in_headers)) continue;
    st.body.Append(&blocks_, trailers[i].name.data(), trailers[i].name.size());
    st.body.Append(&blocks_, ": ", 2);
    st.body.Append(&blocks_, trailers[i].value.data(), trailers[i].value.size());
    st.body.Append(&blocks_, "\r\n", 2);
  }
  st.body.Append(&blocks_, "\r\n", 2);
  PumpStream(s);
}

void Worker::OnH2Sendable(uint64_t tag) {
  const uint32_t s = StreamOf(tag);
  if (s == kNone) return;
  const Exchange& ex = clients_[s].ex;
  if (!ex.streaming()) return;
  if (UpstreamLeg* leg = Leg(ex)) leg->Resume();
}

void Worker::OnH2StreamClose(uint64_t tag) {
  const uint32_t s = StreamOf(tag);
  if (s == kNone) return;  // its exchange finished first
  Client& c = clients_[s];
  // Reset by the client, or its connection ended: the exchange ends as an
  // HTTP/1.1 client's going away ends it (499), the others go on.
  if (c.ex.active()) {
    if (c.ex.status == 0) c.ex.status = 499;
    EndExchange(s);
  }
  c.stream.unconsumed = 0;  // the session gave the window back itself
  c.stream.ended = true;
  FreeStream(s);
}

void Worker::PumpStream(uint32_t slot) {
  Client& c = clients_[slot];
  const uint32_t gen = c.gen;
  H2Stream& st = c.stream;
  while (!st.body.empty() && c.ex.active() &&
         (c.state == Client::State::kBody || c.state == Client::State::kTunnel)) {
    iovec iov[1];
    st.body.Gather(iov, 1);
    const char* p = static_cast<const char*>(iov[0].iov_base);
    const int64_t used = c.state == Client::State::kTunnel
                             ? TunnelToUpstream(slot, p, iov[0].iov_len)
                             : ForwardRequestBody(slot, p, iov[0].iov_len);
    if (c.gen != gen || c.state == Client::State::kFree) return;  // the exchange ended it
    if (used == kBlocked || used == 0) break;
    st.body.Consume(&blocks_, static_cast<size_t>(used));
    // Chunk framing counts too: the window reopens by at most what arrived.
    const size_t give = std::min(st.unconsumed, static_cast<size_t>(used));
    st.unconsumed -= give;
    clients_[st.conn].h2->session.Consume(st.id, give);
    MarkDirty(clients_[st.conn], st.conn);  // WINDOW_UPDATE
  }
  if (c.state == Client::State::kTunnel && st.body.empty()) TunnelProgress(slot);  // a FIN held
}

// The head at the block's start, every byte its views point to behind it,
// the views moved onto the copies (views that share bytes are copied each:
// simpler than finding overlaps, and a head is small).
bool Worker::KeepStreamHead(uint32_t slot) {
  H2Stream& st = clients_[slot].stream;
  if (st.parked_head != nullptr) return true;
  core::Block* b = blocks_.Get();
  char* base = b->data();
  const size_t cap = blocks_.block_size();
  auto* h = new (base) http::RequestHead(req_);
  size_t used = sizeof(http::RequestHead);
  bool fits = true;
  auto move = [&](std::string_view& v) {
    if (v.empty()) return;
    if (used + v.size() > cap) {
      fits = false;
      return;
    }
    std::memcpy(base + used, v.data(), v.size());
    v = std::string_view(base + used, v.size());
    used += v.size();
  };
  move(h->method_text);
  move(h->target);
  move(h->path);
  move(h->query);
  move(h->host);
  for (uint16_t i = 0; i < h->header_count; ++i) {
    move(h->headers[i].name);
    move(h->headers[i].value);
  }
  if (!fits) {
    blocks_.Put(b);
    return false;
  }
  st.parked_head = b;
  return true;
}

// Redis answered (the stream's fleet_pass says how): the exchange starts
// from the kept head as OnH2Request starts it; parked again, the head is
// copied anew, so the old block goes back in any case.
void Worker::ResumeStream(uint32_t slot) {
  Client& c = clients_[slot];
  core::Block* b = c.stream.parked_head;
  if (b == nullptr || c.fleet_parked || c.state != Client::State::kHead || c.ex.active()) return;
  c.stream.parked_head = nullptr;
  req_ = KeptHead(b);
  StartExchange(slot, 0);
  blocks_.Put(b);  // the exchange keeps nothing of the head past StartExchange
}

// --- H2Stream: the Downstream of a stream's exchange -------------------------

void H2Stream::Clear(core::BlockPool* blocks) noexcept { body.Clear(blocks); }

char* H2Stream::Reserve(size_t n) noexcept {
  HMS_CHECK(n <= worker->blocks_.block_size());
  return worker->h2_head_.get();
}

// The head the exchange wrote (an upstream's rewritten head, or a local
// answer with its body) is read back and goes as HEADERS; a local answer's
// body follows as DATA.
void H2Stream::Commit(size_t n) noexcept {
  Worker& w = *worker;
  const Client& c = w.clients_[slot];
  h2::ServerSession& s = w.clients_[conn].h2->session;
  http::ResponseHead& r = w.h2_resp_;
  const char* head = w.h2_head_.get();
  const int rc = http::ParseResponse(head, n, n, c.ex.method, &r);
  HMS_CHECK(rc > 0);  // written by the gateway itself
  resp_body = r.body;
  resp_remaining = r.content_length;
  chunks.Reset();
  tail.Data();
  if (r.status == 101) {
    // The tunnel opened (tunnel.cc OpenTunnel): on h2 it is a 200 whose DATA
    // carry the upstream's bytes (RFC 8441 §5); the accept was checked and
    // means nothing to an h2 client, the hop-by-hop fields go with the 101.
    r.status = 200;
    resp_body = http::BodyKind::kUntilClose;
    uint16_t kept = 0;
    for (uint16_t i = 0; i < r.header_count; ++i) {
      if (http::EqualsIgnoreCase(r.headers[i].name, "sec-websocket-accept")) continue;
      r.headers[kept++] = r.headers[i];
    }
    r.header_count = kept;
  }
  const bool empty = resp_body == http::BodyKind::kNone ||
                     (resp_body == http::BodyKind::kContentLength && r.content_length == 0);
  head_sent = true;
  ended = empty;
  s.Respond(id, r.status, r.headers, r.header_count, empty);
  if (n > static_cast<size_t>(rc)) Send(head + rc, n - static_cast<size_t>(rc));
  w.MarkDirty(w.clients_[conn], conn);
}

void H2Stream::Send(const char* p, size_t n) noexcept {
  Worker& w = *worker;
  h2::ServerSession& s = w.clients_[conn].h2->session;
  switch (resp_body) {
    case http::BodyKind::kContentLength: {
      const size_t k = static_cast<size_t>(std::min<uint64_t>(n, resp_remaining));
      resp_remaining -= k;
      ended = resp_remaining == 0;
      s.SendData(id, p, k, ended);
      break;
    }
    case http::BodyKind::kUntilClose:
      s.SendData(id, p, n, false);
      break;
    case http::BodyKind::kChunked: {
      size_t used = 0;
      while (used < n && !chunks.done()) {
        http::ChunkedDecoder::Step step;
        if (!chunks.Next(p + used, n - used, &step)) {
          Abort();  // the exchange's own decoder refused it first; kept for safety
          return;
        }
        if (step.consumed == 0) break;
        if (step.data_len > 0) {
          s.SendData(id, p + used + step.data_offset, step.data_len, false);
          tail.Data();
        } else {
          tail.Framing(p + used, step.consumed);
        }
        used += step.consumed;
      }
      if (chunks.done() && !ended) {
        ended = true;
        http::Header fields[16];
        const uint16_t count = tail.Trailers(fields, 16, KeptInResponseTrailers);
        if (count > 0) {
          s.SendTrailers(id, fields, count);
        } else {
          s.SendData(id, nullptr, 0, true);
        }
      }
      break;
    }
    case http::BodyKind::kNone:
      break;
  }
  w.MarkDirty(w.clients_[conn], conn);
}

bool H2Stream::Full() const noexcept {
  return worker->clients_[conn].h2->session.Queued(id) >= kStreamMaxQueued;
}

// Mid-answer failure, or the stream's end forced (a deadline, the drain's
// deadline): RST_STREAM tells the client the answer is not whole.
void H2Stream::Abort() noexcept {
  Worker& w = *worker;
  Client& c = w.clients_[slot];
  if (!ended) w.clients_[conn].h2->session.Reset(id, h2::ErrorCode::kInternalError);
  ended = true;
  if (c.ex.active()) {
    if (c.ex.status == 0) c.ex.status = 499;
    w.EndExchange(slot);
  }
  w.FreeStream(slot);
}

void H2Stream::Continue() noexcept {
  worker->clients_[conn].h2->session.Continue(id);
  worker->MarkDirty(worker->clients_[conn], conn);
}

void H2Stream::ResumeBody() noexcept { worker->repump_.push_back(slot); }

bool H2Stream::OwesBody() const noexcept {
  const Worker& w = *worker;
  const Exchange& ex = w.clients_[slot].ex;
  if (!ex.active() || ex.req_done || !body.empty()) return false;
  const UpstreamLeg* leg = w.Leg(ex);
  return leg != nullptr && !leg->Full();
}

// The exchange is accounted for: the answer's end goes (a body delimited by
// the upstream's close has no other), the slot is let go; the connection
// goes on whatever `reusable` says.
void H2Stream::Finish(bool reusable) noexcept {
  (void)reusable;
  Worker& w = *worker;
  h2::ServerSession& s = w.clients_[conn].h2->session;
  if (!head_sent) {
    s.Reset(id, h2::ErrorCode::kInternalError);
  } else if (!ended) {
    s.SendData(id, nullptr, 0, true);
  }
  ended = true;
  w.FreeStream(slot);
}

// --- H2Conn: the session's events --------------------------------------------

void H2Conn::OnRequest(h2::ServerSession&, int32_t id, const http::RequestHead& head,
                       bool end_stream) {
  worker->OnH2Request(slot, id, head, end_stream);
}

void H2Conn::OnRefused(h2::ServerSession&, int32_t id, const policy::Answer& answer) {
  worker->OnH2Refused(slot, id, answer);
}

void H2Conn::OnData(h2::ServerSession&, int32_t id, uint64_t tag, const char* p, size_t n) {
  worker->OnH2Data(slot, id, tag, p, n);
}

void H2Conn::OnRequestEnd(h2::ServerSession&, int32_t, uint64_t tag, const http::Header* trailers,
                          uint16_t count) {
  worker->OnH2RequestEnd(slot, tag, trailers, count);
}

void H2Conn::OnSendable(h2::ServerSession&, int32_t, uint64_t tag) { worker->OnH2Sendable(tag); }

void H2Conn::OnStreamClose(h2::ServerSession&, int32_t, uint64_t tag, h2::ErrorCode) {
  worker->OnH2StreamClose(tag);
}

}  // namespace hms::proxy
