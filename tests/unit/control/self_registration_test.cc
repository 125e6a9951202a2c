#include "hms/control/self_registration.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>
#include <vector>

#include "hms/control/store.h"
#include "temp_file_store.h"

namespace hms::control {
namespace {

using Clock = SelfRegistration::Clock;

class SelfRegistrationTest : public TempFileStoreTest {
 protected:
  std::vector<std::string> Endpoints() {
    Result<std::vector<StoredService>> list = reader_->List();
    EXPECT_TRUE(list);
    for (const StoredService& s : *list)
      if (s.name == "calc-svc") return s.endpoints;
    return {"<not registered>"};
  }

  std::vector<std::string> log_;
};

TEST_F(SelfRegistrationTest, WaitsForTheServiceThenRenewsAndWithdraws) {
  SelfRegistration reg(store_.get(), "calc-svc", "127.0.0.1:15002", 3,
                       [this](const std::string& line) { log_.push_back(line); });
  Clock::time_point t = Clock::now();
  // The service is not registered yet: retried every second, logged once.
  EXPECT_EQ(reg.Tick(t), 1000);
  EXPECT_FALSE(reg.registered());
  EXPECT_EQ(reg.Tick(t + std::chrono::milliseconds(400)), 600);  // nothing due yet
  EXPECT_EQ(reg.Tick(t + std::chrono::seconds(1)), 1000);
  ASSERT_EQ(log_.size(), 1u);
  EXPECT_NE(log_[0].find("not registered"), std::string::npos) << log_[0];

  ASSERT_TRUE(store_->Register({{"calc-svc", "service: calc-svc\nroutes:\n  - GET /x\n", "c.yaml", {}}}));
  t += std::chrono::seconds(2);
  EXPECT_EQ(reg.Tick(t), 1000);  // renewed every TTL / 3
  EXPECT_TRUE(reg.registered());
  EXPECT_EQ(Endpoints(), (std::vector<std::string>{"127.0.0.1:15002"}));
  EXPECT_EQ(reg.Tick(t + std::chrono::seconds(1)), 1000);
  EXPECT_TRUE(reg.registered());

  reg.Withdraw();
  EXPECT_FALSE(reg.registered());
  EXPECT_TRUE(Endpoints().empty());
  EXPECT_NE(log_.back().find("deregistered 127.0.0.1:15002 from calc-svc"), std::string::npos);
}

TEST_F(SelfRegistrationTest, RegistersAgainWhenTheLeaseIsLost) {
  ASSERT_TRUE(store_->Register({{"calc-svc", "service: calc-svc\nroutes:\n  - GET /x\n", "c.yaml", {}}}));
  SelfRegistration reg(store_.get(), "calc-svc", "127.0.0.1:15002", 3,
                       [this](const std::string& line) { log_.push_back(line); });
  Clock::time_point t = Clock::now();
  reg.Tick(t);
  ASSERT_TRUE(reg.registered());
  // Someone deregisters and registers the service again: the entry is gone
  // and the next renewal finds the lease lost, then registers anew.
  ASSERT_TRUE(store_->Deregister("calc-svc"));
  ASSERT_TRUE(store_->Register({{"calc-svc", "service: calc-svc\nroutes:\n  - GET /x\n", "c.yaml", {}}}));
  EXPECT_TRUE(Endpoints().empty());
  reg.Tick(t + std::chrono::seconds(1));
  EXPECT_TRUE(reg.registered());
  EXPECT_EQ(Endpoints(), (std::vector<std::string>{"127.0.0.1:15002"}));
  bool lost = false;
  for (const std::string& l : log_) lost |= l.find("lost") != std::string::npos;
  EXPECT_TRUE(lost);
}

// A sidecar that stops renewing (frozen, or its control thread starved) for
// longer than its TTL loses its entry to expiry; its next Tick finds the
// lease lost and registers anew. Both clocks move by hand: nothing sleeps.
TEST_F(SelfRegistrationTest, AnEntryNotRenewedExpiresAndComesBackOnTheNextTick) {
  ASSERT_TRUE(store_->Register({{"calc-svc", "service: calc-svc\nroutes:\n  - GET /x\n", "c.yaml", {}}}));
  SelfRegistration reg(store_.get(), "calc-svc", "127.0.0.1:15002", 3,
                       [this](const std::string& line) { log_.push_back(line); });
  Clock::time_point t = Clock::now();
  EXPECT_EQ(reg.Tick(t), 1000);
  const std::vector<std::string> mine = {"127.0.0.1:15002"};
  // Renewed every second for 10 s: always there.
  for (int i = 1; i <= 10; ++i) {
    store_clock_.Advance(1000);
    EXPECT_EQ(reg.Tick(t + std::chrono::seconds(i)), 1000);
    EXPECT_EQ(Endpoints(), mine) << i << " s";
  }
  // No renewal for the 3 s TTL: the entry leaves without any write.
  store_clock_.Advance(2999);
  EXPECT_EQ(Endpoints(), mine);
  store_clock_.Advance(1);
  EXPECT_TRUE(Endpoints().empty());
  reg.Tick(t + std::chrono::seconds(13));
  EXPECT_TRUE(reg.registered());
  EXPECT_EQ(Endpoints(), mine);
  bool lost = false;
  for (const std::string& l : log_) lost |= l.find("lost") != std::string::npos;
  EXPECT_TRUE(lost);
}

}  // namespace
}  // namespace hms::control
