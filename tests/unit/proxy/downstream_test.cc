// Unit tests of Client as the Downstream of its exchange (src/proxy/downstream.h):
// the answer is queued in the connection's output and the connection listed
// for the pass's flush, reserved bytes count only once committed, back
// pressure shows as Full(), and the end of the connection is the exchange's
// to ask for. A worker that was never started lends its block pool.
#include "src/proxy/downstream.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "hms/config/config.h"
#include "src/proxy/worker.h"

namespace hms::proxy {
namespace {

class ClientDownstream : public ::testing::Test {
 protected:
  ClientDownstream() : worker_(0, 1, config::GatewayConfig{}, {}, {}, -1) {
    client_.worker = &worker_;
    client_.slot = 7;
  }
  // The queued blocks go to a pool of the test's own, which frees them: the
  // worker's is private to the core.
  ~ClientDownstream() override { client_.out.Clear(&spare_); }
  Worker worker_;
  Client client_;
  core::BlockPool spare_{1};
};

TEST_F(ClientDownstream, CommittedHeadIsQueuedAndFlushed) {
  Downstream& down = client_;
  const std::string head = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n";
  char* dst = down.Reserve(head.size());
  ASSERT_NE(dst, nullptr);
  std::memcpy(dst, head.data(), head.size());
  EXPECT_EQ(client_.out.size(), 0u);  // reserved, not yet the answer
  EXPECT_FALSE(client_.dirty);
  down.Commit(head.size());
  EXPECT_EQ(client_.out.size(), head.size());
  EXPECT_TRUE(client_.dirty);  // listed for this pass's flush
}

TEST_F(ClientDownstream, SentBodyIsQueuedAndFlushed) {
  Downstream& down = client_;
  down.Send("ok", 2);
  EXPECT_EQ(client_.out.size(), 2u);
  EXPECT_TRUE(client_.dirty);
}

TEST_F(ClientDownstream, FullAtTheQueueBound) {
  Downstream& down = client_;
  std::vector<char> chunk(16 * 1024, 'x');
  size_t sent = 0;
  while (sent + chunk.size() < kMaxQueued) {
    down.Send(chunk.data(), chunk.size());
    sent += chunk.size();
    EXPECT_FALSE(down.Full());
  }
  down.Send(chunk.data(), kMaxQueued - sent);
  EXPECT_TRUE(down.Full());
}

TEST_F(ClientDownstream, CloseAfterAnswer) {
  Downstream& down = client_;
  EXPECT_FALSE(down.closing());
  down.CloseAfterAnswer();
  EXPECT_TRUE(down.closing());
  EXPECT_TRUE(client_.close_after_flush);
}

}  // namespace
}  // namespace hms::proxy
