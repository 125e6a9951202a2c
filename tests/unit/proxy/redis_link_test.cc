// Unit tests of the per-core Redis link's state machine (src/proxy/redis_link.h)
// without sockets: the transition table, the reconnect backoff, the fallback
// modes and the failure texts /healthz shows; and the fleet room (FleetLink)
// before its link connects: the parked queue's bound and order, what a new
// snapshot and a failed lease call do to parked requests, lease sizing.
#include "src/proxy/redis_link.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <utility>
#include <vector>

#include "hms/proxy/engine.h"
#include "tests/unit/proxy/test_core.h"

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

// The exchange side as the fleet room sees it: which slots may park, which
// still wait, and the answers in the order given.
struct FakeExchanges final : ParkedRequests {
  bool Park(uint32_t slot, uint32_t* gen) noexcept override {
    if (slot == unparkable) return false;
    *gen = slot * 10;
    return true;
  }
  bool Waiting(uint32_t slot, uint32_t gen) const noexcept override {
    return slot != left && gen == slot * 10;
  }
  void Answer(uint32_t slot, FleetPass pass, uint32_t retry_s) noexcept override {
    answers.emplace_back(slot, pass);
    last_retry_s = retry_s;
  }
  uint32_t unparkable = UINT32_MAX;  // an h2 stream whose head fits no block
  uint32_t left = UINT32_MAX;        // a client that went away while parked
  std::vector<std::pair<uint32_t, FleetPass>> answers;
  uint32_t last_retry_s = 0;
};

class Fleet : public ::testing::Test {
 protected:
  Fleet() : core_(0, 4) {
    config::RedisConfig rc;
    rc.address = "127.0.0.1:6379";
    rc.max_waiting = 3;
    rc.gateways = 2;
    rc.fallback = policy::FleetFallback::kFailClosed;
    core_.config.redis = rc;
    link_.Configure("", nullptr);
    for (int i = 0; i < 2; ++i) {
      config::Route r;
      r.rate_limit = config::RateLimit{100'000, 80, "", "100/s", true};
      snap_.routes.push_back(std::move(r));
    }
    link_.ResetFor(snap_);
  }

  TestCore core_;
  FakeExchanges ex_;
  FleetLink link_{core_.ctx, ex_, 11, 6};
  config::Snapshot snap_;
};

TEST_F(Fleet, TheParkedQueueIsBoundedByMaxWaiting) {
  ex_.unparkable = 2;
  EXPECT_TRUE(link_.Park(1, 0));
  EXPECT_FALSE(link_.Park(2, 0));  // cannot wait: not queued
  EXPECT_TRUE(link_.Park(3, 1));
  EXPECT_TRUE(link_.Park(4, 0));
  EXPECT_EQ(link_.parked(), 3u);
  EXPECT_FALSE(link_.Park(5, 0));  // full: the fallback decides it
  EXPECT_EQ(link_.parked(), 3u);
  EXPECT_EQ(core_.metrics.fleet_waits.Get(), 3u);
}

TEST_F(Fleet, ANewSnapshotParsesEveryParkedRequestAgainInOrder) {
  ASSERT_TRUE(link_.Park(1, 0));
  ASSERT_TRUE(link_.Park(2, 1));
  ASSERT_TRUE(link_.Park(3, 0));
  ex_.left = 2;
  link_.ResetFor(snap_);
  EXPECT_EQ(ex_.answers, (std::vector<std::pair<uint32_t, FleetPass>>{{1, FleetPass::kNone},
                                                                      {3, FleetPass::kNone}}));
  EXPECT_EQ(link_.parked(), 0u);
  EXPECT_TRUE(link_.Park(4, 0));  // room again
}

// Redis is not reachable (the link never started): a lease call cannot
// leave, so the route's parked requests take the fallback at once; the
// other route's stay parked.
TEST_F(Fleet, AnAskThatCannotLeaveHandsTheRoutesParkedRequestsToTheFallback) {
  ASSERT_TRUE(link_.Park(1, 0));
  ASSERT_TRUE(link_.Park(2, 1));
  ASSERT_TRUE(link_.Park(3, 0));
  link_.lease(0).waiting = 2;
  link_.lease(1).waiting = 1;
  link_.Ask(0);
  EXPECT_EQ(ex_.answers, (std::vector<std::pair<uint32_t, FleetPass>>{{1, FleetPass::kFallback},
                                                                      {3, FleetPass::kFallback}}));
  EXPECT_EQ(link_.parked(), 1u);
  EXPECT_EQ(link_.lease(0).waiting, 0u);
  EXPECT_EQ(core_.metrics.fleet_errors.Get(), 1u);
  EXPECT_EQ(link_.ModeNow(), FleetMode::kClosed);  // the fallback decides until Redis answers
  EXPECT_EQ(link_.FallbackModeNow(), FleetMode::kClosed);
}

TEST_F(Fleet, LeasesSpreadTheBurstOverEveryCoreOfEveryGateway) {
  config::Route r;
  r.rate_limit = config::RateLimit{};
  for (auto [burst, want] : {std::pair<uint32_t, uint32_t>{80, 10},  // 4 cores × 2 gateways
                             {7, 1},                                 // never below one
                             {100'000, 256}}) {                      // kMaxLease
    r.rate_limit->burst = burst;
    EXPECT_EQ(link_.LeaseParamsFor(r).max_lease, want) << burst;
  }
}

}  // namespace
}  // namespace hms::proxy
