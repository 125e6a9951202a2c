#include <dirent.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "hms/control/store.h"
#include "fake_store_clock.h"

namespace hms::control {
namespace {

constexpr char kCalc[] =
    "service: calc-svc\n"
    "routes:\n"
    "  - GET /sum/{a}/{b}\n"
    "rate_limit: \"20 req/min\"\n";
constexpr char kHello[] =
    "service: hello-svc\n"
    "routes:\n"
    "  - GET /hello\n";

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Names of leftover temp and backup files (they start with '.').
std::vector<std::string> HiddenFiles(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (const dirent* e = readdir(d)) {
      const std::string n = e->d_name;
      if (n != "." && n != ".." && n[0] == '.') out.push_back(n);
    }
    closedir(d);
  }
  return out;
}

class FileStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/hms-store-test-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    root_ = dir;
    dir_ = root_ + "/store";  // created by OpenFileStore
    Result<std::unique_ptr<Store>> s = OpenFileStore(dir_, clock_);
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(s.value());
  }
  void TearDown() override {
    store_.reset();
    std::system(("rm -rf '" + root_ + "'").c_str());
  }

  FakeStoreClock clock_;  // leases live and expire when a test advances it
  std::string root_, dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(FileStoreTest, RoundTrip) {
  EXPECT_EQ(store_->Uri(), "file:" + dir_);
  Result<std::vector<StoredService>> empty = store_->List();
  ASSERT_TRUE(empty) << empty.error().message;
  EXPECT_TRUE(empty->empty());

  ASSERT_TRUE(store_->Register({{"hello-svc", kHello, "hello_svc/route.yaml", {}},
                                {"calc-svc", kCalc, "calc_svc/route.yaml", {}}}));
  // The layout of the header, verbatim.
  EXPECT_EQ(ReadText(dir_ + "/services/calc-svc.yaml"), kCalc);
  EXPECT_EQ(ReadText(dir_ + "/services/calc-svc.source"), "calc_svc/route.yaml");

  Result<bool> added = store_->AddEndpoint("calc-svc", "127.0.0.1:7001");
  ASSERT_TRUE(added) << added.error().message;
  EXPECT_TRUE(added.value());
  ASSERT_TRUE(store_->AddEndpoint("calc-svc", "[::1]:7002"));
  Result<bool> again = store_->AddEndpoint("calc-svc", "127.0.0.1:7001");
  ASSERT_TRUE(again);
  EXPECT_FALSE(again.value());  // already there: no change
  EXPECT_EQ(ReadText(dir_ + "/endpoints/calc-svc"), "127.0.0.1:7001\n[::1]:7002\n");

  Result<std::vector<StoredService>> list = store_->List();
  ASSERT_TRUE(list) << list.error().message;
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "calc-svc");  // sorted by name
  EXPECT_EQ((*list)[0].text, kCalc);
  EXPECT_EQ((*list)[0].source, "calc_svc/route.yaml");
  EXPECT_EQ((*list)[0].endpoints, (std::vector<std::string>{"127.0.0.1:7001", "[::1]:7002"}));
  EXPECT_EQ((*list)[1].name, "hello-svc");
  EXPECT_TRUE((*list)[1].endpoints.empty());

  // Registering again replaces the text and keeps the endpoints.
  const std::string calc2 = std::string(kCalc) + "retries: 1\n";
  ASSERT_TRUE(store_->Register({{"calc-svc", calc2, "calc-v2.yaml", {}}}));
  list = store_->List();
  ASSERT_TRUE(list);
  EXPECT_EQ((*list)[0].text, calc2);
  EXPECT_EQ((*list)[0].source, "calc-v2.yaml");
  EXPECT_EQ((*list)[0].endpoints.size(), 2u);

  ASSERT_TRUE(store_->RemoveEndpoint("calc-svc", "127.0.0.1:7001"));
  ASSERT_TRUE(store_->RemoveEndpoint("calc-svc", "[::1]:7002"));
  Result<bool> gone = store_->RemoveEndpoint("calc-svc", "[::1]:7002");
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().message, "service 'calc-svc' has no endpoint [::1]:7002");

  ASSERT_TRUE(store_->Deregister("hello-svc"));
  Result<bool> twice = store_->Deregister("hello-svc");
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().message, "service 'hello-svc' is not registered");
  list = store_->List();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].name, "calc-svc");

  EXPECT_TRUE(HiddenFiles(dir_ + "/services").empty());
  EXPECT_TRUE(HiddenFiles(dir_ + "/endpoints").empty());
}

