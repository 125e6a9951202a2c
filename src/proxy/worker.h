// Worker: one core's event loop and its connection state machines (DESIGN
// §4, §6; docs/engine.md "A request's path through the engine").
//
// Owned by the Engine, run on its own pinned thread; after Run() starts every
// member is touched by that thread only, except `mailbox_` (producers push)
// and `metrics_` (the admin thread reads relaxed atomics).
//
// The loop, completion dispatch, slabs, mailbox and timers are worker.cc;
// snapshot adoption (and the per-core state sized for a snapshot) is
// snapshot_adoption.cc, the drain drain.cc; each state machine is a file of
// its own, declared below in its group:
// the downstream connection (downstream.cc), the exchange (exchange.h,
// exchange.cc) and its admission (admission.h, admission.cc), the upstream
// connection (upstream.cc) and its pool (pool.cc); what both connection
// kinds share is connection.h and tls_io.cc. Three rooms are objects of
// their own, members at the end, given a CoreContext (core_context.h: the
// ring, buffers, blocks, inputs, timers, metrics, time, config) instead of
// the Worker: the fleet's Redis link (FleetLink, redis_link.h), the active
// health checks (HealthChecker, health.h) and the exchange's accounting at
// its end, with the access-log and span rings (ExchangeRecorder,
// recorder.h). The Worker only routes their completions and timers to them,
// asks the fleet link at admission, and hands the recorder each exchange
// that ends with its Caller (CallerOf).
//
// The exchange reaches its two sides only through narrow calls: its
// Downstream (downstream.h; Down) and, per attempt, its UpstreamLeg
// (upstream_leg.h; Leg). The upstream room hands it the answer as events by
// the exchange's slot (OnAnswerHead, OnAnswerBody, OnAnswerEnd,
// OnAttemptFailed), never as bytes to parse.
//
// A downstream connection ("client") carries at most one exchange at a time;
// pipelined requests wait in its input and are answered in order. An HTTP/2
// connection carries none itself: each of its streams is a Client slot of its
// own, without a socket, whose exchange answers through an H2Stream
// (h2_down.h). An upstream connection serves one exchange at a time (with
// upstream_pipeline_depth > 1, others may wait behind it) and is parked in the
// core's per-endpoint idle pool otherwise; an HTTP/2 upstream connection
// carries many, each a stream slot whose leg is an H2UpStream (h2_up.h).
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "hms/auth/jwt.h"
#include "hms/config/snapshot.h"
#include "hms/core/block_pool.h"
#include "hms/core/clock.h"
#include "hms/core/mailbox.h"
#include "hms/core/ring.h"
#include "hms/core/slab.h"
#include "hms/core/timer_wheel.h"
#include "hms/h2/limits.h"
#include "hms/h2/mem_pool.h"
#include "hms/h2/server_session.h"
#include "hms/http/parser.h"
#include "hms/http/path.h"
#include "hms/obs/log_ring.h"
#include "hms/obs/metrics.h"
#include "hms/obs/span.h"
#include "hms/obs/trace.h"
#include "hms/policy/backoff.h"
#include "hms/policy/fault.h"
#include "hms/policy/lease.h"
#include "hms/policy/rate_limit.h"
#include "hms/policy/retry.h"
#include "hms/policy/retry_budget.h"
#include "hms/tls/session.h"
#include "src/proxy/connection.h"
#include "src/proxy/core_context.h"
#include "src/proxy/downstream.h"
#include "src/proxy/exchange.h"
#include "src/proxy/h2_down.h"
#include "src/proxy/h2_liveness.h"
#include "src/proxy/h2_up.h"
#include "src/proxy/head_rewrite.h"
#include "src/proxy/health.h"
#include "src/proxy/recorder.h"
#include "src/proxy/redis_link.h"
#include "src/proxy/upstream_leg.h"

