// Unit tests of the admission stamps (src/proxy/admission.h): JWT → rate
// limit → breaker → endpoint pick, each ok or a Fault, without sockets.
#include "src/proxy/admission.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "hms/auth/key_set.h"
#include "hms/auth/mint.h"

namespace hms::proxy {
namespace {

constexpr std::string_view kSecret = "a test secret of thirty-two bytes!";
constexpr int64_t kNowUnix = 1'800'000'000;

class Stamp : public ::testing::Test {
 protected:
  Stamp() {
    cluster_.endpoints.resize(3);
    for (uint32_t i = 0; i < 3; ++i) cluster_.endpoints[i].id = i;
    route_.cluster = 0;
    req_.route = &route_;
    req_.cluster = &cluster_;
    req_.now = core::Millis(1'000'000);
    req_.now_unix = kNowUnix;
    req_.client_ip = "192.0.2.7";
    tools_.claims = &claims_;
    tools_.rr_cursor = &rr_;
    tools_.busy = &busy_;
    tools_.rng = &rng_;
  }

  void RequireJwt(config::AuthMode mode) {
    auto keys = auth::KeySet::FromHs256Secret(kSecret, "test");
    ASSERT_TRUE(keys.ok());
    keys_ = std::make_unique<auth::KeySet>(std::move(keys.value()));
    verifier_ = std::make_unique<auth::JwtVerifier>(keys_.get(), auth::JwtPolicy{}, 0);
    tools_.verifier = verifier_.get();
    route_.auth_mode = mode;
  }
  std::string Bearer(std::string_view sub) {
    const std::string claims = "{\"sub\":\"" + std::string(sub) +
                               "\",\"exp\":" + std::to_string(kNowUnix + 600) + "}";
    auto token = auth::MintHs256(kSecret, claims);
    EXPECT_TRUE(token.ok());
    return "Bearer " + token.value();
  }
  void Limit(config::RateKey key, uint32_t burst) {
    route_.rate_key = key;
    route_.limiter = std::make_shared<policy::RateLimitState>(
        policy::Limit::Every(1, 3'600'000'000'000ull, burst), key == config::RateKey::kRoute ? 0 : 64);
    limiter_ = policy::CoreRateLimiter(route_.limiter.get());
    tools_.limiter = &limiter_;
  }

