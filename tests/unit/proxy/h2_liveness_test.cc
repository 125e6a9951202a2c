#include "src/proxy/h2_liveness.h"

#include <gtest/gtest.h>

namespace hms::proxy {
namespace {

using core::Millis;

// A connection made at t = 1000 ms, PINGs every 300 ms, 200 ms for the ACK,
// an idle life of 4 s.
H2LivenessInput At(uint64_t now_ms) {
  H2LivenessInput in;
  in.now = Millis(now_ms);
  in.last_frame = Millis(1000);
  in.interval_ms = 300;
  in.timeout_ms = 200;
  in.idle_ms = 4000;
  return in;
}

TEST(DecideH2Liveness, Table) {
  struct Case {
    const char* what;
    H2LivenessInput in;
    H2LivenessDue due;
    uint64_t after_ms;
  };
  H2LivenessInput quiet = At(1300);
  H2LivenessInput fresh = At(1100);
  H2LivenessInput waiting = At(1350);
  waiting.ping_sent = Millis(1300);
  H2LivenessInput dead = At(1500);
  dead.ping_sent = Millis(1300);
  H2LivenessInput idle = At(5000);
  idle.last_frame = Millis(4990);
  idle.idle_since = Millis(1000);
  H2LivenessInput dead_and_idle = At(5000);
  dead_and_idle.idle_since = Millis(1000);
  dead_and_idle.ping_sent = Millis(4700);
  H2LivenessInput off = At(9000);
  off.interval_ms = 0;
  H2LivenessInput off_idle = off;
  off_idle.idle_since = Millis(8000);
  H2LivenessInput connecting = At(9000);
  connecting.last_frame = 0;
  H2LivenessInput idle_soon = At(1100);
  idle_soon.idle_since = Millis(1000);
  idle_soon.idle_ms = 150;
  H2LivenessInput busy = At(1500);
  busy.ping_sent = Millis(1300);
  busy.last_frame = Millis(1400);
  H2LivenessInput busy_then_silent = At(1600);
  busy_then_silent.ping_sent = Millis(1300);
  busy_then_silent.last_frame = Millis(1400);
  const Case cases[] = {
      {"DATA after the PING: its timeout runs from that frame", busy, H2LivenessDue::kWait, 100},
      {"silent for the timeout after the last frame: dead", busy_then_silent,
       H2LivenessDue::kDead, 0},
      {"silent for the interval: a PING", quiet, H2LivenessDue::kPing, 0},
      {"a frame 100 ms ago: the PING in 200 ms", fresh, H2LivenessDue::kWait, 200},
      {"a PING out 50 ms: its timeout in 150 ms", waiting, H2LivenessDue::kWait, 150},
      {"no ACK for the timeout: dead", dead, H2LivenessDue::kDead, 0},
      {"no stream for the idle time: closed", idle, H2LivenessDue::kIdle, 0},
      {"a dead peer is counted as such even when idle too", dead_and_idle, H2LivenessDue::kDead, 0},
      {"off, carrying streams: nothing to arm", off, H2LivenessDue::kWait, 0},
      {"off, idle: the idle close only", off_idle, H2LivenessDue::kWait, 3000},
      {"not usable yet: no PING", connecting, H2LivenessDue::kWait, 0},
      {"the idle close before the PING", idle_soon, H2LivenessDue::kWait, 50},
  };
  for (const Case& c : cases) {
    const H2LivenessVerdict v = DecideH2Liveness(c.in);
    EXPECT_EQ(v.due, c.due) << c.what;
    EXPECT_EQ(v.after_ms, c.after_ms) << c.what;
  }
}

TEST(DecideH2Liveness, RoundsUpSoTheTimerNeverFiresEarly) {
  H2LivenessInput in = At(1100);
  in.now += 1;  // 199.999999 ms left
  EXPECT_EQ(DecideH2Liveness(in).after_ms, 200u);
}

}  // namespace
}  // namespace hms::proxy
