#include "hms/control/handover.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstring>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace hms::control {
namespace {

// A socket to hand over, and a way to tell it from another on the far side.
int NamedSocket() { return socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0); }

std::string Name(const char* test) {
  return "hms-handover-test-" + std::to_string(getpid()) + "-" + test;
}

void WaitFor(const std::function<bool()>& done) {
  auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done() && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

TEST(Handover, NameDependsOnTheConfigFileOnly) {
  EXPECT_EQ(HandoverName("/etc/hms/gateway.yaml"), HandoverName("/etc/hms/gateway.yaml"));
  EXPECT_NE(HandoverName("/etc/hms/a.yaml"), HandoverName("/etc/hms/b.yaml"));
  EXPECT_EQ(HandoverName("").rfind("hms-gateway-upgrade:", 0), 0u);
}

TEST(Handover, EveryMemberAndTheAdminSocketTravelThenTheOldSideHearsServing) {
  std::vector<int> mine = {NamedSocket(), NamedSocket(), NamedSocket(), NamedSocket()};
  std::atomic<int> handed{0};
  HandoverServer server(
      Name("all"),
      [&] {
        return std::vector<HandedSocket>{
            {mine[0], 0}, {mine[1], 0}, {mine[2], 1}, {mine[3], HandedSocket::kAdmin}};
      },
      [&] { ++handed; }, [](const std::string&) {});
  ASSERT_TRUE(server.Start().ok());
  // A second server on the name: another gateway of the same config runs.
  HandoverServer twin(
      Name("all"), [] { return std::vector<HandedSocket>{}; }, [] {}, [](const std::string&) {});
  EXPECT_FALSE(twin.Start().ok());

  Result<ReceivedSockets> got = ReceiveSockets(Name("all"));
  ASSERT_TRUE(got.ok()) << got.error().message;
  ASSERT_EQ(got->listeners.size(), 2u);
  EXPECT_EQ(got->listeners[0].size(), 2u);  // both members of listener 0's group
  EXPECT_EQ(got->listeners[1].size(), 1u);
  EXPECT_GE(got->admin, 0);
  EXPECT_FALSE(server.handed_over());
  ASSERT_TRUE(ConfirmServing(&*got).ok());
  WaitFor([&] { return handed.load() == 1; });
  EXPECT_EQ(handed.load(), 1);
  EXPECT_TRUE(server.handed_over());
  got->CloseAll();
  for (int fd : mine) close(fd);
}

TEST(Handover, NewProcessThatFailsLeavesTheOldOneReadyForTheNext) {
  int fd = NamedSocket();
  std::atomic<int> handed{0};
  HandoverServer server(
      Name("fail"),
      [&] {
        return std::vector<HandedSocket>{{fd, 0}};
      },
      [&] { ++handed; }, [](const std::string&) {});
  ASSERT_TRUE(server.Start().ok());
  {
    Result<ReceivedSockets> first = ReceiveSockets(Name("fail"));
    ASSERT_TRUE(first.ok()) << first.error().message;
    first->CloseAll();  // gone before serving
  }
  // The old side listens again once it saw the first one go.
  Result<ReceivedSockets> second = Error{"not tried"};
  WaitFor([&] {
    second = ReceiveSockets(Name("fail"));
    return second.ok();
  });
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_EQ(handed.load(), 0);
  EXPECT_FALSE(server.handed_over());
  second->CloseAll();
  close(fd);
}

// SIGTERM while a new process holds the sockets but has not said it serves:
// it may still serve on them, so the old one must drain as after a handover
// (never shutting the shared sockets down).
TEST(Handover, StoppedMidUpgradeCountsAsHandedOver) {
  int fd = NamedSocket();
  HandoverServer server(
      Name("stop"), [&] { return std::vector<HandedSocket>{{fd, 0}}; }, [] {},
      [](const std::string&) {});
  ASSERT_TRUE(server.Start().ok());
  Result<ReceivedSockets> got = ReceiveSockets(Name("stop"));
  ASSERT_TRUE(got.ok()) << got.error().message;
  server.Stop();
  EXPECT_TRUE(server.handed_over());
  got->CloseAll();
  close(fd);
}

// Any local process can connect to an abstract name: one of another user
// gets nothing, and the old side stays ready for a real upgrade.
TEST(Handover, AProcessOfAnotherUserGetsNoSocket) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to become another user";
  int fd = NamedSocket();
  std::vector<std::string> log;
  std::mutex log_mu;
  HandoverServer server(
      Name("uid"), [&] { return std::vector<HandedSocket>{{fd, 0}}; }, [] {},
      [&](const std::string& line) {
        std::lock_guard<std::mutex> lock(log_mu);
        log.push_back(line);
      });
  ASSERT_TRUE(server.Start().ok());
  // The address, built before the fork: the child only makes system calls.
  const std::string name = Name("uid");
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  std::memcpy(un.sun_path + 1, name.data(), name.size());
  const socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(2);
    int c = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (c < 0 || connect(c, reinterpret_cast<sockaddr*>(&un), len) != 0) _exit(3);
    char buf[64];
    // Refused: the old side closes without a word. Served: "L 0" arrives.
    _exit(recv(c, buf, sizeof buf, 0) == 0 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "a process of another user received a socket";
  EXPECT_FALSE(server.handed_over());
  // The gateway's own user still can.
  Result<ReceivedSockets> got = ReceiveSockets(Name("uid"));
  ASSERT_TRUE(got.ok()) << got.error().message;
  got->CloseAll();
  {
    std::lock_guard<std::mutex> lock(log_mu);
    ASSERT_FALSE(log.empty());
    EXPECT_NE(log.front().find("refused a process of uid 65534"), std::string::npos) << log.front();
  }
  server.Stop();
  close(fd);
}

TEST(Handover, NothingToUpgradeIsAnError) {
  Result<ReceivedSockets> got = ReceiveSockets(Name("none"));
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.error().message.find("no running gateway"), std::string::npos)
      << got.error().message;
}

}  // namespace
}  // namespace hms::control
