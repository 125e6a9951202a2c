// The sans-IO client and the GCRA script against a real redis-server (Debian's
// 7.0), started here on a Unix socket in a scratch directory (redis cannot
// bind port 0) with a password, and stopped at the end. The client is driven
// over plain blocking sockets, which only a test may do. Skips when
// redis-server is not installed.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "hms/common/check.h"
#include "hms/fleet/gcra_script.h"
#include "hms/fleet/redis_client.h"
#include "hms/policy/lease.h"

namespace hms::fleet {
namespace {

constexpr const char* kPassword = "fleet-test-password";

class RedisServer {
 public:
  RedisServer() {
    char dir[] = "/tmp/hms-redis-XXXXXX";
    HMS_CHECK(mkdtemp(dir) != nullptr);
    dir_ = dir;
    socket_ = dir_ + "/redis.sock";
    pid_ = fork();
    HMS_CHECK(pid_ >= 0);
    if (pid_ == 0) {
      const int null = open("/dev/null", O_WRONLY);
      dup2(null, STDOUT_FILENO);
      execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", socket_.c_str(),
             "--unixsocketperm", "700", "--dir", dir_.c_str(), "--save", "", "--appendonly", "no",
             "--requirepass", kPassword, static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  ~RedisServer() {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  // A connected socket, waiting up to 10 s for the server to listen.
  int Connect() const {
    for (int i = 0; i < 1000; ++i) {
      const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      std::strncpy(a.sun_path, socket_.c_str(), sizeof(a.sun_path) - 1);
      if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) return fd;
      close(fd);
      usleep(10'000);
    }
    return -1;
  }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::string socket_;
  pid_t pid_ = -1;
};

// Runs the client over a blocking socket until `want` completions arrived or
// 10 s passed; returns them.
std::vector<Completion> Pump(RedisClient& c, int fd, size_t want) {
  std::vector<Completion> got;
  const core::Instant give_up = core::Now() + core::Millis(10'000);
  char buf[4096];
  while (got.size() < want && core::Now() < give_up && c.state() != RedisClient::State::kFailed) {
    while (!c.Output().empty()) {
      const ssize_t n = send(fd, c.Output().data(), c.Output().size(), MSG_NOSIGNAL);
      if (n <= 0) return got;
      c.Sent(static_cast<size_t>(n));
    }
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) > 0) {
      const ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) break;
      c.Received(std::string_view(buf, static_cast<size_t>(n)), core::Now());
    }
    c.Tick(core::Now());
    Completion done;
    while (c.PopCompletion(&done)) got.push_back(done);
  }
  return got;
}

ClientOptions Options(std::string password) {
  ClientOptions o;
  o.password = std::move(password);
  o.timeout_ns = core::Millis(5000);  // a loaded test machine, not a budget
  return o;
}

class RedisLive : public ::testing::Test {
 protected:
  void SetUp() override {
    if (system("command -v redis-server >/dev/null 2>&1") != 0) {
      GTEST_SKIP() << "redis-server is not installed (tools/bootstrap installs it)";
    }
    server_ = std::make_unique<RedisServer>();
  }
  std::unique_ptr<RedisServer> server_;
};

// "20 req/min" shared by four leasers asking 100 tokens in all, in leases of
// 1 to 4 tokens, several calls in flight each: Redis grants exactly 20 (plus
// one per 3 s the test took, the refill).
TEST_F(RedisLive, GcraGrantsExactlyTheLimitToConcurrentLeasers) {
  constexpr int kClients = 4;
  constexpr int64_t kIntervalUs = 3'000'000;
  std::atomic<int64_t> granted{0};
  std::atomic<int64_t> asked{0};
  std::atomic<int> failures{0};
  const core::Instant start = core::Now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kClients; ++t) {
    threads.emplace_back([&, t] {
      const int fd = server_->Connect();
      if (fd < 0) return (void)++failures;
      RedisClient c(Options(kPassword), kGcraScript);
      c.Connected(core::Now());
      int64_t left = 25;  // this leaser's share of the 100 asked
      uint64_t tag = 0;
      while (left > 0) {
        // Three calls in flight at a time, FIFO-matched.
        int calls = 0;
        for (; calls < 3 && left > 0; ++calls) {
          const int64_t want = std::min<int64_t>(left, 1 + (t + tag) % 4);
          const int64_t args[] = {kIntervalUs, 20, want};
          if (!c.Call(++tag, "hms:test:gcra", args, core::Now())) return (void)++failures;
          left -= want;
          asked += want;
        }
        const auto done = Pump(c, fd, static_cast<size_t>(calls));
        if (done.size() != static_cast<size_t>(calls)) return (void)++failures;
        for (const Completion& d : done) {
          if (d.status != CallStatus::kOk || d.count != 3) return (void)++failures;
          granted += d.values[0];
        }
      }
      close(fd);
    });
  }
  for (auto& th : threads) th.join();
  const uint64_t elapsed_us = (core::Now() - start) / 1000;
  ASSERT_EQ(failures.load(), 0);
  EXPECT_EQ(asked.load(), 100);
  const int64_t refill = static_cast<int64_t>(elapsed_us / kIntervalUs);
  EXPECT_GE(granted.load(), 20);
  EXPECT_LE(granted.load(), 20 + refill) << "took " << elapsed_us << " us";
}

// One connection to the test's server and a client on it.
struct Session {
  Session(const RedisServer& server, std::string password)
      : fd(server.Connect()), client(Options(std::move(password)), kGcraScript) {
    client.Connected(core::Now());
  }
  ~Session() {
    if (fd >= 0) close(fd);
  }
  // One GCRA call: a lease of `want` from a bucket of `burst`, a token every `interval_us`.
  bool Lease(uint64_t tag, std::string_view key, int64_t interval_us, int64_t burst, int64_t want) {
    const int64_t args[] = {interval_us, burst, want};
    return client.Call(tag, key, args, core::Now());
  }
  std::vector<Completion> Wait(size_t n) { return Pump(client, fd, n); }

