// The etcd store against a real etcd started on loopback by each test (a
// fresh data dir and free ports); skipped when etcd is not installed.
#include "hms/control/etcd_store.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "hms/control/store.h"
#include "../../support/loopback.h"

namespace hms::control {
namespace {

constexpr char kEtcd[] = "/usr/bin/etcd";
constexpr char kCalc[] =
    "service: calc-svc\n"
    "routes:\n"
    "  - GET /sum/{a}/{b}\n";
constexpr char kHello[] =
    "service: hello-svc\n"
    "routes:\n"
    "  - GET /hello\n";

using Clock = std::chrono::steady_clock;

// A port the kernel picked, free again when returned (etcd binds it itself;
// EtcdProcess::Start handles its being taken meanwhile); -1 on failure.
int FreePort() {
  uint16_t port = 0;
  const int fd = hms::testing::ListenLoopback(&port);
  if (fd < 0) return -1;
  close(fd);
  return port;
}

bool Readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN) != 0;
}

template <typename F>
bool WaitUntil(F cond, int timeout_ms, int step_ms = 50) {
  const auto end = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (Clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(step_ms));
  }
  return cond();
}

// One etcd member on loopback; stopped (and its data dir removed) by the
// destructor.
class EtcdProcess {
 public:
  EtcdProcess() {
    char dir[] = "/tmp/hms-etcd-test-XXXXXX";
    if (mkdtemp(dir) != nullptr) root_ = dir;
    client_port_ = FreePort();
    peer_port_ = FreePort();
  }
  ~EtcdProcess() {
    Stop();
    if (!root_.empty()) {
      const std::string cmd = "rm -rf '" + root_ + "'";
      (void)!system(cmd.c_str());
    }
  }

  // etcd cannot listen on port 0 and report the port it got: the first start
  // takes ports read from the kernel, and new ones when another process took
  // one in between (etcd exits saying so). A restart keeps its ports: the
  // stores under test were given them.
  bool Start() {
    if (pid_ > 0) return true;
    for (int attempt = 1;; ++attempt) {
      if (Launch()) {
        started_ = true;
        return true;
      }
      if (started_ || attempt == 5 || !LogSays("address already in use")) return false;
      client_port_ = FreePort();
      peer_port_ = FreePort();
    }
  }

  void Stop(int sig = SIGTERM) {
    if (pid_ <= 0) return;
    kill(pid_, sig);
    int status;
    for (int i = 0; i < 100; ++i) {  // 5 s, then SIGKILL
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  void Pause() { kill(pid_, SIGSTOP); }
  void Resume() { kill(pid_, SIGCONT); }

  std::string Uri() const { return "etcd://127.0.0.1:" + std::to_string(client_port_); }

 private:
  // Starts etcd and waits until it serves a read; false when it exits first
  // or is not ready within 15 s.
  bool Launch() {
    const std::string client = "http://127.0.0.1:" + std::to_string(client_port_);
    const std::string peer = "http://127.0.0.1:" + std::to_string(peer_port_);
    const std::string data = root_ + "/data";
    const std::string cluster = "default=" + peer;
    const std::string log = root_ + "/etcd.log";
    std::vector<std::string> args = {kEtcd,     "--name",
                                     "default", "--data-dir",
                                     data,      "--listen-client-urls",
                                     client,    "--advertise-client-urls",
                                     client,    "--listen-peer-urls",
                                     peer,      "--initial-advertise-peer-urls",
                                     peer,      "--initial-cluster",
                                     cluster};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
      // Dies with the test, even when the test crashes.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      execv(kEtcd, argv.data());
      _exit(127);
    }
    pid_ = pid;
    // Ready when it serves a read (which needs an elected leader).
    Result<std::unique_ptr<EtcdStore>> probe = OpenEtcdStore(Uri(), EtcdOptions{500});
    if (!probe) return false;
    bool exited = false;
    const bool ready = WaitUntil(
        [&] {
          int status;
          exited = exited || waitpid(pid_, &status, WNOHANG) == pid_;
          return exited || probe.value()->List().ok();
        },
        15000, 100);
    if (exited) pid_ = -1;
    return ready && !exited;
  }

  bool LogSays(const std::string& what) const {
    FILE* f = fopen((root_ + "/etcd.log").c_str(), "r");
    if (f == nullptr) return false;
    std::string text;
    char buf[4096];
    for (size_t n; (n = fread(buf, 1, sizeof buf, f)) > 0;) text.append(buf, n);
    fclose(f);
    return text.find(what) != std::string::npos;
  }

  std::string root_;
  int client_port_ = 0;
  int peer_port_ = 0;
  pid_t pid_ = -1;
  bool started_ = false;  // once up, its ports are the ones every store was given
};

StoredService Service(const std::string& name, const std::string& text) {
  return StoredService{name, text, "routes/" + name + ".yaml", {}};
}

class EtcdStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(kEtcd, X_OK) != 0)
      GTEST_SKIP() << kEtcd << " is not installed (Debian: etcd-server)";
    etcd_ = std::make_unique<EtcdProcess>();
    ASSERT_TRUE(etcd_->Start()) << "etcd did not become ready";
    store_ = Open();
    ASSERT_NE(store_, nullptr);
  }

  std::unique_ptr<EtcdStore> Open(int timeout_ms = 2000) {
    Result<std::unique_ptr<EtcdStore>> s = OpenEtcdStore(etcd_->Uri(), EtcdOptions{timeout_ms});
    EXPECT_TRUE(s) << s.error().message;
    return s ? std::move(s.value()) : nullptr;
  }

  std::vector<std::string> Endpoints(const std::string& service) {
    Result<std::vector<StoredService>> list = store_->List();
    EXPECT_TRUE(list) << list.error().message;
    if (!list) return {};
    for (const StoredService& s : list.value()) {
      if (s.name == service) return s.endpoints;
    }
    return {};
  }

  std::unique_ptr<EtcdProcess> etcd_;
  std::unique_ptr<EtcdStore> store_;
};