namespace hms::proxy {

// After a response that ends the connection we half-close and read (and drop)
// what the client still sends for this long, so a reset does not destroy the
// response in flight (the lingering close of nginx and Apache).
inline constexpr uint64_t kLingerMs = 1000;
// At the drain deadline every connection still open is closed at once; the
// core then waits this long at most for the kernel to return their last
// operations (a shutdown ends them within a pass) before it stops.
inline constexpr uint64_t kDrainGraceMs = 200;
// After a handover, a keep-alive connection idle at the drain gets this long
// to send its next request (answered with Connection: close) before it is
// closed: a client that wrote a request just as the drain began must not
// find its connection closed under it (RFC 9112 §9.6's race).
inline constexpr uint64_t kHandOverIdleMs = 1000;
// Pooled upstream connections close after this long idle: below the 5 s
// keep-alive of common upstream servers (uvicorn, gunicorn), so we close first
// instead of racing their close with a new request.
inline constexpr uint64_t kUpstreamIdleMs = 4000;
// Metrics key for requests that matched no route (404, 405, framing errors).
inline constexpr uint32_t kNoRouteKey = 0xffffffffu;

// What a listener is for: the edge gateway's routes, or a sidecar's inbound
// (to its local service) or egress (from it to other services) listener.
enum class ListenerKind : uint8_t { kEdge, kInbound, kEgress };

class Worker;
struct StampTools;

// An HTTP/1.1 downstream connection; as the Downstream of its exchange it
// queues the answer in `out` and lists itself for the pass's flush. The same
// slot type serves an HTTP/2 connection (`h2` set: its session reads `in` and
// writes `out`) and each of its streams (`parent` set, no socket: the
// exchange answers through `stream`).
struct Client : Connection, Downstream {
  // kTunnel: a WebSocket's bytes, both ways, after the upstream's 101 (tunnel.cc).
  enum class State : uint8_t { kFree, kHead, kBody, kAwaitResponse, kTunnel, kClosing };
  // How a closing connection goes: send what is queued, then half-close and
  // read-and-drop for a moment (so a reset does not destroy the response),
  // then close for good once no operation is in flight.
  enum class Phase : uint8_t { kOpen, kFlush, kLinger, kHard };
  State state = State::kFree;
  Phase phase = Phase::kOpen;
  // While the connection is open but not reading (input held, or the peer's
  // FIN read with an exchange still running), a multishot poll for
  // POLLERR|POLLHUP watches for the peer's reset, so a client that resets
  // frees at once what it holds instead of when its exchange ends
  // (Worker::WatchClient).
  bool watch_armed = false;
  bool watch_cancelling = false;
  bool close_after_flush = false;
  bool eof = false;
  uint16_t listener = 0;
  uint8_t peer_len = 0;
  char peer[46];              // client IP as text, for X-Forwarded-For
  core::Timer timer;     // idle, header and linger timeouts
  Exchange ex;
  Worker* worker = nullptr;  // the core's, for the Downstream calls (set at accept)
  uint32_t slot = kNone;     // this connection's slot in the core's slab

  // Downstream (downstream.cc).
  char* Reserve(size_t n) noexcept override;
  void Commit(size_t n) noexcept override;
  void Send(const char* p, size_t n) noexcept override;
  bool Full() const noexcept override { return queued() >= kMaxQueued; }
  void CloseAfterAnswer() noexcept override { close_after_flush = true; }
  bool closing() const noexcept override { return close_after_flush; }
  void Abort() noexcept override;
  void Drop() noexcept override;
  void Continue() noexcept override;
  void ResumeBody() noexcept override;
  bool OwesBody() const noexcept override;
  void Finish(bool reusable) noexcept override;
  bool sniffed = false;  // a TLS listener's first byte was looked at (plain HTTP?)

  // HTTP/2 (h2_down.cc): the connection's session, made when the client
  // turns out to speak h2; for a stream, its connection and its Downstream.
  std::unique_ptr<H2Conn> h2;
  uint32_t parent = kNone;
  H2Stream stream;
  // A fleet-scope request parked for Redis's answer (redis_link.h) carries
  // the answer into its second parse.
  FleetPass fleet_pass = FleetPass::kNone;
  bool fleet_parked = false;  // in the core's wait queue: its head is not parsed meanwhile
  uint32_t fleet_retry_s = 0;
};

// An HTTP/1.1 upstream connection; as the UpstreamLeg of the exchange it
// serves it queues the request in `out` and lists itself for the pass's
// flush. The same slot type serves an HTTP/2 connection (`h2` set: its
// session reads `in` and writes `out`) and each of its streams (`h2_parent`
// set, no socket: the exchange's leg is `h2s`).
struct Upstream : Connection, UpstreamLeg {
  enum class State : uint8_t { kFree, kConnecting, kBusy, kIdle, kClosing };
  State state = State::kFree;
  uint32_t endpoint_id = 0;
  uint32_t client = kNone;  // the client slot whose exchange uses it
  bool connect_inflight = false;
  bool reused = false;      // came from the idle pool
  bool got_bytes = false;   // a response byte arrived for the current exchange
  // The current exchange took the answer's head: what follows is its body
  // (or a tunnel's bytes), and the close may be its end.
  bool answering = false;
  Worker* worker = nullptr;  // the core's, for the UpstreamLeg calls
  uint32_t slot = kNone;     // this connection's slot in the core's slab
  bool eof = false;         // a tunnel's upstream sent its FIN: the recv is not armed again
  // The upstream closed while bytes of its answer were still held (the
  // client was behind): the close is read once they are relayed.
  bool eof_held = false;
  // Pipelining (upstream_pipeline_depth > 1): `client` is the exchange whose
  // response is being read; `waiting` are those whose requests went out after
  // it, answered in that order. kNone marks one whose client left meanwhile.
  static constexpr uint32_t kMaxPipeline = 16;
  uint32_t waiting[kMaxPipeline];
  uint8_t waiting_head = 0;
  uint8_t waiting_count = 0;
  bool pipelined = false;  // carries only bodiless GET/HEADs: others may queue behind
  bool no_reuse = false;   // a queued exchange left: close after the current answer
  uint32_t pool_next = kNone;
  uint32_t pool_prev = kNone;
  core::Timer timer;
  // mTLS to a mesh endpoint (docs/tls.md): the request waits in `out` until
  // the handshake is done.
  bool mtls = false;        // the endpoint takes mTLS only
  bool tls_saved = false;   // this connection's session was kept for the next one
  // HTTP/2 (h2_up.h): an h2c/h2 connection's session; for a stream (no
  // socket), its connection and its side.
  std::unique_ptr<H2UpConn> h2;
  uint32_t h2_parent = kNone;
  H2UpStream h2s;

