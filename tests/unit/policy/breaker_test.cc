#include "hms/policy/breaker.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace hms::policy {
namespace {

constexpr core::Instant kSec = 1'000'000'000ull;
constexpr core::Instant kT0 = 1000 * kSec;
const BreakerParams kParams{3, 30 * kSec};

template <typename F>
void RunThreads(int n, F body) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> ts;
  for (int t = 0; t < n; ++t) {
    ts.emplace_back([&, t] {
      ready.fetch_add(1);
      while (!go.load()) std::this_thread::yield();
      body(t);
    });
  }
  while (ready.load() < n) std::this_thread::yield();
  go.store(true);
  for (auto& th : ts) th.join();
}

TEST(Breaker, OpensAfterConsecutiveFailuresOnly) {
  Breaker b(kParams);
  b.OnFailure(kT0, false);
  b.OnFailure(kT0, false);
  b.OnSuccess(false);  // breaks the run
  b.OnFailure(kT0, false);
  b.OnFailure(kT0, false);
  EXPECT_EQ(b.Status(kT0).state, BreakerState::kClosed);
  EXPECT_EQ(b.Status(kT0).consecutive_failures, 2u);
  EXPECT_TRUE(b.Admit(kT0).allowed);
  b.OnFailure(kT0, false);
  const BreakerStatus s = b.Status(kT0 + kSec);
  EXPECT_EQ(s.state, BreakerState::kOpen);
  EXPECT_EQ(s.next_probe_in_ns, 29 * kSec);
  EXPECT_EQ(s.opened_total, 1u);
  EXPECT_FALSE(b.Admit(kT0 + kSec).allowed);
  EXPECT_FALSE(b.Admit(kT0 + 30 * kSec - 1).allowed);
}

TEST(Breaker, ExactlyOneProbeAfterOpenForAndItsSuccessCloses) {
  Breaker b(kParams);
  for (int i = 0; i < 3; ++i) b.OnFailure(kT0, false);
  const BreakerAdmission probe = b.Admit(kT0 + 30 * kSec);
  EXPECT_TRUE(probe.allowed);
  EXPECT_TRUE(probe.is_probe);
  EXPECT_EQ(b.Status(kT0 + 30 * kSec).state, BreakerState::kHalfOpen);
  EXPECT_FALSE(b.Admit(kT0 + 30 * kSec).allowed);
  EXPECT_FALSE(b.Admit(kT0 + 31 * kSec).allowed);
  b.OnSuccess(true);
  EXPECT_EQ(b.Status(kT0 + 31 * kSec).state, BreakerState::kClosed);
  const BreakerAdmission a = b.Admit(kT0 + 31 * kSec);
  EXPECT_TRUE(a.allowed);
  EXPECT_FALSE(a.is_probe);
  // A fresh run of failures is needed to open again.
  b.OnFailure(kT0 + 32 * kSec, false);
  b.OnFailure(kT0 + 32 * kSec, false);
  EXPECT_EQ(b.Status(kT0 + 32 * kSec).state, BreakerState::kClosed);
}

TEST(Breaker, ProbeFailureReopensForAnotherOpenFor) {
  Breaker b(kParams);
  for (int i = 0; i < 3; ++i) b.OnFailure(kT0, false);
  ASSERT_TRUE(b.Admit(kT0 + 30 * kSec).is_probe);
  b.OnFailure(kT0 + 31 * kSec, true);
  const BreakerStatus s = b.Status(kT0 + 31 * kSec);
  EXPECT_EQ(s.state, BreakerState::kOpen);
  EXPECT_EQ(s.next_probe_in_ns, 30 * kSec);
  EXPECT_EQ(s.opened_total, 2u);
  EXPECT_FALSE(b.Admit(kT0 + 60 * kSec).allowed);
  EXPECT_TRUE(b.Admit(kT0 + 61 * kSec).is_probe);
}

TEST(Breaker, LateOrdinaryOutcomesDoNotDecide) {
  Breaker b(kParams);
  for (int i = 0; i < 3; ++i) b.OnFailure(kT0, false);
  b.OnSuccess(false);  // an attempt admitted before the breaker opened
  EXPECT_EQ(b.Status(kT0).state, BreakerState::kOpen);
  b.OnFailure(kT0 + 10 * kSec, false);  // does not push the probe back
  EXPECT_EQ(b.Status(kT0 + 10 * kSec).next_probe_in_ns, 20 * kSec);
  ASSERT_TRUE(b.Admit(kT0 + 30 * kSec).is_probe);
  b.OnSuccess(false);
  b.OnFailure(kT0 + 30 * kSec, false);
  EXPECT_EQ(b.Status(kT0 + 30 * kSec).state, BreakerState::kHalfOpen);
}

