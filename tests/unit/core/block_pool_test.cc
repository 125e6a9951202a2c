#include "hms/core/block_pool.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

namespace hms::core {
namespace {

constexpr uint32_t kBlock = 64;

std::string Pattern(size_t n, char seed = 'a') {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i % 23);
  return s;
}

// The queued bytes, read through Gather.
std::string Contents(const ByteQueue& q) {
  iovec iov[64];
  const int n = q.Gather(iov, 64);
  std::string out;
  for (int i = 0; i < n; ++i) out.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
  return out;
}

TEST(BlockPool, GetRecyclesPutBlocks) {
  BlockPool pool(kBlock);
  EXPECT_EQ(pool.block_size(), kBlock);
  Block* a = pool.Get();
  Block* b = pool.Get();
  EXPECT_EQ(pool.allocated(), 2u);
  a->begin = 3;
  a->end = 9;
  a->next = b;
  pool.Put(a);
  pool.Put(b);
  EXPECT_EQ(pool.free_count(), 2u);
  Block* c = pool.Get();  // last in, first out: the warm block
  EXPECT_EQ(c, b);
  Block* d = pool.Get();
  EXPECT_EQ(d, a);
  EXPECT_EQ(d->begin, 0u);  // handed out clean
  EXPECT_EQ(d->end, 0u);
  EXPECT_EQ(d->next, nullptr);
  EXPECT_EQ(pool.allocated(), 2u);
  EXPECT_EQ(pool.free_count(), 0u);
  pool.Put(c);
  pool.Put(d);
}

TEST(ByteQueue, AppendAcrossBlockBoundaries) {
  BlockPool pool(kBlock);
  ByteQueue q;
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(pool.allocated(), 0u);  // an idle queue holds no block
  const std::string data = Pattern(3 * kBlock + 8);
  q.Append(&pool, data.data(), 10);
  q.Append(&pool, data.data() + 10, data.size() - 10);
  EXPECT_EQ(q.size(), data.size());
  EXPECT_EQ(pool.allocated(), 4u);

  iovec iov[8];
  ASSERT_EQ(q.Gather(iov, 8), 4);
  EXPECT_EQ(iov[0].iov_len, kBlock);
  EXPECT_EQ(iov[1].iov_len, kBlock);
  EXPECT_EQ(iov[2].iov_len, kBlock);
  EXPECT_EQ(iov[3].iov_len, 8u);
  EXPECT_EQ(Contents(q), data);
  EXPECT_EQ(q.Gather(iov, 2), 2);  // bounded by max
  EXPECT_EQ(iov[1].iov_len, kBlock);
  EXPECT_EQ(q.Gather(iov, 0), 0);
  q.Append(&pool, data.data(), 0);
  EXPECT_EQ(q.size(), data.size());
  q.Clear(&pool);
}

TEST(ByteQueue, ConsumePartialAndWholeBlocksReturnsThemToThePool) {
  BlockPool pool(kBlock);
  ByteQueue q;
  const std::string data = Pattern(3 * kBlock + 8);
  q.Append(&pool, data.data(), data.size());
  ASSERT_EQ(pool.allocated(), 4u);

  q.Consume(&pool, 10);  // inside the first block
  EXPECT_EQ(q.size(), data.size() - 10);
  EXPECT_EQ(pool.free_count(), 0u);
  iovec iov[8];
  ASSERT_EQ(q.Gather(iov, 8), 4);
  EXPECT_EQ(iov[0].iov_len, kBlock - 10);
  EXPECT_EQ(Contents(q), data.substr(10));

  q.Consume(&pool, kBlock - 10);  // exactly the rest of the first block
  EXPECT_EQ(pool.free_count(), 1u);
  EXPECT_EQ(q.Gather(iov, 8), 3);
  EXPECT_EQ(Contents(q), data.substr(kBlock));

  q.Consume(&pool, kBlock + 20);  // a whole block and part of the next
  EXPECT_EQ(pool.free_count(), 2u);
  EXPECT_EQ(Contents(q), data.substr(2 * kBlock + 20));

  q.Consume(&pool, 0);
  EXPECT_EQ(q.size(), data.size() - 2 * kBlock - 20);

  q.Consume(&pool, q.size());  // everything: the idle queue gives back its last block
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.Gather(iov, 8), 0);
  EXPECT_EQ(pool.free_count(), pool.allocated());

