// HTTP/2 toward upstreams (docs/http2.md "HTTP/2 to upstreams"): for a
// service whose endpoints speak h2c (or h2, inside the mesh's mTLS), one
// connection per endpoint per core carries many exchanges, each as a stream
// of its h2::ClientSession.
//
// The connection is an Upstream slot with a socket and `h2` set: its input
// goes to the session instead of the HTTP/1.1 parser, and what the session
// has to send joins its queue when the pass flushes it. Each stream is an
// Upstream slot of its own without a socket (`h2_parent` names the
// connection), so the exchange keeps talking to "its upstream" as it does
// over HTTP/1.1: it writes its request head and body into the slot's `out`,
// and reads the answer as HTTP/1.1 bytes. At the flush the head becomes
// HEADERS (h2::LineOf: Host → :authority, hop-by-hop fields dropped) and
// the body DATA under the upstream's flow control; the answer's HEADERS,
// DATA and trailers become a chunked HTTP/1.1 answer (the trailers in the
// last chunk) read by the same ConsumeUpstream as any answer, so routing,
// rewriting, retries, breakers, metrics and logs are those of HTTP/1.1.
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

namespace hms::proxy {

class Worker;

// Streams waiting on a connection for a slot (CanOpen() false) before the
// endpoint gets a second connection.
inline constexpr size_t kH2UpMaxPending = 32;
// Request body bytes handed to the session per stream before the rest waits
// in the stream's own queue (read from the client as they leave).
inline constexpr size_t kH2UpStreamQueued = 64 * 1024;

// A stream's side of an upstream slot (`h2_parent` set).
struct H2UpStream {
  int32_t id = 0;              // the session's stream id; 0 before Submit and after its end
  bool submitted = false;      // HEADERS went to the session (the attempt is connected)
  bool end_sent = false;       // END_STREAM went to the session
  bool head_end = false;       // the answer had no body: its HTTP/1.1 form is complete
  bool closed = false;         // the session ended the stream (end below)
  bool never_processed = false;  // the upstream never processed it (GOAWAY, REFUSED_STREAM)
  h2::StreamEnd end{};
  http::ChunkedDecoder req_chunks;  // the exchange frames a body without length as chunked
  core::ByteQueue resp;        // the answer in HTTP/1.1 form, not yet read by the exchange
  uint64_t unconsumed = 0;     // DATA bytes received and not yet given back to the windows
  uint32_t conn_gen = ~0u;     // the connection's generation while the stream is on it
  void Reset(core::BlockPool* blocks) noexcept {
    resp.Clear(blocks);
    id = 0;
    submitted = end_sent = head_end = closed = never_processed = false;
    end = h2::StreamEnd{};
    req_chunks.Reset();
    unconsumed = 0;
    conn_gen = ~0u;
  }
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
};

}  // namespace hms::proxy
