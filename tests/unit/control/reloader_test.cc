#include "hms/control/reloader.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

namespace hms::control {
namespace {

using core::Instant;
using core::Millis;

// A store whose watch, re-watch, health and lease expiry the test sets.
class FakeStore : public Store {
 public:
  Result<bool> Register(const std::vector<StoredService>&, const Check&) override { return true; }
  Result<bool> Deregister(const std::string&) override { return true; }
  Result<std::vector<StoredService>> List() override { return std::vector<StoredService>{}; }
  Result<bool> AddEndpoint(const std::string&, const std::string&) override { return true; }
  Result<bool> RemoveEndpoint(const std::string&, const std::string&) override { return true; }
  Result<int64_t> AddEndpointWithLease(const std::string&, const std::string&, int64_t) override {
    return int64_t{1};
  }
  Result<int64_t> KeepAlive(int64_t) override { return int64_t{1}; }
  Result<bool> RevokeLease(int64_t) override { return true; }
  int64_t NextExpiryMs() const override { return expiry_ms; }
  int WatchFd() override { return -1; }
  bool DrainWatch() override { return changed; }
  bool Rewatch() override {
    bool r = rewatched;
    rewatched = false;
    return r;
  }
  std::string Uri() const override { return "file:/fake"; }
  bool healthy() const override { return up; }
  std::string last_error() const override { return "connection refused"; }

  bool changed = true;     // what DrainWatch says
  bool rewatched = false;  // what the next Rewatch says
  int64_t expiry_ms = -1;
  bool up = true;
};

// The reloader over a fake store, a fake clock and counting hooks.
struct Harness {
  Harness() { Make(ReloaderOptions{}); }
  void Make(ReloaderOptions o) {
    ReloaderHooks h;
    h.compile = [this] {
      ++compiles;
      if (fail_with_store_error) return Compiled{nullptr, "store down", ""};
      if (fail) return Compiled{nullptr, "", "calc.yaml:3: bad route"};
      auto* s = new config::Snapshot();
      s->version = ++version;
      return Compiled{s, "", ""};
    };
    h.publish = [this](config::Snapshot* s) { published.push_back(s->version); };
    h.reload_config = [this] { ++config_reads; };
    h.keys_changed = [this] {
      ++key_checks;
      return keys_changed;
    };
    h.wants_key_reload = [this](int64_t now_s) {
      last_key_now_s = now_s;
      return false;
    };
    h.store_differs = [this] {
      ++lists;
      return store_differs;
    };
    h.log = [this](const std::string& line) { logs.push_back(line); };
    reloader = std::make_unique<Reloader>(&store, &served, std::move(h), o, [this] { return now; });
  }
  void Advance(uint64_t ms) { now += Millis(ms); }
  bool Pass(bool store_readable = false, std::vector<int> signals = {}) {
    reloader->WaitMs();
    return reloader->Step(store_readable, signals);
  }
  bool Logged(const std::string& part) const {
    for (const auto& l : logs) {
      if (l.find(part) != std::string::npos) return true;
    }
    return false;
  }