  int fd;
  RedisClient client;
};

// The case end to end, minus the engine: two gateways x two cores
// (four threads, each a core with its own connection, client and CoreLease)
// share "20 req/min" and get 100 requests spread over them. Each core's
// clock is a fake one, a request every 150 ms (a rate at which the lease is
// one token, so nothing is held); Redis's clock is its own. Exactly 20 are
// admitted (plus the refill, one per 3 s of real time the test took).
TEST_F(RedisLive, FourCoresLeasingAdmitExactlyTheFleetLimit) {
  constexpr int kCores = 4;
  constexpr int64_t kIntervalUs = 3'000'000;
  std::atomic<int64_t> admitted{0}, refused{0}, calls{0};
  std::atomic<int> failures{0};
  const core::Instant start = core::Now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kCores; ++t) {
    threads.emplace_back([&] {
      Session s(*server_, kPassword);
      if (s.fd < 0) return (void)++failures;
      policy::LeaseParams p;
      policy::CoreLease lease;
      core::Instant now = core::Millis(1'000);
      for (uint64_t i = 0; i < 25; ++i, now += core::Millis(150)) {
        const policy::LeaseStep step = policy::TakeToken(lease, now, p);
        if (step == policy::LeaseStep::kAdmit) ++admitted;
        if (step == policy::LeaseStep::kRefuse) ++refused;
        if (step != policy::LeaseStep::kWait) continue;
        const uint32_t want = policy::StartAsk(lease, now, p);
        ++calls;
        if (want != 1 || !s.Lease(i, "hms:test:fleet", kIntervalUs, 20, want)) {
          return (void)++failures;
        }
        const auto done = s.Wait(1);
        if (done.size() != 1 || done[0].status != CallStatus::kOk) return (void)++failures;
        const uint64_t retry_ns = static_cast<uint64_t>(done[0].values[1]) * 1000;
        const policy::LeaseAnswer a =
            policy::OnGrant(lease, static_cast<uint32_t>(done[0].values[0]), retry_ns, now, p);
        admitted += a.admit;
        refused += a.refuse;
      }
      if (lease.tokens != 0) ++failures;  // nothing stranded at this rate
    });
  }
  for (auto& th : threads) th.join();
  const uint64_t elapsed_us = (core::Now() - start) / 1000;
  ASSERT_EQ(failures.load(), 0);
  const int64_t refill = static_cast<int64_t>(elapsed_us / kIntervalUs);
  EXPECT_GE(admitted.load(), 20);
  EXPECT_LE(admitted.load(), 20 + refill) << "took " << elapsed_us << " us";
  EXPECT_EQ(admitted.load() + refused.load(), 100);
  // A refusal from Redis is remembered: later requests on that core are
  // refused without a call until its fake clock passes the retry-after.
  EXPECT_LT(calls.load(), 100);
}

TEST_F(RedisLive, RetryAfterAndResetFollowTheBucket) {
  Session s(*server_, kPassword);
  ASSERT_GE(s.fd, 0);
  // 10 per 10 s, burst 10: a lease of 10 empties it; the next token is 1 s away.
  ASSERT_TRUE(s.Lease(1, "hms:test:retry", 1'000'000, 10, 10));
  ASSERT_TRUE(s.Lease(2, "hms:test:retry", 1'000'000, 10, 1));
  const auto done = s.Wait(2);
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[0].values[0], 10);
  EXPECT_EQ(done[0].values[1], 1'000'000);   // retry after, as Redis's clock saw it
  EXPECT_EQ(done[0].values[2], 10'000'000);  // full again in 10 s
  EXPECT_EQ(done[1].values[0], 0);
  EXPECT_GT(done[1].values[1], 0);
  EXPECT_LE(done[1].values[1], 1'000'000);
}

TEST_F(RedisLive, WrongPasswordIsAnAuthFailure) {
  Session s(*server_, "not-the-password");
  ASSERT_GE(s.fd, 0);
  ASSERT_TRUE(s.Lease(1, "hms:test:auth", 1'000'000, 1, 1));
  const auto done = s.Wait(1);
  EXPECT_EQ(s.client.failure(), CallStatus::kAuthFailed);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].status, CallStatus::kAuthFailed);
  EXPECT_TRUE(done[0].error_text().starts_with("WRONGPASS")) << done[0].error_text();
}