TEST_F(FileStoreTest, ReopenSeesTheSameData) {
  ASSERT_TRUE(store_->Register({{"calc-svc", kCalc, "calc.yaml", {}}}));
  ASSERT_TRUE(store_->AddEndpoint("calc-svc", "localhost:7001"));
  Result<std::unique_ptr<Store>> other = OpenStore("file://" + dir_ + "/");
  ASSERT_TRUE(other) << other.error().message;
  Result<std::vector<StoredService>> list = (*other)->List();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].endpoints, std::vector<std::string>{"localhost:7001"});
}

TEST_F(FileStoreTest, EndpointErrors) {
  Result<bool> r = store_->AddEndpoint("calc-svc", "127.0.0.1:7001");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "service 'calc-svc' is not registered");
  ASSERT_TRUE(store_->Register({{"calc-svc", kCalc, "calc.yaml", {}}}));
  r = store_->AddEndpoint("calc-svc", "127.0.0.1:99999");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "'127.0.0.1:99999' is not [mtls://]host:port with a port 1..65535");
  r = store_->AddEndpoint("../etc", "127.0.0.1:1");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "'../etc' is not a valid service name");
}

TEST_F(FileStoreTest, RegisterIsAllOrNothingOnBadInput) {
  ASSERT_TRUE(store_->Register({{"calc-svc", kCalc, "calc.yaml", {}}}));
  const std::string changed = std::string(kCalc) + "retries: 3\n";
  for (const std::vector<StoredService>& batch : std::vector<std::vector<StoredService>>{
           {{"calc-svc", changed, "calc.yaml", {}}, {"Bad/Name", kHello, "x.yaml", {}}},
           {{"calc-svc", changed, "calc.yaml", {}}, {"hello-svc", "", "x.yaml", {}}},
           {{"calc-svc", changed, "calc.yaml", {}}, {"calc-svc", changed, "y.yaml", {}}},
       }) {
    EXPECT_FALSE(store_->Register(batch));
  }
  Result<std::vector<StoredService>> list = store_->List();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].text, kCalc);
}

TEST_F(FileStoreTest, RegisterRollsBackWhenARenameFails) {
  ASSERT_TRUE(store_->Register({{"calc-svc", kCalc, "calc.yaml", {}}}));
  // A directory where hello-svc.yaml must go makes the last rename fail
  // after calc-svc's files were already replaced.
  ASSERT_EQ(mkdir((dir_ + "/services/hello-svc.yaml").c_str(), 0755), 0);
  const std::string changed = std::string(kCalc) + "retries: 3\n";
  Result<bool> r = store_->Register(
      {{"calc-svc", changed, "calc-v2.yaml", {}}, {"hello-svc", kHello, "hello.yaml", {}}});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("cannot rename into"), std::string::npos) << r.error().message;
  ASSERT_EQ(rmdir((dir_ + "/services/hello-svc.yaml").c_str()), 0);
  Result<std::vector<StoredService>> list = store_->List();
  ASSERT_TRUE(list) << list.error().message;
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].text, kCalc);
  EXPECT_EQ((*list)[0].source, "calc.yaml");
  EXPECT_FALSE(access((dir_ + "/services/hello-svc.source").c_str(), F_OK) == 0);
  EXPECT_TRUE(HiddenFiles(dir_ + "/services").empty());
}

bool Readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

