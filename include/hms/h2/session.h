// What the two sides of an HTTP/2 connection share (docs/http2.md "Code
// layout"): ServerSession (a client's connection) and ClientSession (a
// connection to an upstream) are each a Session plus what is theirs.
//
// A Session drives one nghttp2 session over the cores' buffers, sans-I/O:
// Receive() lends nghttp2 the bytes the engine read, Send() appends what it
// wants sent to the engine's queue; nghttp2 never touches a socket. Every
// allocation of nghttp2's and of the session's goes to the core's MemPool
// (warm streams allocate nothing); the bodies queued on streams use the
// core's BlockPool. The shared part holds the streams (a list, and nghttp2's
// stream user data), the FloodGuard and the defences nghttp2 keeps itself
// (limits.h), flow control handed to the engine (Consume()), the queued
// bodies, and the Counters. Each side adds its header blocks, its handler,
// and what it alone may do (the server answers, the client submits).
//
// A SessionConfig (a ServerConfig or a ClientConfig) is made once per
// listener or upstream service (boot or reload, any thread) and shared
// read-only by every core; it outlives its sessions. A session belongs to the
// core that made it: its thread alone calls it, and its handler is called on
// that thread, from inside Receive(), Send() and the calls below.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

#include "hms/common/result.h"
#include "hms/core/block_pool.h"
#include "hms/core/clock.h"
#include "hms/h2/flood_guard.h"
#include "hms/h2/limits.h"
#include "hms/h2/mem_pool.h"
#include "hms/http/parser.h"

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

// One side's nghttp2 callbacks and options, from its Limits.
class SessionConfig {
 public:
  ~SessionConfig();
  SessionConfig(const SessionConfig&) = delete;
  SessionConfig& operator=(const SessionConfig&) = delete;
  const Limits& limits() const { return limits_; }

 protected:
  explicit SessionConfig(bool server) : server_(server) {}
  // Checks `limits` (a ConfigError naming the key), makes nghttp2's
  // callbacks with the shared ones set, and its options with the shared
  // defences set; each side's Make adds its own.
  Result<bool> Init(const Limits& limits);

  Limits limits_;
  nghttp2_session_callbacks* callbacks_ = nullptr;
  nghttp2_option* option_ = nullptr;

 private:
  friend class Session;
  bool server_;
};

class Session {
 public:
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Makes nghttp2's session and queues this side's SETTINGS (the client's
  // after its connection preface) for the first Send(). False when the pool
  // is out of memory.
  bool Start();

  // Hands the peer's bytes to nghttp2 (all of them are taken). False when
  // the session is over (a flood, a protocol error): a GOAWAY is queued,
  // Send() it, then close the connection.
  bool Receive(const char* p, size_t n, core::Instant now);
  // Appends what nghttp2 has to send to `out`, while out holds less than
  // `max_queued` bytes. False on a library failure (close the connection).
  bool Send(core::ByteQueue* out, size_t max_queued);
  // nghttp2 has frames to send (call Send()).
  bool WantsWrite() const;
  // Nothing left to receive or send: every stream is over after a GOAWAY
  // (a drain, a flood, the peer's own GOAWAY). Close the connection after
  // flushing what Send() queued.
  bool Done() const;

  // --- By stream id. False when the stream is gone (the peer reset it
  // meanwhile): the engine drops the exchange.
  // Body bytes (copied into the stream's queue; nghttp2 takes them as the
  // peer's windows allow); `end_stream` ends this side's half.
  bool SendData(int32_t id, const char* p, size_t n, bool end_stream);
  // RST_STREAM (RFC 9113 §6.4): the other side left, a deadline ran out.
  bool Reset(int32_t id, ErrorCode code);
  // `n` body bytes of stream `id` were passed on: the windows reopen.
  void Consume(int32_t id, size_t n);
  // Body bytes queued on the stream and not yet taken by nghttp2.
  size_t Queued(int32_t id) const;

  // Ends the session now: GOAWAY(code) (unless one that ends it was queued
  // already) and every open stream reported closed to the handler. Send()
  // the GOAWAY, then close the connection.
  void Close(ErrorCode code);

  uint32_t open_streams() const { return live_; }
  // The session ended for a flood or a protocol error.
  bool failed() const { return failed_; }

 protected:
  struct Stream;  // the part of a stream both sides keep (src/h2/session_stream.h)

  // `config`, `pool`, `blocks` and `counters` outlive the session. Making
  // one allocates nothing; Start() takes nghttp2's state from the pool.
  Session(const SessionConfig* config, MemPool* pool, core::BlockPool* blocks, Counters* counters);
  // Frees every stream without telling the handler (Close() first). Not
  // virtual: a session is destroyed as what it is, never through a Session*.
  ~Session();

  // Each side's part of nghttp2's events.
  virtual void OnBody(int32_t id, const char* p, size_t n) = 0;
  // Tells the handler the stream is over, then FreeStream().
  virtual void CloseStream(Stream* st, ErrorCode code) = 0;
  // The stream's queued body all went to nghttp2.
  virtual void OnSendable(Stream* st) = 0;
  // Drops the header block in progress, if any.
  virtual void EndBlockRefs() = 0;

  Stream* Find(int32_t id) const;
  // A new stream (its id set): on the live list, counted.
  void Link(Stream* st);
  void FreeStream(Stream* st);
  // The session ends for what mem_recv reported (`lib_error`, 0 for none)
  // or a flood a callback saw: GOAWAY with the code that says why, counted.
  void Fail(int lib_error);
  // Ends the stream's body with trailers (connection-specific ones dropped).
  bool QueueTrailers(Stream* st, const http::Header* fields, uint16_t count);

  const SessionConfig* config_;
  MemPool* pool_;
  core::BlockPool* blocks_;
  Counters* counters_;
  nghttp2_session* ng_ = nullptr;
  FloodGuard guard_;
  Stream* streams_ = nullptr;   // live streams, a list through Stream::next
  Stream* sendable_ = nullptr;  // streams owed OnSendable after this Send()
  uint32_t live_ = 0;
  core::Instant now_ = 0;
  Flood flood_ = Flood::kNone;  // seen inside a callback
  bool failed_ = false;
  bool terminated_ = false;
  bool provoked_flood_ = false;  // the resets this side sent the peer provoked (server)

 private:
  friend struct SessionCallbacks;  // nghttp2's callbacks both sides share (session.cc)

  ssize_t ReadBody(int32_t id, uint8_t* buf, size_t len, uint32_t* flags);
};

}  // namespace hms::h2
