// Worker: one core's event loop and connection state machines (DESIGN §4, §6).
//
// Owned by the Engine, run on its own pinned thread; after Run() starts every
// member is touched by that thread only, except `mailbox_` (producers push)
// and `metrics_` (the admin thread reads relaxed atomics).
//
// A downstream connection ("client") carries at most one exchange at a time;
// pipelined requests wait in its input and are answered in order. An upstream
// connection serves one exchange at a time (with upstream_pipeline_depth > 1,
// others may wait behind it) and is parked in the core's per-endpoint idle
// pool otherwise.
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
#include "hms/http/parser.h"
#include "hms/http/path.h"
#include "hms/obs/log_ring.h"
#include "hms/obs/metrics.h"
#include "hms/obs/span.h"
#include "hms/obs/trace.h"
#include "hms/policy/backoff.h"
#include "hms/policy/fault.h"
#include "hms/policy/rate_limit.h"
#include "hms/policy/retry.h"
#include "hms/policy/retry_budget.h"
#include "hms/tls/session.h"
#include "src/proxy/connection.h"

namespace hms::proxy {

class HopByHop;

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
// Request bodies up to this size are kept while they stream upstream, so a
// failed attempt can be retried (docs/resilience.md); a larger body is not
// retried once its first bytes left.
inline constexpr size_t kReplayMax = 64 * 1024;
// Spans a core's ring holds (about 2.5 MiB): at 50k sampled requests/s on one
// core, 80 ms of spans, four of the exporter's 20 ms passes.
inline constexpr size_t kSpanRingSlots = 4096;
// The request header carrying the time an attempt has left, in ms (written
// upstream on every attempt; read from callers, so a sidecar keeps within
// the gateway's deadline).
inline constexpr std::string_view kTimeoutHeader = "x-hms-timeout-ms";
inline constexpr size_t kTimeoutDigits = 10;

// A snapshot as seen by one core: the core's one reference plus the count of
// its exchanges still using it.
struct SnapshotHold {
  config::Snapshot* snapshot = nullptr;
  uint32_t inflight = 0;
};

// What a listener is for: the edge gateway's routes, or a sidecar's inbound
// (to its local service) or egress (from it to other services) listener.
enum class ListenerKind : uint8_t { kEdge, kInbound, kEgress };

// An active health check of one endpoint (docs/resilience.md), run by the
// one core that owns the endpoint's service: every interval a fresh
// connection sends `GET path` and reads the status line; the result goes to
// the endpoint's shared EndpointHealth, which every core reads when it picks.
struct HealthProbe {
  enum class State : uint8_t { kFree, kIdle, kConnecting, kSending, kReceiving };
  State state = State::kFree;
  uint32_t gen = 0;            // bumped when a check ends: late completions are ignored
  int fd = -1;
  bool wanted = false;         // still in the current snapshot (reconciliation)
  std::string key;             // service|address|path: what it checks
  std::shared_ptr<policy::EndpointHealth> health;
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  std::string request;
  config::HealthCheckConfig params;
  uint32_t ok_streak = 0, fail_streak = 0;
  uint32_t got = 0;
  char buf[128];
  core::Timer timer;           // the interval while idle, the timeout while checking
};

struct Exchange {
  bool active = false;
  SnapshotHold* hold = nullptr;
  const config::Route* route = nullptr;
  const config::Cluster* cluster = nullptr;
  uint32_t route_key = 0;
  http::Method method = http::Method::kOther;
  uint8_t version_minor = 1;
  bool client_keep_alive = true;
  // Request body still to forward.
  http::BodyKind req_body = http::BodyKind::kNone;
  uint64_t req_remaining = 0;
  http::ChunkedDecoder req_chunks;
  bool req_done = false;
  // Every body byte forwarded so far is kept in Client::replay (always true
  // without a body): a retry can send the request again.
  bool replayable = true;
  bool retryable = false;      // idempotent method, or an Idempotency-Key
  // Deadlines and retries.
  core::Instant deadline = 0;  // the route's timeout (or the caller's, if shorter)
  bool caller_deadline = false;  // the deadline is the caller's x-hms-timeout-ms, not the route's
  bool per_try_bound = false;  // the running attempt's timer is its per-try timeout
  bool backing_off = false;    // waiting for a retry: ex_timer is the backoff
  uint8_t retries_done = 0;    // policy retries made (not counting transparent ones)
  uint32_t timeout_field = 0;  // offset in `head` of the x-hms-timeout-ms value
  // For the access log.
  uint64_t bytes_in = 0;       // request head and body bytes consumed
  uint64_t bytes_out = 0;      // response bytes queued to the client
  char method_text[12];        // as sent (truncated)
  uint8_t method_len = 0;
  char reason[32];             // x-hms-reason of a local answer ("" for upstream answers)
  uint8_t reason_len = 0;
  // Request fields not forwarded for their names (underscores_in_headers),
  // and the first one's name (truncated), for the access log.
  uint8_t dropped_headers = 0;
  uint8_t dropped_name_len = 0;
  char dropped_name[48];
  // Upstream side.
  uint32_t upstream = kNone;
  core::Block* head = nullptr;  // the upstream request head, kept for a retry on a stale pooled connection
  uint8_t attempts = 0;
  uint32_t endpoint_index = 0;
  core::Instant attempt_start = 0;  // the current attempt's attach (upstream-side duration)
  // Response.
  bool resp_started = false;  // a byte of the response went into the client's queue
  bool resp_head_done = false;
  http::BodyKind resp_body = http::BodyKind::kNone;
  uint64_t resp_remaining = 0;
  http::ChunkedDecoder resp_chunks;
  bool dechunk = false;        // upstream sends chunked, client speaks HTTP/1.0
  bool resp_keep_alive = true;
  uint16_t status = 0;
  core::Instant start = 0;
  obs::TraceContext trace{};
  // A sampled exchange records a span at its end (span.cc); the Host it
  // came with is kept for it, the rest is in the exchange already.
  bool sampled = false;
  uint8_t host_len = 0;
  char host[64];
  // Stamps.
  policy::Breaker* breaker = nullptr;  // the service's, when the attempt was admitted
  bool probe = false;                  // this attempt is the half-open probe
  bool outcome_reported = false;       // the breaker heard this attempt's outcome
  bool rate_limited_route = false;     // the answer carries RateLimit-* fields
  policy::RateDecision rate{};
};

struct Client : Connection {
  enum class State : uint8_t { kFree, kHead, kBody, kAwaitResponse, kClosing };
  // How a closing connection goes: send what is queued, then half-close and
  // read-and-drop for a moment (so a reset does not destroy the response),
  // then close for good once no operation is in flight.
  enum class Phase : uint8_t { kOpen, kFlush, kLinger, kHard };
  State state = State::kFree;
  Phase phase = Phase::kOpen;
  // While the connection is open but not reading (input held, or the peer's
  // FIN read with an exchange still running), a poll for POLLERR|POLLHUP
  // watches for the peer's reset, so a client that resets frees at once what
  // it holds instead of when its exchange ends (Worker::WatchClient).
  bool watch_armed = false;
  bool watch_cancelling = false;
  bool close_after_flush = false;
  bool eof = false;
  uint16_t listener = 0;
  uint8_t peer_len = 0;
  char peer[46];              // client IP as text, for X-Forwarded-For
  core::Timer timer;     // idle, header and linger timeouts
  core::Timer ex_timer;  // the exchange's deadline
  Exchange ex;
  core::ByteQueue replay;  // the request body forwarded so far (Exchange::replayable)
  bool sniffed = false;  // a TLS listener's first byte was looked at (plain HTTP?)
};

struct Upstream : Connection {
  enum class State : uint8_t { kFree, kConnecting, kBusy, kIdle, kClosing };
  State state = State::kFree;
  uint32_t endpoint_id = 0;
  uint32_t client = kNone;  // the client slot whose exchange uses it
  bool connect_inflight = false;
  bool reused = false;      // came from the idle pool
  bool got_bytes = false;   // a response byte arrived for the current exchange
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
};

class Worker {
 public:
  // `listen_of[i]`: the listener index listen_fds[i] belongs to (a core may
  // accept from several members of one group after an upgrade).
  Worker(uint32_t index, uint32_t cores, const config::GatewayConfig& config,
         std::vector<int> listen_fds, std::vector<uint16_t> listen_of, int cpu);
  ~Worker();

