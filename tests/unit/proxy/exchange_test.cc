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
enum class Step { kBegin, kAttempt, kBackOff, kHeadForwarded, kAnswer, kEnd };

void Apply(Exchange& ex, Step s) {
  switch (s) {
    case Step::kBegin: ex.Begin(); break;
    case Step::kAttempt: ex.Attempt(); break;
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
      {"first attempt", {Step::kBegin, Step::kAttempt}, State::kAttempting, true, false, false,
       false},
      {"transparent retry: attempt after attempt",
       {Step::kBegin, Step::kAttempt, Step::kAttempt}, State::kAttempting, true, false, false,
       false},
      {"policy retry waits", {Step::kBegin, Step::kAttempt, Step::kBackOff}, State::kBackingOff,
       true, false, false, true},
      {"backoff over: the retry's attempt",
       {Step::kBegin, Step::kAttempt, Step::kBackOff, Step::kAttempt}, State::kAttempting, true,
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