  // UpstreamLeg (upstream.cc, pool.cc).
  void Send(const char* p, size_t n) noexcept override;
  bool Full() const noexcept override { return queued() >= kMaxQueued; }
  void Resume() noexcept override;
  void Release(bool reusable) noexcept override;
  void Abandon(uint32_t exchange) noexcept override;
  bool Sending() const noexcept override { return send_inflight || !out.empty(); }
  bool HoldsInput() const noexcept override {
    return !in.empty() || cipher_in.held_head != kNone;
  }
  bool ShutSend(bool* notified) noexcept override;
  void StopReading() noexcept override { eof = true; }
};

class Worker {
  friend struct Client;  // its Downstream calls queue, flush and close through the core
  friend struct H2Stream;  // the same for a stream of an HTTP/2 connection
  friend struct H2Conn;    // the session's events reach the core's exchanges
  friend struct H2UpConn;  // an upstream session's events reach its streams
  friend struct Upstream;  // its UpstreamLeg calls queue, pump and release through the core
  friend struct H2UpStream;  // the same for a stream of an HTTP/2 upstream

 public:
  // `listen_of[i]`: the listener index listen_fds[i] belongs to (a core may
  // accept from several members of one group after an upgrade).
  Worker(uint32_t index, uint32_t cores, const config::GatewayConfig& config,
         std::vector<int> listen_fds, std::vector<uint16_t> listen_of, int cpu);
  ~Worker();

  // With `redis:` in the config, before Start: the password (read from
  // password_file) and the TLS context (null for plain TCP).
  void SetRedis(const std::string& password, std::shared_ptr<const tls::ClientContext> tls) {
    fleet_.Configure(password, std::move(tls));
  }
  // Starts the thread; returns once the ring is set up (or failed: -errno).
  int Start(config::Snapshot* snapshot);
  void Join();
  // Serves `fd`, a connected stream socket, as if this core had accepted it
  // on listener `listener` (Engine::Adopt). Any thread; false when the
  // mailbox is full (try again).
  bool Adopt(int fd, uint16_t listener);
  core::Mailbox& mailbox() { return mailbox_; }
  const obs::CoreMetrics& metrics() const { return metrics_; }
  // This core's access-log lines (null when the config has no access_log).
  obs::LogRing* access_log() { return recorder_.access_log(); }
  // This core's spans (null unless mesh-config's tracing exports them).
  obs::SpanRing* spans() { return recorder_.spans(); }

 private:
  enum Op : uint8_t {
    kOpAccept = 1, kOpRecvClient, kOpSendClient, kOpRecvUp, kOpSendUp, kOpConnectUp, kOpWake,
    kOpIgnore, kOpHealth, kOpWatchClient, kOpRedis
  };
  enum TimerKind : uint8_t {
    kTimerClient = 1, kTimerUpstream, kTimerExchange, kTimerHealth, kTimerDrain, kTimerRedis
  };

  void Run();
  int SetUp();
  void Loop();
  void HandleCqe(io_uring_cqe* cqe);
  // The completion's generation is that of the object it names (else stale).
  bool Current(uint8_t op, uint32_t slot, uint32_t gen) const;
  void DrainMailbox();
  // The drain message: stops accepting and closes what is idle (handed_over:
  // the sockets stay open for the new process; idle connections get
  // kHandOverIdleMs first).
  void BeginDrain(bool handed_over);
  // The drain deadline: closes every connection still open, at once.
  void CloseEverything();
  // The drain timer: at the deadline CloseEverything, then the grace's end.
  void OnDrainTimer();
  // After the loop: lets go of what connections still hold (the process exits).
  void ReleaseAll();
  void OnTimer(core::Timer* t);
  void OnClientTimer(uint32_t slot);
  void OnExchangeTimer(uint32_t slot);
  void FlushDirty();
  void FlushClients();
  void FlushUpstreams();
  // Arms a multishot recv into the provided-buffer ring.
  template <typename Conn>
  void ArmRecv(Conn& c, uint8_t op, uint32_t slot);
  // Stops the recv while held input waits (buffers stay in the ring for the
  // other connections), re-arms it once the input is consumed.
  template <typename Conn>
  void PauseOrResume(Conn& c, uint8_t op, uint32_t slot);
  // Cancels the operation op/gen/slot; its final completion still arrives.
  void Cancel(uint8_t op, uint32_t gen, uint32_t slot);
  // Queues one send of everything in the connection's wire() queue (SEND_ZC
  // from zero_copy_min_bytes).
  template <typename Conn>
  void QueueSend(Conn& c, uint8_t op, uint32_t slot);

