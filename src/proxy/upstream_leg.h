// What an exchange may do to the upstream that carries its attempt: queue
// request bytes, learn whether the upstream keeps up, let the answer's
// reading go on once the downstream took what was queued, hand the leg back
// when the answer is whole, abandon the attempt, and what a WebSocket tunnel
// needs. The exchange reaches its upstream only through these calls, never by
// its slab: an HTTP/1.1 connection (Upstream, worker.h; upstream.cc, pool.cc)
// is one implementation, a stream of an HTTP/2 connection (H2UpStream,
// h2_up.h; h2_up.cc) the other. The way back is not a call on the exchange's
// object but events by its slot (Worker::OnAnswerHead, OnAnswerBody,
// OnAnswerEnd, OnAttemptFailed in exchange.cc): the upstream room turns its
// answer into an http::ResponseHead, body bytes and an end, and its failures
// into an AttemptFailure.
//
// Implemented by objects in one core's slabs, called by that core's thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "hms/policy/fault.h"

namespace hms::proxy {

// A failed attempt as the upstream room classified it, for the exchange's
// retry rules (policy::DecideRetry) and, when the request fails, its answer.
struct AttemptFailure {
  // How it counts for the endpoint, the breaker and the retry rules: kConnect
  // (no request byte reached the upstream: a failed connect or mTLS
  // handshake) or kUpstreamReset (anything later; a malformed answer too).
  policy::Fault fault = policy::Fault::kUpstreamReset;
  // The answer's row should the request fail; `detail` replaces its message.
  policy::Fault answer = policy::Fault::kUpstreamReset;
  std::string_view detail;
  bool stale_pooled = false;     // a pooled connection that gave no byte of an answer
  bool never_processed = false;  // an HTTP/2 upstream said it never processed the stream
};

class UpstreamLeg {
 public:
  // Queues request bytes (the body as it arrives, a tunnel's bytes); they
  // leave with this loop pass's flush.
  virtual void Send(const char* p, size_t n) noexcept = 0;
  // Enough is queued toward the upstream: the caller stops (its input is
  // held) and is resumed once the upstream has taken it (Downstream::ResumeBody).
  virtual bool Full() const noexcept = 0;
  // The downstream took what was queued: the answer's reading goes on (its
  // held bytes first).
  virtual void Resume() noexcept = 0;
  // The answer is whole: the leg goes back (an HTTP/1.1 connection to the
  // idle pool, or to the next pipelined exchange, or closed; a stream ends).
  // `reusable`: the exchange saw nothing that forbids another request on it.
  virtual void Release(bool reusable) noexcept = 0;
  // The exchange in slot `exchange` lets go of its attempt without its
  // answer: an HTTP/1.1 connection closes (the requests pipelined behind go
  // elsewhere), or, when the exchange was queued behind another one, serves
  // that one and then closes; a stream is reset.
  virtual void Abandon(uint32_t exchange) noexcept = 0;

  // A WebSocket tunnel (tunnel.cc), after the upstream's 101. Bytes toward
  // the upstream not yet sent; the upstream's bytes held for the downstream;
  // passes the downstream's FIN on once what is queued is sent (a TLS
  // close_notify first; `notified` remembers it), true once done; the
  // upstream's FIN was read: no receive is armed again.
  virtual bool Sending() const noexcept = 0;
  virtual bool HoldsInput() const noexcept = 0;
  virtual bool ShutSend(bool* notified) noexcept = 0;
  virtual void StopReading() noexcept = 0;

 protected:
  ~UpstreamLeg() = default;
};

}  // namespace hms::proxy