TEST_F(RedisLive, PasswordFromAFile) {
  const std::string path = server_->dir() + "/password";
  std::ofstream(path) << kPassword << "\n";
  auto password = ReadPasswordFile(path);
  ASSERT_TRUE(password.ok()) << password.error().message;
  EXPECT_EQ(*password, kPassword);
  EXPECT_FALSE(ReadPasswordFile(server_->dir() + "/missing").ok());
  Session s(*server_, *password);
  ASSERT_GE(s.fd, 0);
  ASSERT_TRUE(s.Lease(1, "hms:test:file", 1'000'000, 5, 2));
  const auto done = s.Wait(1);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].status, CallStatus::kOk);
  EXPECT_EQ(done[0].values[0], 2);
}

// SCRIPT FLUSH between two calls: the second EVALSHA meets NOSCRIPT and is
// sent again as EVAL, transparently.
TEST_F(RedisLive, ScriptFlushIsSurvived) {
  Session s(*server_, kPassword);
  ASSERT_GE(s.fd, 0);
  ASSERT_TRUE(s.Lease(1, "hms:test:flush", 1'000'000, 100, 1));
  ASSERT_EQ(s.Wait(1).size(), 1u);
  ASSERT_TRUE(s.client.script_loaded());
  const std::string flush = "redis-cli -s " + server_->dir() + "/redis.sock -a " + kPassword +
                            " --no-auth-warning SCRIPT FLUSH >/dev/null";
  ASSERT_EQ(system(flush.c_str()), 0);
  ASSERT_TRUE(s.Lease(2, "hms:test:flush", 1'000'000, 100, 1));
  const auto done = s.Wait(1);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].status, CallStatus::kOk);
  EXPECT_EQ(done[0].values[0], 1);
}

}  // namespace
}  // namespace hms::fleet
