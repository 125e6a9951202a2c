#include "hms/core/timer_wheel.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace hms::core {
namespace {

constexpr Instant kT0 = Millis(1'000'000);  // any origin: the wheel only sees differences
constexpr Instant kTickNs = Millis(TimerWheel::kTickMs);
constexpr uint64_t kSpanMs = TimerWheel::kSlots * TimerWheel::kTickMs;

Instant At(uint64_t ms) { return kT0 + Millis(ms); }

// Collects fired timers.
struct Fired {
  std::vector<Timer*> timers;
  auto Fn() {
    return [this](Timer* t) { timers.push_back(t); };
  }
};

TEST(TimerWheel, NeverFiresBeforeTheDeadlineAndAtTheNextTickBoundaryAfterIt) {
  // Arm at every quarter millisecond over two ticks, for several durations, and
  // find the first instant Expire fires the timer.
  for (uint64_t after_ms : {0u, 1u, 4u, 5u, 6u, 10u, 99u}) {
    for (Instant offset = 0; offset < 2 * kTickNs; offset += Millis(1) / 4) {
      TimerWheel wheel(kT0);
      const Instant now = kT0 + offset;
      Fired fired;
      wheel.Expire(now, 1000, fired.Fn());  // the core has processed up to `now`
      Timer t;
      wheel.Arm(&t, now, after_ms);
      ASSERT_TRUE(t.armed());
      const Instant deadline = now + Millis(after_ms);
      // The deadline rounded up to a tick boundary, and at least the boundary
      // after the current tick.
      uint64_t tick = (deadline - kT0 + kTickNs - 1) / kTickNs;
      const uint64_t min_tick = (now - kT0) / kTickNs + 1;
      if (tick < min_tick) tick = min_tick;
      const Instant expected = kT0 + tick * kTickNs;
      ASSERT_GE(expected, deadline);

      wheel.Expire(expected - 1, 1000, fired.Fn());
      EXPECT_TRUE(fired.timers.empty())
          << "fired early: armed at +" << offset << " ns for " << after_ms << " ms";
      wheel.Expire(expected, 1000, fired.Fn());
      ASSERT_EQ(fired.timers.size(), 1u) << "not fired at " << expected - kT0 << " ns: armed at +"
                                         << offset << " ns for " << after_ms << " ms";
      EXPECT_EQ(fired.timers[0], &t);
      EXPECT_FALSE(t.armed());
      EXPECT_EQ(wheel.armed(), 0u);
    }
  }
}

TEST(TimerWheel, RoundsUpToTheTick) {
  TimerWheel wheel(kT0);
  Fired fired;
  Timer t;
  wheel.Arm(&t, kT0, 1);  // 1 ms asks for a whole 5 ms tick
  wheel.Expire(At(1), 100, fired.Fn());
  wheel.Expire(At(4), 100, fired.Fn());
  wheel.Expire(kT0 + kTickNs - 1, 100, fired.Fn());
  EXPECT_TRUE(fired.timers.empty());
  wheel.Expire(At(5), 100, fired.Fn());
  EXPECT_EQ(fired.timers.size(), 1u);
}

TEST(TimerWheel, FiredTimerIsDisarmedBeforeTheCallback) {
  TimerWheel wheel(kT0);
  Timer t;
  t.owner = 42;
  t.kind = 3;
  wheel.Arm(&t, kT0, 10);
  int calls = 0;
  wheel.Expire(At(10), 100, [&](Timer* f) {
    ++calls;
    EXPECT_EQ(f, &t);
    EXPECT_FALSE(f->armed());
    EXPECT_EQ(f->owner, 42u);
    EXPECT_EQ(f->kind, 3);
  });
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(wheel.armed(), 0u);
}

TEST(TimerWheel, RearmMovesTheTimer) {
  TimerWheel wheel(kT0);
  Fired fired;
  Timer t;
  wheel.Arm(&t, kT0, 10);
  wheel.Arm(&t, kT0, 50);  // later: the old deadline no longer fires
  EXPECT_EQ(wheel.armed(), 1u);
  wheel.Expire(At(45), 100, fired.Fn());
  EXPECT_TRUE(fired.timers.empty());
  wheel.Arm(&t, At(45), 5);  // earlier than the previous deadline
  EXPECT_EQ(wheel.armed(), 1u);
  wheel.Expire(At(50), 100, fired.Fn());
  ASSERT_EQ(fired.timers.size(), 1u);
  wheel.Expire(At(500), 1000, fired.Fn());
  EXPECT_EQ(fired.timers.size(), 1u);  // once only
  EXPECT_EQ(wheel.armed(), 0u);
}

TEST(TimerWheel, CancelStopsTheTimerAndIsIdempotent) {
  TimerWheel wheel(kT0);
  Fired fired;
  Timer a, b, never;
  wheel.Arm(&a, kT0, 20);
  wheel.Arm(&b, kT0, 20);
  wheel.Cancel(&a);
  EXPECT_FALSE(a.armed());
  EXPECT_EQ(wheel.armed(), 1u);
  wheel.Cancel(&a);      // again: no effect
  wheel.Cancel(&never);  // never armed: no effect
  EXPECT_EQ(wheel.armed(), 1u);
  wheel.Expire(At(1000), 1000, fired.Fn());
  ASSERT_EQ(fired.timers.size(), 1u);
  EXPECT_EQ(fired.timers[0], &b);
  wheel.Cancel(&b);  // already fired: no effect
  EXPECT_EQ(wheel.armed(), 0u);
}

TEST(TimerWheel, TimersBeyondOneRoundFireAtTheirRoundNotEarlier) {
  TimerWheel wheel(kT0);
  struct Case {
    uint64_t after_ms;
    Timer t;
    Instant fired_at = 0;
  };
  // Exactly one round lands in the slot being processed now; the others share
  // slots with earlier timers one or two rounds apart.
  std::vector<Case> cases(6);
  const uint64_t afters[] = {
      35, kSpanMs, kSpanMs + 35, 2 * kSpanMs + 35, 2 * kSpanMs + 1, 3 * kSpanMs - 5};
  for (size_t i = 0; i < cases.size(); ++i) {
    cases[i].after_ms = afters[i];
    cases[i].t.owner = static_cast<uint32_t>(i);
    wheel.Arm(&cases[i].t, kT0, afters[i]);
  }
  EXPECT_EQ(wheel.armed(), cases.size());
  // Step one tick at a time, as a busy core would.
  for (uint64_t ms = 0; ms <= 3 * kSpanMs + 10; ms += TimerWheel::kTickMs) {
    wheel.Expire(At(ms), 1, [&](Timer* t) {
      Case& c = cases[t->owner];
      EXPECT_EQ(c.fired_at, 0u) << "fired twice";
      c.fired_at = At(ms);
    });
  }
  for (const Case& c : cases) {
    const uint64_t ticks = (c.after_ms + TimerWheel::kTickMs - 1) / TimerWheel::kTickMs;
    EXPECT_EQ(c.fired_at, kT0 + ticks * kTickNs) << "after " << c.after_ms << " ms";
  }
  EXPECT_EQ(wheel.armed(), 0u);
}

TEST(TimerWheel, ExpireRunsAtMostMaxTicksAndCatchesUpOnLaterCalls) {
  TimerWheel wheel(kT0);
  std::vector<Timer> timers(10);
  for (uint32_t i = 0; i < timers.size(); ++i) {
    timers[i].owner = i;
    wheel.Arm(&timers[i], kT0, (i + 1) * TimerWheel::kTickMs);  // ticks 1..10
  }
  std::vector<uint32_t> order;
  auto fire = [&](Timer* t) { order.push_back(t->owner); };
  const Instant late = At(10 * TimerWheel::kTickMs);  // the core stalled: 10 ticks due at once
  wheel.Expire(late, 3, fire);
  EXPECT_EQ(order, (std::vector<uint32_t>{0, 1, 2}));
  // Ticks are still due: the loop must not sleep.
  EXPECT_EQ(wheel.MillisToNext(late), 0);
  wheel.Expire(late, 3, fire);
  EXPECT_EQ(order.size(), 6u);
  wheel.Expire(late, 3, fire);
  EXPECT_EQ(order.size(), 9u);
  wheel.Expire(late, 3, fire);
  EXPECT_EQ(order, (std::vector<uint32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(wheel.armed(), 0u);
  // max_ticks == 0 runs nothing.
  Timer t;
  wheel.Arm(&t, late, 5);
  wheel.Expire(At(1000), 0, fire);
  EXPECT_EQ(order.size(), 10u);
  EXPECT_TRUE(t.armed());
}

TEST(TimerWheel, CatchUpNeverRunsAheadOfNow) {
  TimerWheel wheel(kT0);
  Timer t;
  wheel.Arm(&t, kT0, 50);
  Fired fired;
  wheel.Expire(At(49), 1'000'000, fired.Fn());  // a huge budget stops at now's tick
  EXPECT_TRUE(fired.timers.empty());
  wheel.Expire(At(50), 1'000'000, fired.Fn());
  EXPECT_EQ(fired.timers.size(), 1u);
}

TEST(TimerWheel, MillisToNext) {
  TimerWheel wheel(kT0);
  EXPECT_EQ(wheel.MillisToNext(kT0), -1);  // nothing armed: wait for I/O only
  Timer t;
  wheel.Arm(&t, kT0, 1000);
  EXPECT_EQ(wheel.MillisToNext(kT0), 5);
  EXPECT_EQ(wheel.MillisToNext(At(1)), 4);
  EXPECT_EQ(wheel.MillisToNext(At(1) + Millis(1) / 2), 4);  // rounded up: never wake early
  EXPECT_EQ(wheel.MillisToNext(kT0 + kTickNs - 1), 1);
  wheel.Expire(At(5), 10, [](Timer*) {});
  EXPECT_EQ(wheel.MillisToNext(At(5)), 5);
  wheel.Cancel(&t);
  EXPECT_EQ(wheel.MillisToNext(At(5)), -1);
}

TEST(TimerWheel, CallbackMayCancelTheNextTimerInTheSameSlot) {
  // A connection's idle timer fires and closing the connection cancels its
  // other timer, due in the same tick.
  TimerWheel wheel(kT0);
  Timer a, b, c;
  wheel.Arm(&a, kT0, 10);
  wheel.Arm(&b, kT0, 10);
  wheel.Arm(&c, kT0, 10);
  std::vector<Timer*> fired;
  wheel.Expire(At(10), 10, [&](Timer* t) {
    fired.push_back(t);
    if (t == &a) wheel.Cancel(&b);
  });
  EXPECT_EQ(fired, (std::vector<Timer*>{&a, &c}));
  EXPECT_FALSE(b.armed());
  EXPECT_EQ(wheel.armed(), 0u);
}

TEST(TimerWheel, CallbackMayRearmItselfAndArmOthers) {
  TimerWheel wheel(kT0);
  Timer periodic, same_slot_next_round, other;
  periodic.owner = 1;
  wheel.Arm(&periodic, kT0, 5);
  int periodic_runs = 0;
  bool armed_others = false;
  std::vector<Timer*> fired;
  Instant now = kT0;
  for (uint64_t ms = 5; ms <= 50; ms += 5) {
    now = At(ms);
    wheel.Expire(now, 10, [&](Timer* t) {
      fired.push_back(t);
      if (t == &periodic) {
        ++periodic_runs;
        wheel.Arm(&periodic, now, 5);
        if (!armed_others) {
          armed_others = true;
          // One whole round: the slot being processed right now.
          wheel.Arm(&same_slot_next_round, now, kSpanMs);
          wheel.Arm(&other, now, 5);
        }
      }
    });
  }
  EXPECT_EQ(periodic_runs, 10);
  EXPECT_TRUE(periodic.armed());
  EXPECT_TRUE(same_slot_next_round.armed());
  EXPECT_FALSE(other.armed());
  EXPECT_EQ(std::count(fired.begin(), fired.end(), &other), 1);
  EXPECT_EQ(std::count(fired.begin(), fired.end(), &same_slot_next_round), 0);
  EXPECT_EQ(wheel.armed(), 2u);
  // The round-later timer fires one span after it was armed, not before.
  fired.clear();
  wheel.Cancel(&periodic);
  wheel.Expire(At(5 + kSpanMs) - 1, 1'000'000, [&](Timer* t) { fired.push_back(t); });
  EXPECT_TRUE(fired.empty());
  wheel.Expire(At(5 + kSpanMs), 1'000'000, [&](Timer* t) { fired.push_back(t); });
  EXPECT_EQ(fired, (std::vector<Timer*>{&same_slot_next_round}));
}

}  // namespace
}  // namespace hms::core
