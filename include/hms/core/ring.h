// A core's io_uring and its provided-buffer ring (DESIGN §4).
//
// Created inside the core's own pinned thread (SINGLE_ISSUER: a submit from
// another thread fails with -EEXIST) and used only there. liburing.h stays
// inside core/ and proxy/ (STYLE §8).
//
// user_data packs op (8 bits) | generation (24 bits) | slot (32 bits): the
// generation turns completions for a recycled slot into no-ops (STYLE §6).
#pragma once

#include <liburing.h>

#include <cstdint>

#include "hms/common/result.h"

namespace hms::core {

inline uint64_t PackUserData(uint8_t op, uint32_t gen, uint32_t slot) noexcept {
  return (static_cast<uint64_t>(op) << 56) | (static_cast<uint64_t>(gen & 0xffffff) << 32) | slot;
}
inline uint8_t UserDataOp(uint64_t ud) noexcept { return static_cast<uint8_t>(ud >> 56); }
inline uint32_t UserDataGen(uint64_t ud) noexcept { return static_cast<uint32_t>(ud >> 32) & 0xffffff; }
inline uint32_t UserDataSlot(uint64_t ud) noexcept { return static_cast<uint32_t>(ud); }

struct RingOptions {
  uint32_t entries = 4096;
  bool sqpoll = false;  // refused by config validation: DEFER_TASKRUN excludes it
};

class Ring {
 public:
  Ring() = default;
  ~Ring();
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  // Sets the ring up with SINGLE_ISSUER|DEFER_TASKRUN and a CQ four times the
  // SQ, and registers the ring fd. Returns -errno.
  int Init(const RingOptions& options) noexcept;

  // An SQE, submitting first if the SQ is full. Never null.
  io_uring_sqe* Sqe() noexcept;
  io_uring* raw() noexcept { return &ring_; }

 private:
  io_uring ring_{};
  bool ready_ = false;
};

// A ring of `count` provided buffers of `size` bytes each, buffer group `bgid`.
// Receives pick a buffer; the core gives each back once it has copied the
// bytes out, in batches published with Flush().
class BufferRing {
 public:
  BufferRing() = default;
  ~BufferRing();
  BufferRing(const BufferRing&) = delete;
  BufferRing& operator=(const BufferRing&) = delete;

  int Init(io_uring* ring, uint16_t bgid, uint32_t count, uint32_t size) noexcept;
  char* Buffer(uint16_t bid) noexcept { return base_ + static_cast<size_t>(bid) * size_; }
  void Recycle(uint16_t bid) noexcept;
  void Flush() noexcept;  // publishes recycled buffers to the kernel
  uint16_t group() const noexcept { return bgid_; }
  uint32_t size() const noexcept { return size_; }

 private:
  io_uring* ring_ = nullptr;
  io_uring_buf_ring* br_ = nullptr;
  char* base_ = nullptr;
  size_t ring_bytes_ = 0;
  uint32_t count_ = 0;
  uint32_t size_ = 0;
  uint16_t bgid_ = 0;
  int pending_ = 0;
};

}  // namespace hms::core
