// Unit tests of a core's InputStore (src/proxy/connection.h): received
// buffers held per connection, fed to a consumer, a partial head gathered
// contiguous across buffers.
#include "src/proxy/connection.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace hms::proxy {
namespace {

constexpr uint32_t kBufferSize = 16;
constexpr uint32_t kBlockSize = 256;

class InputStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    core::RingOptions ro;
    ro.entries = 8;
    const int rc = ring_.Init(ro);
    if (rc < 0) GTEST_SKIP() << "io_uring unavailable: " << std::strerror(-rc);
    ASSERT_EQ(buffers_.Init(ring_.raw(), 0, 8, kBufferSize), 0);
    store_.Init(8);
  }
  void TearDown() override { store_.Clear(in_); }

  // As a receive would: `bytes` land in buffer `bid`, held by the input.
  void Receive(uint16_t bid, std::string_view bytes) {
    ASSERT_LE(bytes.size(), kBufferSize);
    std::memcpy(buffers_.Buffer(bid), bytes.data(), bytes.size());
    store_.Hold(in_, bid, 0, static_cast<uint32_t>(bytes.size()));
  }

  core::Ring ring_;
  core::BufferRing buffers_;
  core::BlockPool blocks_{kBlockSize};
  InputStore store_{buffers_, blocks_};
  Input in_;
};

// A consumer of heads ending in a blank line: 0 until it sees one whole.
struct HeadConsumer {
  std::vector<std::string>* seen;
  int64_t operator()(const char* p, size_t n) const {
    const std::string_view s(p, n);
    const size_t end = s.find("\r\n\r\n");
    if (end == std::string_view::npos) return 0;
    seen->emplace_back(s.substr(0, end + 4));
    return static_cast<int64_t>(end + 4);
  }
};

TEST_F(InputStoreTest, AHeadSplitOverBuffersIsSeenWhole) {
  Receive(0, "GET /a HTTP/1.1\r");
  Receive(1, "\nhost: x\r\n\r\nGET ");
  Receive(2, "/b HTTP/1.1\r\n\r\n");
  std::vector<std::string> seen;
  store_.Drive(in_, HeadConsumer{&seen});
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], "GET /a HTTP/1.1\r\nhost: x\r\n\r\n");
  EXPECT_EQ(seen[1], "GET /b HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(in_.empty());
  EXPECT_EQ(in_.block, nullptr);  // an idle connection holds no block
}

TEST_F(InputStoreTest, WholeMessagesAreReadInPlace) {
  Receive(0, "a\r\n\r\n");
  std::vector<std::string> seen;
  store_.Drive(in_, HeadConsumer{&seen});
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_TRUE(in_.empty());
  EXPECT_EQ(in_.block, nullptr);  // never copied
}

TEST_F(InputStoreTest, ABlockedConsumerKeepsTheInput) {
  Receive(0, "abc");
  Receive(1, "def");
  int calls = 0;
  store_.Drive(in_, [&](const char*, size_t) -> int64_t {
    ++calls;
    return kBlocked;
  });
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(in_.empty());
  EXPECT_EQ(store_.Front(in_), "abc");
  // Taking part of the first buffer, then nothing: the rest waits.
  store_.Drive(in_, [&](const char* p, size_t n) -> int64_t {
    return std::string_view(p, n) == "abc" ? 2 : kBlocked;
  });
  EXPECT_EQ(store_.Front(in_), "c");
  store_.Consume(in_, 1);
  EXPECT_EQ(store_.Front(in_), "def");
}

TEST_F(InputStoreTest, StashRefusesWhatTheBlockCannotTake) {
  const std::string big(kBlockSize, 'x');
  EXPECT_TRUE(store_.Stash(in_, big.data(), big.size()));
  EXPECT_FALSE(store_.Stash(in_, "y", 1));
  in_.block->begin = 10;  // consumed: compacting makes room
  EXPECT_TRUE(store_.Stash(in_, "y", 1));
  EXPECT_EQ(in_.block->begin, 0u);
  EXPECT_EQ(in_.block->end, kBlockSize - 9);
}

}  // namespace
}  // namespace hms::proxy
