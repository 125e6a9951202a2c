#include "hms/h2/session.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <iterator>

#include "hms/common/check.h"
#include "nghttp2_glue.h"
#include "session_stream.h"

namespace hms::h2 {

// --- nghttp2's callbacks both sides share -------------------------------------

namespace {
Session* S(void* self) { return static_cast<Session*>(self); }
}  // namespace

int SessionCallbacks::BeginFrame(nghttp2_session*, const nghttp2_frame_hd* hd, void* self) {
  Session* s = S(self);
  const Flood f = s->guard_.OnFrame(hd->type, hd->flags, hd->length, s->now_);
  if (f == Flood::kNone) return 0;
  s->flood_ = f;
  return NGHTTP2_ERR_CALLBACK_FAILURE;  // stops mem_recv here: the rest is not read
}

int SessionCallbacks::DataChunk(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data,
                                size_t len, void* self) {
  S(self)->OnBody(id, reinterpret_cast<const char*>(data), len);
  return 0;
}

int SessionCallbacks::StreamClose(nghttp2_session*, int32_t id, uint32_t code, void* self) {
  Session* s = S(self);
  if (Session::Stream* st = s->Find(id)) s->CloseStream(st, static_cast<ErrorCode>(code));
  return 0;
}

ssize_t SessionCallbacks::ReadBody(nghttp2_session*, int32_t id, uint8_t* buf, size_t len,
                                   uint32_t* flags, nghttp2_data_source*, void* self) {
  return S(self)->ReadBody(id, buf, len, flags);
}

// --- SessionConfig ------------------------------------------------------------

Result<bool> SessionConfig::Init(const Limits& l) {
  if (const std::string_view e = glue::LimitsError(l); !e.empty()) {
    return ConfigError(std::string(e));
  }
  limits_ = l;
  if (nghttp2_session_callbacks_new(&callbacks_) != 0 || nghttp2_option_new(&option_) != 0) {
    return Error{"out of memory for nghttp2's callbacks", Side::kInternal};
  }
  nghttp2_session_callbacks* cb = callbacks_;
  nghttp2_session_callbacks_set_on_begin_frame_callback(cb, SessionCallbacks::BeginFrame);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, SessionCallbacks::DataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, SessionCallbacks::StreamClose);
  glue::SetDefences(option_, l);
  return true;
}

SessionConfig::~SessionConfig() {
  nghttp2_session_callbacks_del(callbacks_);
  nghttp2_option_del(option_);
}

// --- Session: life --------------------------------------------------------------

Session::Session(const SessionConfig* config, MemPool* pool, core::BlockPool* blocks,
                 Counters* counters)
    : config_(config),
      pool_(pool),
      blocks_(blocks),
      counters_(counters),
      guard_(config->limits()) {}

bool Session::Start() {
  HMS_CHECK(ng_ == nullptr);
  const bool server = config_->server_;
  nghttp2_mem mem = glue::Mem(pool_);
  const int made =
      server ? nghttp2_session_server_new3(&ng_, config_->callbacks_, this, config_->option_, &mem)
             : nghttp2_session_client_new3(&ng_, config_->callbacks_, this, config_->option_, &mem);
  if (made != 0) {
    ng_ = nullptr;
    return false;
  }
  const Limits& l = config_->limits();
  const nghttp2_settings_entry settings[] = {
      // The server's stream limit; the client wants no server push (the
      // gateway forwards answers to requests, nothing else).
      server ? nghttp2_settings_entry{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
                                      l.max_concurrent_streams}
             : nghttp2_settings_entry{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, l.stream_window_bytes},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, l.max_header_list_bytes},
      {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, l.header_table_bytes},
      // RFC 9218 §2.1: no RFC 7540 priority tree is kept for the peer to grow.
      {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
      // Server only (left out of the client's count): RFC 8441 §3, WebSocket
      // over a stream (extended CONNECT); whether a route takes it is the
      // engine's decision, as for the HTTP/1.1 upgrade.
      {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},
  };
  const size_t count = server ? std::size(settings) : std::size(settings) - 1;
  if (nghttp2_submit_settings(ng_, NGHTTP2_FLAG_NONE, settings, count) != 0 ||
      nghttp2_session_set_local_window_size(ng_, NGHTTP2_FLAG_NONE, 0,
                                            static_cast<int32_t>(l.connection_window_bytes)) != 0) {
    return false;
  }
  counters_->sessions.Add();
  return true;
}