TEST(Breaker, LostProbeIsReplacedAfterAnotherOpenFor) {
  Breaker b(kParams);
  for (int i = 0; i < 3; ++i) b.OnFailure(kT0, false);
  ASSERT_TRUE(b.Admit(kT0 + 30 * kSec).is_probe);
  EXPECT_FALSE(b.Admit(kT0 + 60 * kSec - 1).allowed);
  EXPECT_TRUE(b.Admit(kT0 + 60 * kSec).is_probe);
  EXPECT_FALSE(b.Admit(kT0 + 60 * kSec).allowed);
}

// Each transition is counted once: a lost probe's replacement and the late
// answers that change nothing are not transitions.
TEST(Breaker, CountsEveryTransition) {
  Breaker b(kParams);
  auto totals = [&b](core::Instant now) {
    const BreakerStatus s = b.Status(now);
    return std::vector<uint64_t>{s.opened_total, s.half_opened_total, s.closed_total};
  };
  EXPECT_EQ(totals(kT0), (std::vector<uint64_t>{0, 0, 0}));
  for (int i = 0; i < 3; ++i) b.OnFailure(kT0, false);  // closed → open
  EXPECT_EQ(totals(kT0), (std::vector<uint64_t>{1, 0, 0}));
  ASSERT_TRUE(b.Admit(kT0 + 30 * kSec).is_probe);  // open → half-open
  EXPECT_FALSE(b.Admit(kT0 + 30 * kSec).allowed);
  EXPECT_EQ(totals(kT0 + 30 * kSec), (std::vector<uint64_t>{1, 1, 0}));
  ASSERT_TRUE(b.Admit(kT0 + 60 * kSec).is_probe);  // a replacement probe
  EXPECT_EQ(totals(kT0 + 60 * kSec), (std::vector<uint64_t>{1, 1, 0}));
  b.OnFailure(kT0 + 61 * kSec, true);  // half-open → open
  EXPECT_EQ(totals(kT0 + 61 * kSec), (std::vector<uint64_t>{2, 1, 0}));
  ASSERT_TRUE(b.Admit(kT0 + 91 * kSec).is_probe);  // open → half-open
  b.OnSuccess(true);                               // half-open → closed
  b.OnSuccess(true);                               // a late duplicate: nothing
  EXPECT_EQ(totals(kT0 + 92 * kSec), (std::vector<uint64_t>{2, 2, 1}));
  EXPECT_EQ(b.Status(kT0 + 92 * kSec).state, BreakerState::kClosed);
}

TEST(Breaker, ReconfigureChangesThresholds) {
  Breaker b(kParams);
  b.Reconfigure({1, kSec});
  EXPECT_EQ(b.params(), (BreakerParams{1, kSec}));
  b.OnFailure(kT0, false);
  EXPECT_EQ(b.Status(kT0).state, BreakerState::kOpen);
  EXPECT_TRUE(b.Admit(kT0 + kSec).is_probe);
}

// A probe whose outcome says nothing about the service (the client left, the
// caller's own deadline) hands the slot on: the next request probes at once,
// and the opening is not counted again.
TEST(Breaker, ReleasedProbeLetsTheNextRequestProbeAtOnce) {
  Breaker b(kParams);
  for (int i = 0; i < 3; ++i) b.OnFailure(kT0, false);
  ASSERT_TRUE(b.Admit(kT0 + 30 * kSec).is_probe);
  EXPECT_FALSE(b.Admit(kT0 + 31 * kSec).allowed);
  b.ReleaseProbe(kT0 + 32 * kSec);
  BreakerStatus s = b.Status(kT0 + 32 * kSec);
  EXPECT_EQ(s.state, BreakerState::kOpen);
  EXPECT_EQ(s.next_probe_in_ns, 0u);
  EXPECT_EQ(s.opened_total, 1u);
  const BreakerAdmission next = b.Admit(kT0 + 32 * kSec);
  EXPECT_TRUE(next.allowed);
  EXPECT_TRUE(next.is_probe);
  EXPECT_FALSE(b.Admit(kT0 + 32 * kSec).allowed);  // one probe at a time still
  b.OnSuccess(true);
  EXPECT_EQ(b.Status(kT0 + 33 * kSec).state, BreakerState::kClosed);
  // Released while not half-open (already decided): nothing happens.
  b.ReleaseProbe(kT0 + 34 * kSec);
  EXPECT_EQ(b.Status(kT0 + 34 * kSec).state, BreakerState::kClosed);
}

