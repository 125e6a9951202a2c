// What an exchange may do to the downstream that carries it: queue its
// answer, learn whether the peer keeps up, take its request body at the
// peer's pace, and say how it ends. The exchange reaches its downstream only
// through these calls, never by its slab: an HTTP/1.1 connection (Client,
// worker.h; downstream.cc) is one implementation, an HTTP/2 stream
// (H2Stream, h2_down.h; h2_down.cc) the other. The answer is written in
// HTTP/1.1 form either way (a head, then the body as the upstream framed
// it); a stream turns it into HEADERS, DATA and trailers.
//
// Implemented by objects in one core's slabs, called by that core's thread only.
#pragma once

#include <cstddef>

namespace hms::proxy {

class Downstream {
 public:
  // Room for `n` contiguous bytes of the answer (a head, or a whole local
  // answer; n ≤ the core's block size); Commit(k) then queues the first k.
  // Reserved bytes never committed are not sent (a head dropped for a retry).
  virtual char* Reserve(size_t n) noexcept = 0;
  virtual void Commit(size_t n) noexcept = 0;
  // Queues answer bytes; they leave with this loop pass's flush.
  virtual void Send(const char* p, size_t n) noexcept = 0;
  // Enough is queued toward the peer: the caller stops (its input is held)
  // and is resumed once the peer has taken it.
  virtual bool Full() const noexcept = 0;
  // The downstream ends after this answer (and the answer says so).
  virtual void CloseAfterAnswer() noexcept = 0;
  virtual bool closing() const noexcept = 0;
  // The answer cannot be finished honestly (its head left, its body broke):
  // what was queued goes, then the downstream ends.
  virtual void Abort() noexcept = 0;
  // The exchange gives up mid-answer with nothing honest left to send (a
  // stalled or broken body): the downstream ends now, queued bytes may go.
  virtual void Drop() noexcept = 0;

  // An interim 100 (Continue): the request expects one before its body.
  virtual void Continue() noexcept = 0;
  // Room opened toward the upstream: the request body held back may move.
  virtual void ResumeBody() noexcept = 0;
  // The request body is unfinished and the gateway holds none of it back:
  // the peer is behind (a stalled upload is its fault, not the service's).
  virtual bool OwesBody() const noexcept = 0;
  // The exchange was accounted for: the downstream goes on to its next
  // request, or ends. `reusable`: the request was read whole and nothing
  // (keep-alive, a drain) asks for the end.
  virtual void Finish(bool reusable) noexcept = 0;

 protected:
  ~Downstream() = default;
};

}  // namespace hms::proxy
