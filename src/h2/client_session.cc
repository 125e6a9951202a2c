#include "hms/h2/client_session.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>
#include <new>

#include "hms/common/check.h"
#include "nghttp2_glue.h"

namespace hms::h2 {

// One stream's state, from the pool: from Submit() to nghttp2's close
// callback (or Close()).
struct ClientSession::Stream {
  int32_t id = 0;
  uint64_t tag = 0;
  Stream* next = nullptr;  // the session's live list
  Stream* prev = nullptr;
  Stream* next_sendable = nullptr;  // pending OnSendable, while queued
  glue::Outbox body;                // the request body
  uint64_t unconsumed = 0;          // response bytes delivered, not yet Consume()d
  bool head_seen = false;           // the final response head was delivered
  bool complete = false;            // END_STREAM from the upstream
  bool head_too_large = false;
  bool never_sent = false;  // its HEADERS never left (the session ended first)
  bool engine_reset = false;
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

struct ClientCallbacks {
  static ClientSession* S(void* self) { return static_cast<ClientSession*>(self); }

  static int BeginFrame(nghttp2_session*, const nghttp2_frame_hd* hd, void* self) {
    ClientSession* s = S(self);
    const Flood f = s->guard_.OnFrame(hd->type, hd->flags, hd->length, s->now_);
    if (f == Flood::kNone) return 0;
    s->flood_ = f;
    return NGHTTP2_ERR_CALLBACK_FAILURE;  // stops mem_recv here
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

  static int DataChunk(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len,
                       void* self) {
    S(self)->OnBody(id, reinterpret_cast<const char*>(data), len);
    return 0;
  }

  static int FrameSend(nghttp2_session*, const nghttp2_frame* frame, void* self) {
    ClientSession* s = S(self);
    if (frame->hd.type == NGHTTP2_GOAWAY) s->counters_->goaways_sent.Add();
    if (frame->hd.type == NGHTTP2_RST_STREAM) s->counters_->resets_sent.Add();
    return 0;
  }

  // A request whose HEADERS never left (GOAWAY came first, the session
  // ended): the upstream cannot have seen it.
  static int FrameNotSend(nghttp2_session* ng, const nghttp2_frame* frame, int, void* self) {
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    ClientSession* s = S(self);
    ClientSession::Stream* st = s->Find(frame->hd.stream_id);
    if (st == nullptr) return 0;
    st->never_sent = true;
    // nghttp2 never made the stream, so it will not report its close.
    if (nghttp2_session_find_stream(ng, frame->hd.stream_id) == nullptr) {
      s->CloseStream(st, NGHTTP2_REFUSED_STREAM);
    }
    return 0;
  }

  static int StreamClose(nghttp2_session*, int32_t id, uint32_t code, void* self) {
    ClientSession* s = S(self);
    if (ClientSession::Stream* st = s->Find(id)) s->CloseStream(st, code);
    return 0;
  }

  static ssize_t ReadBody(nghttp2_session*, int32_t id, uint8_t* buf, size_t len, uint32_t* flags,
                          nghttp2_data_source*, void* self) {
    return S(self)->ReadBody(id, buf, len, flags);
  }
};

// --- ClientConfig -----------------------------------------------------------

Result<std::shared_ptr<const ClientConfig>> ClientConfig::Make(const Limits& l) {
  if (const std::string_view e = glue::LimitsError(l); !e.empty())
    return ConfigError(std::string(e));
  std::shared_ptr<ClientConfig> c(new ClientConfig());
  c->limits_ = l;
  if (nghttp2_session_callbacks_new(&c->callbacks_) != 0 || nghttp2_option_new(&c->option_) != 0) {
    return Error{"out of memory for nghttp2's callbacks", Side::kInternal};
  }
  nghttp2_session_callbacks* cb = c->callbacks_;
  nghttp2_session_callbacks_set_on_begin_frame_callback(cb, ClientCallbacks::BeginFrame);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, ClientCallbacks::BeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback2(cb, ClientCallbacks::Header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, ClientCallbacks::FrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, ClientCallbacks::DataChunk);
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, ClientCallbacks::FrameSend);
  nghttp2_session_callbacks_set_on_frame_not_send_callback(cb, ClientCallbacks::FrameNotSend);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, ClientCallbacks::StreamClose);
  // nghttp2's HTTP messaging rules stay on: a malformed response head (no
  // :status, a bad field, DATA against content-length) resets its stream
  // with PROTOCOL_ERROR, which FaultOf reads as upstream_bad_response.
  glue::SetDefences(c->option_, l);
  return std::shared_ptr<const ClientConfig>(std::move(c));
}

ClientConfig::~ClientConfig() {
  nghttp2_session_callbacks_del(callbacks_);
  nghttp2_option_del(option_);
}

// --- ClientSession: life ----------------------------------------------------

ClientSession::ClientSession(const ClientConfig* config, ClientHandler* handler, MemPool* pool,
                             core::BlockPool* blocks, Counters* counters)
    : config_(config),
      handler_(handler),
      pool_(pool),
      blocks_(blocks),
      counters_(counters),
      guard_(config->limits()) {}

bool ClientSession::Start() {
  HMS_CHECK(ng_ == nullptr);
  nghttp2_mem mem = glue::Mem(pool_);
  if (nghttp2_session_client_new3(&ng_, config_->callbacks_, this, config_->option_, &mem) != 0) {
    ng_ = nullptr;
    return false;
  }
  const Limits& l = config_->limits();
  const nghttp2_settings_entry settings[] = {
      // No server push: the gateway forwards answers to requests, nothing else.
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, l.stream_window_bytes},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, l.max_header_list_bytes},
      {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, l.header_table_bytes},
      {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
  };
  if (nghttp2_submit_settings(ng_, NGHTTP2_FLAG_NONE, settings, std::size(settings)) != 0 ||
      nghttp2_session_set_local_window_size(ng_, NGHTTP2_FLAG_NONE, 0,
                                            static_cast<int32_t>(l.connection_window_bytes)) != 0) {
    return false;
  }
  counters_->sessions.Add();
  return true;
}

