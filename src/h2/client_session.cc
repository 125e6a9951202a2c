#include "hms/h2/client_session.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <type_traits>

#include "hms/common/check.h"
#include "nghttp2_glue.h"
#include "session_stream.h"

namespace hms::h2 {

// An exchange's stream: the shared part (its body is the request's), and
// the response's.
struct ClientSession::Stream : Session::Stream {
  bool head_seen = false;  // the final response head was delivered
  bool complete = false;   // END_STREAM from the upstream
  bool head_too_large = false;
  // Its HEADERS left the session (nghttp2 wrote them to the engine's
  // queue): until then the upstream cannot have seen the request.
  bool headers_sent = false;
};

// The response header block in progress (one at a time per connection,
// RFC 9113 §4.3), from the pool: its fields are views into nghttp2's
// reference-counted buffers, held until the block is delivered.
struct ClientSession::Block {
  uint16_t status = 0;
  uint16_t count = 0;
  uint32_t bytes = 0;  // name + value + 32 per field (RFC 9113 §6.5.2)
  http::Header fields[http::kMaxHeaders];
  nghttp2_rcbuf* refs[2 * http::kMaxHeaders];
  uint32_t ref_count = 0;
};

namespace {

constexpr uint8_t kLivenessPing[8] = {'h', 'm', 's', 'a', 'l', 'i', 'v', 'e'};

uint16_t ParseStatus(std::string_view v) {
  if (v.size() != 3) return 0;
  uint16_t s = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return 0;
    s = static_cast<uint16_t>(s * 10 + (c - '0'));
  }
  return s;
}

}  // namespace

policy::Fault FaultOf(const StreamEnd& end) noexcept {
  if (end.complete || end.by_engine) return policy::Fault::kNone;
  if (end.head_too_large) return policy::Fault::kUpstreamHeaderTooLarge;
  if (end.code == ErrorCode::kProtocolError) return policy::Fault::kUpstreamBadResponse;
  return policy::Fault::kUpstreamReset;
}

bool DroppedFromRequest(std::string_view name, std::string_view value) noexcept {
  if (http::EqualsIgnoreCase(name, "te")) return !http::EqualsIgnoreCase(value, "trailers");
  return glue::ConnectionSpecific(name) || http::EqualsIgnoreCase(name, "host");
}

RequestLine LineOf(const http::RequestHead& head, std::string_view scheme) {
  return RequestLine{head.method_text, scheme, head.host, head.target};
}

// --- nghttp2's callbacks ---------------------------------------------------

// The client's own; SessionCallbacks has the shared ones.
struct ClientCallbacks {
  static ClientSession* S(void* self) {
    return static_cast<ClientSession*>(static_cast<Session*>(self));
  }

  static int BeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* self) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    return S(self)->BeginBlock(frame->hd.stream_id);
  }

  static int Header(nghttp2_session*, const nghttp2_frame* frame, nghttp2_rcbuf* name,
                    nghttp2_rcbuf* value, uint8_t, void* self) {
    return S(self)->OnField(frame->hd.stream_id, name, value);
  }

  static int FrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* self) {
    S(self)->OnFrame(frame->hd.type, frame->hd.stream_id, frame->hd.flags,
                     frame->hd.type == NGHTTP2_GOAWAY ? frame->goaway.last_stream_id : 0);
    if (frame->hd.type == NGHTTP2_PING && (frame->hd.flags & NGHTTP2_FLAG_ACK) != 0 &&
        std::memcmp(frame->ping.opaque_data, kLivenessPing, sizeof kLivenessPing) == 0) {
      S(self)->ping_sent_at_ = 0;
    }
    return 0;
  }

  static int FrameSend(nghttp2_session*, const nghttp2_frame* frame, void* self) {
    ClientSession* s = S(self);
    if (frame->hd.type == NGHTTP2_GOAWAY) s->counters_->goaways_sent.Add();
    if (frame->hd.type == NGHTTP2_RST_STREAM) s->counters_->resets_sent.Add();
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      if (ClientSession::Stream* st = s->Find(frame->hd.stream_id)) st->headers_sent = true;
    }
    return 0;
  }

  // A request whose HEADERS never left (GOAWAY came first, the session
  // ended): the upstream cannot have seen it.
  static int FrameNotSend(nghttp2_session* ng, const nghttp2_frame* frame, int, void* self) {
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    ClientSession* s = S(self);
    ClientSession::Stream* st = s->Find(frame->hd.stream_id);
    if (st == nullptr) return 0;
    // nghttp2 never made the stream, so it will not report its close.
    if (nghttp2_session_find_stream(ng, frame->hd.stream_id) == nullptr) {
      s->CloseStream(st, ErrorCode::kRefusedStream);
    }
    return 0;
  }
};

// --- ClientConfig -----------------------------------------------------------

