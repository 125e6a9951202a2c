#include "hms/core/mailbox.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

namespace hms::core {
namespace {

void* AsPayload(uint64_t v) { return reinterpret_cast<void*>(static_cast<uintptr_t>(v)); }
uint64_t FromPayload(void* p) { return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p)); }

bool Readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

TEST(Mailbox, SingleThreadFifoUntilFull) {
  Mailbox box(8);
  Message m{};
  EXPECT_FALSE(box.Pop(&m));  // empty
  for (uint64_t i = 0; i < 8; ++i) {
    ASSERT_TRUE(box.Push({i % 2 ? Message::Kind::kDrain : Message::Kind::kSnapshot, AsPayload(i)}));
  }
  EXPECT_FALSE(box.Push({Message::Kind::kStop, AsPayload(99)}));  // full: the producer retries
  for (uint64_t i = 0; i < 8; ++i) {
    ASSERT_TRUE(box.Pop(&m));
    EXPECT_EQ(FromPayload(m.payload), i);
    EXPECT_EQ(m.kind, i % 2 ? Message::Kind::kDrain : Message::Kind::kSnapshot);
  }
  EXPECT_FALSE(box.Pop(&m));
  // Room again once popped, across many wrap-arounds.
  for (uint64_t i = 0; i < 100; ++i) {
    ASSERT_TRUE(box.Push({Message::Kind::kStop, AsPayload(1000 + i)}));
    ASSERT_TRUE(box.Push({Message::Kind::kStop, AsPayload(2000 + i)}));
    ASSERT_TRUE(box.Pop(&m));
    EXPECT_EQ(FromPayload(m.payload), 1000 + i);
    ASSERT_TRUE(box.Pop(&m));
    EXPECT_EQ(FromPayload(m.payload), 2000 + i);
  }
  EXPECT_FALSE(box.Pop(&m));
}

TEST(Mailbox, ManyProducersEveryMessageExactlyOnceInEachProducersOrder) {
  constexpr uint64_t kProducers = 4;
  constexpr uint64_t kPerProducer = 50'000;
  Mailbox box(64);  // small, so producers meet a full box often
  std::vector<std::thread> producers;
  for (uint64_t p = 0; p < kProducers; ++p) {
    producers.emplace_back([&box, p] {
      for (uint64_t i = 0; i < kPerProducer; ++i) {
        const Message m{Message::Kind::kSnapshot, AsPayload((p << 32) | (i + 1))};
        while (!box.Push(m)) std::this_thread::yield();
      }
    });
  }
  std::vector<uint64_t> next(kProducers, 1);  // next sequence number expected from each
  uint64_t received = 0;
  uint64_t out_of_order = 0;
  Message m{};
  while (received < kProducers * kPerProducer) {
    if (!box.Pop(&m)) {
      std::this_thread::yield();
      continue;
    }
    const uint64_t v = FromPayload(m.payload);
    const uint64_t p = v >> 32;
    const uint64_t seq = v & 0xffffffffu;
    ASSERT_LT(p, kProducers);
    if (seq != next[p]) ++out_of_order;  // a loss, a duplicate or a reordering
    next[p] = seq + 1;
    ++received;
  }
  for (std::thread& t : producers) t.join();
  EXPECT_EQ(out_of_order, 0u);
  for (uint64_t p = 0; p < kProducers; ++p) EXPECT_EQ(next[p], kPerProducer + 1);
  EXPECT_FALSE(box.Pop(&m));  // nothing extra
}

TEST(Mailbox, PushMakesTheWakeFdReadable) {
  Mailbox box(4);
  const int fd = box.wake_fd();
  ASSERT_GE(fd, 0);
  EXPECT_FALSE(Readable(fd));
  ASSERT_TRUE(box.Push({Message::Kind::kDrain, nullptr}));
  EXPECT_TRUE(Readable(fd));
  ASSERT_TRUE(box.Push({Message::Kind::kDrain, nullptr}));
  ASSERT_TRUE(box.Push({Message::Kind::kDrain, nullptr}));
  uint64_t count = 0;
  ASSERT_EQ(read(fd, &count, sizeof count), static_cast<ssize_t>(sizeof count));
  EXPECT_EQ(count, 3u);  // one wake per message, coalesced by the eventfd
  EXPECT_FALSE(Readable(fd));
  // A refused push does not wake the core.
  ASSERT_TRUE(box.Push({Message::Kind::kDrain, nullptr}));
  ASSERT_EQ(read(fd, &count, sizeof count), static_cast<ssize_t>(sizeof count));
  EXPECT_FALSE(box.Push({Message::Kind::kStop, nullptr}));
  EXPECT_FALSE(Readable(fd));
}

TEST(Mailbox, WakesAConsumerBlockedInAnotherThread) {
  Mailbox box(4);
  std::thread producer([&box] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    box.Push({Message::Kind::kStop, nullptr});
  });
  pollfd p{box.wake_fd(), POLLIN, 0};
  const int rc = poll(&p, 1, 5000);
  producer.join();
  ASSERT_EQ(rc, 1);
  Message m{};
  ASSERT_TRUE(box.Pop(&m));
  EXPECT_EQ(m.kind, Message::Kind::kStop);
}

}  // namespace
}  // namespace hms::core
