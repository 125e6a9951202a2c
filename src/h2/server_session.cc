#include "hms/h2/server_session.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <new>
#include <type_traits>

#include "hms/common/check.h"
#include "hms/policy/answer_body.h"
#include "nghttp2_glue.h"
#include "session_stream.h"

namespace hms::h2 {

// A request stream: the shared part (its body is the response's; an
// answer's NO_ERROR reset counts as engine_reset too), and the request's.
struct ServerSession::Stream : Session::Stream {
  uint64_t expected = 0;  // content-length, when has_length
  uint64_t received = 0;
  http::Method method = http::Method::kOther;
  bool has_length = false;
  bool known = false;         // the handler was told (OnRequest or OnRefused)
  bool refused = false;       // its head was refused: its body is dropped
  bool request_done = false;  // END_STREAM from the client seen
  bool responded = false;     // a response head was submitted
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

using glue::View;

}  // namespace

// --- nghttp2's callbacks ---------------------------------------------------

// The server's own; SessionCallbacks has the shared ones.
struct Callbacks {
  static ServerSession* S(void* self) {
    return static_cast<ServerSession*>(static_cast<Session*>(self));
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
    glue::Hold(b, name, value);
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

  static int FrameSend(nghttp2_session*, const nghttp2_frame* frame, void* self) {
    S(self)->OnSent(frame->hd.type, frame->hd.stream_id, frame->hd.flags,
                    frame->hd.type == NGHTTP2_RST_STREAM ? frame->rst_stream.error_code
                    : frame->hd.type == NGHTTP2_GOAWAY   ? frame->goaway.error_code
                                                         : 0);
    return 0;
  }
};

// --- ServerConfig -----------------------------------------------------------

Result<std::shared_ptr<const ServerConfig>> ServerConfig::Make(const Limits& l,
                                                               http::PathOptions paths) {
  if (l.max_concurrent_streams == 0)
    return ConfigError("max_concurrent_streams must be at least 1");
  std::shared_ptr<ServerConfig> c(new ServerConfig());
  if (Result<bool> r = c->Init(l); !r) return r.error();
  c->paths_ = paths;
  nghttp2_session_callbacks* cb = c->callbacks_;
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, Callbacks::BeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback2(cb, Callbacks::Header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, Callbacks::FrameRecv);
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, Callbacks::FrameSend);
  nghttp2_option* o = c->option_;
  // request_head.h judges heads, so that each refusal names its rule (nghttp2
  // would reset such streams without a word); framing, HPACK and flow
  // control stay nghttp2's.
  nghttp2_option_set_no_http_messaging(o, 1);
  // The backstop behind FloodGuard's reset limit (it uses its own clock).
  nghttp2_option_set_stream_reset_rate_limit(o, uint64_t{l.resets.burst} * 2,
                                             uint64_t{l.resets.per_second} * 2);
  return std::shared_ptr<const ServerConfig>(std::move(c));
}

// --- ServerSession: life ----------------------------------------------------

ServerSession::ServerSession(const ServerConfig* config, Handler* handler, MemPool* pool,
                             core::BlockPool* blocks, Counters* counters)
    : Session(config, pool, blocks, counters), handler_(handler) {
  // Session::FreeStream ends a stream as its shared part.
  static_assert(std::is_trivially_destructible_v<Stream>);
}

ServerSession::~ServerSession() { EndBlockRefs(); }

ServerSession::Stream* ServerSession::Find(int32_t id) const {
  return static_cast<Stream*>(Session::Find(id));
}

void ServerSession::CloseStream(Session::Stream* shared, ErrorCode code) {
  auto* st = static_cast<Stream*>(shared);
  // Body bytes the engine never consumed still count against the
  // connection's window: give them back, or a reset stream would shrink it
  // for every other stream.
  if (st->unconsumed > 0) nghttp2_session_consume_connection(ng_, st->unconsumed);
  st->unconsumed = 0;
  if (st->known) handler_->OnStreamClose(*this, st->id, st->tag, code);
  FreeStream(st);
}

// --- Receiving ---------------------------------------------------------------

int ServerSession::BeginBlock(int32_t id, bool request) {
  Stream* st = nullptr;
  if (request) {
    void* mem = pool_->Alloc(sizeof(Stream));
    if (mem == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // resets the stream
    st = new (mem) Stream();
    st->id = id;
    Link(st);
    nghttp2_session_set_stream_user_data(ng_, id, static_cast<Session::Stream*>(st));
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
  glue::FreeBlock(pool_, block_);
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
    const bool ok = b.FinishRequest(end_stream, config().paths(), scratch, need, &block_->head);
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

void ServerSession::OnSendable(Session::Stream* st) {
  handler_->OnSendable(*this, st->id, st->tag);
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

bool ServerSession::SetTag(int32_t id, uint64_t tag) {
  Stream* st = Find(id);
  if (st == nullptr) return false;
  st->tag = tag;
  return true;
}

bool ServerSession::SubmitHead(Stream* st, uint16_t status, const http::Header* fields,
                               uint16_t count, bool end_stream) {
  if (st->responded || status < 200 || status > 599) return false;
  const char digits[3] = {static_cast<char>('0' + status / 100),
                          static_cast<char>('0' + status / 10 % 10),
                          static_cast<char>('0' + status % 10)};
  const http::Header pseudo[] = {{":status", std::string_view(digits, 3)}};
  size_t nv_count = 0;
  nghttp2_nv* nva =
      glue::BuildFields(pool_, pseudo, 1, fields, count, glue::DropConnectionSpecific, &nv_count);
  if (nva == nullptr) return false;
  nghttp2_data_provider body;
  body.source.ptr = st;
  body.read_callback = SessionCallbacks::ReadBody;
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

bool ServerSession::SendTrailers(int32_t id, const http::Header* fields, uint16_t count) {
  Stream* st = Find(id);
  if (st == nullptr || st->body.end_queued || !st->responded) return false;
  return QueueTrailers(st, fields, count);
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