TEST_F(FileStoreTest, RegisterCheckSeesTheStoreAndCanRefuse) {
  ASSERT_TRUE(store_->Register({{"hello-svc", kHello, "hello.yaml", {}}}));
  std::vector<std::string> seen;
  Result<bool> refused = store_->Register(
      {{"calc-svc", kCalc, "calc.yaml", {}}}, [&](const std::vector<StoredService>& current) -> Result<bool> {
        for (const StoredService& s : current) seen.push_back(s.name);
        return Error{"clash", Side::kConfig, false};
      });
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message, "clash");
  EXPECT_EQ(seen, std::vector<std::string>{"hello-svc"});
  Result<std::vector<StoredService>> list = store_->List();
  ASSERT_TRUE(list);
  EXPECT_EQ(list->size(), 1u);
  EXPECT_TRUE(store_->Register({{"calc-svc", kCalc, "calc.yaml", {}}},
                               [](const std::vector<StoredService>&) -> Result<bool> { return true; }));
}

TEST_F(FileStoreTest, WatchFiresOnChanges) {
  const int fd = store_->WatchFd();
  ASSERT_GE(fd, 0);
  EXPECT_EQ(store_->WatchFd(), fd);
  EXPECT_FALSE(Readable(fd, 0));

  // From another store object, as hms-api would.
  Result<std::unique_ptr<Store>> writer = OpenStore("file:" + dir_);
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->Register({{"calc-svc", kCalc, "calc.yaml", {}}}));
  EXPECT_TRUE(Readable(fd, 1000));
  EXPECT_TRUE(store_->DrainWatch());
  EXPECT_FALSE(Readable(fd, 0));

  ASSERT_TRUE((*writer)->AddEndpoint("calc-svc", "127.0.0.1:7001"));
  EXPECT_TRUE(Readable(fd, 1000));
  EXPECT_TRUE(store_->DrainWatch());
  EXPECT_FALSE(Readable(fd, 0));

  ASSERT_TRUE((*writer)->Deregister("calc-svc"));
  EXPECT_TRUE(Readable(fd, 1000));
  EXPECT_TRUE(store_->DrainWatch());
  EXPECT_FALSE(Readable(fd, 0));

  // A writer's temp file alone (written, then removed) is no change.
  const std::string tmp = dir_ + "/services/.calc-svc.yaml.tmp-1-1";
  { std::ofstream(tmp) << kCalc; }
  unlink(tmp.c_str());
  EXPECT_TRUE(Readable(fd, 1000));
  EXPECT_FALSE(store_->DrainWatch());
}

// Drains the watch until it goes quiet; true if any drain said "changed".
bool DrainAll(Store& store, int fd) {
  bool changed = false;
  while (Readable(fd, 200)) changed = store.DrainWatch() || changed;
  return changed;
}

TEST_F(FileStoreTest, WatchComesBackWhenTheDirectoryIsRemovedAndMadeAgain) {
  const int fd = store_->WatchFd();
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(store_->Register({{"calc-svc", kCalc, "calc.yaml", {}}}));
  DrainAll(*store_, fd);

  // `rm -rf` of the store while a gateway watches it: the removal is a change.
  ASSERT_EQ(std::system(("rm -rf '" + dir_ + "'").c_str()), 0);
  EXPECT_TRUE(Readable(fd, 1000));
  EXPECT_TRUE(DrainAll(*store_, fd));
  EXPECT_FALSE(store_->List());
  EXPECT_FALSE(store_->Rewatch());  // nothing to watch yet

  // hms-api recreating it (another store object makes the directory) is seen...
  Result<std::unique_ptr<Store>> writer = OpenStore("file:" + dir_);
  ASSERT_TRUE(writer) << writer.error().message;
  ASSERT_TRUE((*writer)->Register({{"hello-svc", kHello, "hello.yaml", {}}}));
  EXPECT_TRUE(Readable(fd, 1000));
  EXPECT_TRUE(DrainAll(*store_, fd));
  Result<std::vector<StoredService>> list = store_->List();
  ASSERT_TRUE(list) << list.error().message;
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].name, "hello-svc");

  // ...and so is every change after it: the watch is whole again.
  ASSERT_TRUE((*writer)->AddEndpoint("hello-svc", "127.0.0.1:7001"));
  EXPECT_TRUE(Readable(fd, 1000));
  EXPECT_TRUE(store_->DrainWatch());
  EXPECT_FALSE(store_->Rewatch());  // nothing left to re-watch
}