  Instant now = 5'000'000'000;  // any start: the clock is the test's
  FakeStore store;
  ServedConfig served;
  std::unique_ptr<Reloader> reloader;
  uint64_t version = 0;
  bool fail = false, fail_with_store_error = false, keys_changed = false, store_differs = false;
  int compiles = 0, config_reads = 0, key_checks = 0, lists = 0;
  int64_t last_key_now_s = -1;
  std::vector<uint64_t> published;
  std::vector<std::string> logs;
};

TEST(Reloader, CoalescesABurstOfStoreEventsInto20Ms) {
  Harness t;
  EXPECT_TRUE(t.Pass(/*store_readable=*/true));
  EXPECT_TRUE(t.reloader->reload_pending());
  EXPECT_EQ(t.reloader->WaitMs(), 20);
  t.Advance(5);
  t.Pass(true);
  t.Advance(10);
  t.Pass(true);
  EXPECT_EQ(t.reloader->WaitMs(), 5);  // still due 20 ms after the first event
  t.Advance(4);
  t.Pass();
  EXPECT_TRUE(t.published.empty());
  t.Advance(1);
  t.Pass();
  EXPECT_EQ(t.published, (std::vector<uint64_t>{1}));
  EXPECT_FALSE(t.reloader->reload_pending());
}

TEST(Reloader, AStreamOfEventsStillReloadsEvery20Ms) {
  Harness t;
  for (int ms = 0; ms < 100; ms += 5) {
    t.Pass(true);
    t.Advance(5);
  }
  // Events at 0, 5, ..., 95: reloads at 20, 45, 70, 95 (each 20 ms after
  // the first event following the previous reload).
  EXPECT_EQ(t.published.size(), 4u);
}

TEST(Reloader, WatchEventsThatChangeNothingDoNotReload) {
  Harness t;
  t.store.changed = false;  // a writer's temp file
  t.Pass(true);
  EXPECT_FALSE(t.reloader->reload_pending());
  t.Advance(100);
  t.Pass();
  EXPECT_EQ(t.compiles, 0);
}

TEST(Reloader, LooksAtKeyFilesOnceASecond) {
  Harness t;
  for (int i = 0; i < 99; ++i) {
    t.Advance(10);
    t.Pass();
  }
  EXPECT_EQ(t.key_checks, 0);  // 990 ms
  t.Advance(10);
  t.Pass();
  EXPECT_EQ(t.key_checks, 1);
  EXPECT_EQ(t.last_key_now_s, 6);  // the clock's seconds
  t.Advance(999);
  t.Pass();
  EXPECT_EQ(t.key_checks, 1);
  t.keys_changed = true;
  t.Advance(1);
  t.Pass();
  EXPECT_EQ(t.key_checks, 2);
  EXPECT_EQ(t.published, (std::vector<uint64_t>{1}));
  EXPECT_TRUE(t.Logged("certificate, key or JWKS file changed"));
}

TEST(Reloader, AFailedReloadKeepsTheLastGoodSnapshotAndSaysItIsStale) {
  Harness t;
  ASSERT_TRUE(t.reloader->Reload());
  t.fail = true;
  EXPECT_FALSE(t.reloader->Reload());
  EXPECT_EQ(t.published, (std::vector<uint64_t>{1}));
  EXPECT_EQ(t.served.stale(), "calc.yaml:3: bad route");
  uint64_t serving = 0;
  t.served.With([&](const config::Snapshot& s) { serving = s.version; });
  EXPECT_EQ(serving, 1u);
  // A reload that works again clears it.
  t.fail = false;
  EXPECT_TRUE(t.reloader->Reload());
  EXPECT_EQ(t.served.stale(), "");
  t.served.With([&](const config::Snapshot& s) { serving = s.version; });
  EXPECT_EQ(serving, 2u);
}

TEST(Reloader, AnUnreadableStoreKeepsTheLastGoodSnapshotAndItsStaleness) {
  Harness t;
  t.fail = true;
  EXPECT_FALSE(t.reloader->Reload());
  t.fail_with_store_error = true;
  EXPECT_FALSE(t.reloader->Reload());
  EXPECT_EQ(t.served.store_error(), "store down");
  EXPECT_EQ(t.served.stale(), "calc.yaml:3: bad route");  // not the store's to clear
  EXPECT_TRUE(t.published.empty());
}

TEST(Reloader, AStoreWatchedAgainIsReadAtOnce) {
  Harness t;
  t.store.rewatched = true;
  t.Pass();
  EXPECT_EQ(t.published, (std::vector<uint64_t>{1}));
  EXPECT_TRUE(t.Logged("store file:/fake is back: watching it again"));
}

TEST(Reloader, ListsTheStoreAgainWhenALeaseIsDue) {
  Harness t;
  t.store.expiry_ms = 50;
  EXPECT_EQ(t.reloader->WaitMs(), 51);
  t.reloader->Step(false, {});
  EXPECT_EQ(t.lists, 0);
  t.Advance(51);
  t.reloader->Step(false, {});  // due, but the list is the same
  EXPECT_EQ(t.lists, 1);
  EXPECT_TRUE(t.published.empty());
  t.store_differs = true;
  t.Pass();  // WaitMs sets the next due time from now: not yet
  t.Advance(51);
  t.reloader->Step(false, {});
  EXPECT_EQ(t.published, (std::vector<uint64_t>{1}));
}

TEST(Reloader, SighupReadsTheConfigAndReloadsAndTermStops) {
  Harness t;
  EXPECT_TRUE(t.Pass(false, {SIGHUP}));
  EXPECT_EQ(t.config_reads, 1);
  EXPECT_EQ(t.published, (std::vector<uint64_t>{1}));
  EXPECT_FALSE(t.Pass(false, {SIGTERM}));
  EXPECT_FALSE(t.Pass(false, {SIGINT}));
  // A HUP in the same batch as the TERM is still handled.
  EXPECT_FALSE(t.Pass(false, {SIGTERM, SIGHUP}));
  EXPECT_EQ(t.config_reads, 2);
}

TEST(Reloader, SaysWhenTheStoreGoesAndComesBack) {
  Harness t;
  t.store.up = false;
  t.Pass();
  t.Pass();
  EXPECT_EQ(t.logs.size(), 1u);
  EXPECT_TRUE(t.Logged("store unreachable, serving the last good config: connection refused"));
  t.store.up = true;
  t.Pass();
  EXPECT_TRUE(t.Logged("store file:/fake reachable again"));
}

TEST(Reloader, WaitsAtMostTheLongestWaitOrTheNextTick) {
  Harness t;
  EXPECT_EQ(t.reloader->WaitMs(), 1000);
  ReloaderOptions o;
  o.max_wait_ms = 500;
  t.Make(o);
  EXPECT_EQ(t.reloader->WaitMs(), 500);
}

TEST(Reloader, TheTickShortensTheWaitAndRunsBeforeEachOne) {
  FakeStore store;
  ServedConfig served;
  std::vector<Instant> ticks;
  Instant now = 7'000'000'000;
  ReloaderHooks h;
  h.compile = [] { return Compiled{}; };
  h.publish = [](config::Snapshot*) {};
  h.tick = [&](Instant at) -> int64_t {
    ticks.push_back(at);
    return 20;  // an access log to flush
  };
  Reloader r(&store, &served, std::move(h), ReloaderOptions{}, [&] { return now; });
  EXPECT_EQ(r.WaitMs(), 20);
  store.expiry_ms = 3;  // a lease due sooner still wins
  EXPECT_EQ(r.WaitMs(), 4);
  EXPECT_EQ(ticks, (std::vector<Instant>{now, now}));
}

TEST(Reloader, SignalFdReadsABlockedSignal) {
  int fd = Reloader::BlockSignals();
  ASSERT_GE(fd, 0);
  ASSERT_EQ(raise(SIGHUP), 0);  // blocked: queued for the signalfd, not delivered
  FakeStore store;
  store.changed = false;
  ServedConfig served;
  int reloads = 0;
  ReloaderHooks h;
  h.compile = [&] {
    ++reloads;
    return Compiled{};
  };
  h.publish = [](config::Snapshot*) {};
  h.reload_config = [&] { raise(SIGTERM); };  // ends Run at its next pass
  Reloader r(&store, &served, std::move(h), ReloaderOptions{});
  r.Run(fd);
  EXPECT_EQ(reloads, 1);
  close(fd);
}

}  // namespace
}  // namespace hms::control