  config::Route route_;
  config::Cluster cluster_;
  StampRequest req_;
  StampTools tools_;
  auth::Claims claims_;
  std::unique_ptr<auth::KeySet> keys_;
  std::unique_ptr<auth::JwtVerifier> verifier_;
  policy::CoreRateLimiter limiter_;
  uint32_t rr_ = 0;
  std::vector<uint32_t> busy_ = std::vector<uint32_t>(3, 0);
  uint64_t rng_ = 0x9E3779B97F4A7C15ull;
};

TEST_F(Stamp, NoStampsPicksRoundRobin) {
  for (uint32_t want : {0u, 1u, 2u, 0u}) {
    const Stamps st = RunStamps(req_, tools_);
    EXPECT_EQ(st.fault, policy::Fault::kNone);
    EXPECT_EQ(st.endpoint_index, want);
    EXPECT_FALSE(st.jwt_checked);
    EXPECT_FALSE(st.rate_checked);
  }
}

TEST_F(Stamp, NoEndpointsIsRefusedLast) {
  cluster_.endpoints.clear();
  EXPECT_EQ(RunStamps(req_, tools_).fault, policy::Fault::kNoEndpoints);
}

TEST_F(Stamp, JwtRequiredRefusesAMissingOrBadToken) {
  RequireJwt(config::AuthMode::kRequired);
  Stamps st = RunStamps(req_, tools_);
  EXPECT_EQ(st.fault, policy::Fault::kJwtRejected);
  EXPECT_EQ(st.jwt.code, auth::JwtReason::kMissingToken);
  EXPECT_EQ(st.jwt.status, 401);
  req_.authorization = "Bearer not.a.token";
  st = RunStamps(req_, tools_);
  EXPECT_EQ(st.fault, policy::Fault::kJwtRejected);
  EXPECT_EQ(st.jwt.code, auth::JwtReason::kMalformed);
  const std::string good = Bearer("alice");
  req_.authorization = good;
  st = RunStamps(req_, tools_);
  EXPECT_EQ(st.fault, policy::Fault::kNone);
  EXPECT_TRUE(st.jwt.ok);
}

TEST_F(Stamp, JwtRequiredClaimMismatchIs403) {
  RequireJwt(config::AuthMode::kRequired);
  route_.require = {{"sub", "bob"}};
  const std::string token = Bearer("alice");
  req_.authorization = token;
  const Stamps st = RunStamps(req_, tools_);
  EXPECT_EQ(st.fault, policy::Fault::kJwtRejected);
  EXPECT_EQ(st.jwt.status, 403);
}

TEST_F(Stamp, JwtOptionalAdmitsNoTokenButNotABadOne) {
  RequireJwt(config::AuthMode::kOptional);
  Stamps st = RunStamps(req_, tools_);
  EXPECT_EQ(st.fault, policy::Fault::kNone);
  EXPECT_FALSE(st.jwt_checked);
  req_.authorization = "Bearer not.a.token";
  st = RunStamps(req_, tools_);
  EXPECT_EQ(st.fault, policy::Fault::kJwtRejected);
}

TEST_F(Stamp, RateLimitRefusesPastTheBurst) {
  Limit(config::RateKey::kRoute, 2);
  EXPECT_EQ(RunStamps(req_, tools_).fault, policy::Fault::kNone);
  EXPECT_EQ(RunStamps(req_, tools_).fault, policy::Fault::kNone);
  const Stamps st = RunStamps(req_, tools_);
  EXPECT_EQ(st.fault, policy::Fault::kRateLimited);
  EXPECT_TRUE(st.rate_checked);
  EXPECT_FALSE(st.rate.admitted);
  EXPECT_GE(st.rate.retry_after_s, 1u);
}

TEST_F(Stamp, RateLimitByJwtSubjectKeysOnTheVerifiedSubject) {
  RequireJwt(config::AuthMode::kOptional);
  Limit(config::RateKey::kJwtSub, 1);
  const std::string alice = Bearer("alice"), bob = Bearer("bob");
  req_.authorization = alice;
  EXPECT_EQ(RunStamps(req_, tools_).fault, policy::Fault::kNone);
  EXPECT_EQ(RunStamps(req_, tools_).fault, policy::Fault::kRateLimited);
  req_.authorization = bob;
  EXPECT_EQ(RunStamps(req_, tools_).fault, policy::Fault::kNone);
  // No token: the client's address stands in for the subject.
  req_.authorization = {};
  EXPECT_EQ(RunStamps(req_, tools_).fault, policy::Fault::kNone);
  EXPECT_EQ(RunStamps(req_, tools_).fault, policy::Fault::kRateLimited);
  req_.client_ip = "192.0.2.8";
  EXPECT_EQ(RunStamps(req_, tools_).fault, policy::Fault::kNone);
}

TEST_F(Stamp, RateLimitByHeaderKeysOnItsValue) {
  Limit(config::RateKey::kHeader, 1);
  req_.rate_header_value = "tenant-a";
  EXPECT_EQ(RunStamps(req_, tools_).fault, policy::Fault::kNone);
  EXPECT_EQ(RunStamps(req_, tools_).fault, policy::Fault::kRateLimited);
  req_.rate_header_value = "tenant-b";
  EXPECT_EQ(RunStamps(req_, tools_).fault, policy::Fault::kNone);
}

// A rejected token spends no rate-limit token: the stamps run in order and
// the first refusal ends them.
TEST_F(Stamp, ARefusedTokenSpendsNoRateToken) {
  RequireJwt(config::AuthMode::kRequired);
  Limit(config::RateKey::kRoute, 1);
  EXPECT_EQ(RunStamps(req_, tools_).fault, policy::Fault::kJwtRejected);
  const std::string token = Bearer("alice");
  req_.authorization = token;
  EXPECT_EQ(RunStamps(req_, tools_).fault, policy::Fault::kNone);
}

TEST_F(Stamp, OpenBreakerRefusesAndAHalfOpenOneAdmitsOneProbe) {
  policy::BreakerParams p;
  p.failures = 1;
  p.open_for_ns = 1'000'000'000;
  cluster_.breaker_state = std::make_shared<policy::Breaker>(p);
  Stamps st = RunStamps(req_, tools_);
  ASSERT_EQ(st.fault, policy::Fault::kNone);
  EXPECT_EQ(st.breaker, cluster_.breaker_state.get());
  EXPECT_FALSE(st.probe);
  st.breaker->OnFailure(req_.now, st.probe);
  EXPECT_EQ(RunStamps(req_, tools_).fault, policy::Fault::kCircuitOpen);
  req_.now += 2'000'000'000;  // open_for over: one probe
  st = RunStamps(req_, tools_);
  EXPECT_EQ(st.fault, policy::Fault::kNone);
  EXPECT_TRUE(st.probe);
  EXPECT_EQ(RunStamps(req_, tools_).fault, policy::Fault::kCircuitOpen);
}

TEST_F(Stamp, LeastRequestPicksTheLessBusyOfTwo) {
  cluster_.least_request = true;
  busy_ = {5, 0, 5};
  for (int i = 0; i < 50; ++i) {
    const uint32_t pick = PickEndpoint(cluster_, &rr_, busy_, &rng_);
    // Of two distinct endpoints, never the busier: endpoint 1 whenever drawn.
    EXPECT_LT(pick, 3u);
    if (pick != 1) EXPECT_EQ(busy_[pick], 5u);
  }
  busy_ = {0, 9, 9};
  int zero = 0;
  for (int i = 0; i < 60; ++i) zero += PickEndpoint(cluster_, &rr_, busy_, &rng_) == 0;
  EXPECT_GE(zero, 30);  // drawn in two of three pairs, and then it wins
}

// Fleet scope (docs/resilience.md "Fleet scope"): each way a fleet-scope
// request can be decided, in a table: the mode the worker gives, the lease's
// stock, and what the stamp answers.
TEST_F(Stamp, FleetScopeDecidesByModeAndLease) {
  struct Case {
    const char* name;
    FleetMode mode;
    uint32_t tokens;        // leased stock on this core
    uint64_t empty_for_ns;  // Redis said the bucket is empty this much longer
    policy::Fault fault;
    bool wait;
    uint32_t retry_after_s;  // when refused
  } cases[] = {
      {"stock admits", FleetMode::kRedis, 3, 0, policy::Fault::kNone, false, 0},
      {"no stock waits", FleetMode::kRedis, 0, 0, policy::Fault::kNone, true, 0},
      {"known empty refuses", FleetMode::kRedis, 0, core::Millis(2'500),
       policy::Fault::kRateLimited, false, 3},
      {"granted by Redis", FleetMode::kGranted, 0, 0, policy::Fault::kNone, false, 0},
      {"denied by Redis", FleetMode::kDenied, 0, 0, policy::Fault::kRateLimited, false, 7},
      {"fail open", FleetMode::kOpen, 0, 0, policy::Fault::kNone, false, 0},
      {"fail closed", FleetMode::kClosed, 0, 0, policy::Fault::kFleetUnavailable, false, 0},
      {"local share", FleetMode::kLocal, 0, 0, policy::Fault::kNone, false, 0},
  };
  config::RateLimit rl;
  rl.rate_per_sec_x1000 = 1000;
  rl.burst = 4;
  rl.fleet = true;
  route_.rate_limit = rl;
  route_.fleet = true;
  Limit(config::RateKey::kRoute, 1);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    policy::CoreLease lease;
    lease.tokens = c.tokens;
    lease.tokens_until = req_.now + core::Millis(1000);
    lease.empty_until = c.empty_for_ns > 0 ? req_.now + c.empty_for_ns : 0;
    tools_.lease = &lease;
    tools_.fleet_mode = c.mode;
    tools_.fleet_retry_s = 7;
    const Stamps st = RunStamps(req_, tools_);
    EXPECT_EQ(st.fault, c.fault);
    EXPECT_EQ(st.fleet_wait, c.wait);
    if (c.wait) EXPECT_EQ(lease.waiting, 1u);
    if (c.fault == policy::Fault::kRateLimited) {
      EXPECT_FALSE(st.rate.admitted);
      EXPECT_EQ(st.rate.retry_after_s, c.retry_after_s);
      EXPECT_EQ(st.rate.limit, 4u);
    }
    if (c.mode == FleetMode::kRedis && c.tokens > 0) EXPECT_EQ(lease.tokens, c.tokens - 1);
  }
  // The local share is this gateway's own exact bucket (burst 1 here): the
  // second request in the same instant is refused by it.
  tools_.fleet_mode = FleetMode::kLocal;
  EXPECT_EQ(RunStamps(req_, tools_).fault, policy::Fault::kRateLimited);
}

}  // namespace
}  // namespace hms::proxy
