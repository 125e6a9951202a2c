// The exchange between its Downstream (downstream.h) and, per attempt, its
// UpstreamLeg (upstream_leg.h); exchange.h has its State. Begun when a head
// arrives, its request body forwarded through the leg and kept for a replay;
// the answer taken as events from the upstream room (OnAnswerHead,
// OnAnswerBody, OnAnswerEnd, OnAttemptFailed): judged (retries by
// policy::DecideRetry, the sidecar's local-service-down, a gRPC
// trailers-only failure), its head rewritten and its body relayed to the
// Downstream; its outcome told to the breaker and the endpoint once,
// answered locally from the fault table when it must be, and accounted for
// at its end (metrics, access log, span: recorder.h).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "hms/common/check.h"
#include "hms/h2/grpc.h"
#include "hms/http/field_names.h"
#include "src/proxy/head_rewrite.h"
#include "src/proxy/wire.h"
#include "src/proxy/worker.h"

namespace hms::proxy {

// A request head arrived: the exchange begins (BeginExchange), finds its
// route (ResolveRoute), passes the stamps (Admit), and its upstream head is
// written (WriteUpstreamHead) before an upstream connection is attached. A
// step that refuses returns the fault; the answer is written in one place
// (AnswerRefusal).
int64_t Worker::StartExchange(uint32_t slot, size_t head_len) {
  Client& c = clients_[slot];
  Exchange& ex = c.ex;
  BeginExchange(slot, head_len);
  RouteChoice choice;
  policy::Fault fault = ResolveRoute(slot, &choice);
  // The caller's fields that never go upstream are decided here, before any
  // stamp spends a token or a breaker probe on a request that may be refused.
  HopByHop hop_by_hop(req_.headers, req_.header_count);
  if (fault == policy::Fault::kNone) fault = Admit(slot, choice, hop_by_hop);
  if (admit_parked_) {
    // A fleet-scope limit waits for Redis (redis_link.cc): the head is read
    // again when it answers; until then the connection reads nothing more.
    admit_parked_ = false;
    UnbeginExchange(slot);
    return kBlocked;
  }
  c.fleet_pass = FleetPass::kNone;  // used, or made stale by a refusal before the stamp
  if (fault == policy::Fault::kNone && !WriteUpstreamHead(slot, choice, hop_by_hop)) {
    // The head with our fields outgrew its block (kHeadRoom past
    // max_header_bytes): only an outsized caller identity gets here today.
    // Refused whole; a cut head would reach the upstream as another message.
    fault = Refuse(policy::Fault::kHeaderTooLarge);
  }
  if (fault != policy::Fault::kNone) {
    AnswerRefusal(slot);
    return static_cast<int64_t>(head_len);
  }
  if (req_.expect_continue && !ex.req_done) Down(c).Continue();
  c.state = ex.req_done ? Client::State::kAwaitResponse : Client::State::kBody;
  AttachUpstream(slot, false);
  return static_cast<int64_t>(head_len);
}

void Worker::BeginExchange(uint32_t slot, size_t head_len) {
  Client& c = clients_[slot];
  const http::RequestHead& r = req_;
  Exchange& ex = c.ex;
  ex.Reset(&blocks_);
  ex.Begin();
  ex.start = now_;
  ex.method = r.method;
  ex.version_minor = r.version_minor;
  ex.client_keep_alive = r.keep_alive;
  ex.req_body = r.body;
  ex.req_remaining = r.content_length;
  ex.req_done = r.body == http::BodyKind::kNone ||
                (r.body == http::BodyKind::kContentLength && r.content_length == 0);
  ex.route_key = kNoRouteKey;
  ex.bytes_in = head_len;
  ex.method_len = static_cast<uint8_t>(std::min(r.method_text.size(), sizeof ex.method_text));
  std::memcpy(ex.method_text, r.method_text.data(), ex.method_len);
  timers_.Cancel(&c.timer);

  // Trace: the caller's x-trace-id, else its traceparent, else its B3
  // header, else a new trace (obs::AcceptTrace), found in one pass.
  std::string_view xid, tp, b3;
  for (int i = 0; i < r.header_count; ++i) {
    const http::Header& h = r.headers[i];
    if (http::EqualsIgnoreCase(h.name, "content-type")) {
      ex.grpc = h2::IsGrpcContentType(h.value);  // its answers and deadline are gRPC's
    } else if (xid.empty() && http::EqualsIgnoreCase(h.name, "x-trace-id")) {
      xid = h.value;
    } else if (tp.empty() && http::EqualsIgnoreCase(h.name, "traceparent")) {
      tp = h.value;
    } else if (b3.empty() && http::EqualsIgnoreCase(h.name, "b3")) {
      b3 = h.value;
    }
  }
  ex.trace.external_len = 0;
  if (!obs::CallerDecidedSampling(obs::AcceptTrace(xid, tp, b3, &ex.trace))) {
    obs::SetSampled(&ex.trace, recorder_.SampleTrace());
  }
  obs::NewSpan(&ex.trace);
  recorder_.Begin(ex, r);

  ex.hold = current_;
  ++current_->inflight;
}

void Worker::UnbeginExchange(uint32_t slot) {
  Exchange& ex = clients_[slot].ex;
  SnapshotHold* h = ex.hold;
  ex.Reset(&blocks_);
  if (h != nullptr && --h->inflight == 0 && h != current_) ReleaseHold(h);
}

int64_t Worker::ForwardRequestBody(uint32_t slot, const char* p, size_t n) {
  Client& c = clients_[slot];
  Exchange& ex = c.ex;
  UpstreamLeg* leg = Leg(ex);
  if (leg == nullptr) return kBlocked;  // connecting to another endpoint
  if (leg->Full()) return kBlocked;     // resumed when the upstream send drains
  size_t used = 0;
  if (ex.req_body == http::BodyKind::kContentLength) {
    used = static_cast<size_t>(std::min<uint64_t>(n, ex.req_remaining));
    if (used > 0) leg->Send(p, used);
    ex.req_remaining -= used;
    if (ex.req_remaining == 0) ex.req_done = true;
  } else {
    while (used < n && !ex.req_chunks.done()) {
      http::ChunkedDecoder::Step st;
      if (!ex.req_chunks.Next(p + used, n - used, &st)) {
        DetachUpstream(slot);
        ReportOutcome(ex, policy::Fault::kBadChunk);
        if (!ex.response_started()) {
          LocalResponse(slot, policy::AnswerFor(policy::Fault::kBadChunk), true);
          FinishExchange(slot);
        } else {
          Down(c).Drop();
        }
        return static_cast<int64_t>(n);
      }
      if (st.consumed == 0) break;
      leg->Send(p + used, st.consumed);
      used += st.consumed;
    }
    if (ex.req_chunks.data_bytes() > config_.max_body_bytes && !ex.response_started()) {
      DetachUpstream(slot);
      ReportOutcome(ex, policy::Fault::kBodyTooLarge);
      LocalResponse(slot, policy::AnswerFor(policy::Fault::kBodyTooLarge), true);
      FinishExchange(slot);
      return static_cast<int64_t>(n);
    }
    if (ex.req_chunks.done()) ex.req_done = true;
  }
  ex.bytes_in += used;
  if (used > 0 && ex.replayable) {
    // Kept for a retry while the whole body so far fits kReplayMax.
    if (ex.replay.size() + used <= kReplayMax) {
      ex.replay.Append(&blocks_, p, used);
    } else {
      ex.replayable = false;
      ex.replay.Clear(&blocks_);
    }
  }
  if (ex.req_done) c.state = Client::State::kAwaitResponse;
  return static_cast<int64_t>(used);
}

// The answer's head from the upstream room: a 101 opens a tunnel; any other
// final head is checked, written for the client (before anything is decided
// on it: a head that does not fit is a failed attempt like a malformed one,
// not half a head), judged, and committed.
bool Worker::OnAnswerHead(uint32_t slot, const http::ResponseHead& r) {
  Client& c = clients_[slot];
  Exchange& ex = c.ex;
  if (r.status == 101) {
    if (ex.websocket) return OpenTunnel(slot, r);  // tunnel.cc
    RejectAnswer(slot, policy::Fault::kUpstreamBadResponse);
    return false;
  }
  const HopByHop hop_by_hop(r.headers, r.header_count);
  if (hop_by_hop.too_many_options()) {
    RejectAnswer(slot, policy::Fault::kUpstreamBadResponse,
                 "the upstream's response names too many Connection options");
    return false;
  }
  Downstream& down = Down(c);
  const bool dechunk = r.body == http::BodyKind::kChunked && ex.version_minor == 0;
  const bool close = !ex.client_keep_alive || r.body == http::BodyKind::kUntilClose || dechunk ||
                     draining_ || down.closing() || !ex.req_done;
  const size_t head_size = WriteResponseHead(ex, r, down, hop_by_hop, dechunk, close);
  if (head_size == 0) {
    // Not reachable with today's fields (kHeadRoom): kept so that a field
    // added later fails this way rather than sending a cut head.
    RejectAnswer(slot, policy::Fault::kUpstreamHeaderTooLarge);
    return false;
  }
  if (!JudgeAnswer(slot, r)) return false;
  ex.HeadForwarded();
  ex.status = r.status;
  ex.resp_body = r.body;
  ex.resp_remaining = r.content_length;
  ex.resp_keep_alive = r.keep_alive && r.body != http::BodyKind::kUntilClose;
  ex.dechunk = dechunk;
  if (close) down.CloseAfterAnswer();
  down.Commit(head_size);
  ex.bytes_out += head_size;
  // From here the route's deadline is met; a stalled body is cut by idle_timeout.
  timers_.Arm(&ex.timer, now_, config_.idle_timeout_ms);
  if (r.body == http::BodyKind::kNone ||
      (r.body == http::BodyKind::kContentLength && r.content_length == 0)) {
    FinishAnswer(slot);
  }
  return true;
}

bool Worker::JudgeAnswer(uint32_t slot, const http::ResponseHead& r) {
  Exchange& ex = clients_[slot].ex;
  // Every attempt with a final head counts, a 5xx about to be retried too.
  metrics_.ObserveUpstream(ex.route_key, (now_ - ex.attempt_start) / 1000);
  const policy::Fault fault =
      policy::AnswerFault(r.status, http::FindHeader(r.headers, r.header_count, "x-hms-reason"));
  ReportEndpoint(ex, fault);
  ex.judged_status = r.status;
  if (fault == policy::Fault::kLocalServiceDown) {
    // A sidecar's "my service is down" is our refused connect one hop later
    // (docs/resilience.md): its answer goes with its connection, and the
    // request goes on as OnAttemptFailed takes it on after a failed connect.
    DetachUpstream(slot);
    if (!ScheduleRetry(slot, fault)) {
      ReportOutcome(ex, fault);
      const bool opened = BreakerOpen(ex);  // this failure opened it: say so
      LocalResponse(slot, policy::AnswerFor(opened ? policy::Fault::kCircuitOpen : fault),
                    !ex.req_done);
      FinishExchange(slot);
    }
    return false;
  }
  // A gRPC call's trailers-only failure is retried only on the statuses
  // the service lists (policy::DecideRetry).
  ex.grpc_status = GrpcFailureOf(ex, r);
  if (ScheduleRetry(slot, fault)) {
    // A gateway error from upstream, and a retry is allowed: this answer is
    // dropped with its leg (its body is never read; the head written for
    // the client is never committed).
    DetachUpstream(slot);
    return false;
  }
  ReportOutcome(ex, fault);
  return true;
}

// The response head toward the client: the status line, the upstream's
// end-to-end fields, ours. Reserved in the client's queue, committed by the
// caller; 0 when it does not fit a block.
size_t Worker::WriteResponseHead(const Exchange& ex, const http::ResponseHead& r, Downstream& down,
                                 const HopByHop& hop_by_hop, bool dechunk, bool close) {
  ResponseHeadFields f;
  f.trace_id = ex.trace.external_len > 0
                   ? std::string_view(ex.trace.external_id, ex.trace.external_len)
                   : std::string_view(ex.trace.trace_id, 32);
  f.rate = ex.rate_limited_route ? &ex.rate : nullptr;
  f.dechunk = dechunk;
  f.close = close;
  f.client_version_minor = ex.version_minor;
  char* dst = down.Reserve(blocks_.block_size());
  return RewriteResponseHead(r, hop_by_hop, f, dst, blocks_.block_size());
}

int64_t Worker::OnAnswerBody(uint32_t slot, const char* p, size_t n) {
  Client& c = clients_[slot];
  if (c.ex.tunnel.active) return TunnelToClient(slot, p, n);  // tunnel.cc
  return ForwardResponseBody(slot, c.ex, Down(c), p, n);
}

int64_t Worker::ForwardResponseBody(uint32_t slot, Exchange& ex, Downstream& down, const char* p,
                                    size_t n) {
  if (down.Full()) return kBlocked;  // resumed when the downstream has taken what is queued
  size_t used = 0;
  bool done = false;
  switch (ex.resp_body) {
    case http::BodyKind::kContentLength:
      used = static_cast<size_t>(std::min<uint64_t>(n, ex.resp_remaining));
      down.Send(p, used);
      ex.resp_remaining -= used;
      done = ex.resp_remaining == 0;
      break;
    case http::BodyKind::kUntilClose:
      used = n;
      down.Send(p, n);
      break;
    case http::BodyKind::kChunked:
      while (used < n && !ex.resp_chunks.done()) {
        http::ChunkedDecoder::Step st;
        if (!ex.resp_chunks.Next(p + used, n - used, &st)) {
          // The head already left: the client can only learn of it by the close.
          down.Abort();
          return static_cast<int64_t>(n);
        }
        if (st.consumed == 0) break;
        if (ex.dechunk) {
          if (st.data_len > 0) down.Send(p + used + st.data_offset, st.data_len);
        } else {
          down.Send(p + used, st.consumed);
        }
        used += st.consumed;
      }
      done = ex.resp_chunks.done();
      break;
    case http::BodyKind::kNone:
      done = true;
      break;
  }
  if (used > 0) {
    ex.bytes_out += used;
    timers_.Arm(&ex.timer, now_, config_.idle_timeout_ms);
  }
  if (done) FinishAnswer(slot);
  return static_cast<int64_t>(used);
}

void Worker::FinishAnswer(uint32_t slot) {
  Exchange& ex = clients_[slot].ex;
  UpstreamLeg* leg = Leg(ex);
  HMS_CHECK(leg != nullptr);  // an answer streams only while its leg carries it
  ex.upstream = kNone;
  leg->Release(ex.resp_keep_alive && ex.req_done);
  FinishExchange(slot);
}

void Worker::OnAnswerEnd(uint32_t slot) {
  Exchange& ex = clients_[slot].ex;
  if (ex.tunnel.active) {
    TunnelEof(slot, false);  // passed on to the client (tunnel.cc)
  } else if (ex.streaming() && ex.resp_body == http::BodyKind::kUntilClose) {
    FinishAnswer(slot);  // the close delimits the body
  } else {
    RejectAnswer(slot, policy::Fault::kUpstreamReset);  // cut short
  }
}

void Worker::RejectAnswer(uint32_t slot, policy::Fault answer, std::string_view detail) {
  DetachUpstream(slot);
  AttemptFailure f;
  f.answer = answer;
  f.detail = detail;
  OnAttemptFailed(slot, f);
}

void Worker::OnAttemptFailed(uint32_t slot, const AttemptFailure& f) {
  Client& c = clients_[slot];
  Exchange& ex = c.ex;
  ex.upstream = kNone;  // its leg was let go
  if (ex.tunnel.active) {
    // A tunnel's upstream broke (a failed send, a bad TLS record): long
    // after its answer, so nothing to retry or count; both sides close.
    CloseClient(slot, false);
    return;
  }
  if (!ex.active()) return;
  if (!f.stale_pooled && !f.never_processed) ReportEndpoint(ex, f.fault);  // neither is the endpoint's doing
  if (ex.response_started()) {
    // Mid-response: what already arrived still goes out, then the close is
    // the client's only signal that the body is short.
    Down(c).Abort();
    return;
  }
  // Transparent retries (a failed connect, a stale pooled connection) or a
  // policy retry: policy::DecideRetry says which.
  if (ScheduleRetry(slot, f.fault, f.stale_pooled, f.never_processed)) return;
  // The request failed: one failure for the service's breaker, whatever
  // number of attempts it took (docs/resilience.md).
  ReportOutcome(ex, f.fault);
  if (BreakerOpen(ex)) {
    // This failure opened the breaker (or it opened meanwhile): say so.
    LocalResponse(slot, policy::AnswerFor(policy::Fault::kCircuitOpen), !ex.req_done);
  } else if (ex.cluster->local && f.fault == policy::Fault::kConnect) {
    // A sidecar whose own service refuses connects says so (fault.h).
    LocalResponse(slot, policy::AnswerFor(policy::Fault::kLocalServiceDown), !ex.req_done);
  } else {
    LocalResponse(slot, policy::AnswerFor(f.answer, f.detail), !ex.req_done);
  }
  FinishExchange(slot);
}

void Worker::OnLegSent(uint32_t slot, bool drained) {
  Client& c = clients_[slot];
  if (drained && c.state == Client::State::kBody) {
    Down(c).ResumeBody();  // room again for the request body
  } else if (drained && c.state == Client::State::kTunnel) {
    repump_.push_back(slot);  // room again for the tunnel's bytes
  }
  if (c.state == Client::State::kTunnel) TunnelProgress(slot);
}

void Worker::LocalResponse(uint32_t slot, const policy::Answer& answer, bool close,
                           const char* extra_header) {
  Client& c = clients_[slot];
  Exchange& ex = c.ex;
  const uint16_t status = answer.status;
  const std::string_view reason = answer.reason;
  const std::string_view message = answer.message;
  HMS_CHECK(status >= 400 && !reason.empty());  // a fault with an answer of its own
  ex.status = status;
  if (ex.active()) ex.Answer();  // a connection's own refusal (RejectRequest) has no exchange
  ex.reason_len = static_cast<uint8_t>(std::min(reason.size(), sizeof ex.reason));
  std::memcpy(ex.reason, reason.data(), ex.reason_len);
  Downstream& down = Down(c);
  if (close || !ex.client_keep_alive || draining_) down.CloseAfterAnswer();
  char body[512];
  Writer b(body, sizeof body);
  std::string_view tid = ex.trace.external_len > 0
                             ? std::string_view(ex.trace.external_id, ex.trace.external_len)
                             : std::string_view(ex.trace.trace_id, 32);
  if (ex.grpc) {
    // A gRPC caller reads grpc-status, not the HTTP status (grpc_call.cc).
    WriteGrpcAnswer(ex, down, answer, tid, extra_header);
    metrics_.refusals.Record(core::UnixMs(), ex.route_key, status, reason,
                             std::string_view(ex.method_text, ex.method_len), tid);
    return;
  }
  b.S("{\"error\":\"").Json(message).S("\",\"reason\":\"").Json(reason).S("\",\"trace_id\":\"")
      .Json(tid).S("\"}\n");
  if (b.overflow()) {
    // A message that escapes past the body (a certificate's identity full of
    // control characters): the answer keeps its reason, not half a JSON text.
    b = Writer(body, sizeof body);
    b.S("{\"error\":\"(message too long)\",\"reason\":\"")
        .Json(reason)
        .S("\",\"trace_id\":\"")
        .Json(tid)
        .S("\"}\n");
    HMS_CHECK(!b.overflow());  // a reason token and a trace id: < 300 bytes
  }
  // Head (< 800 bytes with the longest extra field, a 512-byte
  // WWW-Authenticate) and body (< 512) fit in 2 KiB.
  char* dst = down.Reserve(2048);
  Writer w(dst, 2048);
  w.S("HTTP/1.1 ").U(static_cast<uint64_t>(status)).C(' ').S(StatusText(status)).S("\r\n");
  w.S("content-type: application/json\r\ncontent-length: ").U(b.size()).S("\r\n");
  w.S("x-hms-reason: ").S(reason).S("\r\nx-trace-id: ").S(tid).S("\r\n");
  if (extra_header != nullptr) w.S(extra_header);
  if (down.closing()) {
    w.S("connection: close\r\n");
  } else if (ex.version_minor == 0) {
    w.S("connection: keep-alive\r\n");
  }
  w.S("\r\n");
  // An answer to HEAD has the same fields and no body (RFC 9110 §9.3.2).
  if (ex.method != http::Method::kHead) w.S(std::string_view(body, b.size()));
  HMS_CHECK(!w.overflow());
  down.Commit(w.size());
  ex.bytes_out += w.size();
  // Every answer of the gateway's own passes here: the admin page's "last
  // refusals". A request that never became an exchange has no route.
  // The precise clock, not the pass's coarse one: the page merges the cores'
  // rings by this time (a local answer is not the hot path).
  metrics_.refusals.Record(core::UnixMs(), ex.active() ? ex.route_key : kNoRouteKey, status, reason,
                           std::string_view(ex.method_text, ex.method_len), tid);
}

void Worker::ReportOutcome(Exchange& ex, policy::Fault fault) {
  if (ex.breaker == nullptr || ex.outcome_reported) return;
  ex.outcome_reported = true;
  switch (policy::Classify(fault).verdict) {
    case policy::FaultVerdict::kSuccess:
      ex.breaker->OnSuccess(ex.probe);
      break;
    case policy::FaultVerdict::kFailure:
      ex.breaker->OnFailure(now_, ex.probe);
      break;
    case policy::FaultVerdict::kNotCounted:
      if (ex.probe) ex.breaker->ReleaseProbe(now_);
      break;
  }
}

void Worker::ReportEndpoint(const Exchange& ex, policy::Fault fault) {
  const config::Endpoint& e = ex.cluster->endpoints[ex.endpoint_index % ex.cluster->endpoints.size()];
  if (e.health == nullptr) return;
  switch (policy::Classify(fault).verdict) {
    case policy::FaultVerdict::kSuccess:
      e.health->OnSuccess();
      break;
    case policy::FaultVerdict::kFailure:
      e.health->OnFailure(now_);
      break;
    case policy::FaultVerdict::kNotCounted:
      break;
  }
}

bool Worker::BreakerOpen(const Exchange& ex) {
  return ex.breaker != nullptr && ex.breaker->Status(now_).state != policy::BreakerState::kClosed;
}

bool Worker::ScheduleRetry(uint32_t slot, policy::Fault fault, bool stale_pooled,
                           bool never_processed) {
  Client& c = clients_[slot];
  Exchange& ex = c.ex;
  const config::Cluster& cl = *ex.cluster;
  policy::RetryInput in;
  in.fault = fault;
  in.stale_pooled = stale_pooled;
  in.never_processed = never_processed;
  in.grpc_status = ex.grpc_status;
  ex.grpc_status = 0;  // this answer's: judged once
  in.grpc_retry_on = cl.grpc_retry_on;
  in.response_started = ex.response_started();
  in.probe = ex.probe;
  in.replayable = ex.replayable;
  in.idempotent = ex.retryable;
  in.has_body = ex.req_body != http::BodyKind::kNone;
  if (ex.breaker != nullptr) {
    // One read of the breaker: whether it is closed and how near it is to
    // opening come from the same moment.
    const policy::BreakerStatus breaker = ex.breaker->Status(now_);
    in.breaker_open = breaker.state != policy::BreakerState::kClosed;
    const uint32_t threshold = ex.breaker->params().failures;
    if (!in.breaker_open) {
      const uint32_t failed = breaker.consecutive_failures;
      in.breaker_failures_left = threshold > failed ? threshold - failed : 0;
    }
  }
  in.endpoints = static_cast<uint32_t>(cl.endpoints.size());
  in.connect_attempts = cl.connect_attempts;
  in.transparent_done = static_cast<uint32_t>(ex.attempts - ex.retries_done);
  in.retries_done = ex.retries_done;
  in.retries_allowed = cl.retries;
  in.retry_on = cl.retry_on;
  const bool status_fault =
      fault == policy::Fault::kGatewayStatus || fault == policy::Fault::kServerError;
  in.status = status_fault ? ex.judged_status : 0;  // the answer head JudgeAnswer is judging
  ex.judged_status = 0;
  in.now = now_;
  in.deadline = ex.deadline;
  in.random = Random();
  const policy::RetryDecision d = policy::DecideRetry(in);
  if (d.action == policy::RetryAction::kGiveUp) return false;
  if (d.action == policy::RetryAction::kTransparent) {
    HMS_CHECK(ex.upstream == kNone);  // the failed attempt's connection is let go first
    if (d.next_endpoint) ++ex.endpoint_index;
    AttachUpstream(slot, true);
    return true;
  }
  const uint64_t backoff_ms = d.backoff_ms;
  if (cl.retry_budget != nullptr && !policy::CoreRetryBudget(cl.retry_budget.get(), index_).TryRetry(now_)) {
    metrics_.policy.Count(ex.route_key, obs::kPolicyBudgetRefused);
    return false;
  }
  metrics_.policy.Count(ex.route_key, obs::kPolicyRetried);
  ++ex.retries_done;
  ++ex.endpoint_index;  // another endpoint when there is one
  ex.BackOff();
  timers_.Arm(&c.ex.timer, now_, backoff_ms);
  return true;
}

void Worker::DetachUpstream(uint32_t slot) {
  Exchange& ex = clients_[slot].ex;
  UpstreamLeg* leg = Leg(ex);
  if (leg == nullptr) return;
  ex.upstream = kNone;
  leg->Abandon(slot);
}

// Accounts for the exchange and lets go of what it held; the connection's
// fate is the caller's.
void Worker::EndExchange(uint32_t slot) {
  Client& c = clients_[slot];
  Exchange& ex = c.ex;
  if (!ex.active()) return;
  // An exchange that ends without a reported outcome never got an answer
  // the upstream is to blame for: the client left (499), or the gateway
  // refused it after the breaker had admitted it. A probe gives its slot back.
  ReportOutcome(ex, ex.status == 499 ? policy::Fault::kClientGone : policy::Fault::kRefused);
  recorder_.End(ex, CallerOf(c));  // metrics, the access-log line, the span
  if (ex.tunnel.active) metrics_.websocket_active.Sub();
  timers_.Cancel(&c.ex.timer);
  if (ex.head != nullptr) {
    blocks_.Put(ex.head);
    ex.head = nullptr;
  }
  DetachUpstream(slot);
  ex.replay.Clear(&blocks_);
  SnapshotHold* h = ex.hold;
  ex.End();
  ex.hold = nullptr;
  if (h != nullptr && --h->inflight == 0 && h != current_) ReleaseHold(h);
}

void Worker::FinishExchange(uint32_t slot) {
  Client& c = clients_[slot];
  if (!c.ex.active()) return;
  EndExchange(slot);
  Down(c).Finish(c.ex.req_done && c.ex.client_keep_alive && !draining_);
}

// The exchange's timer: its backoff ended, or its deadline (the attempt's,
// the route's or the caller's) or a stalled response's idle time ran out.
void Worker::OnExchangeTimer(uint32_t slot) {
  Client& c = clients_[slot];
  if (!c.ex.active()) return;
  if (c.ex.backing_off()) {
    AttachUpstream(slot, false);  // the retry's attempt
    return;
  }
  if (!c.ex.response_started()) {
    // Whose time ran out (policy::TimeoutFault): a client still owing its
    // body, else the service's per-try timeout (with time left, it may
    // retry), else the caller's shorter deadline or the route's own.
    const policy::Fault fault =
        policy::TimeoutFault(Down(c).OwesBody(), c.ex.per_try_bound, c.ex.caller_deadline);
    if (c.ex.upstream != kNone) ReportEndpoint(c.ex, fault);
    DetachUpstream(slot);
    if (ScheduleRetry(slot, fault)) return;
    ReportOutcome(c.ex, fault);
    // A client still owing its body is not kept: what it sends next is
    // the rest of a body nobody reads.
    LocalResponse(slot, policy::AnswerFor(fault),
                  fault == policy::Fault::kClientBodyStalled || !c.ex.req_done);
    FinishExchange(slot);  // closes the upstream: a late answer must not reach anyone
  } else if (c.ex.tunnel.active) {
    OnTunnelIdle(slot);  // tunnel.cc
  } else {
    Down(c).Drop();  // stalled mid-response: nothing honest left to send
  }
}

}  // namespace hms::proxy