TEST_F(FileStoreTest, RewatchWatchesAStoreWhoseParentCameBackToo) {
  // The parent's watch goes with the parent: the caller's periodic Rewatch
  // is what finds the store again.
  const std::string nested = root_ + "/deep/store";
  Result<std::unique_ptr<Store>> s = OpenStore("file:" + nested);
  ASSERT_TRUE(s) << s.error().message;
  const int fd = (*s)->WatchFd();
  ASSERT_GE(fd, 0);
  ASSERT_EQ(std::system(("rm -rf '" + root_ + "/deep'").c_str()), 0);
  DrainAll(**s, fd);
  EXPECT_FALSE((*s)->Rewatch());
  Result<std::unique_ptr<Store>> writer = OpenStore("file:" + nested);
  ASSERT_TRUE(writer) << writer.error().message;
  EXPECT_TRUE((*s)->Rewatch());
  ASSERT_TRUE((*writer)->Register({{"hello-svc", kHello, "hello.yaml", {}}}));
  EXPECT_TRUE(Readable(fd, 1000));
  EXPECT_TRUE(DrainAll(**s, fd));
}

TEST_F(FileStoreTest, AHandWrittenFileIsNamedByItsPathInTheStore) {
  { std::ofstream(dir_ + "/services/hello-svc.yaml") << kHello; }
  Result<std::vector<StoredService>> list = store_->List();
  ASSERT_TRUE(list) << list.error().message;
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].source, dir_ + "/services/hello-svc.yaml");
}

TEST_F(FileStoreTest, ConcurrentRegistersFromManyProcessesAllLand) {
  ASSERT_TRUE(store_->Register({{"shared-svc", kHello, "shared.yaml", {}}}));
  constexpr int kChildren = 20;
  std::vector<pid_t> pids;
  for (int i = 0; i < kChildren; ++i) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // Each child opens its own store and does two read-modify-writes.
      Result<std::unique_ptr<Store>> s = OpenStore("file:" + dir_);
      if (!s) _exit(2);
      const std::string name = "svc-" + std::to_string(i);
      const std::string text = "service: " + name + "\nroutes:\n  - GET /" + name + "\n";
      if (!(*s)->Register({{name, text, name + ".yaml", {}}})) _exit(3);
      if (!(*s)->AddEndpoint("shared-svc", "127.0.0.1:" + std::to_string(7000 + i))) _exit(4);
      _exit(0);
    }
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  }
  Result<std::vector<StoredService>> list = store_->List();
  ASSERT_TRUE(list) << list.error().message;
  ASSERT_EQ(list->size(), static_cast<size_t>(kChildren + 1));
  const auto shared = std::find_if(list->begin(), list->end(),
                                   [](const StoredService& s) { return s.name == "shared-svc"; });
  ASSERT_NE(shared, list->end());
  EXPECT_EQ(shared->endpoints.size(), static_cast<size_t>(kChildren));  // no lost update
  for (int i = 0; i < kChildren; ++i) {
    const std::string name = "svc-" + std::to_string(i);
    EXPECT_TRUE(std::any_of(list->begin(), list->end(), [&](const StoredService& s) {
      return s.name == name;
    })) << name;
  }
  EXPECT_TRUE(HiddenFiles(dir_ + "/services").empty());
  EXPECT_TRUE(HiddenFiles(dir_ + "/endpoints").empty());
}

std::vector<std::string> EndpointsOf(Store& store, const std::string& service) {
  Result<std::vector<StoredService>> list = store.List();
  if (!list) return {"<list failed: " + list.error().message + ">"};
  for (const StoredService& s : *list)
    if (s.name == service) return s.endpoints;
  return {};
}

