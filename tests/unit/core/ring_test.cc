#include "hms/core/ring.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>

namespace hms::core {
namespace {

// Each test creates and uses its Ring in the test's own thread (SINGLE_ISSUER).
#define INIT_RING_OR_SKIP(ring)                                             \
  do {                                                                      \
    const int rc_ = (ring).Init(RingOptions{.entries = 64});                \
    if (rc_ == -ENOSYS || rc_ == -EPERM) {                                  \
      GTEST_SKIP() << "io_uring unavailable here: " << std::strerror(-rc_); \
    }                                                                       \
    ASSERT_EQ(rc_, 0) << std::strerror(-rc_);                               \
  } while (0)

// Waits up to two seconds for one CQE (DEFER_TASKRUN: completions run only
// when we wait). Returns -errno from the wait.
int WaitCqe(Ring& ring, io_uring_cqe** cqe) {
  __kernel_timespec ts{.tv_sec = 2, .tv_nsec = 0};
  return io_uring_submit_and_wait_timeout(ring.raw(), cqe, 1, &ts, nullptr);
}

struct SocketPair {
  int fds[2] = {-1, -1};
  SocketPair() { EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0); }
  ~SocketPair() {
    for (int fd : fds) {
      if (fd >= 0) close(fd);
    }
  }
};

TEST(UserData, PacksOpGenerationAndSlot) {
  const uint64_t ud = PackUserData(0xab, 0x123456, 0xdeadbeef);
  EXPECT_EQ(UserDataOp(ud), 0xab);
  EXPECT_EQ(UserDataGen(ud), 0x123456u);
  EXPECT_EQ(UserDataSlot(ud), 0xdeadbeefu);
  // The generation wraps at 24 bits without touching the op.
  const uint64_t wrapped = PackUserData(3, 0x1000005, 7);
  EXPECT_EQ(UserDataOp(wrapped), 3);
  EXPECT_EQ(UserDataGen(wrapped), 5u);
  EXPECT_EQ(UserDataSlot(wrapped), 7u);
  EXPECT_EQ(PackUserData(0, 0, 0), 0u);
}

TEST(Ring, NopRoundTrip) {
  Ring ring;
  INIT_RING_OR_SKIP(ring);
  io_uring_sqe* sqe = ring.Sqe();
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_nop(sqe);
  io_uring_sqe_set_data64(sqe, PackUserData(9, 77, 1234));
  io_uring_cqe* cqe = nullptr;
  ASSERT_GE(WaitCqe(ring, &cqe), 0);
  ASSERT_NE(cqe, nullptr);
  EXPECT_EQ(cqe->res, 0);
  const uint64_t ud = io_uring_cqe_get_data64(cqe);
  EXPECT_EQ(UserDataOp(ud), 9);
  EXPECT_EQ(UserDataGen(ud), 77u);
  EXPECT_EQ(UserDataSlot(ud), 1234u);
  io_uring_cqe_seen(ring.raw(), cqe);
  EXPECT_EQ(io_uring_cq_ready(ring.raw()), 0u);
}

TEST(Ring, CompletionQueueIsFourTimesTheSubmissionQueue) {
  Ring ring;
  INIT_RING_OR_SKIP(ring);
  EXPECT_EQ(ring.raw()->sq.ring_entries, 64u);
  EXPECT_EQ(ring.raw()->cq.ring_entries, 256u);
}

TEST(Ring, SqeSubmitsWhenTheQueueIsFull) {
  Ring ring;
  INIT_RING_OR_SKIP(ring);
  constexpr uint32_t kOps = 200;  // more than three SQs' worth, fewer than the CQ holds
  for (uint32_t i = 0; i < kOps; ++i) {
    io_uring_sqe* sqe = ring.Sqe();
    ASSERT_NE(sqe, nullptr);
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, PackUserData(1, 0, i));
  }
  ASSERT_GE(io_uring_submit(ring.raw()), 0);
  uint32_t seen = 0;
  uint64_t slots_sum = 0;
  while (seen < kOps) {
    io_uring_cqe* cqe = nullptr;
    ASSERT_GE(WaitCqe(ring, &cqe), 0) << "after " << seen << " completions";
    EXPECT_EQ(cqe->res, 0);
    slots_sum += UserDataSlot(io_uring_cqe_get_data64(cqe));
    io_uring_cqe_seen(ring.raw(), cqe);
    ++seen;
  }
  EXPECT_EQ(slots_sum, uint64_t{kOps} * (kOps - 1) / 2);  // each op completed once
}