  // Starts the thread; returns once the ring is set up (or failed: -errno).
  int Start(config::Snapshot* snapshot);
  void Join();
  core::Mailbox& mailbox() { return mailbox_; }
  const obs::CoreMetrics& metrics() const { return metrics_; }
  // This core's access-log lines (null when the config has no access_log).
  obs::LogRing* access_log() { return access_log_.get(); }
  // This core's spans (null unless mesh-config's tracing exports them).
  obs::SpanRing* spans() { return spans_.get(); }

 private:
  enum Op : uint8_t {
    kOpAccept = 1, kOpRecvClient, kOpSendClient, kOpRecvUp, kOpSendUp, kOpConnectUp, kOpWake,
    kOpIgnore, kOpHealth, kOpWatchClient
  };
  enum TimerKind : uint8_t {
    kTimerClient = 1, kTimerUpstream, kTimerExchange, kTimerHealth, kTimerDrain
  };

  void Run();
  int SetUp();
  void Loop();
  void HandleCqe(io_uring_cqe* cqe);
  void DrainMailbox();
  // The drain message: stops accepting and closes what is idle (handed_over:
  // the sockets stay open for the new process; idle connections get
  // kHandOverIdleMs first).
  void BeginDrain(bool handed_over);
  // The drain deadline: closes every connection still open, at once.
  void CloseEverything();
  // After the loop: lets go of what connections still hold (the process exits).
  void ReleaseAll();
  void OnTimer(core::Timer* t);
  void FlushDirty();
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