TEST(EtcdStoreUri, ParsesMembersAndRefusesBadOnes) {
  Result<std::unique_ptr<Store>> s = OpenStore("etcd://127.0.0.1:2379,localhost:2380");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s.value()->Uri(), "etcd://127.0.0.1:2379,localhost:2380");
  EXPECT_FALSE(OpenStore("etcd://"));
  EXPECT_FALSE(OpenStore("etcd://127.0.0.1"));
  EXPECT_FALSE(OpenStore("etcd://127.0.0.1:0"));
  EXPECT_FALSE(OpenStore("etcd://127.0.0.1:2379,,x"));
}

TEST_F(EtcdStoreTest, RegisterListDeregisterRoundTrip) {
  ASSERT_TRUE(store_->Register({Service("hello-svc", kHello), Service("calc-svc", kCalc)}));
  Result<std::vector<StoredService>> list = store_->List();
  ASSERT_TRUE(list) << list.error().message;
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "calc-svc");  // sorted by name
  EXPECT_EQ((*list)[0].text, kCalc);
  EXPECT_EQ((*list)[0].source, "routes/calc-svc.yaml");
  EXPECT_EQ((*list)[1].name, "hello-svc");
  EXPECT_EQ((*list)[1].text, kHello);

  // Re-registering replaces the text.
  ASSERT_TRUE(store_->Register({Service("calc-svc", std::string(kCalc) + "retries: 1\n")}));
  list = store_->List();
  ASSERT_TRUE(list);
  EXPECT_EQ((*list)[0].text, std::string(kCalc) + "retries: 1\n");

  ASSERT_TRUE(store_->Deregister("calc-svc"));
  Result<bool> again = store_->Deregister("calc-svc");
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message.find("not registered"), std::string::npos);
  list = store_->List();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].name, "hello-svc");
  EXPECT_TRUE(store_->healthy());
}

TEST_F(EtcdStoreTest, RegisterIsAllOrNothing) {
  ASSERT_TRUE(store_->Register({Service("hello-svc", kHello)}));
  EXPECT_FALSE(store_->Register({Service("calc-svc", kCalc), Service("Bad_Name", kHello)}));
  EXPECT_FALSE(store_->Register({Service("calc-svc", kCalc), Service("calc-svc", kCalc)}));
  EXPECT_FALSE(store_->Register({Service("calc-svc", kCalc), Service("hello-svc", "")}));
  EXPECT_FALSE(store_->Register({}));
  Result<std::vector<StoredService>> list = store_->List();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].name, "hello-svc");
  EXPECT_EQ((*list)[0].text, kHello);

  // Many services in one txn land together.
  std::vector<StoredService> many;
  for (int i = 0; i < 20; ++i) many.push_back(Service("svc-" + std::to_string(i), kHello));
  ASSERT_TRUE(store_->Register(many));
  list = store_->List();
  ASSERT_TRUE(list);
  EXPECT_EQ(list->size(), 21u);
}

