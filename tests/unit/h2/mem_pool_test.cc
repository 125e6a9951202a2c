#include "hms/h2/mem_pool.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace hms::h2 {
namespace {

TEST(H2MemPool, ClassesCoverEverySizeTightly) {
  EXPECT_EQ(MemPool::ClassOf(0), 0);
  EXPECT_EQ(MemPool::ClassSize(0), 32u);
  for (size_t n = 1; n <= 256 * 1024; n += n < 4096 ? 1 : 97) {
    const uint8_t c = MemPool::ClassOf(n);
    ASSERT_NE(c, MemPool::kOversize) << n;
    ASSERT_GE(MemPool::ClassSize(c), n) << n;
    // The smallest class that fits: at most a third more (a 1.5x step).
    ASSERT_LE(MemPool::ClassSize(c), n < 32 ? 32 : n + n / 2) << n;
    for (uint8_t d = 0; d < MemPool::kClasses; ++d) {
      if (MemPool::ClassSize(d) >= n) {
        ASSERT_GE(MemPool::ClassSize(d), MemPool::ClassSize(c)) << n;
      }
    }
  }
  EXPECT_EQ(MemPool::ClassSize(MemPool::ClassOf(256 * 1024)), 256u * 1024);
  EXPECT_EQ(MemPool::ClassOf(256 * 1024 + 1), MemPool::kOversize);
  // nghttp2's outbound frame buffer (NGHTTP2_FRAMEBUF_CHUNKLEN, 16394 bytes in
  // 1.52), which every session keeps: a class that wastes little of it.
  EXPECT_LE(MemPool::ClassSize(MemPool::ClassOf(16394)), 16394u + 64);
}

TEST(H2MemPool, RecyclesBlocks) {
  MemPool pool;
  void* a = pool.Alloc(100);
  void* b = pool.Alloc(100);
  EXPECT_EQ(pool.heap_allocations(), 2u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 16, 0u);
  pool.Free(a);
  pool.Free(b);
  EXPECT_EQ(pool.blocks_in_use(), 0u);
  EXPECT_EQ(pool.bytes_cached(), 2 * MemPool::ClassSize(MemPool::ClassOf(100)));
  // Warm: the same sizes (and any of the same class) come from the free list.
  for (int i = 0; i < 1000; ++i) {
    void* p = pool.Alloc(97 + i % 30);  // 97..126: the class of 100
    void* q = pool.Alloc(100);
    pool.Free(p);
    pool.Free(q);
  }
  EXPECT_EQ(pool.heap_allocations(), 2u);
}

TEST(H2MemPool, CallocReallocFree) {
  MemPool pool;
  auto* z = static_cast<unsigned char*>(pool.Calloc(10, 7));
  for (int i = 0; i < 70; ++i) ASSERT_EQ(z[i], 0);
  std::memset(z, 'a', 70);
  // Within its class: the same block.
  EXPECT_EQ(pool.Realloc(z, 90), z);
  auto* bigger = static_cast<unsigned char*>(pool.Realloc(z, 1000));
  ASSERT_NE(bigger, nullptr);
  for (int i = 0; i < 70; ++i) ASSERT_EQ(bigger[i], 'a');
  EXPECT_EQ(pool.blocks_in_use(), 1u);
  pool.Free(bigger);
  pool.Free(nullptr);
  EXPECT_EQ(pool.blocks_in_use(), 0u);
  void* fresh = pool.Realloc(nullptr, 10);
  EXPECT_NE(fresh, nullptr);
  pool.Free(fresh);
  EXPECT_EQ(pool.Calloc(SIZE_MAX / 2, 4), nullptr);  // overflow, not a short block
}

TEST(H2MemPool, OversizeGoesToTheHeapAndBack) {
  MemPool pool;
  void* p = pool.Alloc(1 << 20);
  ASSERT_NE(p, nullptr);
  std::memset(p, 1, 1 << 20);
  EXPECT_EQ(pool.bytes_in_use(), 1u << 20);
  pool.Free(p);
  EXPECT_EQ(pool.bytes_in_use(), 0u);
  EXPECT_EQ(pool.bytes_cached(), 0u);
  EXPECT_EQ(pool.heap_allocations(), 1u);
}

}  // namespace
}  // namespace hms::h2