ClientSession::~ClientSession() {
  while (streams_ != nullptr) FreeStream(streams_);
  EndBlockRefs();
  if (ng_ != nullptr) nghttp2_session_del(ng_);
}

ClientSession::Stream* ClientSession::Find(int32_t id) const {
  if (ng_ == nullptr || id <= 0) return nullptr;
  if (void* st = nghttp2_session_get_stream_user_data(ng_, id)) return static_cast<Stream*>(st);
  // nghttp2 makes its stream when the HEADERS go out: until then (the
  // engine queues body bytes right after Submit) it is only on our list,
  // among the newest.
  for (Stream* st = streams_; st != nullptr; st = st->next) {
    if (st->id == id) return st;
  }
  return nullptr;
}

void ClientSession::FreeStream(Stream* st) {
  if (st->prev != nullptr) {
    st->prev->next = st->next;
  } else {
    streams_ = st->next;
  }
  if (st->next != nullptr) st->next->prev = st->prev;
  if (ng_ != nullptr) nghttp2_session_set_stream_user_data(ng_, st->id, nullptr);
  for (Stream** p = &sendable_; *p != nullptr; p = &(*p)->next_sendable) {
    if (*p == st) {
      *p = st->next_sendable;
      break;
    }
  }
  st->body.Release(blocks_, pool_);
  st->~Stream();
  pool_->Free(st);
  --live_;
}

void ClientSession::CloseStream(Stream* st, uint32_t code) {
  // Response bytes never consumed still count against the connection's
  // window: give them back, or one reset stream would shrink it for all.
  if (st->unconsumed > 0 && !terminated_) nghttp2_session_consume_connection(ng_, st->unconsumed);
  st->unconsumed = 0;
  StreamEnd end;
  end.code = static_cast<ErrorCode>(code);
  end.complete = st->complete;
  end.head_too_large = st->head_too_large;
  end.by_engine = st->engine_reset;
  // RFC 9113 §6.8 and §8.7: streams above GOAWAY's last stream id, and
  // streams refused, were not processed; so were requests never sent.
  end.never_processed = !st->complete && !st->head_seen &&
                        (code == NGHTTP2_REFUSED_STREAM || st->never_sent ||
                         (goaway_received_ && st->id > goaway_last_));
  if (end.never_processed) counters_->streams_unprocessed.Add();
  if (block_ != nullptr && block_stream_ == st->id) EndBlockRefs();
  handler_->OnStreamClose(*this, st->id, st->tag, end);
  FreeStream(st);
}

void ClientSession::Close(ErrorCode code) {
  if (ng_ != nullptr && !terminated_) {
    terminated_ = true;
    nghttp2_session_terminate_session(ng_, static_cast<uint32_t>(code));
  }
  while (streams_ != nullptr) CloseStream(streams_, static_cast<uint32_t>(code));
  EndBlockRefs();
}

void ClientSession::Shutdown() {
  if (ng_ == nullptr || terminated_) return;
  terminated_ = true;  // no new streams; nghttp2 lets the open ones finish
  nghttp2_submit_goaway(ng_, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, nullptr, 0);
}

