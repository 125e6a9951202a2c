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
// What both sides share (the nghttp2 session, streams, flood guard, sending
// and receiving, counters) is the Session base (session.h); this file keeps
// what only the server does: request heads, the rules clients are held to,
// answers, extended CONNECT and the drain.
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
#include "hms/h2/limits.h"
#include "hms/h2/mem_pool.h"
#include "hms/h2/request_head.h"
#include "hms/h2/session.h"
#include "hms/http/parser.h"
#include "hms/http/path.h"
#include "hms/policy/fault.h"

namespace hms::h2 {

class ServerConfig final : public SessionConfig {
 public:
  static Result<std::shared_ptr<const ServerConfig>> Make(const Limits& limits,
                                                          http::PathOptions paths = {});
  http::PathOptions paths() const { return paths_; }

 private:
  ServerConfig() : SessionConfig(/*server=*/true) {}
  http::PathOptions paths_;
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

class ServerSession final : public Session {
 public:
  // `config`, `handler`, `pool`, `blocks` and `counters` outlive the
  // session. The engine keeps sessions where it likes (a slab slot): making
  // one allocates nothing; Start() takes nghttp2's state from the pool.
  ServerSession(const ServerConfig* config, Handler* handler, MemPool* pool,
                core::BlockPool* blocks, Counters* counters);
  ~ServerSession();  // frees everything without calling the handler: Close() first
  ServerSession(const ServerSession&) = delete;
  ServerSession& operator=(const ServerSession&) = delete;

  // Start() queues the server's SETTINGS (its connection preface); then
  // Receive(), Send(), WantsWrite(), Done(), SendData(), Reset(), Consume(),
  // Queued(), Close(), open_streams() and failed() as session.h says.

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
  // Ends the response with trailers, after the queued data.
  bool SendTrailers(int32_t id, const http::Header* fields, uint16_t count);
  // A local answer (fault table row): status, x-hms-reason, x-trace-id,
  // content-type: application/json and the JSON body (none for HEAD).
  bool Answer(int32_t id, const policy::Answer& answer, std::string_view trace_id);

  // Graceful drain: a GOAWAY announcing the end and a PING; when the PING's
  // answer arrives (every stream the client had sent by then has arrived),
  // the final GOAWAY names the last stream taken. Open streams finish.
  void Drain();

 private:
  struct Stream;
  struct Block;
  // nghttp2's callbacks of the server's own (server_session.cc).
  friend struct Callbacks;

  const ServerConfig& config() const { return *static_cast<const ServerConfig*>(config_); }
  Stream* Find(int32_t id) const;
  void CloseStream(Session::Stream* st, ErrorCode code) override;
  void OnBody(int32_t id, const char* p, size_t n) override;
  void OnSendable(Session::Stream* st) override;
  void EndBlockRefs() override;
  int BeginBlock(int32_t id, bool request);
  void EndBlock(bool end_stream);
  void DeliverHead(Stream* st, bool end_stream);
  void EndRequest(Stream* st, const http::Header* trailers, uint16_t count);
  void Malformed(Stream* st);
  void OnSent(uint8_t type, int32_t id, uint8_t flags, uint32_t code);
  bool SubmitHead(Stream* st, uint16_t status, const http::Header* fields, uint16_t count,
                  bool end_stream);
  void FinalGoaway();

  Handler* handler_;
  Block* block_ = nullptr;  // the header block in progress, from the pool
  int32_t block_stream_ = 0;
  bool drain_ping_sent_ = false;
  bool final_goaway_sent_ = false;
};

}  // namespace hms::h2
