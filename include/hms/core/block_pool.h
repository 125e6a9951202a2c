// Fixed-size byte blocks for a core's connection buffers, and a FIFO byte
// queue over them.
//
// One BlockPool per core, touched only by its thread. Blocks are malloc'ed when
// the pool runs dry (warm-up) and recycled forever after, so the steady state
// allocates nothing. An idle keep-alive connection holds no block.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace hms::core {

struct Block {
  Block* next = nullptr;
  uint32_t begin = 0;  // first unread byte
  uint32_t end = 0;    // one past the last written byte
  char* data() noexcept { return reinterpret_cast<char*>(this + 1); }
};

class BlockPool {
 public:
  explicit BlockPool(uint32_t block_size) noexcept : size_(block_size) {}
  ~BlockPool();
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  Block* Get() noexcept;
  void Put(Block* b) noexcept;
  uint32_t block_size() const noexcept { return size_; }
  size_t allocated() const noexcept { return allocated_; }
  size_t free_count() const noexcept { return free_count_; }

 private:
  uint32_t size_;
  Block* free_ = nullptr;
  size_t free_count_ = 0;
  size_t allocated_ = 0;
};

// A FIFO of bytes in a chain of blocks: appended at the tail, sent from the head.
class ByteQueue {
 public:
  ByteQueue() = default;
  ByteQueue(const ByteQueue&) = delete;
  ByteQueue& operator=(const ByteQueue&) = delete;

  void Append(BlockPool* pool, const char* p, size_t n) noexcept;
  // Reserves room for at least `n` contiguous bytes (n ≤ block size) at the
  // tail and returns where to write; Commit(n) then publishes them.
  char* Reserve(BlockPool* pool, size_t n) noexcept;
  void Commit(size_t n) noexcept;
  // Fills up to `max` iovecs from the head; returns how many.
  int Gather(iovec* iov, int max) const noexcept;
  // Drops `n` bytes from the head (after a send completed).
  void Consume(BlockPool* pool, size_t n) noexcept;
  void Clear(BlockPool* pool) noexcept;
  size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }

 private:
  Block* head_ = nullptr;
  Block* tail_ = nullptr;
  size_t size_ = 0;
  uint32_t block_size_ = 0;
};

}  // namespace hms::core