  // Usable again after running empty.
  q.Append(&pool, "xyz", 3);
  EXPECT_EQ(Contents(q), "xyz");
  EXPECT_EQ(pool.allocated(), 4u);
  q.Clear(&pool);
}

TEST(ByteQueue, ReserveAndCommit) {
  BlockPool pool(kBlock);
  ByteQueue q;
  char* p = q.Reserve(&pool, 16);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(q.size(), 0u);  // nothing visible before Commit
  std::memcpy(p, "0123456789", 10);
  q.Commit(10);
  EXPECT_EQ(q.size(), 10u);
  EXPECT_EQ(Contents(q), "0123456789");

  // Room left in the tail: the next reservation continues right after.
  char* p2 = q.Reserve(&pool, kBlock - 10);
  EXPECT_EQ(p2, p + 10);
  q.Commit(0);

  // Not enough contiguous room in the tail: a fresh block.
  char* p3 = q.Reserve(&pool, kBlock - 9);
  EXPECT_NE(p3, p + 10);
  EXPECT_EQ(pool.allocated(), 2u);
  std::memset(p3, 'z', kBlock - 9);
  q.Commit(kBlock - 9);
  EXPECT_EQ(q.size(), 10 + kBlock - 9);
  iovec iov[4];
  ASSERT_EQ(q.Gather(iov, 4), 2);
  EXPECT_EQ(iov[0].iov_len, 10u);
  EXPECT_EQ(iov[1].iov_base, p3);
  EXPECT_EQ(iov[1].iov_len, kBlock - 9);

  // A whole block may be reserved.
  char* p4 = q.Reserve(&pool, kBlock);
  std::memset(p4, 'w', kBlock);
  q.Commit(kBlock);
  EXPECT_EQ(Contents(q), "0123456789" + std::string(kBlock - 9, 'z') + std::string(kBlock, 'w'));
  q.Clear(&pool);
}

TEST(ByteQueue, ClearGivesEveryBlockBack) {
  BlockPool pool(kBlock);
  ByteQueue q;
  const std::string data = Pattern(5 * kBlock);
  q.Append(&pool, data.data(), data.size());
  q.Consume(&pool, 7);
  EXPECT_EQ(pool.allocated(), 5u);
  q.Clear(&pool);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.size(), 0u);
  iovec iov[4];
  EXPECT_EQ(q.Gather(iov, 4), 0);
  EXPECT_EQ(pool.free_count(), 5u);
  q.Clear(&pool);  // twice is harmless
  EXPECT_EQ(pool.free_count(), 5u);
  q.Append(&pool, "ab", 2);
  EXPECT_EQ(Contents(q), "ab");
  q.Clear(&pool);
}

TEST(ByteQueue, PoolRecyclesWithoutAllocatingAfterWarmUp) {
  BlockPool pool(kBlock);
  ByteQueue a, b;
  const std::string data = Pattern(1000);
  auto round = [&](int i) {
    // Two connections: odd-sized appends, sends that stop mid-block, one reset.
    a.Append(&pool, data.data(), 300 + i % 7);
    b.Append(&pool, data.data(), 700);
    char* r = a.Reserve(&pool, kBlock);
    std::memset(r, 'r', 40);
    a.Commit(40);
    a.Consume(&pool, 100);
    b.Consume(&pool, 333);
    a.Consume(&pool, a.size());
    if (i % 3 == 0) {
      b.Clear(&pool);
    } else {
      b.Consume(&pool, b.size());
    }
    ASSERT_TRUE(a.empty());
    ASSERT_TRUE(b.empty());
  };
  for (int i = 0; i < 10; ++i) round(i);  // warm-up
  const size_t warm = pool.allocated();
  EXPECT_GT(warm, 0u);
  EXPECT_EQ(pool.free_count(), warm);
  for (int i = 0; i < 1000; ++i) round(i);
  EXPECT_EQ(pool.allocated(), warm);
  EXPECT_EQ(pool.free_count(), warm);
}

}  // namespace
}  // namespace hms::core
