#include "hms/obs/log_ring.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>

namespace hms::obs {
namespace {

TEST(LogRing, WholeLinesOrNothing) {
  LogRing ring(4096);
  EXPECT_EQ(ring.capacity(), 4096u);
  std::string line(1000, 'a');
  line.back() = '\n';
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(ring.TryWrite(line.data(), line.size()));
  EXPECT_FALSE(ring.TryWrite(line.data(), line.size()));  // 96 bytes left: refused whole
  EXPECT_TRUE(ring.TryWrite("x\n", 2));
  std::string out;
  EXPECT_EQ(ring.Drain(&out), 4002u);
  EXPECT_EQ(out, line + line + line + line + "x\n");
  EXPECT_EQ(ring.Drain(&out), 0u);
  // Wrapping around the end keeps the bytes in order.
  out.clear();
  std::string b(3000, 'b');
  EXPECT_TRUE(ring.TryWrite(b.data(), b.size()));
  EXPECT_EQ(ring.Drain(&out), 3000u);
  EXPECT_EQ(out, b);
}

TEST(LogRing, ProducerAndConsumerThreadsLoseNothingThatWasAccepted) {
  LogRing ring(1 << 14);
  constexpr int kLines = 200000;
  uint64_t accepted = 0;
  std::atomic<bool> done{false};
  std::thread producer([&] {
    char buf[32];
    for (int i = 0; i < kLines; ++i) {
      int n = std::snprintf(buf, sizeof buf, "%d\n", i);
      if (ring.TryWrite(buf, static_cast<size_t>(n))) ++accepted;
    }
    done.store(true);
  });
  std::string all;
  while (!done.load()) ring.Drain(&all);
  producer.join();
  ring.Drain(&all);
  // Every accepted line arrived whole and in order; some were refused while
  // the ring was full (the consumer is slower than the producer here).
  uint64_t lines = 0;
  long last = -1;
  size_t start = 0;
  while (start < all.size()) {
    size_t nl = all.find('\n', start);
    ASSERT_NE(nl, std::string::npos);
    long v = std::stol(all.substr(start, nl - start));
    EXPECT_GT(v, last);
    last = v;
    ++lines;
    start = nl + 1;
  }
  EXPECT_EQ(lines, accepted);
  EXPECT_GT(accepted, 0u);
}

}  // namespace
}  // namespace hms::obs