Session::~Session() {
  while (streams_ != nullptr) FreeStream(streams_);
  if (ng_ != nullptr) nghttp2_session_del(ng_);  // its memory goes back to the pool
}

Session::Stream* Session::Find(int32_t id) const {
  if (ng_ == nullptr || id <= 0) return nullptr;
  if (void* st = nghttp2_session_get_stream_user_data(ng_, id)) return static_cast<Stream*>(st);
  if (config_->server_) return nullptr;
  // A client's stream: nghttp2 makes it when the HEADERS go out; until then
  // (the engine queues body bytes right after Submit) it is only on our
  // list, among the newest.
  for (Stream* st = streams_; st != nullptr; st = st->next) {
    if (st->id == id) return st;
  }
  return nullptr;
}

void Session::Link(Stream* st) {
  st->next = streams_;
  if (streams_ != nullptr) streams_->prev = st;
  streams_ = st;
  ++live_;
  counters_->streams.Add();
}

void Session::FreeStream(Stream* st) {
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

void Session::Close(ErrorCode code) {
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

bool Session::Done() const {
  return ng_ == nullptr ||
         (nghttp2_session_want_read(ng_) == 0 && nghttp2_session_want_write(ng_) == 0);
}

bool Session::WantsWrite() const { return ng_ != nullptr && nghttp2_session_want_write(ng_) != 0; }

// --- Receiving --------------------------------------------------------------------

bool Session::Receive(const char* p, size_t n, core::Instant now) {
  now_ = now;
  if (failed_ || ng_ == nullptr) return false;
  const ssize_t rv = nghttp2_session_mem_recv(ng_, reinterpret_cast<const uint8_t*>(p), n);
  if (rv < 0 || flood_ != Flood::kNone) {
    Fail(static_cast<int>(rv < 0 ? rv : 0));
    return false;
  }
  return !failed_;
}

void Session::Fail(int lib_error) {
  const ErrorCode code = glue::FailureCode(flood_, lib_error, counters_);
  failed_ = true;
  Close(code);
}

// --- Sending ------------------------------------------------------------------------

bool Session::Send(core::ByteQueue* out, size_t max_queued) {
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
    OnSendable(st);
  }
  return true;
}

ssize_t Session::ReadBody(int32_t id, uint8_t* buf, size_t len, uint32_t* flags) {
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

bool Session::SendData(int32_t id, const char* p, size_t n, bool end_stream) {
  Stream* st = Find(id);
  return st != nullptr && st->body.Append(ng_, id, blocks_, p, n, end_stream);
}

bool Session::QueueTrailers(Stream* st, const http::Header* fields, uint16_t count) {
  size_t nv_count = 0;
  nghttp2_nv* nva =
      glue::BuildFields(pool_, nullptr, 0, fields, count, glue::DropConnectionSpecific, &nv_count);
  return st->body.EndWith(ng_, st->id, nva, nv_count);
}

bool Session::Reset(int32_t id, ErrorCode code) {
  Stream* st = Find(id);
  if (st == nullptr) return false;
  st->engine_reset = true;
  return nghttp2_submit_rst_stream(ng_, NGHTTP2_FLAG_NONE, id, static_cast<uint32_t>(code)) == 0;
}

void Session::Consume(int32_t id, size_t n) {
  Stream* st = Find(id);
  if (st == nullptr) return;  // over: its bytes were given back when it closed
  n = std::min<uint64_t>(n, st->unconsumed);
  st->unconsumed -= n;
  nghttp2_session_consume(ng_, id, n);
}

size_t Session::Queued(int32_t id) const {
  const Stream* st = Find(id);
  return st == nullptr ? 0 : st->body.out.size();
}

}  // namespace hms::h2
