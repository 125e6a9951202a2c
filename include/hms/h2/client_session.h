// The client side of one HTTP/2 connection to an upstream (h2c, or h2 over
// TLS with ALPN h2 — TLS stays the engine's pump; docs/http2.md "Upstream"),
// over the cores' buffers: sans-I/O, as ServerSession is.
//
// Many exchanges share the connection: Submit() opens a stream from the
// engine's rewritten request head (an HTTP/1.1-style head becomes the
// pseudo-headers, connection-specific fields are dropped, RFC 9113 §8.2.2),
// SendData()/SendTrailers() stream its body under the upstream's flow
// control, and a ClientHandler hears of each stream's response head, data,
// trailers and end. Receive() lends nghttp2 the bytes the engine read and
// Send() appends what it wants sent to the engine's queue; nghttp2 never
// touches a socket. Its every allocation, and this session's, comes from the
// core's MemPool (warm streams allocate nothing); queued request bodies use
// the core's BlockPool.
//
// What the engine must know to place the next exchange: CanOpen() (the
// upstream's SETTINGS_MAX_CONCURRENT_STREAMS not reached, no GOAWAY), so it
// queues or opens another connection; and, at each stream's end, whether the
// upstream never processed it (above a GOAWAY's last stream id, refused with
// REFUSED_STREAM: RFC 9113 §8.7, or its HEADERS never left the session),
// which makes it safe to retry elsewhere whatever its method.
//
// A hostile upstream is held to the same limits as a client (limits.h): a
// response head over max_header_list_bytes (or http::kMaxHeaders fields)
// resets its stream and is reported as such; SETTINGS/PING/PRIORITY and
// empty-frame floods, CONTINUATION runs and unread acknowledgements end the
// session with GOAWAY(ENHANCE_YOUR_CALM); server push is refused (SETTINGS
// _ENABLE_PUSH 0). Response heads are checked by nghttp2's HTTP messaging
// rules (a malformed one resets its stream with PROTOCOL_ERROR).
//
// What both sides share (the nghttp2 session, streams, flood guard, sending
// and receiving, counters) is the Session base (session.h); this file keeps
// what only the client does: Submit, stream capacity, GOAWAY's last stream
// and the upstream's response events.
//
// A ClientConfig is made once per upstream service (boot or reload, any
// thread) and shared read-only by every core; it outlives its sessions. A
// ClientSession belongs to the core that made it: its thread alone calls it,
// and the handler is called on that thread, from inside Receive(), Send() and
// the calls below. Handler calls may call back into the session (consume,
// send, reset, submit) but must not destroy it.
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
#include "hms/h2/session.h"
#include "hms/http/parser.h"
#include "hms/policy/fault.h"

struct nghttp2_rcbuf;

namespace hms::h2 {

class ClientConfig final : public SessionConfig {
 public:
  // The same Limits as a listener's: header list size, windows, HPACK table
  // and the flood limits (max_concurrent_streams is unused: push is off).
  static Result<std::shared_ptr<const ClientConfig>> Make(const Limits& limits);

 private:
  ClientConfig() : SessionConfig(/*server=*/false) {}
};

// How a stream ended, for the engine's fault (FaultOf) and retry decisions.
struct StreamEnd {
  ErrorCode code = ErrorCode::kNoError;  // the RST_STREAM or GOAWAY code, or this side's reset
  bool complete = false;         // the whole response arrived (END_STREAM from the upstream)
  bool never_processed = false;  // above GOAWAY's last stream id, REFUSED_STREAM, never sent
  bool head_too_large = false;   // the response head broke max_header_list_bytes / kMaxHeaders
  bool by_engine = false;        // Reset() ended it (the session's Close() does not set it)
};

// The policy::Fault of a stream's end: kNone when complete; a head too
// large, a malformed answer (PROTOCOL_ERROR) or an upstream reset otherwise.
// A stream ended by the engine is the engine's business (kNone here).
policy::Fault FaultOf(const StreamEnd& end) noexcept;

// The request line of a stream, as pseudo-headers (RFC 9113 §8.3.1).
struct RequestLine {
  std::string_view method;
  std::string_view scheme = "http";  // "https" toward an h2 (TLS) endpoint
  std::string_view authority;        // the Host of the rewritten head
  std::string_view path;             // origin-form target, query included
};

// The request line of an HTTP/1.1-style head: its method, target and Host.
RequestLine LineOf(const http::RequestHead& head, std::string_view scheme);

// Whether a field of an HTTP/1.1-style head is left out of an h2 request:
// the connection-specific ones (RFC 9113 §8.2.2; `te` unless "trailers",
// which gRPC needs) and `host` (it becomes :authority).
bool DroppedFromRequest(std::string_view name, std::string_view value) noexcept;

class ClientSession;

// What the engine does with the streams' responses. `tag` is the one given
// to Submit().
class ClientHandler {
 public:
  virtual ~ClientHandler() = default;
  // The final response head (1xx are skipped); `end_stream`: no body and no
  // trailers follow (OnResponseEnd comes next). The views live until this
  // call returns.
  virtual void OnResponse(ClientSession& s, int32_t id, uint64_t tag, uint16_t status,
                          const http::Header* fields, uint16_t count, bool end_stream) = 0;
  // Body bytes, lent for the call. They count against this side's windows
  // until Consume(id, n): a slow client slows the upstream down.
  virtual void OnData(ClientSession& s, int32_t id, uint64_t tag, const char* p, size_t n) = 0;
  // The response is complete; `trailers` (count may be 0) live until this
  // call returns.
  virtual void OnResponseEnd(ClientSession& s, int32_t id, uint64_t tag,
                             const http::Header* trailers, uint16_t count) = 0;
  // The stream's queued request body all went to nghttp2: send more.
  virtual void OnSendable(ClientSession& s, int32_t id, uint64_t tag) = 0;
  // The stream is over; the id is gone once this returns.
  virtual void OnStreamClose(ClientSession& s, int32_t id, uint64_t tag, const StreamEnd& end) = 0;
};

class ClientSession final : public Session {
 public:
  // Submit()'s refusals (stream ids are > 0).
  static constexpr int32_t kNoCapacity = -1;  // the upstream's max concurrent streams are open
  static constexpr int32_t kGoingAway = -2;   // GOAWAY received or sent: open another connection
  static constexpr int32_t kFailed = -3;      // out of pool memory, or the session is over

