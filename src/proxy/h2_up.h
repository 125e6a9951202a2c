// HTTP/2 toward upstreams (docs/http2.md "HTTP/2 to upstreams"): for a
// service whose endpoints speak h2c (or h2, inside the mesh's mTLS), one
// connection per endpoint per core carries many exchanges, each as a stream
// of its h2::ClientSession.
//
// The connection is an Upstream slot with a socket and `h2` set: its input
// goes to the session instead of the HTTP/1.1 parser, and what the session
// has to send joins its queue when the pass flushes it. Each stream is an
// Upstream slot of its own without a socket (`h2_parent` names the
// connection) whose H2UpStream is the exchange's UpstreamLeg
// (upstream_leg.h): the exchange queues its request head and body through
// it, and at the flush the head becomes HEADERS (h2::LineOf: Host →
// :authority, hop-by-hop fields dropped) and the body DATA under the
// upstream's flow control. The answer reaches the exchange as events, as an
// HTTP/1.1 connection's does: the HEADERS' status and fields become an
// http::ResponseHead directly (H2ResponseHead, h2_answer.h; the fields kept
// in a block of the stream's until the exchange reads them), DATA body bytes
// as they came when the head gave a length (and the client speaks
// HTTP/1.1), framed chunked otherwise (its trailers in the last chunk, as
// H2Stream and an HTTP/1.1 client take them). Events are delivered once the
// session returned (SettleH2Conn), never from inside its callbacks. Routing, rewriting, retries, breakers, metrics
// and logs are those of any answer.
//
// Owned by one core's upstream slab, touched by that core's thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "hms/core/block_pool.h"
#include "hms/h2/client_session.h"
#include "hms/http/parser.h"
#include "hms/policy/fault.h"
#include "src/proxy/chunked_tail.h"
#include "src/proxy/upstream_leg.h"

namespace hms::proxy {

class Worker;

// Streams waiting on a connection for a slot (CanOpen() false) before the
// endpoint gets a second connection.
inline constexpr size_t kH2UpMaxPending = 32;
// Request body bytes handed to the session per stream before the rest waits
// in the stream's own queue (read from the client as they leave).
inline constexpr size_t kH2UpStreamQueued = 64 * 1024;

// A stream's side of an upstream slot (`h2_parent` set), and the exchange's
// UpstreamLeg while the slot carries its attempt. The answer's head waits
// (its fields in the `answer` block, the rest beside it) until the exchange
// reads it; its body in `resp`: DATA as it came when the head gave a length
// (toward an HTTP/1.1 client), else framed chunked with the trailers in the
// last chunk.
struct H2UpStream : UpstreamLeg {
  int32_t id = 0;              // the session's stream id; 0 before Submit and after its end
  bool submitted = false;      // HEADERS went to the session (the attempt is connected)
  bool end_sent = false;       // END_STREAM went to the session
  bool head_end = false;       // the answer has no body: DATA after it is dropped
  bool chunked = false;        // its DATA is framed chunked in `resp` (no length, or an h2 client)
  bool answered = false;       // the exchange read the head: `resp` is its body
  bool closed = false;         // the session ended the stream (end below)
  bool never_processed = false;  // the upstream never processed it (GOAWAY, REFUSED_STREAM)
  h2::StreamEnd end{};
  http::ChunkedDecoder req_chunks;  // the exchange frames a body without length as chunked
  ChunkedTail req_tail;             // that body's framing since its last data: its trailers
  core::Block* answer = nullptr;  // the answer's fields, until the exchange read its head
  // The rest of the answer's head (H2ResponseHead, h2_answer.h).
  uint16_t status = 0;
  uint16_t field_count = 0;
  http::BodyKind body = http::BodyKind::kNone;
  uint64_t content_length = 0;
  core::ByteQueue resp;        // the answer's body, not yet read by the exchange
  uint64_t unconsumed = 0;     // DATA bytes received and not yet given back to the windows
  uint32_t conn_gen = ~0u;     // the connection's generation while the stream is on it
  Worker* worker = nullptr;    // the core's, for the UpstreamLeg calls
  uint32_t slot = ~0u;         // the stream's upstream slot
  void Reset(core::BlockPool* blocks) noexcept {
    resp.Clear(blocks);
    if (answer != nullptr) blocks->Put(answer);
    answer = nullptr;
    id = 0;
    submitted = end_sent = head_end = chunked = answered = closed = never_processed = false;
    end = h2::StreamEnd{};
    req_chunks.Reset();
    req_tail.Data();
    unconsumed = 0;
    conn_gen = ~0u;
  }

  // UpstreamLeg (h2_up.cc). No WebSocket tunnel runs on a stream (an
  // HTTP/2 answer has no 101): the tunnel's calls have nothing to do.
  void Send(const char* p, size_t n) noexcept override;
  bool Full() const noexcept override;
  void Resume() noexcept override;
  void Release(bool reusable) noexcept override;
  void Abandon(uint32_t exchange) noexcept override;
  bool Sending() const noexcept override;
  bool HoldsInput() const noexcept override { return !resp.empty(); }
  bool ShutSend(bool*) noexcept override { return true; }
  void StopReading() noexcept override {}
};

// A connection's session and the streams (upstream slots) it carries; the
// session's events go to the core (h2_up.cc).
struct H2UpConn : h2::ClientHandler {
  H2UpConn(Worker* w, uint32_t slot, const h2::ClientConfig* config, h2::MemPool* pool,
           core::BlockPool* blocks, h2::Counters* counters)
      : worker(w), up(slot), session(config, this, pool, blocks, counters) {
    streams.reserve(kH2UpMaxPending * 4);
  }
  void OnResponse(h2::ClientSession& s, int32_t id, uint64_t tag, uint16_t status,
                  const http::Header* fields, uint16_t count, bool end_stream) override;
  void OnData(h2::ClientSession& s, int32_t id, uint64_t tag, const char* p, size_t n) override;
  void OnResponseEnd(h2::ClientSession& s, int32_t id, uint64_t tag, const http::Header* trailers,
                     uint16_t count) override;
  void OnSendable(h2::ClientSession& s, int32_t id, uint64_t tag) override;
  void OnStreamClose(h2::ClientSession& s, int32_t id, uint64_t tag,
                     const h2::StreamEnd& end) override;

  Worker* worker;
  uint32_t up;                    // this connection's slot
  h2::ClientSession session;
  std::vector<uint32_t> streams;  // its stream slots, submitted or waiting for a slot
  std::string identity;           // the service's mesh identity, checked at the handshake
  policy::Fault fault = policy::Fault::kNone;  // why the connection failed, for its streams' answer
  bool ready = false;             // connected (and the TLS handshake done): streams may open
  bool closing = false;           // being closed: the session's last events are ignored
  // Liveness (h2_liveness.h): the service's connection_keepalive when the
  // connection was made, the upstream's last bytes, and since when it has
  // carried no stream (0 while it carries any); its `timer` serves both.
  uint32_t keepalive_interval_ms = 0;
  uint32_t keepalive_timeout_ms = 0;
  core::Instant last_frame = 0;
  core::Instant idle_since = 0;
  // A stream ended since its streams were last settled (SettleH2Conn). nghttp2
  // ends a stream it resets itself (a body longer or shorter than its
  // content-length, a malformed head) only once the RST_STREAM is sent: while
  // the flush sends, not while a receive is read.
  bool unsettled = false;
};

}  // namespace hms::proxy
