#include "hms/control/fleet.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>

#include <string>
#include <vector>

#include "hms/control/store.h"
#include "temp_file_store.h"

namespace hms::control {
namespace {

using Clock = Membership::Clock;

FleetMember Member(const std::string& id, int64_t snapshot = 1) {
  FleetMember m;
  m.id = id;
  m.role = "gateway";
  m.version = "0.1.0";
  m.admin = "127.0.0.1:9901";
  m.state = "serving";
  m.fingerprint = "0123456789abcdef";
  m.started_s = 1'700'000'000;
  m.snapshot = snapshot;
  m.pid = 42;
  return m;
}

TEST(FleetRecord, RoundTripsAndRefusesWhatIsNoRecord) {
  FleetMember m = Member("host-42");
  m.state = "stale: a \"quoted\" reason";
  Result<FleetMember> back = ParseMemberRecord(MemberRecord(m));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, m);
  for (const char* bad : {"", "[]", "{\"role\":\"gateway\"}", "not json"}) {
    EXPECT_FALSE(ParseMemberRecord(bad).ok()) << bad;
  }
}

TEST(FleetRecord, FingerprintFollowsTheStoreContents) {
  std::vector<StoredService> a = {{"calc-svc", "service: calc-svc\n", "calc.yaml", {}}};
  std::vector<StoredService> b = a;
  EXPECT_EQ(StoreFingerprint(a), StoreFingerprint(b));
  b[0].endpoints.push_back("127.0.0.1:7002");
  EXPECT_NE(StoreFingerprint(a), StoreFingerprint(b));
  b = a;
  b[0].text += "# edited\n";
  EXPECT_NE(StoreFingerprint(a), StoreFingerprint(b));
  EXPECT_EQ(StoreFingerprint(a).size(), 16u);
}

class MembershipTest : public TempFileStoreTest {
 protected:
  std::vector<FleetMember> Listed() {
    Result<std::vector<std::string>> records = reader_->ListMembers();
    EXPECT_TRUE(records);
    std::vector<FleetMember> out;
    for (const std::string& r : *records) {
      Result<FleetMember> m = ParseMemberRecord(r);
      EXPECT_TRUE(m.ok()) << r;
      if (m.ok()) out.push_back(*m);
    }
    return out;
  }
};

TEST_F(MembershipTest, RecordsRenewsRewritesOnChangeAndWithdraws) {
  Membership a(store_.get(), 3, [](const std::string&) {});
  Membership b(store_.get(), 3, [](const std::string&) {});
  Clock::time_point t = Clock::now();
  EXPECT_EQ(a.Tick(t, Member("a")), 1000);  // renewed every TTL / 3
  b.Tick(t, Member("b"));
  ASSERT_EQ(Listed().size(), 2u);
  EXPECT_EQ(Listed()[0].id, "a");
  // A new snapshot: the record changes at once, not at the next renewal.
  a.Tick(t + std::chrono::milliseconds(10), Member("a", 7));
  EXPECT_EQ(Listed()[0].snapshot, 7);
  // Renewed in time, a stays; b stops renewing and expires with its lease.
  for (int i = 1; i <= 4; ++i) {
    store_clock_.Advance(1000);
    a.Tick(t + std::chrono::seconds(i), Member("a", 7));
  }
  std::vector<FleetMember> left = Listed();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].id, "a");
  a.Withdraw();
  EXPECT_TRUE(Listed().empty());
}

// Member records change no gateway's config: writing one wakes no watcher,
// and services are listed without them.
TEST_F(MembershipTest, RecordsWakeNoWatcher) {
  const int fd = reader_->WatchFd();
  ASSERT_GE(fd, 0);
  while (reader_->DrainWatch()) {
  }
  ASSERT_TRUE(store_->PutMember("a", MemberRecord(Member("a")), 3).ok());
  pollfd p{fd, POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 100), 0) << "a member record woke the store's watch";
  Result<std::vector<StoredService>> services = reader_->List();
  ASSERT_TRUE(services);
  EXPECT_TRUE(services->empty());
  EXPECT_EQ(Listed().size(), 1u);
}

}  // namespace
}  // namespace hms::control