TEST_F(FileStoreTest, LeasedEndpointLivesWhileKeptAliveAndExpiresOtherwise) {
  ASSERT_TRUE(store_->Register({{"calc-svc", kCalc, "calc.yaml", {}}}));
  ASSERT_TRUE(store_->AddEndpoint("calc-svc", "127.0.0.1:7000"));
  EXPECT_FALSE(store_->AddEndpointWithLease("nope-svc", "127.0.0.1:7001", 2));
  EXPECT_FALSE(store_->AddEndpointWithLease("calc-svc", "nonsense", 2));
  EXPECT_FALSE(store_->AddEndpointWithLease("calc-svc", "127.0.0.1:7001", 0));
  EXPECT_EQ(store_->NextExpiryMs(), -1);
  {
    // An mTLS sidecar's address keeps its scheme through the lease file.
    Result<int64_t> m = store_->AddEndpointWithLease("calc-svc", "mtls://127.0.0.1:7009", 5);
    ASSERT_TRUE(m) << m.error().message;
    const std::vector<std::string> both = {"127.0.0.1:7000", "mtls://127.0.0.1:7009"};
    EXPECT_EQ(EndpointsOf(*store_, "calc-svc"), both);
    ASSERT_TRUE(store_->RevokeLease(*m));
  }

  Result<int64_t> dying = store_->AddEndpointWithLease("calc-svc", "127.0.0.1:7001", 1);
  ASSERT_TRUE(dying) << dying.error().message;
  Result<int64_t> kept = store_->AddEndpointWithLease("calc-svc", "127.0.0.1:7002", 1);
  ASSERT_TRUE(kept) << kept.error().message;
  EXPECT_EQ(EndpointsOf(*store_, "calc-svc"),
            (std::vector<std::string>{"127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"}));
  // The reader learns when to look again: when the 1 s TTL ends.
  EXPECT_EQ(store_->NextExpiryMs(), 1000);
  clock_.Advance(400);
  EXPECT_EQ(store_->NextExpiryMs(), 600);

  // Renewals are not changes: a watcher is not woken by them.
  const int fd = store_->WatchFd();
  ASSERT_GE(fd, 0);
  store_->DrainWatch();
  for (int i = 0; i < 8; ++i) {
    Result<int64_t> ttl = store_->KeepAlive(kept.value());
    ASSERT_TRUE(ttl) << ttl.error().message;
    EXPECT_EQ(ttl.value(), 1);
    clock_.Advance(300);
  }
  EXPECT_FALSE(Readable(fd, 0));
  // 2.8 s after they were added only the renewed one is left (renewed 300 ms
  // ago: 700 ms to go); the other cannot be renewed.
  EXPECT_EQ(EndpointsOf(*store_, "calc-svc"),
            (std::vector<std::string>{"127.0.0.1:7000", "127.0.0.1:7002"}));
  EXPECT_EQ(store_->NextExpiryMs(), 700);
  EXPECT_FALSE(store_->KeepAlive(dying.value()));

  // Revoking removes it at once, and watchers hear of it.
  ASSERT_TRUE(store_->RevokeLease(kept.value()));
  EXPECT_TRUE(Readable(fd, 1000));
  EXPECT_EQ(EndpointsOf(*store_, "calc-svc"), (std::vector<std::string>{"127.0.0.1:7000"}));
  EXPECT_EQ(store_->NextExpiryMs(), -1);
  EXPECT_FALSE(store_->RevokeLease(kept.value()));
  EXPECT_FALSE(store_->KeepAlive(12345));
}

// A lease expires exactly at its last renewal plus its TTL, by the store's
// clock: alive a millisecond before, gone at that instant, for every reader
// on that clock; a renewal then fails.
TEST_F(FileStoreTest, LeaseExpiresAtItsRenewalPlusItsTtl) {
  ASSERT_TRUE(store_->Register({{"calc-svc", kCalc, "calc.yaml", {}}}));
  Result<int64_t> lease = store_->AddEndpointWithLease("calc-svc", "127.0.0.1:7001", 2);
  ASSERT_TRUE(lease) << lease.error().message;
  Result<std::unique_ptr<Store>> reader = OpenFileStore(dir_, clock_);
  ASSERT_TRUE(reader) << reader.error().message;
  const std::vector<std::string> one = {"127.0.0.1:7001"};
  clock_.Advance(1500);
  ASSERT_TRUE(store_->KeepAlive(*lease));  // renewed at 1.5 s: now lives until 3.5 s
  clock_.Advance(1999);
  EXPECT_EQ(EndpointsOf(**reader, "calc-svc"), one);
  EXPECT_EQ((*reader)->NextExpiryMs(), 1);
  clock_.Advance(1);
  EXPECT_TRUE(EndpointsOf(**reader, "calc-svc").empty());
  EXPECT_EQ((*reader)->NextExpiryMs(), -1);
  EXPECT_FALSE(store_->KeepAlive(*lease));
  // The next lease write removes the expired file.
  ASSERT_EQ(access((dir_ + "/leases/calc-svc@127.0.0.1:7001").c_str(), F_OK), 0);
  ASSERT_TRUE(store_->AddEndpointWithLease("calc-svc", "127.0.0.1:7002", 2));
  EXPECT_NE(access((dir_ + "/leases/calc-svc@127.0.0.1:7001").c_str(), F_OK), 0);
  EXPECT_EQ(EndpointsOf(**reader, "calc-svc"), (std::vector<std::string>{"127.0.0.1:7002"}));
}