  // TLS on a connection (tls_io.cc). TlsReceive gives the held ciphertext to
  // the session: the handshake first, then decrypted bytes into `in`'s block
  // while it has room. TlsSeal moves `out` into `cipher_out`.
  enum class TlsStep : uint8_t { kIdle, kProgress, kHandshakeDone, kEof, kFailed };
  template <typename Conn>
  TlsStep TlsReceive(Conn& c, uint32_t slot);
  template <typename Conn>
  bool TlsSeal(Conn& c);
  // A TLS client's input: handshake, decrypt, parse, until nothing moves.
  void PumpClientTls(uint32_t slot);
  void OnClientHandshake(uint32_t slot);
  // Answers plain HTTP sent to a TLS listener in the clear, then closes.
  void RefusePlainHttp(uint32_t slot);
  // mTLS to an upstream sidecar: starts the handshake once connected (false
  // when it cannot: the attempt failed), and checks the peer is the
  // service's identity when it ends.
  bool StartUpstreamTls(uint32_t up);
  void PumpUpstreamTls(uint32_t up);
  bool OnUpstreamHandshake(uint32_t up);
  // The upstream closed (FIN or close_notify).
  void OnUpstreamEof(uint32_t up);
  void AdoptSnapshot(config::Snapshot* s);
  void ReleaseHold(SnapshotHold* h);
  void SizeStateFor(const config::Snapshot& s);

  // The downstream connection (downstream.cc): HTTP/1.1 server side.
  void ArmAccept(uint16_t socket);
  void OnAccept(uint16_t socket, int res, uint32_t flags);
  // A new connection on `listener`, accepted or adopted: a slot, its reading.
  void AcceptClient(int fd, uint16_t listener);
  // A slot of the client slab, set up for a connection's start (or, with
  // fd -1, an h2 stream's).
  uint32_t NewClient(int fd, uint16_t listener);
  void SetClientTimer(uint32_t slot);
  void OnClientRecv(uint32_t slot, int res, uint32_t flags);
  // The client closed its sending side, by a FIN or a TLS close_notify, on
  // a connection that is not closing: a tunnel passes it on, an idle
  // connection closes, an exchange in flight is answered first.
  void OnClientEof(uint32_t slot);
  // Arms or cancels the reset watch as the connection's state needs it.
  void WatchClient(uint32_t slot);
  void OnClientWatch(uint32_t slot, int res, uint32_t flags);
  void PumpClient(uint32_t slot);
  int64_t ConsumeClient(uint32_t slot, const char* p, size_t n);
  void OnClientSent(uint32_t slot, int res);
  // The request body is unfinished and the gateway holds none of its bytes
  // back (nothing waits for room toward the upstream): the client is behind.
  bool ClientOwesBody(const Client& c) const;
  // The client closed its sending side (FIN or close_notify) during an
  // exchange. True when that ended the exchange: a body it can no longer
  // finish is answered 400 at once, counted against no one.
  bool EndAbandonedUpload(uint32_t slot);
  void RejectRequest(uint32_t slot, const policy::Answer& answer);
  // graceful: flush the queue and linger first; else close at once.
  void CloseClient(uint32_t slot, bool graceful);
  void MaybeFreeClient(uint32_t slot);

  // The HTTP/2 downstream (h2_down.cc; h2_down.h). StartH2 gives the
  // connection its session (false when none can be made: the caller closes);
  // ConsumeH2 hands it the client's bytes; FlushH2 moves what it has to send
  // into the connection's queue (false when the session is over and the
  // connection was closed).
  bool StartH2(uint32_t slot);
  int64_t ConsumeH2(uint32_t slot, const char* p, size_t n);
  bool FlushH2(uint32_t slot);
  // The session's events (H2Conn), by the connection's slot.
  void OnH2Request(uint32_t conn, int32_t id, const http::RequestHead& head, bool end_stream);
  void OnH2Refused(uint32_t conn, int32_t id, const policy::Answer& answer);
  void OnH2Data(uint32_t conn, int32_t id, uint64_t tag, const char* p, size_t n);
  void OnH2RequestEnd(uint32_t conn, uint64_t tag, const http::Header* trailers, uint16_t count);
  void OnH2Sendable(uint64_t tag);
  void OnH2StreamClose(uint64_t tag);
  // A stream's slot: made for a head (kNone when the core is full), found
  // from a session's tag (kNone when it ended meanwhile), and let go.
  uint32_t NewStream(uint32_t conn, int32_t id);
  uint32_t StreamOf(uint64_t tag) const;
  void FreeStream(uint32_t slot);
  // Feeds a stream's held request body to its exchange.
  void PumpStream(uint32_t slot);
  // A stream parked for a fleet-scope limit (redis_link.cc): its head (req_)
  // copied into a block it owns (false when it does not fit one: the
  // fallback decides it then), and admission run again from that copy once
  // Redis answered.
  bool KeepStreamHead(uint32_t slot);
  void ResumeStream(uint32_t slot);
  // The connection an exchange's slot belongs to (itself unless a stream).
  Client& ConnOf(Client& c) { return c.parent == kNone ? c : clients_[c.parent]; }
  const Client& ConnOf(const Client& c) const {
    return c.parent == kNone ? c : clients_[c.parent];
  }
  // The Downstream an exchange answers through.
  static Downstream& Down(Client& c) {
    return c.parent == kNone ? static_cast<Downstream&>(c) : c.stream;
  }

