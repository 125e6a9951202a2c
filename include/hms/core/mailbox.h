// Bounded lock-free mailbox of one core: the only way another thread reaches
// it (DESIGN §4). Many producers (the control thread, other cores), one
// consumer (the owning core). A producer that finds it full gets false and
// retries later; nothing blocks. After a successful Push the producer wakes the
// core through its eventfd, which the core keeps a read armed on in its ring.
//
// The queue is Vyukov's bounded MPMC array queue (a sequence number per cell).
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <vector>

namespace hms::core {

struct Message {
  // kHandOver: a drain whose listening sockets another process serves now
  // (hms-gateway --upgrade): accepts are cancelled, the sockets left open.
  // kAdopt: a connected socket to serve as if the core had accepted it.
  enum class Kind : uint8_t { kSnapshot, kDrain, kStop, kHandOver, kAdopt };
  Kind kind;
  void* payload = nullptr;  // kSnapshot: a config::Snapshot* already Acquire()d for the core
  int fd = -1;              // kAdopt: the socket, owned by the core from here
  uint16_t listener = 0;    // kAdopt: the listener it counts as accepted on
};

class Mailbox {
 public:
  explicit Mailbox(uint32_t capacity_pow2 = 256)
      : cells_(capacity_pow2), mask_(capacity_pow2 - 1), wake_fd_(eventfd(0, EFD_CLOEXEC)) {
    for (uint32_t i = 0; i < capacity_pow2; ++i) cells_[i].seq.store(i, std::memory_order_relaxed);
  }
  ~Mailbox() { close(wake_fd_); }

  bool Push(const Message& m) noexcept {
    uint64_t pos = tail_.load(std::memory_order_relaxed);
    for (;;) {
      Cell& c = cells_[pos & mask_];
      uint64_t seq = c.seq.load(std::memory_order_acquire);
      int64_t diff = static_cast<int64_t>(seq) - static_cast<int64_t>(pos);
      if (diff == 0) {
        if (tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
          c.msg = m;
          c.seq.store(pos + 1, std::memory_order_release);
          uint64_t one = 1;
          [[maybe_unused]] ssize_t w = write(wake_fd_, &one, sizeof one);
          return true;
        }
      } else if (diff < 0) {
        return false;  // full
      } else {
        pos = tail_.load(std::memory_order_relaxed);
      }
    }
  }

  bool Pop(Message* out) noexcept {
    uint64_t pos = head_;
    Cell& c = cells_[pos & mask_];
    uint64_t seq = c.seq.load(std::memory_order_acquire);
    if (static_cast<int64_t>(seq) - static_cast<int64_t>(pos + 1) < 0) return false;
    *out = c.msg;
    c.seq.store(pos + mask_ + 1, std::memory_order_release);
    head_ = pos + 1;
    return true;
  }

  int wake_fd() const noexcept { return wake_fd_; }

 private:
  struct alignas(64) Cell {
    std::atomic<uint64_t> seq;
    Message msg;
  };
  std::vector<Cell> cells_;
  uint64_t mask_;
  alignas(64) std::atomic<uint64_t> tail_{0};
  alignas(64) uint64_t head_ = 0;  // consumer only
  int wake_fd_;
};

}  // namespace hms::core
