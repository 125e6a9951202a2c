#include "hms/h2/flood_guard.h"

#include <gtest/gtest.h>

namespace hms::h2 {
namespace {

constexpr core::Instant kT0 = core::Millis(5000);

TEST(H2FloodGuard, ResetsAreABurstThenARate) {
  Limits l;
  l.resets = {10, 5};
  FloodGuard g(l);
  for (int i = 0; i < 10; ++i) ASSERT_EQ(g.OnFrame(kFrameRstStream, 0, 4, kT0), Flood::kNone);
  EXPECT_EQ(g.OnFrame(kFrameRstStream, 0, 4, kT0), Flood::kResets);
  // 5 a second come back; provoked resets take from the same bucket.
  FloodGuard h(l);
  for (int i = 0; i < 10; ++i) ASSERT_EQ(h.OnProvokedReset(kT0), Flood::kNone);
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(h.OnFrame(kFrameRstStream, 0, 4, kT0 + core::Millis(1000)), Flood::kNone) << i;
  }
  EXPECT_EQ(h.OnProvokedReset(kT0 + core::Millis(1000)), Flood::kResets);
}

TEST(H2FloodGuard, ControlFramesShareOneBucket) {
  Limits l;
  l.control_frames = {6, 1};
  FloodGuard g(l);
  const uint8_t types[] = {kFrameSettings, kFramePing, kFramePriority};
  for (int i = 0; i < 6; ++i) ASSERT_EQ(g.OnFrame(types[i % 3], 0, 8, kT0), Flood::kNone);
  EXPECT_EQ(g.OnFrame(kFramePing, 1, 8, kT0), Flood::kControlFrames);  // acks count too
  EXPECT_EQ(g.OnFrame(kFramePing, 0, 8, kT0 + core::Millis(1000)), Flood::kNone);
}

TEST(H2FloodGuard, EmptyFramesInARow) {
  Limits l;
  l.max_empty_frames = 3;
  struct Case {
    uint8_t type, flags;
    size_t length;
    bool empty;
  } cases[] = {
      {kFrameData, 0, 0, true},
      {kFrameData, kFlagEndStream, 0, false},  // ends the stream: not empty
      {kFrameData, 0, 1, false},
      {kFrameHeaders, 0, 0, true},
      {kFrameHeaders, kFlagEndHeaders, 0, false},
      {kFrameContinuation, 0, 0, true},
      {kFrameContinuation, kFlagEndHeaders, 0, false},
  };
  for (const Case& c : cases) {
    FloodGuard g(l);
    Flood last = Flood::kNone;
    for (int i = 0; i < 4; ++i) last = g.OnFrame(c.type, c.flags, c.length, kT0);
    EXPECT_EQ(last, c.empty ? Flood::kEmptyFrames : Flood::kNone)
        << int(c.type) << "/" << int(c.flags) << "/" << c.length;
  }
  // A frame with payload ends the run.
  FloodGuard g(l);
  for (int round = 0; round < 10; ++round) {
    for (int i = 0; i < 3; ++i) ASSERT_EQ(g.OnFrame(kFrameData, 0, 0, kT0), Flood::kNone);
    ASSERT_EQ(g.OnFrame(kFrameData, 0, 100, kT0), Flood::kNone);
  }
}

TEST(H2FloodGuard, OtherFramesAreNotCounted) {
  Limits l;
  l.control_frames = {1, 1};
  l.max_empty_frames = 0;
  FloodGuard g(l);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(g.OnFrame(0x8 /* WINDOW_UPDATE */, 0, 4, kT0), Flood::kNone);
    ASSERT_EQ(g.OnFrame(0x7 /* GOAWAY */, 0, 8, kT0), Flood::kNone);
    ASSERT_EQ(g.OnFrame(0xf0 /* an extension */, 0, 0, kT0), Flood::kNone);
  }
}

}  // namespace
}  // namespace hms::h2
