// The HTTP/2 downstream (docs/http2.md, docs/engine.md "HTTP/2 streams"): a
// connection whose client speaks h2 (ALPN on TLS, the preface on plain
// listeners) carries one h2::ServerSession, driven over the connection's own
// input and output like the HTTP/1.1 parser is; each of its streams is an
// exchange in a slot of the core's Client slab that has no socket of its own
// (`Client::parent` names the connection), so routing, stamps, retries,
// deadlines and the upstream side run unchanged.
//
// H2Conn is the session's Handler (one per h2 connection, made at the switch
// like a TLS session is); H2Stream is the Downstream of a stream's exchange.
// Both belong to one core's Worker, touched by its thread only.
#pragma once

#include <cstddef>
#include <cstdint>

#include "hms/core/block_pool.h"
#include "hms/h2/server_session.h"
#include "hms/http/parser.h"
#include "src/proxy/chunked_tail.h"
#include "src/proxy/connection.h"
#include "src/proxy/downstream.h"

namespace hms::proxy {

class Worker;

// The client preface (RFC 9113 §3.4): a plain connection that starts with it
// speaks h2c with prior knowledge.
inline constexpr char kH2Preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
inline constexpr size_t kH2PrefaceLen = sizeof kH2Preface - 1;

// What the first bytes of a plain connection say: the h2 preface, HTTP/1.1,
// or too few bytes to tell (n < 24 and a prefix of the preface).
enum class PrefaceSniff : uint8_t { kH2, kHttp1, kNeedMore };
PrefaceSniff SniffPreface(const char* p, size_t n) noexcept;

// A stream's response bytes queued in its session and not yet taken by
// nghttp2 (the client's windows) past which the exchange stops reading its
// upstream: one upstream read's worth, so a slow h2 client slows its upstream
// instead of filling the gateway.
inline constexpr size_t kStreamMaxQueued = 64 * 1024;

struct H2Stream final : Downstream {
  Worker* worker = nullptr;
  uint32_t slot = kNone;  // the stream's own Client slot
  uint32_t conn = kNone;  // its connection's slot
  int32_t id = 0;
  // The request body as it arrived, framed for the HTTP/1.1 upstream
  // (chunked when the head had no content-length), waiting for room there.
  // Bounded by the stream's flow-control window: DATA counts against it
  // until forwarded (`unconsumed` bytes not yet given back).
  core::ByteQueue body;
  size_t unconsumed = 0;
  // The answer, written by the exchange in HTTP/1.1 form: its head is read
  // back once (Commit), its body unframed as the head says.
  bool head_sent = false;
  bool ended = false;  // END_STREAM (or trailers) submitted
  http::BodyKind resp_body = http::BodyKind::kNone;
  uint64_t resp_remaining = 0;
  http::ChunkedDecoder chunks;
  // A chunked answer's framing since its last data: at its end, its trailers.
  ChunkedTail tail;
  // The request head while a fleet-scope limit waits for Redis (redis_link.h
  // FleetLink::Park): a stream's head lives in no input to be parsed again, so a
  // copy (the RequestHead, its bytes behind it) stays here until the answer
  // comes and admission runs again from it (Worker::ResumeStream).
  core::Block* parked_head = nullptr;
  // Extended CONNECT (RFC 8441): the Sec-WebSocket-Key made for the
  // upstream's handshake (an h2 client sends none), which the head points to.
  char ws_key[24];

  void Clear(core::BlockPool* blocks) noexcept;

  // Downstream (h2_down.cc).
  char* Reserve(size_t n) noexcept override;
  void Commit(size_t n) noexcept override;
  void Send(const char* p, size_t n) noexcept override;
  bool Full() const noexcept override;
  void CloseAfterAnswer() noexcept override {}  // the connection goes on
  bool closing() const noexcept override { return false; }
  void Abort() noexcept override;
  void Drop() noexcept override { Abort(); }
  void Continue() noexcept override;
  void ResumeBody() noexcept override;
  bool OwesBody() const noexcept override;
  void Finish(bool reusable) noexcept override;
};

struct H2Conn final : h2::Handler {
  H2Conn(Worker* w, uint32_t conn_slot, const h2::ServerConfig* config, h2::MemPool* pool,
         core::BlockPool* blocks, h2::Counters* counters)
      : worker(w), slot(conn_slot), session(config, this, pool, blocks, counters) {}

  Worker* worker;
  uint32_t slot;  // the connection's Client slot
  h2::ServerSession session;

  void OnRequest(h2::ServerSession& s, int32_t id, const http::RequestHead& head,
                 bool end_stream) override;
  void OnRefused(h2::ServerSession& s, int32_t id, const policy::Answer& answer) override;
  void OnData(h2::ServerSession& s, int32_t id, uint64_t tag, const char* p, size_t n) override;
  void OnRequestEnd(h2::ServerSession& s, int32_t id, uint64_t tag, const http::Header* trailers,
                    uint16_t count) override;
  void OnSendable(h2::ServerSession& s, int32_t id, uint64_t tag) override;
  void OnStreamClose(h2::ServerSession& s, int32_t id, uint64_t tag, h2::ErrorCode code) override;
};

}  // namespace hms::proxy