void ArmMultishotRecv(Ring& ring, int fd, const BufferRing& buffers) {
  io_uring_sqe* sqe = ring.Sqe();
  io_uring_prep_recv_multishot(sqe, fd, nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = buffers.group();
  io_uring_sqe_set_data64(sqe, PackUserData(2, 1, 0));
}

// Writes `data` to `fd` and returns the received bytes from the next CQE;
// fails the test unless it carries a provided buffer and keeps the multishot.
::testing::AssertionResult SendAndReceive(Ring& ring, BufferRing& buffers, int write_fd,
                                          std::string_view data, uint16_t* bid) {
  if (write(write_fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) {
    return ::testing::AssertionFailure() << "write: " << std::strerror(errno);
  }
  io_uring_cqe* cqe = nullptr;
  const int rc = WaitCqe(ring, &cqe);
  if (rc < 0) return ::testing::AssertionFailure() << "wait: " << std::strerror(-rc);
  const int res = cqe->res;
  const uint32_t flags = cqe->flags;
  io_uring_cqe_seen(ring.raw(), cqe);
  if (res < 0) return ::testing::AssertionFailure() << "recv: " << std::strerror(-res);
  if ((flags & IORING_CQE_F_BUFFER) == 0) return ::testing::AssertionFailure() << "no buffer";
  if ((flags & IORING_CQE_F_MORE) == 0) {
    return ::testing::AssertionFailure() << "multishot ended";
  }
  *bid = static_cast<uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
  const std::string_view got(buffers.Buffer(*bid), static_cast<size_t>(res));
  if (got != data) {
    return ::testing::AssertionFailure() << "received '" << got << "', sent '" << data << "'";
  }
  return ::testing::AssertionSuccess();
}

TEST(BufferRing, MultishotRecvUsesProvidedBuffersAndRecycledOnesComeBack) {
  Ring ring;  // declared first: the buffer ring unregisters from it on destruction
  INIT_RING_OR_SKIP(ring);
  BufferRing buffers;
  ASSERT_EQ(buffers.Init(ring.raw(), 5, 2, 256), 0);
  EXPECT_EQ(buffers.group(), 5);
  EXPECT_EQ(buffers.size(), 256u);
  SocketPair sp;
  ArmMultishotRecv(ring, sp.fds[0], buffers);

  // Two buffers serve ten receives only if each is given back.
  for (int i = 0; i < 10; ++i) {
    const std::string msg = "message " + std::to_string(i);
    uint16_t bid = 0xffff;
    ASSERT_TRUE(SendAndReceive(ring, buffers, sp.fds[1], msg, &bid)) << "receive " << i;
    EXPECT_LT(bid, 2);
    buffers.Recycle(bid);
    buffers.Flush();
  }
}

TEST(BufferRing, RunningDryEndsTheMultishotUntilRefilled) {
  Ring ring;
  INIT_RING_OR_SKIP(ring);
  BufferRing buffers;
  ASSERT_EQ(buffers.Init(ring.raw(), 1, 2, 64), 0);
  SocketPair sp;
  ArmMultishotRecv(ring, sp.fds[0], buffers);

  uint16_t first = 0, second = 0;
  ASSERT_TRUE(SendAndReceive(ring, buffers, sp.fds[1], "one", &first));
  ASSERT_TRUE(SendAndReceive(ring, buffers, sp.fds[1], "two", &second));
  EXPECT_NE(first, second);

  // Both buffers held: the next receive finds none.
  ASSERT_EQ(write(sp.fds[1], "three", 5), 5);
  io_uring_cqe* cqe = nullptr;
  ASSERT_GE(WaitCqe(ring, &cqe), 0);
  EXPECT_EQ(cqe->res, -ENOBUFS);
  EXPECT_EQ(cqe->flags & IORING_CQE_F_MORE, 0u);
  io_uring_cqe_seen(ring.raw(), cqe);

  // Recycled but not yet flushed: still invisible to the kernel.
  buffers.Recycle(first);
  buffers.Recycle(second);
  ArmMultishotRecv(ring, sp.fds[0], buffers);
  ASSERT_GE(WaitCqe(ring, &cqe), 0);
  EXPECT_EQ(cqe->res, -ENOBUFS);
  io_uring_cqe_seen(ring.raw(), cqe);

  buffers.Flush();
  buffers.Flush();  // nothing pending: no effect
  ArmMultishotRecv(ring, sp.fds[0], buffers);
  ASSERT_GE(WaitCqe(ring, &cqe), 0);  // the bytes waited in the socket
  ASSERT_GT(cqe->res, 0);
  ASSERT_NE(cqe->flags & IORING_CQE_F_BUFFER, 0u);
  const uint16_t bid = static_cast<uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
  EXPECT_EQ(std::string_view(buffers.Buffer(bid), static_cast<size_t>(cqe->res)), "three");
  EXPECT_NE(cqe->flags & IORING_CQE_F_MORE, 0u);
  io_uring_cqe_seen(ring.raw(), cqe);
}

}  // namespace
}  // namespace hms::core