  // Accept and client side.
  void ArmAccept(uint16_t listener);
  void OnAccept(uint16_t listener, int res, uint32_t flags);
  void OnClientRecv(uint32_t slot, int res, uint32_t flags);
  void OnClientSent(uint32_t slot, int res);
  // Arms or cancels the reset watch as the connection's state needs it.
  void WatchClient(uint32_t slot);
  void OnClientWatch(uint32_t slot, int res);
  void PumpClient(uint32_t slot);
  int64_t ConsumeClient(uint32_t slot, const char* p, size_t n);
  int64_t StartExchange(uint32_t slot, size_t head_len);
  // The steps of StartExchange. Each that may refuse returns kNone or the
  // fault, with the answer in refusal_ (Refuse); AnswerRefusal sends it.
  struct RouteChoice {
    uint32_t target = 0;             // index into the snapshot's routes
    std::string_view origin;         // the request-target sent upstream
    std::string_view egress_to;      // egress: the service, sent as Host
    std::string_view peer_id;        // the caller's verified identity (mTLS), else empty
  };
  void BeginExchange(uint32_t slot, size_t head_len);
  policy::Fault ResolveRoute(uint32_t slot, RouteChoice* choice);
  policy::Fault Admit(uint32_t slot, const RouteChoice& choice, const HopByHop& hop_by_hop);
  policy::Fault AdmitRate(uint32_t slot, uint32_t target);
  bool WriteUpstreamHead(uint32_t slot, const RouteChoice& choice, const HopByHop& hop_by_hop);
  void SetDeadline(Exchange& ex, uint64_t timeout_ms, std::string_view caller_ms);
  policy::Fault Refuse(policy::Fault fault, std::string_view detail = {});
  void AnswerRefusal(uint32_t slot);
  int64_t ForwardRequestBody(uint32_t slot, const char* p, size_t n);
  void FinishExchange(uint32_t slot);
  // Answers the exchange from the fault table (policy::AnswerFor): status,
  // x-hms-reason, a JSON body naming the rule; `extra_header` holds whole
  // "name: value\r\n" fields.
  void LocalResponse(uint32_t slot, const policy::Answer& answer, bool close,
                     const char* extra_header = nullptr);
  // graceful: flush the queue and linger first; else close at once.
  void CloseClient(uint32_t slot, bool graceful);
  void EndExchange(uint32_t slot);
  // Appends the exchange's access-log line to this core's ring (or counts
  // it dropped when the ring is full).
  void LogAccess(const Client& c);
  // Applies the field-name rules (underscores_in_headers) to the request head
  // in req_: counts and notes the fields that will not go upstream, or
  // answers 400 under `reject`. False when the request was answered.
  policy::Fault JudgeFieldNames(uint32_t slot);
  // A sidecar's inbound caller: its identity is in the service's allow_from
  // (an empty list admits any identity the mesh CA vouches for).
  static bool PeerAllowed(const config::Cluster& local, std::string_view identity);
  // Spans (span.cc): marks a sampled exchange and keeps what its span needs
  // from the request head; at the exchange's end writes its span into this
  // core's ring (or counts it dropped when the ring is full).
  void StartSpan(Exchange& ex, const http::RequestHead& r);
  void RecordSpan(const Client& c);
  // JWT validation for routes with auth required/optional: kNone, or
  // kJwtRejected with the refusal (401/403, WWW-Authenticate) in refusal_.
  policy::Fault Authenticate(const config::Snapshot& snap, const config::Route& route);
  // The egress route a request names (by Host, else by its path's first
  // segment), the request-target to send upstream and the service's name.
  // False when it names no service.
  static bool SelectEgress(const config::Snapshot& snap, const http::RequestHead& r,
                           const http::CanonicalTarget& canon, uint32_t* target,
                           std::string_view* origin, std::string_view* service);
  // Tells the service's breaker how the request went (once per request): the
  // one place where an outcome reaches it, judged by policy::Classify. An
  // outcome not counted leaves the breaker as it was, but a probe that ends
  // so gives its slot back.
  void ReportOutcome(Exchange& ex, policy::Fault fault);
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
  bool ScheduleRetry(uint32_t slot, policy::Fault fault, bool stale_pooled = false);
  // The service's breaker is not closed (open or half-open).
  bool BreakerOpen(const Exchange& ex);
  // Tells the endpoint of the current attempt how it went (outlier ejection),
  // by the same table as the breaker.
  void ReportEndpoint(const Exchange& ex, policy::Fault fault);
  // The request body is unfinished and the gateway holds none of its bytes
  // back (nothing waits for room toward the upstream): the client is behind.
  bool ClientOwesBody(const Client& c) const;
  // The client closed its sending side (FIN or close_notify) during an
  // exchange. True when that ended the exchange: a body it can no longer
  // finish is answered 400 at once, counted against no one.
  bool EndAbandonedUpload(uint32_t slot);
  // Lets go of the exchange's upstream connection without an answer: closed,
  // or, when queued behind another exchange, left to serve that one.
  void DetachUpstream(uint32_t slot);
  // The endpoint for a new exchange: round robin, or least-request (the less
  // busy of two random endpoints, by this core's connections in use).
  uint32_t PickEndpoint(uint32_t cluster_index, const config::Cluster& cluster);
  uint64_t Random() noexcept;
  void RejectRequest(uint32_t slot, const policy::Answer& answer);
  void MaybeFreeClient(uint32_t slot);
  // Lists the connection for this pass's flush (once).
  void MarkDirty(Client& c, uint32_t slot);
  void MarkDirty(Upstream& u, uint32_t up);
  void SetClientTimer(uint32_t slot);