// More services than one etcd txn takes (128 operations: 64 services) and
// more bytes than one request carries (1.5 MiB): written in chunks, every
// service whole, with and without a check. Each service's stamp is its
// key's mod_revision: it moves when the service is written again.
TEST_F(EtcdStoreTest, LargeRegistrationsAreWrittenInChunks) {
  std::vector<StoredService> small;  // 200 operations: over the count, not the size
  for (int i = 0; i < 100; ++i) small.push_back(Service("small-" + std::to_string(i), kHello));
  Result<bool> ops = store_->Register(small);
  ASSERT_TRUE(ops) << ops.error().message;
  for (StoredService& s : small) {
    ASSERT_TRUE(store_->Deregister(s.name));
  }

  std::vector<StoredService> many;  // 5 MiB in all: over the size
  const std::string big = std::string(kHello) + "# " + std::string(20000, 'x') + "\n";
  for (int i = 0; i < 200; ++i) many.push_back(Service("svc-" + std::to_string(i), big));
  Result<bool> plain = store_->Register(many);
  ASSERT_TRUE(plain) << plain.error().message;
  int checks = 0;
  for (StoredService& s : many) s.name = "chk-" + s.name.substr(4);
  Result<bool> checked = store_->Register(many, [&](const std::vector<StoredService>& current) {
    ++checks;
    EXPECT_EQ(current.size(), 200u);
    return Result<bool>(true);
  });
  ASSERT_TRUE(checked) << checked.error().message;
  EXPECT_EQ(checks, 1);
  Result<std::vector<StoredService>> list = store_->List();
  ASSERT_TRUE(list) << list.error().message;
  ASSERT_EQ(list->size(), 400u);
  for (const StoredService& s : *list) {
    EXPECT_EQ(s.text, big) << s.name;
    EXPECT_FALSE(s.stamp.empty());
  }

  const std::string before = (*list)[0].stamp, other = (*list)[1].stamp;
  ASSERT_TRUE(store_->Register({Service((*list)[0].name, kCalc)}));
  list = store_->List();
  ASSERT_TRUE(list);
  EXPECT_NE((*list)[0].stamp, before);
  EXPECT_EQ((*list)[1].stamp, other);

  // A route file that no etcd request can carry is refused by name.
  Result<bool> huge = store_->Register({Service("huge-svc", std::string(2 << 20, '#'))});
  ASSERT_FALSE(huge);
  EXPECT_NE(huge.error().message.find("service 'huge-svc': its route file (2097152 bytes) is over "
                                      "what one etcd request carries"),
            std::string::npos)
      << huge.error().message;
}

TEST_F(EtcdStoreTest, EndpointsAddAndRemove) {
  Result<bool> absent = store_->AddEndpoint("calc-svc", "127.0.0.1:7001");
  ASSERT_FALSE(absent);
  EXPECT_NE(absent.error().message.find("not registered"), std::string::npos);
  ASSERT_TRUE(store_->Register({Service("calc-svc", kCalc)}));
  EXPECT_FALSE(store_->AddEndpoint("calc-svc", "not-an-address"));

  Result<bool> added = store_->AddEndpoint("calc-svc", "127.0.0.1:7002");
  ASSERT_TRUE(added) << added.error().message;
  EXPECT_TRUE(added.value());
  ASSERT_TRUE(store_->AddEndpoint("calc-svc", "127.0.0.1:7001"));
  Result<bool> again = store_->AddEndpoint("calc-svc", "127.0.0.1:7002");
  ASSERT_TRUE(again);
  EXPECT_FALSE(again.value());  // already there: no change
  EXPECT_EQ(Endpoints("calc-svc"), (std::vector<std::string>{"127.0.0.1:7002", "127.0.0.1:7001"}));

  ASSERT_TRUE(store_->RemoveEndpoint("calc-svc", "127.0.0.1:7002"));
  Result<bool> gone = store_->RemoveEndpoint("calc-svc", "127.0.0.1:7002");
  ASSERT_FALSE(gone);
  EXPECT_NE(gone.error().message.find("no endpoint"), std::string::npos);
  EXPECT_EQ(Endpoints("calc-svc"), (std::vector<std::string>{"127.0.0.1:7001"}));

  // Deregister takes the endpoints with it.
  ASSERT_TRUE(store_->Deregister("calc-svc"));
  ASSERT_TRUE(store_->Register({Service("calc-svc", kCalc)}));
  EXPECT_TRUE(Endpoints("calc-svc").empty());
}

