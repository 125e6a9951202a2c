#include "hms/h2/server_session.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <new>

#include "hms/common/check.h"
#include "hms/policy/answer_body.h"
#include "nghttp2_glue.h"

namespace hms::h2 {

// One stream's state, from the pool. Lives from its HEADERS to nghttp2's
// close callback (or Close()).
struct ServerSession::Stream {
  int32_t id = 0;
  uint64_t tag = 0;
  Stream* next = nullptr;  // the session's live list
  Stream* prev = nullptr;
  Stream* next_sendable = nullptr;  // pending OnSendable, while queued
  glue::Outbox body;                // the response body
  uint64_t expected = 0;            // content-length, when has_length
  uint64_t received = 0;
  uint64_t unconsumed = 0;  // body bytes delivered, not yet Consume()d
  http::Method method = http::Method::kOther;
  bool has_length = false;
  bool known = false;         // the handler was told (OnRequest or OnRefused)
  bool refused = false;       // its head was refused: its body is dropped
  bool request_done = false;  // END_STREAM from the client seen
  bool responded = false;     // a response head was submitted
  bool engine_reset = false;  // Reset() or an answer's NO_ERROR reset: not provoked
  bool tunnel = false;        // extended CONNECT: each direction ends on its own
};

// The header block in progress (RFC 9113 §4.3: one at a time per
// connection), from the pool while it lasts: the builder, the head it fills,
// and nghttp2's buffers that its views point into.
struct ServerSession::Block {
  HeadBuilder builder;
  http::RequestHead head;
  nghttp2_rcbuf* refs[2 * (http::kMaxHeaders + 4)];
  uint32_t ref_count = 0;
};

namespace {

constexpr uint8_t kDrainPing[8] = {'h', 'm', 's', 'd', 'r', 'a', 'i', 'n'};

using glue::ConnectionSpecific;
using glue::View;

}  // namespace

// --- nghttp2's callbacks ---------------------------------------------------

struct Callbacks {
  static ServerSession* S(void* self) { return static_cast<ServerSession*>(self); }

  static int BeginFrame(nghttp2_session*, const nghttp2_frame_hd* hd, void* self) {
    ServerSession* s = S(self);
    const Flood f = s->guard_.OnFrame(hd->type, hd->flags, hd->length, s->now_);
    if (f == Flood::kNone) return 0;
    s->flood_ = f;
    return NGHTTP2_ERR_CALLBACK_FAILURE;  // stops mem_recv here: the rest is not read
  }

  static int BeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* self) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    return S(self)->BeginBlock(frame->hd.stream_id, frame->headers.cat == NGHTTP2_HCAT_REQUEST);
  }

  static int Header(nghttp2_session*, const nghttp2_frame* frame, nghttp2_rcbuf* name,
                    nghttp2_rcbuf* value, uint8_t, void* self) {
    ServerSession* s = S(self);
    ServerSession::Block* b = s->block_;
    if (b == nullptr || frame->hd.stream_id != s->block_stream_) return 0;
    if (!b->builder.Add(View(name), View(value))) return 0;  // refused: only counted from now on
    // Kept: the head's views point into these until it is delivered.
    nghttp2_rcbuf_incref(name);
    nghttp2_rcbuf_incref(value);
    b->refs[b->ref_count++] = name;
    b->refs[b->ref_count++] = value;
    return 0;
  }

  static int FrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* self) {
    ServerSession* s = S(self);
    const int32_t id = frame->hd.stream_id;
    const bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    switch (frame->hd.type) {
      case NGHTTP2_HEADERS:
        if (s->block_ != nullptr && id == s->block_stream_) s->EndBlock(end_stream);
        return 0;
      case NGHTTP2_DATA:
        if (end_stream) {
          if (ServerSession::Stream* st = s->Find(id)) s->EndRequest(st, nullptr, 0);
        }
        return 0;
      case NGHTTP2_RST_STREAM:
        s->counters_->resets_received.Add();
        return 0;
      case NGHTTP2_PING:
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) != 0 && s->drain_ping_sent_ &&
            !s->final_goaway_sent_ &&
            std::memcmp(frame->ping.opaque_data, kDrainPing, sizeof kDrainPing) == 0) {
          s->FinalGoaway();
        }
        return 0;
      default:
        return 0;
    }
  }

  static int DataChunk(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len,
                       void* self) {
    S(self)->OnBody(id, reinterpret_cast<const char*>(data), len);
    return 0;
  }

  static int FrameSend(nghttp2_session*, const nghttp2_frame* frame, void* self) {
    S(self)->OnSent(frame->hd.type, frame->hd.stream_id, frame->hd.flags,
                    frame->hd.type == NGHTTP2_RST_STREAM ? frame->rst_stream.error_code
                    : frame->hd.type == NGHTTP2_GOAWAY   ? frame->goaway.error_code
                                                         : 0);
    return 0;
  }

  static int StreamClose(nghttp2_session*, int32_t id, uint32_t code, void* self) {
    ServerSession* s = S(self);
    if (ServerSession::Stream* st = s->Find(id)) s->CloseStream(st, static_cast<ErrorCode>(code));
    return 0;
  }

  static ssize_t ReadBody(nghttp2_session*, int32_t id, uint8_t* buf, size_t len, uint32_t* flags,
                          nghttp2_data_source*, void* self) {
    return S(self)->ReadBody(id, buf, len, flags);
  }
};