Result<std::shared_ptr<const ClientConfig>> ClientConfig::Make(const Limits& l) {
  std::shared_ptr<ClientConfig> c(new ClientConfig());
  if (Result<bool> r = c->Init(l); !r) return r.error();
  nghttp2_session_callbacks* cb = c->callbacks_;
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, ClientCallbacks::BeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback2(cb, ClientCallbacks::Header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, ClientCallbacks::FrameRecv);
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, ClientCallbacks::FrameSend);
  nghttp2_session_callbacks_set_on_frame_not_send_callback(cb, ClientCallbacks::FrameNotSend);
  // nghttp2's HTTP messaging rules stay on: a malformed response head (no
  // :status, a bad field, DATA against content-length) resets its stream
  // with PROTOCOL_ERROR, which FaultOf reads as upstream_bad_response.
  return std::shared_ptr<const ClientConfig>(std::move(c));
}

// --- ClientSession: life ----------------------------------------------------

ClientSession::ClientSession(const ClientConfig* config, ClientHandler* handler, MemPool* pool,
                             core::BlockPool* blocks, Counters* counters)
    : Session(config, pool, blocks, counters), handler_(handler) {
  // Session::FreeStream ends a stream as its shared part.
  static_assert(std::is_trivially_destructible_v<Stream>);
}

ClientSession::~ClientSession() { EndBlockRefs(); }

ClientSession::Stream* ClientSession::Find(int32_t id) const {
  return static_cast<Stream*>(Session::Find(id));
}

void ClientSession::CloseStream(Session::Stream* shared, ErrorCode code) {
  auto* st = static_cast<Stream*>(shared);
  // Response bytes never consumed still count against the connection's
  // window: give them back, or one reset stream would shrink it for all.
  if (st->unconsumed > 0 && !terminated_) nghttp2_session_consume_connection(ng_, st->unconsumed);
  st->unconsumed = 0;
  StreamEnd end;
  end.code = code;
  end.complete = st->complete;
  end.head_too_large = st->head_too_large;
  end.by_engine = st->engine_reset;
  // RFC 9113 §6.8 and §8.7: streams above GOAWAY's last stream id, and
  // streams refused, were not processed; so were requests whose HEADERS
  // never left (a GOAWAY came, or the session ended, before Send() took them)
  // unless the engine reset them itself (a client gone before the flush).
  end.never_processed = !st->complete && !st->head_seen && !st->engine_reset &&
                        (code == ErrorCode::kRefusedStream || !st->headers_sent ||
                         (goaway_received_ && st->id > goaway_last_));
  if (end.never_processed) counters_->streams_unprocessed.Add();
  if (block_ != nullptr && block_stream_ == st->id) EndBlockRefs();
  handler_->OnStreamClose(*this, st->id, st->tag, end);
  FreeStream(st);
}

void ClientSession::Shutdown() {
  if (ng_ == nullptr || terminated_) return;
  terminated_ = true;  // no new streams; nghttp2 lets the open ones finish
  nghttp2_submit_goaway(ng_, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, nullptr, 0);
}

