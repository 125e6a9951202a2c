#include "hms/control/handover.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
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

TEST(Handover, NothingToUpgradeIsAnError) {
  Result<ReceivedSockets> got = ReceiveSockets(Name("none"));
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.error().message.find("no running gateway"), std::string::npos)
      << got.error().message;
}

}  // namespace
}  // namespace hms::control