// --- ServerConfig -----------------------------------------------------------

Result<std::shared_ptr<const ServerConfig>> ServerConfig::Make(const Limits& l,
                                                               http::PathOptions paths) {
  if (l.max_concurrent_streams == 0)
    return ConfigError("max_concurrent_streams must be at least 1");
  if (const std::string_view e = glue::LimitsError(l); !e.empty()) {
    return ConfigError(std::string(e));
  }
  std::shared_ptr<ServerConfig> c(new ServerConfig());
  c->limits_ = l;
  c->paths_ = paths;
  if (nghttp2_session_callbacks_new(&c->callbacks_) != 0 || nghttp2_option_new(&c->option_) != 0) {
    return Error{"out of memory for nghttp2's callbacks", Side::kInternal};
  }
  nghttp2_session_callbacks* cb = c->callbacks_;
  nghttp2_session_callbacks_set_on_begin_frame_callback(cb, Callbacks::BeginFrame);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, Callbacks::BeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback2(cb, Callbacks::Header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, Callbacks::FrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, Callbacks::DataChunk);
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, Callbacks::FrameSend);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, Callbacks::StreamClose);
  nghttp2_option* o = c->option_;
  glue::SetDefences(o, l);
  // request_head.h judges heads, so that each refusal names its rule (nghttp2
  // would reset such streams without a word); framing, HPACK and flow
  // control stay nghttp2's.
  nghttp2_option_set_no_http_messaging(o, 1);
  // The backstop behind FloodGuard's reset limit (it uses its own clock).
  nghttp2_option_set_stream_reset_rate_limit(o, uint64_t{l.resets.burst} * 2,
                                             uint64_t{l.resets.per_second} * 2);
  return std::shared_ptr<const ServerConfig>(std::move(c));
}

ServerConfig::~ServerConfig() {
  nghttp2_session_callbacks_del(callbacks_);
  nghttp2_option_del(option_);
}

// --- ServerSession: life ----------------------------------------------------

ServerSession::ServerSession(const ServerConfig* config, Handler* handler, MemPool* pool,
                             core::BlockPool* blocks, Counters* counters)
    : config_(config),
      handler_(handler),
      pool_(pool),
      blocks_(blocks),
      counters_(counters),
      guard_(config->limits()) {}

bool ServerSession::Start() {
  HMS_CHECK(ng_ == nullptr);
  nghttp2_mem mem = glue::Mem(pool_);
  if (nghttp2_session_server_new3(&ng_, config_->callbacks_, this, config_->option_, &mem) != 0) {
    ng_ = nullptr;
    return false;
  }
  const Limits& l = config_->limits();
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, l.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, l.stream_window_bytes},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, l.max_header_list_bytes},
      {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, l.header_table_bytes},
      // RFC 9218 §2.1: no RFC 7540 priority tree is kept for the peer to grow.
      {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
      // RFC 8441 §3: WebSocket over a stream (extended CONNECT); whether a
      // route takes it is the engine's decision, as for the HTTP/1.1 upgrade.
      {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},
  };
  if (nghttp2_submit_settings(ng_, NGHTTP2_FLAG_NONE, settings, std::size(settings)) != 0 ||
      nghttp2_session_set_local_window_size(ng_, NGHTTP2_FLAG_NONE, 0,
                                            static_cast<int32_t>(l.connection_window_bytes)) != 0) {
    return false;
  }
  counters_->sessions.Add();
  return true;
}