  // The exchange (exchange.cc; its State in exchange.h).
  int64_t StartExchange(uint32_t slot, size_t head_len);
  void BeginExchange(uint32_t slot, size_t head_len);
  int64_t ForwardRequestBody(uint32_t slot, const char* p, size_t n);
  // Answers the exchange from the fault table (policy::AnswerFor): status,
  // x-hms-reason, a JSON body naming the rule; `extra_header` holds whole
  // "name: value\r\n" fields.
  void LocalResponse(uint32_t slot, const policy::Answer& answer, bool close,
                     const char* extra_header = nullptr);
  // Tells the service's breaker how the request went (once per request): the
  // one place where an outcome reaches it, judged by policy::Classify. An
  // outcome not counted leaves the breaker as it was, but a probe that ends
  // so gives its slot back.
  void ReportOutcome(Exchange& ex, policy::Fault fault);
  // Tells the endpoint of the current attempt how it went (outlier ejection),
  // by the same table as the breaker.
  void ReportEndpoint(const Exchange& ex, policy::Fault fault);
  // The service's breaker is not closed (open or half-open).
  bool BreakerOpen(const Exchange& ex);
  // A policy retry of the client's exchange (DESIGN §5): when every rule
  // allows it (a fault that another attempt may help, attempts left,
  // idempotent or never reached the upstream, body kept, breaker closed, time
  // left after the backoff, the retry budget), counts it and arms the
  // backoff; the attempt starts when it expires. The caller has detached (or
  // will detach) the failed attempt's upstream.
  // The rules are policy::DecideRetry's; this gathers its input and carries
  // out the decision: a transparent retry starts at once, a policy retry
  // (if the retry budget allows) arms the backoff. `stale_pooled`: the
  // attempt ran on a pooled connection that gave no byte of an answer.
  // `never_processed`: an HTTP/2 upstream said it never processed the
  // request (GOAWAY above its stream, REFUSED_STREAM).
  bool ScheduleRetry(uint32_t slot, policy::Fault fault, bool stale_pooled = false,
                     bool never_processed = false);
  // Lets go of the exchange's upstream leg without an answer
  // (UpstreamLeg::Abandon): closed, or, when queued behind another exchange,
  // left to serve that one; a stream is reset.
  void DetachUpstream(uint32_t slot);
  // The UpstreamLeg carrying the exchange's attempt (null between attempts).
  UpstreamLeg* Leg(const Exchange& ex) {
    if (ex.upstream == kNone) return nullptr;
    Upstream& u = upstreams_[ex.upstream];
    return u.h2_parent == kNone ? static_cast<UpstreamLeg*>(&u) : &u.h2s;
  }
  const UpstreamLeg* Leg(const Exchange& ex) const {
    return const_cast<Worker*>(this)->Leg(ex);  // one body for both; nothing is changed
  }
  // The answer, as the upstream room hands it over by the exchange's slot
  // (exchange.cc). OnAnswerHead: a final head (or a 101), judged (retry,
  // breaker, the sidecar's local-service-down, a gRPC trailers-only failure)
  // and written to the Downstream; false when the attempt was let go (its leg
  // released, retried or failed), true when its body (or a tunnel) follows or
  // it is complete already. `r` is read only until the leg is let go.
  bool OnAnswerHead(uint32_t slot, const http::ResponseHead& r);
  // Body bytes as the upstream framed them (or a tunnel's): consumed, or
  // kBlocked while the Downstream is full (UpstreamLeg::Resume goes on).
  int64_t OnAnswerBody(uint32_t slot, const char* p, size_t n);
  // The upstream closed after the head: the end of a body its close
  // delimits, a tunnel's FIN, else an answer cut short.
  void OnAnswerEnd(uint32_t slot);
  // The attempt failed (its leg is let go already): retry when allowed, else
  // answer from the fault table.
  void OnAttemptFailed(uint32_t slot, const AttemptFailure& f);
  // The upstream's send drained (`drained`: nothing of the request waits):
  // the request body (or a tunnel's bytes) may move again.
  void OnLegSent(uint32_t slot, bool drained);
  // Reserves and writes the client's response head for `r`; the bytes
  // written (to commit), or 0 when it does not fit a block.
  size_t WriteResponseHead(const Exchange& ex, const http::ResponseHead& r, Downstream& down,
                           const HopByHop& hop_by_hop, bool dechunk, bool close);
  // The answer's head judged retryable or not; false when the attempt ended.
  bool JudgeAnswer(uint32_t slot, const http::ResponseHead& r);
  // Relays the answer's body to `down` (its framing undone for an HTTP/1.0
  // client); kBlocked while `down` is full.
  int64_t ForwardResponseBody(uint32_t slot, Exchange& ex, Downstream& down, const char* p,
                              size_t n);
  // The answer is whole: the leg goes back (UpstreamLeg::Release), the
  // exchange ends.
  void FinishAnswer(uint32_t slot);
  // The answer cannot be used: the leg is let go and the attempt failed.
  void RejectAnswer(uint32_t slot, policy::Fault answer, std::string_view detail = {});
  void FinishExchange(uint32_t slot);
  void EndExchange(uint32_t slot);