// Without the release, a probe that vanished blocks every caller for a
// further open_for; the release is what keeps a caller from doing that on
// purpose (x-hms-timeout-ms: 1 on the probe).
TEST(Breaker, UnreleasedProbeBlocksForAnotherOpenFor) {
  Breaker b(kParams);
  for (int i = 0; i < 3; ++i) b.OnFailure(kT0, false);
  ASSERT_TRUE(b.Admit(kT0 + 30 * kSec).is_probe);
  EXPECT_FALSE(b.Admit(kT0 + 59 * kSec).allowed);
}

// A re-registration that changes open_for moves an open breaker's probe to
// its opening time plus the new open_for, shorter or longer, or to now when
// that time has passed.
TEST(Breaker, ChangedOpenForMovesTheProbe) {
  struct Case {
    const char* what;
    uint64_t new_open_for;
    core::Instant reconfigured_at;  // after the opening at kT0
    core::Instant probe_at;         // the first time Admit lets the probe go
  } cases[] = {
      {"shorter, still ahead", 5 * kSec, 2 * kSec, 5 * kSec},
      {"shorter, already passed", 5 * kSec, 10 * kSec, 10 * kSec},
      {"longer", 60 * kSec, 2 * kSec, 60 * kSec},
      {"unchanged", 30 * kSec, 2 * kSec, 30 * kSec},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    Breaker b(kParams);
    for (int i = 0; i < 3; ++i) b.OnFailure(kT0, false);
    EXPECT_FALSE(b.Admit(kT0 + c.reconfigured_at - 1).allowed);
    b.Reconfigure({3, c.new_open_for});
    const core::Instant now = kT0 + c.reconfigured_at;
    const core::Instant due = kT0 + c.probe_at;
    EXPECT_EQ(b.Status(now).next_probe_in_ns, due - now);
    if (due > now) {
      EXPECT_FALSE(b.Admit(due - 1).allowed);
    }
    const BreakerAdmission a = b.Admit(due);
    EXPECT_TRUE(a.allowed);
    EXPECT_TRUE(a.is_probe);
  }
}

// The probe's failure opens it again from then, with the open_for in force.
TEST(Breaker, ReopeningUsesTheNewOpenFor) {
  Breaker b(kParams);
  for (int i = 0; i < 3; ++i) b.OnFailure(kT0, false);
  b.Reconfigure({3, 2 * kSec});
  ASSERT_TRUE(b.Admit(kT0 + 2 * kSec).is_probe);
  b.OnFailure(kT0 + 3 * kSec, true);
  EXPECT_EQ(b.Status(kT0 + 3 * kSec).next_probe_in_ns, 2 * kSec);
  EXPECT_FALSE(b.Admit(kT0 + 5 * kSec - 1).allowed);
  EXPECT_TRUE(b.Admit(kT0 + 5 * kSec).is_probe);
}

// Failures reported from several cores add up to one run.
TEST(Breaker, FailuresAreCountedAcrossThreads) {
  for (int threads : {2, 4}) {
    Breaker closed({static_cast<uint32_t>(threads * 100 + 1), 30 * kSec});
    Breaker open({static_cast<uint32_t>(threads * 100), 30 * kSec});
    RunThreads(threads, [&](int) {
      for (int i = 0; i < 100; ++i) {
        closed.OnFailure(kT0, false);
        open.OnFailure(kT0, false);
      }
    });
    EXPECT_EQ(closed.Status(kT0).state, BreakerState::kClosed) << threads;
    EXPECT_EQ(closed.Status(kT0).consecutive_failures, threads * 100u) << threads;
    EXPECT_EQ(open.Status(kT0).state, BreakerState::kOpen) << threads;
    EXPECT_EQ(open.Status(kT0).opened_total, 1u) << threads;
  }
}

// Many cores race for the probe, round after round: one wins each round.
TEST(Breaker, ExactlyOneProbeAmongRacingThreads) {
  constexpr int kThreads = 8;
  constexpr int kRounds = 200;
  Breaker b({1, kSec});
  b.OnFailure(kT0, false);
  for (int round = 0; round < kRounds; ++round) {
    const core::Instant t = kT0 + static_cast<uint64_t>(round + 1) * 2 * kSec;
    std::atomic<int> probes{0}, allowed{0};
    RunThreads(kThreads, [&](int) {
      for (int i = 0; i < 50; ++i) {
        const BreakerAdmission a = b.Admit(t);
        allowed += a.allowed;
        probes += a.is_probe;
      }
    });
    ASSERT_EQ(probes.load(), 1) << "round " << round;
    ASSERT_EQ(allowed.load(), 1) << "round " << round;
    b.OnFailure(t, true);  // re-open for the next round
  }
  EXPECT_EQ(b.Status(kT0).opened_total, kRounds + 1u);
}

}  // namespace
}  // namespace hms::policy
