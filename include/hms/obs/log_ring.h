// A single-producer single-consumer ring of text lines: how a core hands its
// access-log lines to the control thread without locks, waiting or
// allocation (DESIGN §5 metrics and logs; issue "access logs").
//
// The core (the one producer) appends whole lines with TryWrite; a line that
// does not fit is refused whole (the caller counts it dropped), so a slow
// disk or a stalled control thread costs lines, never a core's time. The
// control thread (the one consumer) takes everything written so far with
// Drain. Capacity is a power of two, fixed at construction.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace hms::obs {

class LogRing {
 public:
  // `capacity` is rounded up to a power of two (at least 4096).
  explicit LogRing(size_t capacity);
  LogRing(const LogRing&) = delete;
  LogRing& operator=(const LogRing&) = delete;

  size_t capacity() const noexcept { return mask_ + 1; }
  // Producer: appends n bytes, or nothing if they do not fit.
  bool TryWrite(const char* p, size_t n) noexcept;
  // Consumer: appends everything written so far to `out` and frees its room.
  // Returns the bytes taken.
  size_t Drain(std::string* out);

 private:
  std::unique_ptr<char[]> data_;
  size_t mask_;
  alignas(64) std::atomic<uint64_t> head_{0};  // written by the producer: bytes ever written
  alignas(64) std::atomic<uint64_t> tail_{0};  // written by the consumer: bytes ever taken
  uint64_t cached_tail_ = 0;                   // the producer's last view of tail_
};

}  // namespace hms::obs