  // `config`, `handler`, `pool`, `blocks` and `counters` outlive the
  // session. Making one allocates nothing; Start() takes nghttp2's state
  // from the pool.
  ClientSession(const ClientConfig* config, ClientHandler* handler, MemPool* pool,
                core::BlockPool* blocks, Counters* counters);
  ~ClientSession();  // frees everything without calling the handler: Close() first
  ClientSession(const ClientSession&) = delete;
  ClientSession& operator=(const ClientSession&) = delete;

  // Start() queues the connection preface and SETTINGS; then Receive(),
  // Send(), WantsWrite(), Done() (after a GOAWAY every stream is over),
  // SendData() (request body bytes), Reset(), Consume() (response bytes
  // passed on), Queued(), Close(), open_streams() and failed() as
  // session.h says.

  // A new stream may be opened now (Submit would not refuse it).
  bool CanOpen() const;
  // The upstream's SETTINGS_MAX_CONCURRENT_STREAMS (100 until its SETTINGS
  // arrive, nghttp2's assumption).
  uint32_t peer_max_concurrent_streams() const;

  // Opens a stream: `line` as pseudo-headers, then `fields` (names sent
  // lowercase, DroppedFromRequest ones left out). `end_stream`: no body
  // follows. Returns the stream id, or kNoCapacity / kGoingAway / kFailed.
  int32_t Submit(const RequestLine& line, const http::Header* fields, uint16_t count, uint64_t tag,
                 bool end_stream);
  // Ends the request with trailers, after the queued data.
  bool SendTrailers(int32_t id, const http::Header* fields, uint16_t count);

  // Liveness: a PING, unless one is unanswered. ping_outstanding_since() is
  // when the unanswered one was sent (0 when none): the engine closes a
  // connection whose PING waited too long.
  bool Ping(core::Instant now);
  core::Instant ping_outstanding_since() const { return ping_sent_at_; }
  // Graceful close: GOAWAY(NO_ERROR); open streams finish, no new ones.
  void Shutdown();

  bool goaway_received() const { return goaway_received_; }
  // The last stream id the upstream's GOAWAY says it may process.
  int32_t goaway_last_stream() const { return goaway_last_; }

 private:
  struct Stream;
  struct Block;
  // nghttp2's callbacks of the client's own (client_session.cc).
  friend struct ClientCallbacks;

  Stream* Find(int32_t id) const;
  void CloseStream(Session::Stream* st, ErrorCode code) override;
  void OnBody(int32_t id, const char* p, size_t n) override;
  void OnSendable(Session::Stream* st) override;
  void EndBlockRefs() override;
  int BeginBlock(int32_t id);
  int OnField(int32_t id, nghttp2_rcbuf* name, nghttp2_rcbuf* value);
  void EndBlock(int32_t id, bool end_stream);
  void OnFrame(uint8_t type, int32_t id, uint8_t flags, int32_t goaway_last);

  ClientHandler* handler_;
  Block* block_ = nullptr;  // the header block in progress, from the pool
  int32_t block_stream_ = 0;
  int32_t goaway_last_ = 0x7fffffff;
  core::Instant ping_sent_at_ = 0;
  bool goaway_received_ = false;
};

}  // namespace hms::h2