TEST_F(FileStoreTest, LeaseTakenOverByARestartedHolderAndGoneWithItsService) {
  ASSERT_TRUE(store_->Register({{"calc-svc", kCalc, "calc.yaml", {}}}));
  Result<int64_t> first = store_->AddEndpointWithLease("calc-svc", "127.0.0.1:7001", 5);
  ASSERT_TRUE(first);
  // A second holder (a restarted sidecar) of the same address: one entry.
  Result<std::unique_ptr<Store>> other = OpenStore("file:" + dir_);
  ASSERT_TRUE(other);
  ASSERT_TRUE((*other)->AddEndpointWithLease("calc-svc", "127.0.0.1:7001", 5));
  EXPECT_EQ(EndpointsOf(*store_, "calc-svc"), (std::vector<std::string>{"127.0.0.1:7001"}));
  // Deregistering the service removes its leases; registering it again
  // does not bring them back.
  ASSERT_TRUE(store_->Deregister("calc-svc"));
  ASSERT_TRUE(store_->Register({{"calc-svc", kCalc, "calc.yaml", {}}}));
  EXPECT_TRUE(EndpointsOf(*store_, "calc-svc").empty());
  EXPECT_FALSE(store_->KeepAlive(first.value()));
  EXPECT_TRUE(HiddenFiles(dir_ + "/leases").empty());
}

TEST(OpenStore, Schemes) {
  // etcd: opens without contacting the cluster (unit-etcd tests it for real).
  Result<std::unique_ptr<Store>> etcd = OpenStore("etcd://127.0.0.1:2379");
  ASSERT_TRUE(etcd) << etcd.error().message;
  EXPECT_EQ(etcd.value()->Uri(), "etcd://127.0.0.1:2379");
  Result<std::unique_ptr<Store>> consul = OpenStore("consul://x");
  ASSERT_FALSE(consul);
  EXPECT_EQ(
      consul.error().message,
      "unsupported store scheme 'consul' (expected file:DIR or etcd://HOST:PORT[,HOST:PORT...])");
  Result<std::unique_ptr<Store>> bare = OpenStore("/var/lib/hms");
  ASSERT_FALSE(bare);
  EXPECT_EQ(bare.error().message,
            "store URI '/var/lib/hms' has no scheme (expected file:DIR or etcd://HOST:PORT)");
  EXPECT_FALSE(OpenStore("file:"));
  Result<std::unique_ptr<Store>> not_dir = OpenStore("file:/dev/null");
  ASSERT_FALSE(not_dir);
}

TEST(DefaultStoreUri, PrefersEnvironment) {
  const char* old = std::getenv("HMS_STORE");
  const std::string saved = old ? old : "";
  setenv("HMS_STORE", "file:/srv/hms", 1);
  EXPECT_EQ(DefaultStoreUri(), "file:/srv/hms");
  unsetenv("HMS_STORE");
  const std::string def = DefaultStoreUri();
  const char* home = std::getenv("HOME");
  EXPECT_TRUE(def == "file:/var/lib/hms" ||
              (home != nullptr && def == std::string("file:") + home + "/.local/state/hms"))
      << def;
  if (old != nullptr) setenv("HMS_STORE", saved.c_str(), 1);
}

}  // namespace
}  // namespace hms::control
