#include "src/proxy/listen_claim.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace hms::proxy {
namespace {

sockaddr_storage Loopback(uint16_t port, const char* host = "127.0.0.1") {
  sockaddr_storage ss{};
  auto* a = reinterpret_cast<sockaddr_in*>(&ss);
  a->sin_family = AF_INET;
  a->sin_port = htons(port);
  inet_pton(AF_INET, host, &a->sin_addr);
  return ss;
}

uint16_t PortOf(const sockaddr_storage& ss) {
  return ntohs(reinterpret_cast<const sockaddr_in&>(ss).sin_port);
}

// A listening socket as another process would make it; -1 on failure.
int ListenOn(const sockaddr_storage& ss, bool reuseport) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuseport) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (bind(fd, reinterpret_cast<const sockaddr*>(&ss), sizeof(sockaddr_in)) < 0 ||
      listen(fd, 16) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

std::string Address(uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

TEST(ListenClaim, DecidesFromTheProbe) {
  struct Case {
    int probe;
    ClaimDecision want;
  } cases[] = {
      {0, ClaimDecision::kListen},
      {-EADDRINUSE, ClaimDecision::kRefuse},
      // Other errors are not "someone listens there": Take reports them as they are.
      {-EADDRNOTAVAIL, ClaimDecision::kListen},
      {-EACCES, ClaimDecision::kListen},
  };
  for (const Case& c : cases) EXPECT_EQ(Decide(c.probe), c.want) << c.probe;
}

// An upgrade (control/handover.h): the sockets listening there were handed
// to this process, so the probe's EADDRINUSE is its own group; without them
// the same probe refuses.
TEST(ListenClaim, AdoptsOnlyWhatWasHandedOver) {
  struct Case {
    int probe;
    bool handed_over;
    ClaimDecision want;
  } cases[] = {
      {-EADDRINUSE, true, ClaimDecision::kAdopt},
      {0, true, ClaimDecision::kAdopt},
      {-EADDRINUSE, false, ClaimDecision::kRefuse},
      {0, false, ClaimDecision::kListen},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(Decide(c.probe, c.handed_over), c.want) << c.probe << " " << c.handed_over;
  }
}

TEST(ListenClaim, HandedOverGroupIsAdoptedAndAnAccidentalSecondIsNot) {
  sockaddr_storage ss = Loopback(0);
  int group = ListenOn(ss, true);
  ASSERT_GE(group, 0);
  socklen_t len = sizeof ss;
  getsockname(group, reinterpret_cast<sockaddr*>(&ss), &len);
  // The process that received `group`: claimed, and its extra cores join.
  {
    auto claim = ListenClaim::Take(&ss, sizeof(sockaddr_in), Address(PortOf(ss)), true);
    ASSERT_TRUE(claim.ok()) << claim.error().message;
    int extra = ListenOn(ss, true);
    EXPECT_GE(extra, 0) << std::strerror(errno);
    if (extra >= 0) close(extra);
  }
  // A process that received nothing: refused as before.
  auto second = ListenClaim::Take(&ss, sizeof(sockaddr_in), Address(PortOf(ss)));
  EXPECT_FALSE(second.ok());
  close(group);
}

TEST(ListenClaim, PortZeroPicksAPortThatPerCoreSocketsShare) {
  sockaddr_storage ss = Loopback(0);
  int cores[2] = {-1, -1};
  {
    auto claim = ListenClaim::Take(&ss, sizeof(sockaddr_in), "127.0.0.1:0");
    ASSERT_TRUE(claim.ok()) << claim.error().message;
    ASSERT_NE(PortOf(ss), 0);
    // The held probe does not keep our own SO_REUSEPORT sockets out.
    for (int& fd : cores) {
      fd = ListenOn(ss, true);
      ASSERT_GE(fd, 0) << std::strerror(errno);
    }
  }
  // Claim released, sockets listening: the next claim of the port is refused.
  auto again = ListenClaim::Take(&ss, sizeof(sockaddr_in), Address(PortOf(ss)));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().message, "cannot listen on " + Address(PortOf(ss)) +
                                       ": another process listens there (Address already in "
                                       "use); a listener belongs to one gateway");
  for (int fd : cores) close(fd);
}

TEST(ListenClaim, RefusesAnAddressAnotherSocketListensOn) {
  struct Case {
    const char* name;
    const char* other_host;  // where the other socket listens
    bool reuseport;          // whether it set SO_REUSEPORT (same user: the kernel would admit us)
  } cases[] = {
      {"plain", "127.0.0.1", false},
      {"SO_REUSEPORT", "127.0.0.1", true},
      {"wildcard", "0.0.0.0", true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    sockaddr_storage any = Loopback(0, c.other_host);
    int other = ListenOn(any, c.reuseport);
    ASSERT_GE(other, 0);
    sockaddr_storage bound;
    socklen_t len = sizeof bound;
    getsockname(other, reinterpret_cast<sockaddr*>(&bound), &len);
    sockaddr_storage ss = Loopback(PortOf(bound));
    auto claim = ListenClaim::Take(&ss, sizeof(sockaddr_in), Address(PortOf(bound)));
    ASSERT_FALSE(claim.ok());
    EXPECT_NE(
        claim.error().message.find(Address(PortOf(bound)) + ": another process listens there"),
        std::string::npos)
        << claim.error().message;
    close(other);
  }
}

// A restarted gateway rebinds at once although the last run's connections
// sit in TIME_WAIT.
TEST(ListenClaim, TimeWaitConnectionsDoNotCount) {
  sockaddr_storage ss = Loopback(0);
  int server = ListenOn(ss, true);
  ASSERT_GE(server, 0);
  socklen_t len = sizeof ss;
  getsockname(server, reinterpret_cast<sockaddr*>(&ss), &len);
  int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(connect(client, reinterpret_cast<const sockaddr*>(&ss), sizeof(sockaddr_in)), 0);
  int accepted = accept(server, nullptr, nullptr);
  ASSERT_GE(accepted, 0);
  close(accepted);  // the server side closes first: its end goes to TIME_WAIT
  char byte;
  EXPECT_EQ(read(client, &byte, 1), 0);
  close(client);
  close(server);
  auto claim = ListenClaim::Take(&ss, sizeof(sockaddr_in), Address(PortOf(ss)));
  EXPECT_TRUE(claim.ok()) << claim.error().message;
}

}  // namespace
}  // namespace hms::proxy
