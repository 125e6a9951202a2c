// Unit tests of the per-core Redis link's state machine (src/proxy/redis_link.h)
// without sockets: the transition table, the reconnect backoff, the fallback
// modes and the failure texts /healthz shows.
#include "src/proxy/redis_link.h"

#include <gtest/gtest.h>

#include <cerrno>

#include "hms/proxy/engine.h"

namespace hms::proxy {
namespace {

TEST(RedisLink, TransitionTable) {
  using S = LinkState;
  using E = LinkEvent;
  struct Case {
    S from;
    E event;
    bool tls;
    S to;
  } cases[] = {
      {S::kOff, E::kStart, false, S::kConnecting},
      {S::kConnecting, E::kConnected, false, S::kReady},
      {S::kConnecting, E::kConnected, true, S::kTls},
      {S::kTls, E::kTlsDone, true, S::kReady},
      {S::kConnecting, E::kFailed, false, S::kBackoff},
      {S::kTls, E::kFailed, true, S::kBackoff},
      {S::kReady, E::kFailed, false, S::kBackoff},
      {S::kBackoff, E::kBackoffOver, false, S::kConnecting},
      // Events that mean nothing in a state leave it.
      {S::kOff, E::kFailed, false, S::kOff},
      {S::kOff, E::kConnected, false, S::kOff},
      {S::kReady, E::kStart, false, S::kReady},
      {S::kReady, E::kConnected, false, S::kReady},
      {S::kReady, E::kTlsDone, false, S::kReady},
      {S::kBackoff, E::kConnected, false, S::kBackoff},
      {S::kConnecting, E::kBackoffOver, false, S::kConnecting},
      {S::kBackoff, E::kFailed, false, S::kBackoff},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(NextLinkState(c.from, c.event, c.tls), c.to)
        << LinkStateName(c.from) << " + event " << static_cast<int>(c.event);
  }
}

// A whole life: up, Redis killed, reconnects failing, Redis back.
TEST(RedisLink, ALifeThroughAnOutage) {
  LinkState s = LinkState::kOff;
  for (LinkEvent e :
       {LinkEvent::kStart, LinkEvent::kConnected, LinkEvent::kFailed, LinkEvent::kBackoffOver,
        LinkEvent::kFailed, LinkEvent::kBackoffOver, LinkEvent::kConnected, LinkEvent::kTlsDone}) {
    s = NextLinkState(s, e, true);
  }
  EXPECT_EQ(s, LinkState::kReady);
}

TEST(RedisLink, BackoffGrowsJitteredAndIsCapped) {
  struct Case {
    uint32_t failures;
    uint64_t lo, hi;
  } cases[] = {{1, 25, 50},   {2, 50, 100},   {3, 100, 200},
               {5, 400, 800}, {6, 500, 1000}, {40, 500, 1000}};
  for (const Case& c : cases) {
    for (uint64_t r : {0ull, 1ull, 12345ull, ~0ull}) {
      const uint64_t d = ReconnectDelayMs(c.failures, r);
      EXPECT_GE(d, c.lo) << c.failures;
      EXPECT_LE(d, c.hi) << c.failures;
    }
  }
}

TEST(RedisLink, FallbackModes) {
  EXPECT_EQ(FallbackMode(policy::FleetFallback::kLocalShare), FleetMode::kLocal);
  EXPECT_EQ(FallbackMode(policy::FleetFallback::kFailOpen), FleetMode::kOpen);
  EXPECT_EQ(FallbackMode(policy::FleetFallback::kFailClosed), FleetMode::kClosed);
}

TEST(RedisLink, FailureTexts) {
  EXPECT_EQ(RedisFailureText(0), "");
  EXPECT_EQ(RedisFailureText(ErrnoFailure(ECONNREFUSED)), "connect: Connection refused");
  EXPECT_EQ(RedisFailureText(CallFailure(fleet::CallStatus::kAuthFailed)),
            "auth_failed (Redis refused AUTH: check password_file)");
  EXPECT_EQ(RedisFailureText(CallFailure(fleet::CallStatus::kConnectionLost)), "connection_lost");
}

}  // namespace
}  // namespace hms::proxy