TEST_F(EtcdStoreTest, LeasedEndpointExpiresUnlessKeptAlive) {
  ASSERT_TRUE(store_->Register({Service("calc-svc", kCalc)}));
  EXPECT_FALSE(store_->AddEndpointWithLease("nope-svc", "127.0.0.1:7001", 2));

  Result<int64_t> dying = store_->AddEndpointWithLease("calc-svc", "127.0.0.1:7001", 2);
  ASSERT_TRUE(dying) << dying.error().message;
  Result<int64_t> kept = store_->AddEndpointWithLease("calc-svc", "127.0.0.1:7002", 2);
  ASSERT_TRUE(kept) << kept.error().message;
  EXPECT_EQ(Endpoints("calc-svc"), (std::vector<std::string>{"127.0.0.1:7001", "127.0.0.1:7002"}));

  // Keep one alive, renewed every 500 ms, until the other, let go, has
  // expired. etcd expires leases on its own clock, in its own process: a
  // fake clock here cannot move it, so this polls what etcd says (bounded:
  // the 2 s TTL plus etcd's granularity), and ends as soon as it is so.
  bool kept_alive = true;
  const bool expired = WaitUntil(
      [&] {
        Result<int64_t> ttl = store_->KeepAlive(kept.value());
        kept_alive &= ttl.ok() && ttl.value() > 0;
        return Endpoints("calc-svc") == std::vector<std::string>{"127.0.0.1:7002"};
      },
      6000, 500);
  EXPECT_TRUE(kept_alive);
  EXPECT_TRUE(expired) << "the unrenewed lease did not expire within 6 s";
  EXPECT_EQ(Endpoints("calc-svc"), (std::vector<std::string>{"127.0.0.1:7002"}));
  EXPECT_FALSE(store_->KeepAlive(dying.value()));  // expired

  ASSERT_TRUE(store_->RevokeLease(kept.value()));
  EXPECT_TRUE(Endpoints("calc-svc").empty());
  EXPECT_FALSE(store_->RevokeLease(kept.value()));
}

TEST_F(EtcdStoreTest, RegisterJudgesWhatItWritesOver) {
  // The check sees the store as the txn will find it: a writer that comes in
  // between the read and the txn makes it read and judge again.
  std::unique_ptr<EtcdStore> other = Open();
  std::vector<std::vector<std::string>> seen;
  auto check = [&](const std::vector<StoredService>& current) -> Result<bool> {
    std::vector<std::string> names;
    for (const StoredService& s : current) names.push_back(s.name);
    seen.push_back(names);
    if (seen.size() == 1) {
      Result<bool> ok = other->Register({Service("hello-svc", kHello)});
      if (!ok) return ok.error();
    }
    return true;
  };
  ASSERT_TRUE(store_->Register({Service("calc-svc", kCalc)}, check));
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_TRUE(seen[0].empty());
  EXPECT_EQ(seen[1], std::vector<std::string>{"hello-svc"});

  // A refusing check writes nothing.
  Result<bool> refused = store_->Register({Service("third-svc", kHello)}, [](const auto&) -> Result<bool> {
    return Error{"clash", Side::kConfig, false};
  });
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message, "clash");
  Result<std::vector<StoredService>> list = store_->List();
  ASSERT_TRUE(list);
  EXPECT_EQ(list->size(), 2u);
}