  // The admission pipeline (admission.cc): the steps of StartExchange. Each
  // that may refuse returns kNone or the fault, with the answer in refusal_
  // (Refuse); AnswerRefusal sends it.
  struct RouteChoice {
    uint32_t target = 0;             // index into the snapshot's routes
    std::string_view origin;         // the request-target sent upstream
    std::string_view egress_to;      // egress: the service, sent as Host
    std::string_view peer_id;        // the caller's verified identity (mTLS), else empty
  };
  policy::Fault ResolveRoute(uint32_t slot, RouteChoice* choice);
  policy::Fault Admit(uint32_t slot, const RouteChoice& choice, const HopByHop& hop_by_hop);
  // Applies the field-name rules (underscores_in_headers) to the request head
  // in req_: counts and notes the fields that will not go upstream, or
  // answers 400 under `reject`. False when the request was answered.
  policy::Fault JudgeFieldNames(uint32_t slot);
  // The stamps' refusals (RunStamps, admission.h), with their answer in
  // refusal_: the JWT verdict (401/403, WWW-Authenticate), the rate limit
  // (429, Retry-After, RateLimit-*).
  policy::Fault RefuseToken(const config::Snapshot& snap, const config::Route& route,
                            const auth::Verdict& v);
  policy::Fault RefuseRate(const policy::RateDecision& d);
  // Fills the stamps' fleet-scope tools for the route `target` (redis_link.h):
  // Redis's answer to a parked request, the lease, or the fallback.
  void FleetTools(uint32_t slot, uint32_t target, StampTools* tools);
  // Admit parked the request: its exchange is undone and its head stays in
  // the connection's input, parsed again when Redis answers.
  void UnbeginExchange(uint32_t slot);
  bool WriteUpstreamHead(uint32_t slot, const RouteChoice& choice, const HopByHop& hop_by_hop);
  void SetDeadline(Exchange& ex, uint64_t timeout_ms, std::string_view caller_ms,
                   std::string_view caller_grpc = {});
  // gRPC calls (grpc_call.cc): the gateway's own answer as gRPC (HTTP 200,
  // trailers-only); the attempt's time into the head's grpc-timeout; the
  // status of an upstream's trailers-only failure.
  void WriteGrpcAnswer(Exchange& ex, Downstream& down, const policy::Answer& answer,
                       std::string_view trace_id, const char* extra_header);
  void FillGrpcTimeout(Exchange& ex, uint64_t attempt_ms);
  // A gRPC call's trailers-only failure: HTTP 200 without a body and a
  // grpc-status other than OK in the head (0 otherwise).
  static uint32_t GrpcFailureOf(const Exchange& ex, const http::ResponseHead& r);
  policy::Fault Refuse(policy::Fault fault, std::string_view detail = {});
  void AnswerRefusal(uint32_t slot);
  // A sidecar's inbound caller: its identity is in the service's allow_from
  // (an empty list admits any identity the mesh CA vouches for).
  static bool PeerAllowed(const config::Cluster& local, std::string_view identity);
  // The egress route a request names (by Host, else by its path's first
  // segment), the request-target to send upstream and the service's name.
  // False when it names no service.
  static bool SelectEgress(const config::Snapshot& snap, const http::RequestHead& r,
                           const http::CanonicalTarget& canon, uint32_t* target,
                           std::string_view* origin, std::string_view* service);

  // The upstream connection (upstream.cc): HTTP/1.1 client side.
  uint32_t NewUpstream(const config::Endpoint& ep);
  void OnConnect(uint32_t up, int res);
  void OnUpstreamRecv(uint32_t up, int res, uint32_t flags);
  void OnUpstreamSent(uint32_t up, int res);
  void PumpUpstream(uint32_t up);
  // Parses the answer: its head to the exchange (OnAnswerHead), then its
  // body (OnAnswerBody); a malformed one is a failed attempt.
  int64_t ConsumeUpstream(uint32_t up, const char* p, size_t n);
  // The attempt on `up` failed: the connection closes (the requests
  // pipelined behind it go elsewhere) and its exchange hears of it
  // (OnAttemptFailed) with the failure classified by the connection's state:
  // a connect (or handshake) that failed, a stale pooled connection, a
  // stream the upstream never processed, else a reset. `answer`'s row (its
  // message replaced by `detail` when given) answers a request that fails.
  void UpstreamFailed(uint32_t up, policy::Fault answer, std::string_view detail = {});
  void CloseUpstream(uint32_t up);
  void MaybeFreeUpstream(uint32_t up);

  // HTTP/2 toward upstreams (h2_up.cc; h2_up.h). AttachH2 gives the
  // exchange a stream slot on the endpoint's connection (opening one when
  // there is none, it is going away, or too many streams wait on it).
  uint32_t AttachH2(const config::Endpoint& ep, const config::Cluster& cl);
  // The connection is usable: its session starts, waiting streams open.
  void H2UpReady(uint32_t conn);
  // Opens what waits on the connection while the session takes streams.
  void SubmitWaiting(uint32_t conn);
  bool SubmitStream(uint32_t conn, uint32_t up);
  // Moves a stream's request bytes (the exchange's `out`) into the session.
  void FeedStream(uint32_t up);
  // The upstream's bytes on a connection, to its session.
  int64_t ConsumeH2Conn(uint32_t conn, const char* p, size_t n);
  // The session's events, after it returned: answers read, ends handled.
  void SettleH2Conn(uint32_t conn);
  // The stream's answer to the exchange: its head, then its body as the
  // client takes it.
  void PumpH2Stream(uint32_t up);
  // A stream the session ended before its answer was whole.
  void H2StreamFailed(uint32_t up);
  // The stream slot leaves its connection (reset if still open); the
  // connection closes when nothing is left on it and it is not the endpoint's.
  void DetachH2Stream(uint32_t up);
  // A connection closes: its streams fail (never opened ones as a failed connect).
  void CloseH2Conn(uint32_t conn);
  // The connection's one timer (h2_liveness.h): a liveness PING, a PING
  // unanswered too long (closed, counted), an idle connection (closed).
  H2LivenessVerdict H2Liveness(uint32_t conn) const;
  void ArmH2Liveness(uint32_t conn);
  void OnH2ConnTimer(uint32_t conn);
  // Keeps the answer's head (H2ResponseHead, h2_answer.h) in a block of the
  // stream's for the exchange; false when it cannot be read as an answer.
  bool KeepH2Head(Upstream& u, uint16_t status, const http::Header* fields, uint16_t count,
                  bool end_stream);
  Upstream* UpStreamOf(uint64_t tag);