ServerSession::~ServerSession() {
  while (streams_ != nullptr) FreeStream(streams_);
  EndBlockRefs();
  if (ng_ != nullptr) nghttp2_session_del(ng_);  // its memory goes back to the pool
}

ServerSession::Stream* ServerSession::Find(int32_t id) const {
  if (ng_ == nullptr || id <= 0) return nullptr;
  return static_cast<Stream*>(nghttp2_session_get_stream_user_data(ng_, id));
}

void ServerSession::FreeStream(Stream* st) {
  if (st->prev != nullptr) {
    st->prev->next = st->next;
  } else {
    streams_ = st->next;
  }
  if (st->next != nullptr) st->next->prev = st->prev;
  if (ng_ != nullptr) nghttp2_session_set_stream_user_data(ng_, st->id, nullptr);
  // Off the pending OnSendable list too.
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

void ServerSession::CloseStream(Stream* st, ErrorCode code) {
  // Body bytes the engine never consumed still count against the
  // connection's window: give them back, or a reset stream would shrink it
  // for every other stream.
  if (st->unconsumed > 0) nghttp2_session_consume_connection(ng_, st->unconsumed);
  st->unconsumed = 0;
  if (st->known) handler_->OnStreamClose(*this, st->id, st->tag, code);
  FreeStream(st);
}

void ServerSession::Close(ErrorCode code) {
  if (ng_ != nullptr && !terminated_) {
    terminated_ = true;
    nghttp2_session_terminate_session(ng_, static_cast<uint32_t>(code));
  }
  while (streams_ != nullptr) {
    Stream* st = streams_;
    st->unconsumed = 0;  // the connection ends: no window to give back
    CloseStream(st, code);
  }
  EndBlockRefs();
}

bool ServerSession::Done() const {
  return ng_ == nullptr ||
         (nghttp2_session_want_read(ng_) == 0 && nghttp2_session_want_write(ng_) == 0);
}

bool ServerSession::WantsWrite() const {
  return ng_ != nullptr && nghttp2_session_want_write(ng_) != 0;
}

// --- Receiving ---------------------------------------------------------------

bool ServerSession::Receive(const char* p, size_t n, core::Instant now) {
  now_ = now;
  if (failed_ || ng_ == nullptr) return false;
  const ssize_t rv = nghttp2_session_mem_recv(ng_, reinterpret_cast<const uint8_t*>(p), n);
  if (rv < 0 || flood_ != Flood::kNone) {
    Fail(static_cast<int>(rv < 0 ? rv : 0));
    return false;
  }
  return !failed_;
}

// The session ends for what mem_recv reported (or a flood a callback saw):
// GOAWAY with the code that says why, counted by kind.
void ServerSession::Fail(int lib_error) {
  const ErrorCode code = glue::FailureCode(flood_, lib_error, counters_);
  failed_ = true;
  Close(code);
}

int ServerSession::BeginBlock(int32_t id, bool request) {
  Stream* st = nullptr;
  if (request) {
    void* mem = pool_->Alloc(sizeof(Stream));
    if (mem == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // resets the stream
    st = new (mem) Stream();
    st->id = id;
    st->next = streams_;
    if (streams_ != nullptr) streams_->prev = st;
    streams_ = st;
    ++live_;
    nghttp2_session_set_stream_user_data(ng_, id, st);
    counters_->streams.Add();
  } else {
    st = Find(id);
  }
  // A block nghttp2 gave up on midway (a stream error) never reached
  // FrameRecv: its references go now.
  EndBlockRefs();
  if (st == nullptr) return 0;  // trailers of a stream already over
  void* mem = pool_->Alloc(sizeof(Block));
  if (mem == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  block_ = new (mem) Block();
  block_stream_ = id;
  block_->builder.Reset(!request, config_->limits().max_header_list_bytes);
  return 0;
}

// Drops the block's references (the head has been used) and the block.
void ServerSession::EndBlockRefs() {
  if (block_ == nullptr) return;
  for (uint32_t i = 0; i < block_->ref_count; ++i) nghttp2_rcbuf_decref(block_->refs[i]);
  block_->~Block();
  pool_->Free(block_);
  block_ = nullptr;
  block_stream_ = 0;
}

void ServerSession::EndBlock(bool end_stream) {
  Stream* st = Find(block_stream_);
  if (st != nullptr) {
    if (!st->known) {
      DeliverHead(st, end_stream);
    } else if (!end_stream) {
      // A second HEADERS that does not end the stream is not a trailer
      // section (RFC 9113 §8.1): malformed.
      Malformed(st);
    } else if (block_->builder.error() != HeadError::kNone) {
      Malformed(st);  // trailers break a field rule: the request cannot be trusted whole
    } else {
      EndRequest(st, block_->builder.fields(), block_->builder.field_count());
    }
  }
  EndBlockRefs();
}

void ServerSession::DeliverHead(Stream* st, bool end_stream) {
  HeadBuilder& b = block_->builder;
  const int32_t id = st->id;  // `st` may be gone once the handler returns
  st->known = true;
  st->request_done = end_stream;
  if (b.error() == HeadError::kNone) {
    const size_t need = b.ScratchNeeded();
    char* scratch = static_cast<char*>(pool_->Alloc(need));
    if (scratch == nullptr) {
      Reset(id, ErrorCode::kInternalError);
      return;
    }
    const bool ok = b.FinishRequest(end_stream, config_->paths(), scratch, need, &block_->head);
    if (ok) {
      const http::RequestHead& h = block_->head;
      st->method = h.method;
      st->tunnel = b.extended_connect();
      st->has_length = h.body == http::BodyKind::kContentLength;
      st->expected = h.content_length;
      handler_->OnRequest(*this, id, h, end_stream);
    }
    pool_->Free(scratch);
    if (ok) return;
  }
  // Refused: the rule's answer, by the engine (trace id, access log, metrics).
  counters_->requests_refused.Add();
  if (b.error() == HeadError::kHeaderListTooLarge) counters_->header_lists_too_large.Add();
  st->refused = true;
  st->method = b.method() == "HEAD" ? http::Method::kHead : http::Method::kOther;
  char detail[160];
  const policy::Answer a = b.Refusal(detail, sizeof detail);
  handler_->OnRefused(*this, id, a);
  if (Stream* again = Find(id); again != nullptr && !again->responded && !again->engine_reset) {
    Reset(id, ErrorCode::kProtocolError);
    again->engine_reset = false;  // the client's fault: counted as provoked
  }
}

void ServerSession::OnBody(int32_t id, const char* p, size_t n) {
  Stream* st = Find(id);
  if (st == nullptr) {
    nghttp2_session_consume(ng_, id, n);  // a stream already over: the window reopens at once
    return;
  }
  st->received += n;
  if (st->refused || st->request_done || st->engine_reset) {
    nghttp2_session_consume(ng_, id, n);
    return;
  }
  if (st->has_length && st->received > st->expected) {
    nghttp2_session_consume(ng_, id, n);
    Malformed(st);  // more DATA than content-length said (RFC 9113 §8.1.1)
    return;
  }
  st->unconsumed += n;
  handler_->OnData(*this, id, st->tag, p, n);
}

void ServerSession::EndRequest(Stream* st, const http::Header* trailers, uint16_t count) {
  if (st->request_done) return;
  if (st->has_length && st->received != st->expected) {
    Malformed(st);  // fewer bytes than content-length said (RFC 9113 §8.1.1)
    return;
  }
  st->request_done = true;
  if (st->refused || st->engine_reset) return;
  handler_->OnRequestEnd(*this, st->id, st->tag, trailers, count);
}

// RFC 9113 §8.1.1: a malformed request is a stream error of PROTOCOL_ERROR.
// The engine hears of it as the stream's close with that code.
void ServerSession::Malformed(Stream* st) {
  counters_->malformed_bodies.Add();
  st->request_done = true;
  nghttp2_submit_rst_stream(ng_, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_PROTOCOL_ERROR);
}

// --- Sending -----------------------------------------------------------------

bool ServerSession::Send(core::ByteQueue* out, size_t max_queued) {
  if (ng_ == nullptr) return false;
  for (int round = 0; round < 2; ++round) {
    if (!glue::MemSend(ng_, out, blocks_, max_queued)) return false;
    // A reset flood is seen while sending (the resets the peer provoked):
    // end the session and send its GOAWAY in the second round.
    if (!provoked_flood_ || failed_) break;
    flood_ = Flood::kResets;
    Fail(0);
  }
  while (sendable_ != nullptr) {
    Stream* st = sendable_;
    sendable_ = st->next_sendable;
    st->next_sendable = nullptr;
    st->body.sendable_pending = false;
    handler_->OnSendable(*this, st->id, st->tag);
  }
  return true;
}

void ServerSession::OnSent(uint8_t type, int32_t id, uint8_t flags, uint32_t code) {
  if (type == NGHTTP2_GOAWAY) {
    counters_->goaways_sent.Add();
    // nghttp2 ends a session itself on most protocol errors (a bad frame, a
    // window overflow): the GOAWAY carries the code.
    if (code != NGHTTP2_NO_ERROR && !terminated_) {
      failed_ = true;
      counters_->protocol_errors.Add();
    }
    return;
  }
  Stream* st = Find(id);
  if (type == NGHTTP2_RST_STREAM) {
    counters_->resets_sent.Add();
    if (st != nullptr && st->engine_reset) return;
    if (code == NGHTTP2_REFUSED_STREAM) counters_->streams_refused.Add();
    if (guard_.OnProvokedReset(now_) != Flood::kNone) provoked_flood_ = true;
    return;
  }
  // The response is complete while the request is not: ask the client to
  // stop sending it, without error (RFC 9113 §8.1). A tunnel's END_STREAM
  // is one direction's FIN (RFC 8441 §4): the other goes on.
  if (st != nullptr && (flags & NGHTTP2_FLAG_END_STREAM) != 0 && !st->request_done && !st->tunnel &&
      (type == NGHTTP2_HEADERS || type == NGHTTP2_DATA)) {
    st->engine_reset = true;
    nghttp2_submit_rst_stream(ng_, NGHTTP2_FLAG_NONE, id, NGHTTP2_NO_ERROR);
  }
}

ssize_t ServerSession::ReadBody(int32_t id, uint8_t* buf, size_t len, uint32_t* flags) {
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

bool ServerSession::SetTag(int32_t id, uint64_t tag) {
  Stream* st = Find(id);
  if (st == nullptr) return false;
  st->tag = tag;
  return true;
}

namespace {

// Names lowercase, connection-specific fields dropped (glue::BuildFields).
// `status` empty for trailers, which keep the block until they are sent.
nghttp2_nv* BuildFields(MemPool* pool, const http::Header* fields, uint16_t count,
                        std::string_view status, size_t* nv_count) {
  const http::Header pseudo[] = {{":status", status}};
  return glue::BuildFields(
      pool, pseudo, status.empty() ? 0 : 1, fields, count,
      [](std::string_view name, std::string_view) { return ConnectionSpecific(name); }, nv_count);
}

}  // namespace

bool ServerSession::SubmitHead(Stream* st, uint16_t status, const http::Header* fields,
                               uint16_t count, bool end_stream) {
  if (st->responded || status < 200 || status > 599) return false;
  const char digits[3] = {static_cast<char>('0' + status / 100),
                          static_cast<char>('0' + status / 10 % 10),
                          static_cast<char>('0' + status % 10)};
  size_t nv_count = 0;
  nghttp2_nv* nva = BuildFields(pool_, fields, count, std::string_view(digits, 3), &nv_count);
  if (nva == nullptr) return false;
  nghttp2_data_provider body;
  body.source.ptr = st;
  body.read_callback = Callbacks::ReadBody;
  const int rv = nghttp2_submit_response(ng_, st->id, nva, nv_count, end_stream ? nullptr : &body);
  pool_->Free(nva);
  if (rv != 0) return false;
  st->responded = true;
  if (end_stream) st->body.end_queued = true;
  return true;
}

bool ServerSession::Respond(int32_t id, uint16_t status, const http::Header* fields, uint16_t count,
                            bool end_stream) {
  Stream* st = Find(id);
  return st != nullptr && SubmitHead(st, status, fields, count, end_stream);
}

bool ServerSession::Continue(int32_t id) {
  Stream* st = Find(id);
  if (st == nullptr || st->responded || st->request_done) return false;
  static constexpr char kStatus[] = ":status";
  static constexpr char kHundred[] = "100";
  nghttp2_nv nv = {reinterpret_cast<uint8_t*>(const_cast<char*>(kStatus)),
                   reinterpret_cast<uint8_t*>(const_cast<char*>(kHundred)), sizeof kStatus - 1,
                   sizeof kHundred - 1, NGHTTP2_NV_FLAG_NONE};
  return nghttp2_submit_headers(ng_, NGHTTP2_FLAG_NONE, id, nullptr, &nv, 1, nullptr) >= 0;
}

bool ServerSession::SendData(int32_t id, const char* p, size_t n, bool end_stream) {
  Stream* st = Find(id);
  return st != nullptr && st->body.Append(ng_, id, blocks_, p, n, end_stream);
}

bool ServerSession::SendTrailers(int32_t id, const http::Header* fields, uint16_t count) {
  Stream* st = Find(id);
  if (st == nullptr || st->body.end_queued || !st->responded) return false;
  size_t nv_count = 0;
  nghttp2_nv* nva = BuildFields(pool_, fields, count, {}, &nv_count);
  return st->body.EndWith(ng_, id, nva, nv_count);
}

bool ServerSession::Answer(int32_t id, const policy::Answer& answer, std::string_view trace_id) {
  Stream* st = Find(id);
  if (st == nullptr || st->responded) return false;
  char body[policy::kAnswerBodyBytes];
  const size_t n = policy::FormatAnswerBody(answer, trace_id, body, sizeof body);
  char length[24];
  const int len_digits = std::snprintf(length, sizeof length, "%zu", n);
  const http::Header fields[] = {
      {"content-type", "application/json"},
      {"content-length", std::string_view(length, static_cast<size_t>(len_digits))},
      {"x-hms-reason", answer.reason},
      {"x-trace-id", trace_id},
  };
  // An answer to HEAD has the same fields and no body (RFC 9110 §9.3.2).
  const bool head = st->method == http::Method::kHead;
  if (!SubmitHead(st, answer.status, fields, trace_id.empty() ? 3 : 4, head)) {
    return false;
  }
  if (!head) SendData(id, body, n, true);
  return true;
}

bool ServerSession::Reset(int32_t id, ErrorCode code) {
  Stream* st = Find(id);
  if (st == nullptr) return false;
  st->engine_reset = true;
  return nghttp2_submit_rst_stream(ng_, NGHTTP2_FLAG_NONE, id, static_cast<uint32_t>(code)) == 0;
}

void ServerSession::Consume(int32_t id, size_t n) {
  Stream* st = Find(id);
  if (st == nullptr) return;  // over: its bytes were given back when it closed
  n = std::min<uint64_t>(n, st->unconsumed);
  st->unconsumed -= n;
  nghttp2_session_consume(ng_, id, n);
}

size_t ServerSession::Queued(int32_t id) const {
  const Stream* st = Find(id);
  return st == nullptr ? 0 : st->body.out.size();
}

void ServerSession::Drain() {
  if (ng_ == nullptr || drain_ping_sent_ || terminated_) return;
  drain_ping_sent_ = true;
  // RFC 9113 §6.8: a GOAWAY with the highest stream id first, so that the
  // client stops opening streams; a PING to learn when every stream it sent
  // before has arrived; then the real last stream id.
  nghttp2_submit_shutdown_notice(ng_);
  nghttp2_submit_ping(ng_, NGHTTP2_FLAG_NONE, kDrainPing);
}

void ServerSession::FinalGoaway() {
  final_goaway_sent_ = true;
  nghttp2_submit_goaway(ng_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(ng_),
                        NGHTTP2_NO_ERROR, nullptr, 0);
}

}  // namespace hms::h2