TEST_F(EtcdStoreTest, WatchFiresOnChangeFromAnotherStore) {
  const int fd = store_->WatchFd();
  ASSERT_GE(fd, 0);
  EXPECT_EQ(store_->WatchFd(), fd);
  // Readable once when the watch is established.
  ASSERT_TRUE(Readable(fd, 5000));
  store_->DrainWatch();
  EXPECT_FALSE(Readable(fd, 100));

  std::unique_ptr<EtcdStore> other = Open();
  ASSERT_TRUE(other->Register({Service("calc-svc", kCalc)}));
  EXPECT_TRUE(Readable(fd, 1000));
  store_->DrainWatch();
  EXPECT_FALSE(Readable(fd, 100));

  ASSERT_TRUE(other->AddEndpoint("calc-svc", "127.0.0.1:7001"));
  EXPECT_TRUE(Readable(fd, 1000));
  store_->DrainWatch();
  ASSERT_TRUE(other->Deregister("calc-svc"));
  EXPECT_TRUE(Readable(fd, 1000));
  store_->DrainWatch();
  EXPECT_TRUE(store_->healthy());
}

TEST_F(EtcdStoreTest, EtcdGoneGivesErrorsAndTheWatchRecovers) {
  ASSERT_TRUE(store_->Register({Service("calc-svc", kCalc)}));
  const int fd = store_->WatchFd();
  ASSERT_TRUE(Readable(fd, 5000));
  store_->DrainWatch();
  ASSERT_TRUE(store_->healthy());

  etcd_->Stop(SIGKILL);
  const auto t0 = Clock::now();
  Result<std::vector<StoredService>> list = store_->List();
  EXPECT_FALSE(list);
  EXPECT_FALSE(store_->Register({Service("hello-svc", kHello)}));
  EXPECT_FALSE(store_->Deregister("calc-svc"));
  EXPECT_FALSE(store_->AddEndpoint("calc-svc", "127.0.0.1:7001"));
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5));
  EXPECT_FALSE(store_->healthy());
  EXPECT_NE(store_->last_error().find("etcd unreachable"), std::string::npos)
      << store_->last_error();
  // The watch notices too.
  EXPECT_TRUE(WaitUntil([&] { return !store_->healthy(); }, 3000));

  // Back on the same port and data dir: the watch reconnects, says so once,
  // and then fires for changes again.
  ASSERT_TRUE(etcd_->Start());
  EXPECT_TRUE(Readable(fd, 10000));
  ASSERT_TRUE(WaitUntil([&] { return store_->List().ok() && store_->healthy(); }, 10000, 200))
      << store_->last_error();
  store_->DrainWatch();
  std::unique_ptr<EtcdStore> other = Open();
  ASSERT_TRUE(other->Register({Service("hello-svc", kHello)}));
  EXPECT_TRUE(Readable(fd, 1000));
  list = store_->List();
  ASSERT_TRUE(list) << list.error().message;
  EXPECT_EQ(list->size(), 2u);  // the data survived the restart
}

TEST_F(EtcdStoreTest, HungEtcdTimesOutInsteadOfHanging) {
  std::unique_ptr<EtcdStore> quick = Open(500);
  ASSERT_TRUE(quick->List());
  etcd_->Pause();
  const auto t0 = Clock::now();
  Result<std::vector<StoredService>> list = quick->List();
  const auto took = Clock::now() - t0;
  etcd_->Resume();
  EXPECT_FALSE(list);
  EXPECT_LT(took, std::chrono::seconds(3));
  EXPECT_FALSE(quick->healthy());
  EXPECT_TRUE(WaitUntil([&] { return quick->List().ok(); }, 5000, 100));
  EXPECT_TRUE(quick->healthy());
}

TEST_F(EtcdStoreTest, TriesMembersInOrder) {
  const std::string uri = "etcd://127.0.0.1:" + std::to_string(FreePort()) + "," +
                          etcd_->Uri().substr(std::string("etcd://").size());
  Result<std::unique_ptr<Store>> s = OpenStore(uri);
  ASSERT_TRUE(s) << s.error().message;
  ASSERT_TRUE(s.value()->Register({Service("calc-svc", kCalc)}));
  Result<std::vector<StoredService>> list = store_->List();
  ASSERT_TRUE(list);
  EXPECT_EQ(list->size(), 1u);
}

}  // namespace
}  // namespace hms::control
