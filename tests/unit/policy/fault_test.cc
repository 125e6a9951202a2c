#include "hms/policy/fault.h"

#include <gtest/gtest.h>

#include <set>
#include <string_view>

namespace hms::policy {
namespace {

struct Row {
  Fault fault;
  FaultSide side;
  FaultVerdict verdict;
  bool retry_may_help;
};

// What each fault says about the upstream (docs/resilience.md "What counts
// as a failure"). Any change here changes who can open a breaker.
constexpr Row kRows[] = {
    {Fault::kNone, FaultSide::kNone, FaultVerdict::kSuccess, false},
    {Fault::kConnect, FaultSide::kUpstream, FaultVerdict::kFailure, true},
    {Fault::kUpstreamReset, FaultSide::kUpstream, FaultVerdict::kFailure, true},
    {Fault::kServiceTimeout, FaultSide::kUpstream, FaultVerdict::kFailure, false},
    {Fault::kPerTryTimeout, FaultSide::kUpstream, FaultVerdict::kFailure, true},
    {Fault::kGatewayStatus, FaultSide::kUpstream, FaultVerdict::kFailure, true},
    {Fault::kServerError, FaultSide::kUpstream, FaultVerdict::kFailure, false},
    {Fault::kCallerDeadline, FaultSide::kDownstream, FaultVerdict::kNotCounted, false},
    {Fault::kClientGone, FaultSide::kDownstream, FaultVerdict::kNotCounted, false},
    {Fault::kClientBodyStalled, FaultSide::kDownstream, FaultVerdict::kNotCounted, false},
    {Fault::kRefused, FaultSide::kDownstream, FaultVerdict::kNotCounted, false},
    {Fault::kBodyRefused, FaultSide::kDownstream, FaultVerdict::kNotCounted, false},
    {Fault::kLocal, FaultSide::kInternal, FaultVerdict::kNotCounted, false},
};

TEST(Fault, EveryFaultIsClassified) {
  ASSERT_EQ(std::size(kRows), static_cast<size_t>(Fault::kCount));
  std::set<std::string_view> names;
  for (const Row& row : kRows) {
    const FaultInfo& info = Classify(row.fault);
    SCOPED_TRACE(info.name);
    EXPECT_EQ(info.side, row.side);
    EXPECT_EQ(info.verdict, row.verdict);
    EXPECT_EQ(info.retry_may_help, row.retry_may_help);
    EXPECT_FALSE(info.name.empty());
    EXPECT_TRUE(names.insert(info.name).second) << "duplicate name";
  }
}

// Exactly the upstream's own failures count; whatever the client or the
// gateway did never does.
TEST(Fault, OnlyTheUpstreamsFailuresCount) {
  for (const Row& row : kRows) {
    SCOPED_TRACE(Classify(row.fault).name);
    EXPECT_EQ(CountsAgainstUpstream(row.fault), row.side == FaultSide::kUpstream);
    // A retry never follows what was not the upstream's fault.
    if (row.side != FaultSide::kUpstream) {
      EXPECT_FALSE(Classify(row.fault).retry_may_help);
    }
  }
}

TEST(Fault, StatusOfTheAnswerHead) {
  struct Case {
    uint32_t status;
    Fault fault;
  } cases[] = {
      {200, Fault::kNone},          {204, Fault::kNone},
      {304, Fault::kNone},          {404, Fault::kNone},
      {408, Fault::kNone},          {429, Fault::kNone},
      {499, Fault::kNone},          {500, Fault::kServerError},
      {501, Fault::kServerError},   {502, Fault::kGatewayStatus},
      {503, Fault::kGatewayStatus}, {504, Fault::kGatewayStatus},
      {505, Fault::kServerError},   {599, Fault::kServerError},
  };
  for (const Case& c : cases) EXPECT_EQ(StatusFault(c.status), c.fault) << c.status;
}

TEST(Fault, WhoseTimeRanOut) {
  struct Case {
    bool client_owes_body, per_try_bound, caller_deadline;
    Fault fault;
  } cases[] = {
      // A body the client has not finished: its fault, whatever timer fired.
      {true, false, false, Fault::kClientBodyStalled},
      {true, true, false, Fault::kClientBodyStalled},
      {true, false, true, Fault::kClientBodyStalled},
      {true, true, true, Fault::kClientBodyStalled},
      // The service's own per-try timeout, shorter than any deadline.
      {false, true, false, Fault::kPerTryTimeout},
      {false, true, true, Fault::kPerTryTimeout},
      // The deadline: the caller's when it was shorter than the route's.
      {false, false, true, Fault::kCallerDeadline},
      {false, false, false, Fault::kServiceTimeout},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(TimeoutFault(c.client_owes_body, c.per_try_bound, c.caller_deadline), c.fault)
        << c.client_owes_body << c.per_try_bound << c.caller_deadline;
  }
}

}  // namespace
}  // namespace hms::policy