  // Upstream side.
  // Gives the client's exchange an upstream connection (pooled or new) and
  // queues the request head on it. False when the exchange already ended.
  bool AttachUpstream(uint32_t slot, bool fresh);
  void CompleteResponse(uint32_t up);
  // Sends every exchange still waiting on `up` to a fresh connection (or
  // answers 502 when out of attempts); they got no byte of an answer yet.
  void RedirectWaiting(uint32_t up);
  uint32_t NewUpstream(const config::Endpoint& ep);
  void OnConnect(uint32_t up, int res);
  void OnUpstreamRecv(uint32_t up, int res, uint32_t flags);
  void OnUpstreamSent(uint32_t up, int res);
  void PumpUpstream(uint32_t up);
  int64_t ConsumeUpstream(uint32_t up, const char* p, size_t n);
  // Reserves and writes the client's response head from resp_; the bytes
  // written (to commit), or 0 when it does not fit a block.
  size_t WriteResponseHead(Client& c, const HopByHop& hop_by_hop, bool dechunk, bool close);
  int64_t ForwardResponseBody(uint32_t up, Client& c, const char* p, size_t n);
  // The attempt on `up` failed before a usable response: retry elsewhere when
  // allowed, else answer the client with `answer`'s row (its message replaced
  // by `detail` when given). Breaker, ejection and retries classify the
  // failure by the connection's state: a connect (or handshake) that failed,
  // else a reset.
  void UpstreamFailed(uint32_t up, policy::Fault answer, std::string_view detail = {});
  void ReleaseUpstream(uint32_t up, bool reusable);
  void CloseUpstream(uint32_t up);
  void MaybeFreeUpstream(uint32_t up);
  void PoolPush(uint32_t up);
  void PoolRemove(uint32_t up);

  void Submit();

  // Active health checks (health.cc).
  // Starts the checks of the endpoints whose service this core owns in `s`,
  // and stops those no longer there.
  void ReconcileProbes(const config::Snapshot& s);
  void StartProbe(uint32_t i);
  void OnProbe(uint32_t i, int res);
  void OnProbeTimer(uint32_t i);
  void FinishProbe(uint32_t i, bool ok);
  void RetireProbe(uint32_t i);

  // Input handling shared by both sides. Consumers return bytes consumed, or
  // kBlocked when the connection cannot take input now (a response pending, or
  // the peer's queue full); 0 means "need more bytes".
  static constexpr int64_t kBlocked = -1;
  bool Stash(Input& in, const char* p, size_t n);
  void Hold(Input& in, uint16_t bid, uint32_t off, uint32_t len);
  void ClearInput(Input& in);
  template <typename F>
  void Drive(Input& in, F&& consume);

  std::vector<uint32_t> held_next_;  // [buffer id] → next held buffer
  std::vector<uint32_t> held_len_;   // [buffer id] → bytes received into it
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
  } refusal_;

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
  core::TimerWheel timers_;
  core::Mailbox mailbox_;
  obs::CoreMetrics metrics_;
  core::Instant now_ = 0;

