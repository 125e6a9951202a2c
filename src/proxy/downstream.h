// What an exchange may do to the downstream that carries it: queue its
// answer, learn whether the peer keeps up, and say how the connection ends.
// The exchange reaches its downstream only through these calls, never by its
// slab: an HTTP/1.1 connection (Client, worker.h; downstream.cc) is one
// implementation, an HTTP/2 stream (src/h2) is meant to be the next.
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

 protected:
  ~Downstream() = default;
};

}  // namespace hms::proxy
