// The server side of one HTTP/2 connection (RFC 9113; docs/http2.md), over
// the cores' buffers: sans-I/O, the way tls::Session drives wolfSSL.
//
// nghttp2 does the framing, HPACK and flow control and never touches a
// socket: Receive() lends it the bytes the engine read (nghttp2_session_
// mem_recv) and Send() appends what it wants sent to the engine's queue
// (nghttp2_session_mem_send). Every allocation of nghttp2's and of this
// session's goes to the core's MemPool (warm streams allocate nothing); the
// response bodies queued on streams use the core's BlockPool.
//
// What the engine sees is streams as exchanges, in its own terms, through a
// Handler: a request head as the http::RequestHead its router reads (method,
// canonical path, authority as host, fields; see request_head.h for every
// rule a head is held to), body bytes, trailers, and the stream's end. It
// answers with a head (status + fields), data, trailers, a local answer from
// the fault table (JSON body, x-hms-reason), or a reset. Flow control is the
// engine's: body bytes count against the client's windows until the engine
// calls Consume() for them, so a slow upstream slows the client down.
//
// Limits and floods (limits.h): every defence ends only the offending
// session, with GOAWAY (ENHANCE_YOUR_CALM for floods), counted in the core's
// Counters. Drain() sends GOAWAY and lets the open streams finish.
//
// A ServerConfig is made once per listener (boot or reload, any thread) and
// shared read-only by every core; it must outlive the sessions made from it.
// A ServerSession belongs to the core that made it: its thread alone calls
// it, and the handler is called on that thread, from inside Receive(),
// Send() and the calls below. Handler calls may call back into the session
// (answer, reset, consume) but must not Close() or destroy it.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "hms/common/result.h"
#include "hms/core/block_pool.h"
#include "hms/core/clock.h"
#include "hms/h2/flood_guard.h"
#include "hms/h2/limits.h"
#include "hms/h2/mem_pool.h"
#include "hms/h2/request_head.h"
#include "hms/http/parser.h"
#include "hms/http/path.h"
#include "hms/policy/fault.h"

struct nghttp2_session;
struct nghttp2_session_callbacks;
struct nghttp2_option;

namespace hms::h2 {

// RFC 9113 §7 error codes this module sends or the engine may use.
enum class ErrorCode : uint32_t {
  kNoError = 0x0,
  kProtocolError = 0x1,
  kInternalError = 0x2,
  kFlowControlError = 0x3,
  kRefusedStream = 0x7,
  kCancel = 0x8,
  kEnhanceYourCalm = 0xb,
};

class ServerConfig {
 public:
  static Result<std::shared_ptr<const ServerConfig>> Make(const Limits& limits,
                                                          http::PathOptions paths = {});
  ~ServerConfig();
  ServerConfig(const ServerConfig&) = delete;
  ServerConfig& operator=(const ServerConfig&) = delete;
  const Limits& limits() const { return limits_; }
  http::PathOptions paths() const { return paths_; }

 private:
  ServerConfig() = default;
  friend class ServerSession;
  friend struct Callbacks;
  Limits limits_;
  http::PathOptions paths_;
  nghttp2_session_callbacks* callbacks_ = nullptr;
  nghttp2_option* option_ = nullptr;
};

class ServerSession;

// What the engine does with streams. Stream ids are the client's (odd,
// increasing); `tag` is what the engine set with SetTag (0 before).
class Handler {
 public:
  virtual ~Handler() = default;
  // A stream's request head, checked and canonical. `end_stream`: no body
  // follows. The views live until this call returns. The engine routes it
  // and answers (now or later), or resets it.
  virtual void OnRequest(ServerSession& s, int32_t id, const http::RequestHead& head,
                         bool end_stream) = 0;
  // A head refused by a rule (request_head.h): `answer` says which. The
  // engine answers it (Answer(), with its trace id) or resets it; if it does
  // neither, the session resets the stream. Its body is dropped (no OnData);
  // OnStreamClose follows as for any stream.
  virtual void OnRefused(ServerSession& s, int32_t id, const policy::Answer& answer) = 0;
  // Body bytes, lent for the length of the call. They count against the
  // client's flow-control windows until Consume(id, n).
  virtual void OnData(ServerSession& s, int32_t id, uint64_t tag, const char* p, size_t n) = 0;
  // The request is complete; `trailers` (count may be 0) live until this
  // call returns.
  virtual void OnRequestEnd(ServerSession& s, int32_t id, uint64_t tag,
                            const http::Header* trailers, uint16_t count) = 0;
  // The stream's queued response bytes all went to nghttp2 (the engine may
  // read more of its upstream).
  virtual void OnSendable(ServerSession& s, int32_t id, uint64_t tag) = 0;
  // The stream is over: answered in full (kNoError), reset by either side,
  // or its session ended. The id is gone once this returns.
  virtual void OnStreamClose(ServerSession& s, int32_t id, uint64_t tag, ErrorCode code) = 0;
};

class ServerSession {
 public:
  // `config`, `handler`, `pool`, `blocks` and `counters` outlive the
  // session. The engine keeps sessions where it likes (a slab slot): making
  // one allocates nothing; Start() takes nghttp2's state from the pool.
  ServerSession(const ServerConfig* config, Handler* handler, MemPool* pool,
                core::BlockPool* blocks, Counters* counters);
  ~ServerSession();  // frees everything without calling the handler: Close() first
  ServerSession(const ServerSession&) = delete;
  ServerSession& operator=(const ServerSession&) = delete;