  // Upstream connections for an exchange and the per-endpoint pool (pool.cc).
  // Gives the client's exchange an upstream connection (pooled or new) and
  // queues the request head on it. False when the exchange already ended.
  bool AttachUpstream(uint32_t slot, bool fresh);
  // Sends every exchange still waiting on `up` to a fresh connection (or
  // answers 502 when out of attempts); they got no byte of an answer yet.
  void RedirectWaiting(uint32_t up);
  // Moves the exchanges on `up` (the one being answered and those queued
  // behind it) along with their connection: kSending once it is usable (its
  // mTLS handshake done), kAwaitingHead once their whole request left.
  void FollowConnection(uint32_t up);
  void ReleaseUpstream(uint32_t up, bool reusable);
  void PoolPush(uint32_t up);
  void PoolRemove(uint32_t up);

  // The WebSocket tunnel (tunnel.cc; its state in tunnel.h, the handshake's
  // rules in websocket.h). JudgeWebSocket is an admission step: a malformed
  // upgrade (400/426 bad_websocket_upgrade) or one the route does not take
  // (403 websocket_not_enabled) is refused, a good one marks the exchange.
  policy::Fault JudgeWebSocket(uint32_t slot);
  // The upstream's 101 to an upgrade (OnAnswerHead): checked, sent on, and
  // both connections become the tunnel; or 502 upstream_bad_upgrade, never
  // retried (false: the leg was let go).
  bool OpenTunnel(uint32_t slot, const http::ResponseHead& r);
  // Bytes one way, bounded by kMaxQueued toward the receiver (kBlocked
  // until it has taken what is queued).
  int64_t TunnelToUpstream(uint32_t slot, const char* p, size_t n);
  int64_t TunnelToClient(uint32_t slot, const char* p, size_t n);
  // A side sent its FIN (or close_notify): that direction drains.
  void TunnelEof(uint32_t slot, bool from_client);
  // After a send, an EOF or input taken: shuts a drained direction, ends
  // the tunnel when both are.
  void TunnelProgress(uint32_t slot);
  // An h2 stream's FIN (extended CONNECT): END_STREAM behind its DATA.
  bool EndTunnelStream(uint32_t slot);
  // Passes a FIN on toward `conn` once its queue is sent (a TLS close_notify
  // first); true once done.
  template <typename Conn>
  bool ShutWrite(Conn& conn, uint32_t id, bool* notified);
  void OnTunnelIdle(uint32_t slot);

  // Used by every room.
  uint64_t Random() noexcept;
  // Lists the connection for this pass's flush (once).
  void MarkDirty(Client& c, uint32_t slot);
  void MarkDirty(Upstream& u, uint32_t up);
  // What the exchange's records say of its caller (recorder.h): its
  // connection's peer, mTLS identity, protocol and listener (downstream.cc).
  Caller CallerOf(const Client& c) const;

  // The fleet's Redis link and leases are a room of their own (FleetLink,
  // redis_link.h); this is its side of the exchanges, which it parks and
  // resumes by client slot (admission.cc).
  struct FleetExchanges final : ParkedRequests {
    explicit FleetExchanges(Worker& w) noexcept : worker(w) {}
    bool Park(uint32_t slot, uint32_t* gen) noexcept override;
    bool Waiting(uint32_t slot, uint32_t gen) const noexcept override;
    void Answer(uint32_t slot, FleetPass pass, uint32_t retry_s) noexcept override;
    Worker& worker;
  };

  http::RequestHead req_;            // scratch: the head being parsed
  // The canonical target of the request being started, when its path needed
  // work (http::CanonicalizeTarget); a target fits in max_header_bytes.
  std::unique_ptr<char[]> path_scratch_;
  size_t path_scratch_size_ = 0;
  http::PathOptions path_options_;   // gateway.yaml `paths:`
  http::ResponseHead resp_;
  // Scratch: the answer to the request being refused (one at a time; the
  // answer's message and token may point into it).
  struct Refusal {
    policy::Answer answer{};
    bool close = false;  // close after the answer even when the connection could go on
    char detail[200];
    char reason[48];
    char fields[512];    // whole extra header fields; "" for none
    policy::Fault fault = policy::Fault::kNone;  // the rule (its refined reason may not name it)
  } refusal_;
  // The fault of the local answer being written, when the reason alone does
  // not say it (a refusal's refined token): a gRPC answer's status follows it.
  policy::Fault answer_fault_ = policy::Fault::kNone;

