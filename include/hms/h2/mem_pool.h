// The heap of a core's HTTP/2 sessions: nghttp2's every allocation (its
// session, streams, HPACK tables, frame buffers, header buffers) and the
// sessions' own stream records come from here, through nghttp2_mem
// (session.cc installs it), never from malloc directly.
//
// Size classes (powers of two and the 1.5x steps between them, 32 B to
// 256 KiB, and one that fits nghttp2's 16 KiB frame buffer), each a free list: a block is malloc'ed when its class runs dry
// (warm-up) and recycled forever after, as BlockPool does for connection
// buffers, so warm streams allocate nothing. Each malloc is counted here
// (heap_allocations) and on the calling thread's allocation counter
// (obs/alloc_hook.h), which makes the engine's zero-allocation test cover
// HTTP/2 too. A request above the largest class goes to malloc and back to
// free (counted as well; nghttp2 asks for nothing that large with the limits
// in limits.h).
//
// One MemPool per core, touched only by its thread; it outlives every session
// that uses it. Blocks are 16-byte aligned, as malloc's are.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hms::h2 {

class MemPool {
 public:
  MemPool() = default;
  ~MemPool();  // frees the cached blocks; blocks still in use are the caller's leak
  MemPool(const MemPool&) = delete;
  MemPool& operator=(const MemPool&) = delete;

  // malloc/calloc/realloc/free semantics (free(nullptr) and realloc(nullptr,
  // n) included); nullptr only when malloc itself fails.
  void* Alloc(size_t n) noexcept;
  void* Calloc(size_t count, size_t size) noexcept;
  void* Realloc(void* p, size_t n) noexcept;
  void Free(void* p) noexcept;

  // malloc calls so far: the warm-up's, and any above the largest class.
  uint64_t heap_allocations() const noexcept { return heap_allocations_; }
  // Blocks handed out and not yet freed, and the bytes of their classes.
  uint64_t blocks_in_use() const noexcept { return blocks_in_use_; }
  uint64_t bytes_in_use() const noexcept { return bytes_in_use_; }
  // Bytes held in free lists, ready for reuse.
  uint64_t bytes_cached() const noexcept { return bytes_cached_; }

  // The size class serving `n` bytes (kOversize above the largest), and the
  // usable size of a class. Exposed for tests.
  static constexpr uint8_t kClasses = 28;
  static constexpr uint8_t kOversize = 0xff;
  static uint8_t ClassOf(size_t n) noexcept;
  static size_t ClassSize(uint8_t c) noexcept;

 private:
  struct Header;
  struct FreeBlock {
    FreeBlock* next;
  };
  FreeBlock* free_[kClasses] = {};
  uint64_t heap_allocations_ = 0;
  uint64_t blocks_in_use_ = 0;
  uint64_t bytes_in_use_ = 0;
  uint64_t bytes_cached_ = 0;
};

}  // namespace hms::h2
