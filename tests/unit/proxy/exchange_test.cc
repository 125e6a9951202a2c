// Unit tests of the exchange's state machine (src/proxy/exchange.h): every
// transition the engine makes, what each state says to the engine, and that
// a transition from any other state crashes instead of limping on.
#include "src/proxy/exchange.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace hms::proxy {
namespace {

using State = ExchangeState;

// Drives a fresh exchange along `path`; each step is one transition.
enum class Step {
  kBegin, kAttempt, kConnected, kRequestSent, kBackOff, kHeadForwarded, kAnswer, kEnd
};

void Apply(Exchange& ex, Step s) {
  switch (s) {
    case Step::kBegin: ex.Begin(); break;
    case Step::kAttempt: ex.Attempt(); break;
    case Step::kConnected: ex.Connected(); break;
    case Step::kRequestSent: ex.RequestSent(); break;
    case Step::kBackOff: ex.BackOff(); break;
    case Step::kHeadForwarded: ex.HeadForwarded(); break;
    case Step::kAnswer: ex.Answer(); break;
    case Step::kEnd: ex.End(); break;
  }
}

TEST(Exchange, StartsIdle) {
  Exchange ex;
  EXPECT_EQ(ex.state(), State::kIdle);
  EXPECT_FALSE(ex.active());
  EXPECT_FALSE(ex.response_started());
}

TEST(Exchange, TheEnginesPaths) {
  struct Case {
    std::string name;
    std::vector<Step> path;
    State want;
    bool active, response_started, streaming, backing_off;
  } cases[] = {
      {"admitting", {Step::kBegin}, State::kAdmitting, true, false, false, false},
      {"refused at admission", {Step::kBegin, Step::kAnswer}, State::kAnswered, true, true, false,
       false},
      {"first attempt", {Step::kBegin, Step::kAttempt}, State::kConnecting, true, false, false,
       false},
      {"transparent retry: attempt after attempt",
       {Step::kBegin, Step::kAttempt, Step::kAttempt}, State::kConnecting, true, false, false,
       false},
      {"pooled or connected: sending", {Step::kBegin, Step::kAttempt, Step::kConnected},
       State::kSending, true, false, false, false},
      {"request sent: awaiting the head",
       {Step::kBegin, Step::kAttempt, Step::kConnected, Step::kRequestSent},
       State::kAwaitingHead, true, false, false, false},
      {"stale pooled connection: transparent retry connects again",
       {Step::kBegin, Step::kAttempt, Step::kConnected, Step::kRequestSent, Step::kAttempt},
       State::kConnecting, true, false, false, false},
      {"early answer while the body is sent",
       {Step::kBegin, Step::kAttempt, Step::kConnected, Step::kHeadForwarded},
       State::kStreaming, true, true, true, false},
      {"answer after the request",
       {Step::kBegin, Step::kAttempt, Step::kConnected, Step::kRequestSent,
        Step::kHeadForwarded},
       State::kStreaming, true, true, true, false},
      {"no head in time: backs off",
       {Step::kBegin, Step::kAttempt, Step::kConnected, Step::kRequestSent, Step::kBackOff},
       State::kBackingOff, true, false, false, true},
      {"policy retry waits", {Step::kBegin, Step::kAttempt, Step::kBackOff}, State::kBackingOff,
       true, false, false, true},
      {"backoff over: the retry's attempt",
       {Step::kBegin, Step::kAttempt, Step::kBackOff, Step::kAttempt}, State::kConnecting, true,
       false, false, false},
      {"answer streams", {Step::kBegin, Step::kAttempt, Step::kHeadForwarded}, State::kStreaming,
       true, true, true, false},
      {"attempt failed: local answer", {Step::kBegin, Step::kAttempt, Step::kAnswer},
       State::kAnswered, true, true, false, false},
      {"timed out while backing off",
       {Step::kBegin, Step::kAttempt, Step::kBackOff, Step::kAnswer}, State::kAnswered, true,
       true, false, false},
      {"done", {Step::kBegin, Step::kAttempt, Step::kHeadForwarded, Step::kEnd}, State::kDone,
       false, false, false, false},
      {"client left while admitting", {Step::kBegin, Step::kEnd}, State::kDone, false, false,
       false, false},
      {"next request on the connection",
       {Step::kBegin, Step::kAnswer, Step::kEnd, Step::kBegin}, State::kAdmitting, true, false,
       false, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Exchange ex;
    for (Step s : c.path) Apply(ex, s);
    EXPECT_EQ(ex.state(), c.want);
    EXPECT_EQ(ex.active(), c.active);
    EXPECT_EQ(ex.response_started(), c.response_started);
    EXPECT_EQ(ex.streaming(), c.streaming);
    EXPECT_EQ(ex.backing_off(), c.backing_off);
    const bool attempting = c.want == State::kConnecting || c.want == State::kSending ||
                            c.want == State::kAwaitingHead;
    EXPECT_EQ(ex.attempting(), attempting);
  }
}

// A connection's next exchange starts from Reset: any state back to kIdle,
// every fact at its default, and the replay queue's blocks given back (the
// queue is not copyable, so `ex = Exchange{}` cannot do it).
TEST(Exchange, ResetStartsTheNextExchange) {
  core::BlockPool blocks(4096);
  const std::vector<Step> paths[] = {
      {},
      {Step::kBegin, Step::kAttempt, Step::kHeadForwarded},
      {Step::kBegin, Step::kAttempt, Step::kBackOff},
      {Step::kBegin, Step::kAnswer, Step::kEnd},
  };
  for (const std::vector<Step>& path : paths) {
    Exchange ex;
    for (Step s : path) Apply(ex, s);
    ex.replay.Append(&blocks, "body", 4);
    ex.replayable = false;
    ex.status = 503;
    ex.attempts = 2;
    ex.reason_len = 5;
    ex.Reset(&blocks);
    EXPECT_EQ(ex.state(), State::kIdle);
    EXPECT_TRUE(ex.replay.empty());
    EXPECT_TRUE(ex.replayable);
    EXPECT_EQ(ex.status, 0);
    EXPECT_EQ(ex.attempts, 0);
    EXPECT_EQ(ex.reason_len, 0);
    ex.Begin();  // from kIdle
    EXPECT_EQ(ex.state(), State::kAdmitting);
    ex.replay.Append(&blocks, "again", 5);
    EXPECT_EQ(ex.replay.size(), 5u);
    ex.Reset(&blocks);
  }
}

// A transition from a state it does not leave is a bug in the engine: it
// crashes loudly (STYLE §2) rather than answer twice or retry a streamed answer.
TEST(ExchangeDeathTest, ImpossibleTransitionsCrash) {
  struct Case {
    std::string name;
    std::vector<Step> path;
  } cases[] = {
      {"attempt before the exchange began", {Step::kAttempt}},
      {"a second local answer", {Step::kBegin, Step::kAnswer, Step::kAnswer}},
      {"a local answer after the upstream's head", {Step::kBegin, Step::kAttempt,
                                                    Step::kHeadForwarded, Step::kAnswer}},
      {"a retry after the upstream's head", {Step::kBegin, Step::kAttempt, Step::kHeadForwarded,
                                             Step::kAttempt}},
      {"backing off without an attempt", {Step::kBegin, Step::kBackOff}},
      {"a head while backing off", {Step::kBegin, Step::kAttempt, Step::kBackOff,
                                    Step::kHeadForwarded}},
      {"ended twice", {Step::kBegin, Step::kEnd, Step::kEnd}},
      {"begun twice", {Step::kBegin, Step::kBegin}},
      {"connected without an attempt", {Step::kBegin, Step::kConnected}},
      {"connected twice", {Step::kBegin, Step::kAttempt, Step::kConnected, Step::kConnected}},
      {"request sent before connected", {Step::kBegin, Step::kAttempt, Step::kRequestSent}},
      {"request sent while backing off",
       {Step::kBegin, Step::kAttempt, Step::kBackOff, Step::kRequestSent}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_DEATH(
        {
          Exchange ex;
          for (Step s : c.path) Apply(ex, s);
        },
        "HMS_CHECK failed");
  }
}

}  // namespace
}  // namespace hms::proxy