  core::Slab<Client> clients_;
  core::Slab<Upstream> upstreams_;
  std::vector<uint32_t> pool_head_;   // [endpoint id] → most recently idle upstream
  std::vector<uint32_t> pool_count_;  // [endpoint id]
  std::vector<bool> endpoint_live_;   // [endpoint id] in the current snapshot
  std::vector<uint32_t> busy_;        // [endpoint id] connections connecting or in use
  uint64_t rng_ = 0;                  // xorshift state: backoff jitter, least-request picks
  std::vector<std::unique_ptr<HealthProbe>> probes_;  // stable addresses: their timers are linked
  std::unique_ptr<obs::LogRing> access_log_;
  uint64_t access_sample_below_ = 0;  // log when Random() < this (sample_ratio × 2^64)
  int64_t now_unix_ms_ = 0;           // wall clock, read once per pass
  int64_t now_unix_ns_ = 0;           // the same, in ns (precise with spans or an access log)
  std::unique_ptr<obs::SpanRing> spans_;
  uint64_t span_sample_below_ = UINT64_MAX;  // obs::SampleThreshold of tracing.sample_ratio
  int64_t stamp_second_ = -1;         // the second `stamp_` shows
  char stamp_[20];                    // "YYYY-MM-DDTHH:MM:SS" of stamp_second_
  std::vector<uint32_t> coalesce_;    // [endpoint id] the connection this pass pipelines onto
  std::vector<uint32_t> coalesce_touched_;
  std::vector<uint32_t> rr_;          // [cluster index] round-robin cursor
  // [endpoint id] the last mTLS session with that endpoint: the next
  // connection resumes it (an abbreviated handshake, no certificate check).
  std::vector<std::unique_ptr<tls::SavedSession>> tls_saved_;
  std::vector<policy::CoreRateLimiter> limiters_;  // [route index] this core's view of each bucket
  std::unique_ptr<auth::JwtVerifier> verifier_;     // with the current snapshot's keys; its own cache
  auth::Claims claims_;                             // scratch: the claims of the token being checked
  bool claims_valid_ = false;                       // claims_ belong to the current request
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
};

// Feeds the connection's pending input to `consume` until it blocks or needs
// bytes that have not arrived. A partial head is gathered into the block so the
// parser always sees it contiguous.
template <typename F>
inline void Worker::Drive(Input& in, F&& consume) {
  for (;;) {
    core::Block* b = in.block;
    if (b != nullptr && b->begin != b->end) {
      int64_t n = consume(b->data() + b->begin, b->end - b->begin);
      if (n == kBlocked) return;
      if (in.block == nullptr) return;  // the consumer closed the connection
      b->begin += static_cast<uint32_t>(n);
      if (b->begin == b->end) {
        blocks_.Put(b);
        in.block = nullptr;
        continue;
      }
      if (n > 0) continue;
      // Needs more bytes after these: append the next held buffer, if any.
      if (in.held_head == kNone) return;
      uint32_t bid = in.held_head;
      const char* p = buffers_.Buffer(static_cast<uint16_t>(bid)) + in.held_off;
      uint32_t len = held_len_[bid] - in.held_off;
      uint32_t room = blocks_.block_size() - (b->end - b->begin);
      uint32_t take = std::min(len, room);
      if (take == 0) return;  // a head larger than the block: the parser has refused it already
      Stash(in, p, take);
      in.held_off += take;
      if (in.held_off == held_len_[bid]) {
        in.held_head = held_next_[bid];
        if (in.held_head == kNone) in.held_tail = kNone;
        in.held_off = 0;
        buffers_.Recycle(static_cast<uint16_t>(bid));
      }
      continue;
    }
    if (in.held_head == kNone) return;
    uint32_t bid = in.held_head;
    const char* p = buffers_.Buffer(static_cast<uint16_t>(bid)) + in.held_off;
    uint32_t len = held_len_[bid] - in.held_off;
    int64_t n = consume(p, len);
    if (n == kBlocked) return;
    if (in.held_head != bid) return;  // the consumer closed the connection
    if (n == 0) {
      Stash(in, p, len);  // the block is empty and at least a buffer large
      n = len;
    }
    in.held_off += static_cast<uint32_t>(n);
    if (in.held_off == held_len_[bid]) {
      in.held_head = held_next_[bid];
      if (in.held_head == kNone) in.held_tail = kNone;
      in.held_off = 0;
      buffers_.Recycle(static_cast<uint16_t>(bid));
    }
  }
}

}  // namespace hms::proxy