bool ClientSession::Done() const {
  return ng_ == nullptr ||
         (nghttp2_session_want_read(ng_) == 0 && nghttp2_session_want_write(ng_) == 0);
}

bool ClientSession::WantsWrite() const {
  return ng_ != nullptr && nghttp2_session_want_write(ng_) != 0;
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

bool ClientSession::Receive(const char* p, size_t n, core::Instant now) {
  now_ = now;
  if (failed_ || ng_ == nullptr) return false;
  const ssize_t rv = nghttp2_session_mem_recv(ng_, reinterpret_cast<const uint8_t*>(p), n);
  if (rv < 0 || flood_ != Flood::kNone) {
    Fail(static_cast<int>(rv < 0 ? rv : 0));
    return false;
  }
  return !failed_;
}

// The session ends for what mem_recv reported (or a flood a callback saw).
void ClientSession::Fail(int lib_error) {
  const ErrorCode code = glue::FailureCode(flood_, lib_error, counters_);
  failed_ = true;
  Close(code);
}

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
  nghttp2_rcbuf_incref(name);
  nghttp2_rcbuf_incref(value);
  b->refs[b->ref_count++] = name;
  b->refs[b->ref_count++] = value;
  b->fields[b->count++] = http::Header{n, v};
  return 0;
}

void ClientSession::EndBlockRefs() {
  if (block_ == nullptr) return;
  for (uint32_t i = 0; i < block_->ref_count; ++i) nghttp2_rcbuf_decref(block_->refs[i]);
  block_->~Block();
  pool_->Free(block_);
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

bool ClientSession::Send(core::ByteQueue* out, size_t max_queued) {
  if (ng_ == nullptr) return false;
  if (!glue::MemSend(ng_, out, blocks_, max_queued)) return false;
  while (sendable_ != nullptr) {
    Stream* st = sendable_;
    sendable_ = st->next_sendable;
    st->next_sendable = nullptr;
    st->body.sendable_pending = false;
    handler_->OnSendable(*this, st->id, st->tag);
  }
  return true;
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
  body.read_callback = ClientCallbacks::ReadBody;
  const int32_t id =
      nghttp2_submit_request(ng_, nullptr, nva, nv_count, end_stream ? nullptr : &body, st);
  pool_->Free(nva);
  if (id < 0) {
    st->~Stream();
    pool_->Free(st);
    return kFailed;
  }
  st->id = id;
  st->next = streams_;
  if (streams_ != nullptr) streams_->prev = st;
  streams_ = st;
  ++live_;
  counters_->streams.Add();
  return id;
}

ssize_t ClientSession::ReadBody(int32_t id, uint8_t* buf, size_t len, uint32_t* flags) {
  Stream* st = Find(id);
  if (st == nullptr) return NGHTTP2_ERR_DEFERRED;  // closing: nothing more is sent
  bool notify = false;
  const ssize_t n = st->body.Read(ng_, id, blocks_, buf, len, flags, &notify);
  if (notify) {
    st->next_sendable = sendable_;
    sendable_ = st;
  }
  return n;
}

bool ClientSession::SendData(int32_t id, const char* p, size_t n, bool end_stream) {
  Stream* st = Find(id);
  return st != nullptr && st->body.Append(ng_, id, blocks_, p, n, end_stream);
}

bool ClientSession::SendTrailers(int32_t id, const http::Header* fields, uint16_t count) {
  Stream* st = Find(id);
  if (st == nullptr || st->body.end_queued) return false;
  size_t nv_count = 0;
  nghttp2_nv* nva = glue::BuildFields(
      pool_, nullptr, 0, fields, count,
      [](std::string_view name, std::string_view) { return glue::ConnectionSpecific(name); },
      &nv_count);
  return st->body.EndWith(ng_, id, nva, nv_count);
}

bool ClientSession::Reset(int32_t id, ErrorCode code) {
  Stream* st = Find(id);
  if (st == nullptr) return false;
  st->engine_reset = true;
  return nghttp2_submit_rst_stream(ng_, NGHTTP2_FLAG_NONE, id, static_cast<uint32_t>(code)) == 0;
}

void ClientSession::Consume(int32_t id, size_t n) {
  Stream* st = Find(id);
  if (st == nullptr) return;
  n = std::min<uint64_t>(n, st->unconsumed);
  st->unconsumed -= n;
  nghttp2_session_consume(ng_, id, n);
}

size_t ClientSession::Queued(int32_t id) const {
  const Stream* st = Find(id);
  return st == nullptr ? 0 : st->body.out.size();
}

}  // namespace hms::h2