  uint32_t index_;
  uint32_t cores_;
  config::GatewayConfig config_;  // the tuning this core was started with
  std::vector<int> listen_fds_;
  std::vector<uint16_t> listen_of_;          // [socket] → listener index
  std::vector<ListenerKind> listener_kind_;  // [listener]
  int cpu_;
  std::thread thread_;
  std::atomic<int> start_result_{1};

  core::Ring ring_;
  core::BufferRing buffers_;
  core::BlockPool blocks_;
  InputStore inputs_{buffers_, blocks_};  // what connections received and hold
  core::TimerWheel timers_;
  core::Mailbox mailbox_;
  obs::CoreMetrics metrics_;
  core::Instant now_ = 0;

  // HTTP/2 (h2_down.cc): nghttp2's and the sessions' memory (before the
  // slab: a session is destroyed before its pool; the sessions count into
  // metrics_.h2), each
  // listener's session config (null: h2 off there), and the scratch a
  // stream's answer head is written to and read back from.
  h2::MemPool h2_pool_;
  std::vector<std::shared_ptr<const h2::ServerConfig>> h2_config_;  // [listener]
  std::unique_ptr<char[]> h2_head_;
  http::ResponseHead h2_resp_;

  // HTTP/2 upstreams (h2_up.cc): the sessions' shared config, their
  // counters (metrics_.h2_up, on /metrics as hms_h2_*{side="upstream"}),
  // [endpoint id] → the connection new streams go to, and the connections
  // whose session had events in this Receive.
  std::shared_ptr<const h2::ClientConfig> h2_client_config_;
  h2::Counters& h2_up_counters_ = metrics_.h2_up;
  std::vector<uint32_t> h2_conn_;
  http::RequestHead h2_req_;  // scratch: a stream's request head, parsed back
  http::ResponseHead h2_up_resp_;  // scratch: a stream's answer head, for the exchange to read
  std::vector<uint32_t> h2_settle_;  // scratch: a connection's streams after its session ran

  core::Slab<Client> clients_;
  core::Slab<Upstream> upstreams_;
  std::vector<uint32_t> pool_head_;   // [endpoint id] → most recently idle upstream
  std::vector<uint32_t> pool_count_;  // [endpoint id]
  std::vector<bool> endpoint_live_;   // [endpoint id] in the current snapshot
  std::vector<uint32_t> busy_;        // [endpoint id] connections connecting or in use
  uint64_t rng_ = 0;                  // xorshift state: backoff jitter, least-request picks
  std::vector<uint32_t> coalesce_;    // [endpoint id] the connection this pass pipelines onto
  std::vector<uint32_t> coalesce_touched_;
  std::vector<uint32_t> rr_;          // [cluster index] round-robin cursor
  // [endpoint id] the last mTLS session with that endpoint: the next
  // connection resumes it (an abbreviated handshake, no certificate check).
  std::vector<std::unique_ptr<tls::SavedSession>> tls_saved_;
  std::vector<policy::CoreRateLimiter> limiters_;  // [route index] this core's view of each bucket
  bool admit_parked_ = false;  // Admit parked the request: StartExchange leaves its head unread
  std::unique_ptr<auth::JwtVerifier> verifier_;     // with the current snapshot's keys; its own cache
  auth::Claims claims_;                             // scratch: the claims of the token being checked
  int64_t now_unix_ = 0;                            // wall-clock seconds, read once per pass
  std::vector<uint32_t> dirty_clients_;
  std::vector<uint32_t> dirty_upstreams_;
  std::vector<uint32_t> repump_;      // clients whose input may progress after a send drained

  SnapshotHold* current_ = nullptr;
  std::vector<SnapshotHold*> holds_;  // current and retired snapshots still in use
  uint64_t wake_value_ = 0;
  uint32_t active_clients_ = 0;
  bool draining_ = false;
  bool handed_over_ = false;   // draining after an upgrade: accepted connections are served
  bool drain_forced_ = false;  // the deadline passed: everything was closed, the grace runs
  core::Timer drain_timer_;    // wakes the ring at the deadline, then at the grace's end
  bool stop_ = false;
  std::vector<bool> accept_armed_;

  // The rooms that are objects of their own, given the core's tools
  // (core_context.h) rather than the Worker: the fleet's Redis link with its
  // leases and parked requests (redis_link.h), the active health checks of
  // the services this core owns (health.h), the exchanges' accounting
  // (recorder.h). Last: they are bound to the members above.
  CoreContext core_{ring_,    buffers_, blocks_,   inputs_, timers_, metrics_,
                    now_,     config_,  draining_, rng_,    index_,  cores_};
  FleetExchanges fleet_exchanges_{*this};
  FleetLink fleet_{core_, fleet_exchanges_, kOpRedis, kTimerRedis};
  HealthChecker health_{core_, kOpHealth, kTimerHealth};
  ExchangeRecorder recorder_{core_};  // the exchanges' metrics, access-log lines and spans
};

}  // namespace hms::proxy