uint32_t ClientSession::peer_max_concurrent_streams() const {
  if (ng_ == nullptr) return 0;
  return nghttp2_session_get_remote_settings(ng_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

bool ClientSession::CanOpen() const {
  return ng_ != nullptr && !failed_ && !terminated_ && !goaway_received_ &&
         live_ < peer_max_concurrent_streams() &&
         // Stream ids run out at 2^31 (RFC 9113 §5.1.1): then a new connection.
         nghttp2_session_get_next_stream_id(ng_) < 0x7fffffffu;
}

bool ClientSession::Ping(core::Instant now) {
  if (ng_ == nullptr || ping_sent_at_ != 0) return false;
  if (nghttp2_submit_ping(ng_, NGHTTP2_FLAG_NONE, kLivenessPing) != 0) return false;
  ping_sent_at_ = now == 0 ? 1 : now;
  return true;
}

// --- Receiving ---------------------------------------------------------------

int ClientSession::BeginBlock(int32_t id) {
  EndBlockRefs();  // a block nghttp2 gave up on midway never reached FrameRecv
  Stream* st = Find(id);
  if (st == nullptr || st->head_too_large) return 0;
  void* mem = pool_->Alloc(sizeof(Block));
  if (mem == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // resets the stream
  block_ = new (mem) Block();
  block_stream_ = id;
  return 0;
}

int ClientSession::OnField(int32_t id, nghttp2_rcbuf* name, nghttp2_rcbuf* value) {
  Block* b = block_;
  if (b == nullptr || id != block_stream_) return 0;
  const std::string_view n = glue::View(name);
  const std::string_view v = glue::View(value);
  b->bytes += static_cast<uint32_t>(n.size() + v.size() + 32);
  if (n == ":status") {
    b->status = ParseStatus(v);
    return 0;
  }
  if (!n.empty() && n.front() == ':') return 0;  // nghttp2's messaging rules judge these
  if (b->bytes > config_->limits().max_header_list_bytes || b->count == http::kMaxHeaders) {
    // An upstream's head the gateway will not hold (an HPACK bomb stops
    // here): the stream is reset, the session goes on.
    Stream* st = Find(id);
    if (st != nullptr) st->head_too_large = true;
    counters_->response_heads_too_large.Add();
    EndBlockRefs();
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }
  glue::Hold(b, name, value);
  b->fields[b->count++] = http::Header{n, v};
  return 0;
}

void ClientSession::EndBlockRefs() {
  if (block_ == nullptr) return;
  glue::FreeBlock(pool_, block_);
  block_ = nullptr;
  block_stream_ = 0;
}

void ClientSession::EndBlock(int32_t id, bool end_stream) {
  Stream* st = Find(id);
  if (block_ == nullptr || id != block_stream_ || st == nullptr) return;
  if (!st->head_seen) {
    // 1xx heads are interim (RFC 9110 §15.2): the final one follows.
    if (block_->status >= 200) {
      st->head_seen = true;
      st->complete = end_stream;
      handler_->OnResponse(*this, id, st->tag, block_->status, block_->fields, block_->count,
                           end_stream);
      if (end_stream && Find(id) != nullptr)
        handler_->OnResponseEnd(*this, id, st->tag, nullptr, 0);
    }
  } else if (end_stream) {  // trailers (nghttp2 resets a second head without END_STREAM)
    st->complete = true;
    handler_->OnResponseEnd(*this, id, st->tag, block_->fields, block_->count);
  }
  EndBlockRefs();
}

void ClientSession::OnFrame(uint8_t type, int32_t id, uint8_t flags, int32_t goaway_last) {
  switch (type) {
    case NGHTTP2_HEADERS:
      EndBlock(id, (flags & NGHTTP2_FLAG_END_STREAM) != 0);
      return;
    case NGHTTP2_DATA:
      if ((flags & NGHTTP2_FLAG_END_STREAM) != 0) {
        Stream* st = Find(id);
        if (st != nullptr && st->head_seen && !st->complete) {
          st->complete = true;
          handler_->OnResponseEnd(*this, id, st->tag, nullptr, 0);
        }
      }
      return;
    case NGHTTP2_RST_STREAM:
      counters_->resets_received.Add();
      return;
    case NGHTTP2_GOAWAY:
      // nghttp2 closes the streams above `goaway_last` after this returns.
      goaway_received_ = true;
      goaway_last_ = std::min(goaway_last_, goaway_last);
      return;
    default:
      return;
  }
}

void ClientSession::OnBody(int32_t id, const char* p, size_t n) {
  Stream* st = Find(id);
  if (st == nullptr || st->engine_reset || !st->head_seen) {
    nghttp2_session_consume(ng_, id, n);  // nobody reads it: the window reopens at once
    return;
  }
  st->unconsumed += n;
  handler_->OnData(*this, id, st->tag, p, n);
}

// --- Sending -----------------------------------------------------------------

void ClientSession::OnSendable(Session::Stream* st) {
  handler_->OnSendable(*this, st->id, st->tag);
}

int32_t ClientSession::Submit(const RequestLine& line, const http::Header* fields, uint16_t count,
                              uint64_t tag, bool end_stream) {
  if (ng_ == nullptr || failed_) return kFailed;
  if (terminated_ || goaway_received_) return kGoingAway;
  if (!CanOpen()) return kNoCapacity;
  void* mem = pool_->Alloc(sizeof(Stream));
  if (mem == nullptr) return kFailed;
  Stream* st = new (mem) Stream();
  st->tag = tag;
  st->body.end_queued = end_stream;
  const http::Header pseudo[] = {{":method", line.method},
                                 {":scheme", line.scheme},
                                 {":authority", line.authority},
                                 {":path", line.path}};
  size_t nv_count = 0;
  nghttp2_nv* nva =
      glue::BuildFields(pool_, pseudo, 4, fields, count, DroppedFromRequest, &nv_count);
  if (nva == nullptr) {
    pool_->Free(st);
    return kFailed;
  }
  nghttp2_data_provider body;
  body.source.ptr = st;
  body.read_callback = SessionCallbacks::ReadBody;
  // The stream's user data is its shared part, as Session::Find reads it.
  const int32_t id = nghttp2_submit_request(
      ng_, nullptr, nva, nv_count, end_stream ? nullptr : &body, static_cast<Session::Stream*>(st));
  pool_->Free(nva);
  if (id < 0) {
    st->~Stream();
    pool_->Free(st);
    return kFailed;
  }
  st->id = id;
  Link(st);
  return id;
}

bool ClientSession::SendTrailers(int32_t id, const http::Header* fields, uint16_t count) {
  Stream* st = Find(id);
  if (st == nullptr || st->body.end_queued) return false;
  return QueueTrailers(st, fields, count);
}

}  // namespace hms::h2