  // Makes nghttp2's session and queues the server's SETTINGS (its connection
  // preface) for the first Send(). False when the pool is out of memory.
  bool Start();

  // Hands the client's bytes to nghttp2 (all of them are taken). False when
  // the session is over (a flood, a protocol error): a GOAWAY is queued,
  // Send() it, then close the connection.
  bool Receive(const char* p, size_t n, core::Instant now);
  // Appends what nghttp2 has to send to `out`, while out holds less than
  // `max_queued` bytes. False on a library failure (close the connection).
  bool Send(core::ByteQueue* out, size_t max_queued);
  // nghttp2 has frames to send (call Send()).
  bool WantsWrite() const;
  // Nothing left to receive or send: every stream is over after a GOAWAY (a
  // drain, a flood, the client's own GOAWAY). Close the connection after
  // flushing what Send() queued.
  bool Done() const;

  // --- The engine's answers, by stream id. False when the stream is gone
  // (the client reset it meanwhile): the engine drops the exchange.
  bool SetTag(int32_t id, uint64_t tag);
  // The response head: `status` 200..599 (no 1xx yet), fields with any
  // names (sent lowercase; connection-specific ones dropped, RFC 9113
  // §8.2.2). `end_stream`: no body.
  bool Respond(int32_t id, uint16_t status, const http::Header* fields, uint16_t count,
               bool end_stream);
  // An interim 100 (Continue) before the response, for a head with
  // expect_continue (RFC 9110 §10.1.1): the client may send its body.
  bool Continue(int32_t id);
  // Body bytes (copied into the stream's queue); `end_stream` ends it.
  bool SendData(int32_t id, const char* p, size_t n, bool end_stream);
  // Ends the response with trailers, after the queued data.
  bool SendTrailers(int32_t id, const http::Header* fields, uint16_t count);
  // A local answer (fault table row): status, x-hms-reason, x-trace-id,
  // content-type: application/json and the JSON body (none for HEAD).
  bool Answer(int32_t id, const policy::Answer& answer, std::string_view trace_id);
  // RST_STREAM (RFC 9113 §6.4).
  bool Reset(int32_t id, ErrorCode code);
  // `n` body bytes of stream `id` were passed on: the windows reopen.
  void Consume(int32_t id, size_t n);
  // Response bytes queued on the stream and not yet taken by nghttp2.
  size_t Queued(int32_t id) const;

  // Graceful drain: a GOAWAY announcing the end and a PING; when the PING's
  // answer arrives (every stream the client had sent by then has arrived),
  // the final GOAWAY names the last stream taken. Open streams finish.
  void Drain();
  // Ends the session now: GOAWAY(code) (unless one that ends it was queued
  // already) and every open stream reported closed to the handler. Send()
  // the GOAWAY, then close the connection.
  void Close(ErrorCode code);

  uint32_t open_streams() const { return live_; }
  // The session ended for a flood or a protocol error.
  bool failed() const { return failed_; }

 private:
  struct Stream;
  struct Block;
  // nghttp2's callbacks (server_session.cc): they reach the members below.
  friend struct Callbacks;

  Stream* Find(int32_t id) const;
  void FreeStream(Stream* st);
  void CloseStream(Stream* st, ErrorCode code);
  void Fail(int lib_error);
  int BeginBlock(int32_t id, bool request);
  void EndBlock(bool end_stream);
  void EndBlockRefs();
  void DeliverHead(Stream* st, bool end_stream);
  void OnBody(int32_t id, const char* p, size_t n);
  void EndRequest(Stream* st, const http::Header* trailers, uint16_t count);
  void Malformed(Stream* st);
  void OnSent(uint8_t type, int32_t id, uint8_t flags, uint32_t code);
  ssize_t ReadBody(int32_t id, uint8_t* buf, size_t len, uint32_t* flags);
  bool SubmitHead(Stream* st, uint16_t status, const http::Header* fields, uint16_t count,
                  bool end_stream);
  void FinalGoaway();

  const ServerConfig* config_;
  Handler* handler_;
  MemPool* pool_;
  core::BlockPool* blocks_;
  Counters* counters_;
  nghttp2_session* ng_ = nullptr;
  FloodGuard guard_;
  Block* block_ = nullptr;  // the header block in progress, from the pool
  int32_t block_stream_ = 0;
  Stream* streams_ = nullptr;   // live streams, a list through Stream::next
  Stream* sendable_ = nullptr;  // streams owed OnSendable after this Send()
  uint32_t live_ = 0;
  core::Instant now_ = 0;
  Flood flood_ = Flood::kNone;  // seen inside a callback
  bool failed_ = false;
  bool terminated_ = false;
  bool provoked_flood_ = false;
  bool drain_ping_sent_ = false;
  bool final_goaway_sent_ = false;
};

}  // namespace hms::h2
