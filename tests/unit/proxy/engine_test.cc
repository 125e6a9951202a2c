// Whole connections through one real core (Engine::Adopt, docs/engine.md
// "Driving a core without sockets"): each test hands one end of a
// socketpair to a core running a real snapshot, writes HTTP/1.1 into the
// other end and reads the answer. No listening socket and no port on the
// client side; the one upstream is a loopback server of the test, on port 0.
// Every wait is for an event (a byte, a close, a count) with a bound, never a
// fixed sleep.
#include "hms/proxy/engine.h"

#include <fcntl.h>
#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "hms/config/config.h"
#include "hms/config/snapshot.h"
#include "tests/support/loopback.h"

namespace hms::proxy {
namespace {

constexpr int kWaitMs = 5000;  // the bound of every wait: a failure, never a pace

// An HTTP/1.1 upstream on 127.0.0.1:0: answers every request head "200 ok"
// (but for GET /hold, which it never answers) and keeps the last head it
// read.
class LoopbackUpstream {
 public:
  LoopbackUpstream() {
    lfd_ = hms::testing::ListenLoopback(&port_);
    EXPECT_GE(lfd_, 0);
    thread_ = std::thread([this] { Serve(); });
  }
  ~LoopbackUpstream() {
    stop_ = true;
    thread_.join();
    close(lfd_);
  }
  uint16_t port() const { return port_; }
  std::string last_head() {
    std::lock_guard<std::mutex> l(mu_);
    return last_head_;
  }
  // Until the last head read starts with `prefix` (bounded by kWaitMs).
  bool WaitHead(std::string_view prefix) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kWaitMs);
    while (!last_head().starts_with(prefix) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    return last_head().starts_with(prefix);
  }

 private:
  void Serve() {
    struct Conn {
      int fd;
      std::string seen;
    };
    std::vector<Conn> conns;
    while (!stop_) {
      std::vector<pollfd> p{{lfd_, POLLIN, 0}};
      for (const Conn& c : conns) p.push_back({c.fd, POLLIN, 0});
      if (poll(p.data(), p.size(), 20) <= 0) continue;  // 20 ms: how soon stop_ is seen
      if (p[0].revents & POLLIN) {
        const int fd = accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) conns.push_back({fd, {}});
      }
      for (size_t i = 1; i < p.size(); ++i) {
        if (p[i].revents == 0) continue;
        Conn& c = conns[i - 1];
        char buf[4096];
        const ssize_t n = recv(c.fd, buf, sizeof buf, 0);
        if (n <= 0) {
          close(c.fd);
          c.fd = -1;
          continue;
        }
        c.seen.append(buf, static_cast<size_t>(n));
        for (size_t end; (end = c.seen.find("\r\n\r\n")) != std::string::npos;) {
          {
            std::lock_guard<std::mutex> l(mu_);
            last_head_ = c.seen.substr(0, end + 4);
          }
          const bool hold = c.seen.starts_with("GET /hold ");
          c.seen.erase(0, end + 4);
          if (hold) continue;
          constexpr std::string_view kOk = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
          (void)send(c.fd, kOk.data(), kOk.size(), MSG_NOSIGNAL);
        }
      }
      std::erase_if(conns, [](const Conn& c) { return c.fd < 0; });
    }
    for (const Conn& c : conns) close(c.fd);
  }

  int lfd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::string last_head_;
  std::thread thread_;
};

// The test's end of one connection: what it writes, and the answers it
// reads one by one.
struct Peer {
  int fd = -1;
  std::string buf;

  void Write(std::string_view s) const {
    ASSERT_EQ(send(fd, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size()));
  }
  // Until the core has read everything written (SIOCOUTQ of a unix stream
  // socket: the bytes its peer has not taken yet), so the next write reaches
  // the core as a receive of its own.
  void WaitTaken() const {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kWaitMs);
    int queued = 1;
    while (ioctl(fd, SIOCOUTQ, &queued) == 0 && queued > 0 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    ASSERT_EQ(queued, 0) << "the core did not read what was written";
  }
  // Reads more; false at the gateway's close (or after kWaitMs without a byte).
  bool Fill() {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, kWaitMs) <= 0) return false;
    char b[4096];
    const ssize_t n = recv(fd, b, sizeof b, 0);
    if (n <= 0) return false;
    buf.append(b, static_cast<size_t>(n));
    return true;
  }
  // The next whole answer (head and Content-Length body), or "" when the
  // connection ended first.
  std::string Next() {
    size_t end;
    while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return {};
    }
    size_t body = 0;
    const std::string head = buf.substr(0, end);
    if (size_t cl = head.find("content-length: "); cl != std::string::npos) {
      body = std::stoul(head.substr(cl + 16));
    } else if (size_t cl2 = head.find("Content-Length: "); cl2 != std::string::npos) {
      body = std::stoul(head.substr(cl2 + 16));
    }
    while (buf.size() < end + 4 + body) {
      if (!Fill()) return {};
    }
    std::string answer = buf.substr(0, end + 4 + body);
    buf.erase(0, answer.size());
    return answer;
  }
  // True once the gateway closed its end (EOF), with no answer left unread.
  bool ClosedByGateway() {
    while (Fill()) {
    }
    return buf.empty();
  }
};

class OneCore : public ::testing::Test {
 protected:
  void SetUp() override {
    config::GatewayConfig g = config::DefaultGatewayConfig();
    g.source = "engine_test";
    g.cores = 1;
    // Listener 0 is never bound: the test's connections are adopted on it.
    g.listeners = {config::ListenerConfig{"127.0.0.1:0", std::nullopt, {}}};
    g.admin = "off";
    g.ring_entries = 256;
    g.buffer_count = 64;
    g.buffer_size = 4096;
    g.max_header_bytes = 4096;
    g.drain_timeout_ms = 500;
    config::MeshConfig mesh;
    mesh.retries = 0;
    mesh.tracing.enabled = false;
    config::ServiceConfig svc;
    svc.service = "hello-svc";
    svc.source = "hello.yaml";
    svc.endpoints = {"127.0.0.1:" + std::to_string(upstream_.port())};
    config::RouteConfig hello;
    hello.path = "/hello";
    hello.methods = {"GET"};
    hello.line = 1;
    svc.routes.push_back(hello);
    config::RouteConfig hold = hello;
    hold.path = "/hold";
    svc.routes.push_back(hold);
    auto snap = config::CompileSnapshot(g, mesh, {svc}, 1, &endpoint_ids_, &route_keys_);
    ASSERT_TRUE(snap.ok()) << snap.error().message;
    config::Snapshot* first = snap->release();
    auto started = engine_.Start(g, first);
    first->Release();  // the cores hold their own references
    if (!started.ok()) GTEST_SKIP() << "no io_uring here: " << started.error().message;
  }
  void TearDown() override {
    for (const Peer& p : peers_) close(p.fd);
  }

  // A new connection, handed to the core as if accepted on listener 0.
  Peer& Connect() {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    engine_.Adopt(0, sv[1], 0);
    peers_.push_back(Peer{sv[0], {}});
    return peers_.back();
  }
  uint64_t Live() const { return engine_.metrics(0).connections_active.Get(); }
  // Until the core holds no client connection (bounded by kWaitMs).
  bool WaitNoClients() const {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kWaitMs);
    while (Live() != 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    return Live() == 0;
  }

  LoopbackUpstream upstream_;
  config::Interner endpoint_ids_, route_keys_;
  Engine engine_;
  std::deque<Peer> peers_;  // stable addresses: Connect returns a reference
};

std::string_view StatusLine(std::string_view answer) { return answer.substr(0, answer.find('\r')); }

TEST_F(OneCore, AnswersARequestNoRouteMatchesWithNoRoute) {
  Peer& p = Connect();
  p.Write("GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n");
  const std::string a = p.Next();
  EXPECT_EQ(StatusLine(a), "HTTP/1.1 404 Not Found") << a;
  EXPECT_NE(a.find("x-hms-reason: no_route\r\n"), std::string::npos) << a;
  EXPECT_NE(a.find("\"reason\":\"no_route\""), std::string::npos) << a;
  close(p.fd);
  peers_.clear();
  EXPECT_TRUE(WaitNoClients());
}

TEST_F(OneCore, RefusesAnAmbiguousPathWithBadPath) {
  Peer& p = Connect();
  p.Write("GET /x/..%2fhello HTTP/1.1\r\nHost: t\r\n\r\n");
  const std::string a = p.Next();
  EXPECT_EQ(StatusLine(a), "HTTP/1.1 400 Bad Request") << a;
  EXPECT_NE(a.find("x-hms-reason: bad_path\r\n"), std::string::npos) << a;
}

TEST_F(OneCore, ProxiesToTheUpstreamNamingAPeerWithoutAnAddress) {
  Peer& p = Connect();
  p.Write("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
  const std::string a = p.Next();
  EXPECT_EQ(StatusLine(a), "HTTP/1.1 200 OK") << a;
  EXPECT_TRUE(a.ends_with("\r\n\r\nok")) << a;
  // A socketpair's peer has no IP address: named as nginx names a unix
  // socket's, never an empty list element.
  EXPECT_NE(upstream_.last_head().find("\r\nx-forwarded-for: unix:\r\n"), std::string::npos)
      << upstream_.last_head();
}

TEST_F(OneCore, AnswersPipelinedRequestsInOrder) {
  Peer& p = Connect();
  p.Write(
      "GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n"
      "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"
      "GET /x/..%2fhello HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(StatusLine(p.Next()), "HTTP/1.1 404 Not Found");
  EXPECT_EQ(StatusLine(p.Next()), "HTTP/1.1 200 OK");
  EXPECT_EQ(StatusLine(p.Next()), "HTTP/1.1 400 Bad Request");
}

TEST_F(OneCore, ParsesAHeadThatArrivesOneByteAtATime) {
  Peer& p = Connect();
  const std::string_view head = "GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n";
  for (size_t i = 0; i < head.size(); ++i) {
    p.Write(head.substr(i, 1));
    p.WaitTaken();
  }
  const std::string a = p.Next();
  EXPECT_EQ(StatusLine(a), "HTTP/1.1 404 Not Found") << a;
  // Every byte was its own receive: no answer came before the blank line.
  EXPECT_TRUE(p.buf.empty());
}

TEST_F(OneCore, FreesAClientThatHalfClosesMidHead) {
  Peer& p = Connect();
  p.Write("GET /hel");
  p.WaitTaken();
  ASSERT_EQ(Live(), 1u);
  shutdown(p.fd, SHUT_WR);
  EXPECT_TRUE(p.ClosedByGateway());
  EXPECT_TRUE(WaitNoClients());
}

TEST_F(OneCore, FreesAClientThatClosesMidHead) {
  Peer& p = Connect();
  p.Write("GET /hello HTTP/1.1\r\nHo");
  p.WaitTaken();
  ASSERT_EQ(Live(), 1u);
  close(p.fd);
  peers_.clear();
  EXPECT_TRUE(WaitNoClients());
}

// A client that half-closes while its exchange runs is kept (it still gets
// its answer), and the core then watches for its going away: when it does,
// the connection is freed at once, not when the exchange ends (15 s here).
// A unix socket's close raises POLLHUP as TCP's reset does; the FIN before
// it raised POLLRDHUP, which must not end the watch.
TEST_F(OneCore, FreesAHalfClosedClientThatGoesAwayWhileItsExchangeRuns) {
  Peer& a = Connect();
  a.Write("GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(upstream_.WaitHead("GET /hold "));  // the exchange is running
  shutdown(a.fd, SHUT_WR);
  // One core takes completions in order: an answer on a connection adopted
  // after the FIN comes after the core read that FIN and armed its watch.
  Peer& b = Connect();
  b.Write("GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(StatusLine(b.Next()), "HTTP/1.1 404 Not Found");
  ASSERT_EQ(Live(), 2u);  // the half-closed client is kept
  close(a.fd);
  close(b.fd);
  peers_.clear();
  EXPECT_TRUE(WaitNoClients());
}

TEST_F(OneCore, ServesManyConnectionsInTurn) {
  for (int i = 0; i < 50; ++i) {
    Peer& p = Connect();
    p.Write("GET /nowhere HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(StatusLine(p.Next()), "HTTP/1.1 404 Not Found");
    EXPECT_TRUE(p.ClosedByGateway());
    close(p.fd);
    peers_.clear();
  }
  EXPECT_TRUE(WaitNoClients());
  EXPECT_EQ(engine_.metrics(0).connections_accepted.Get(), 50u);
}

}  // namespace
}  // namespace hms::proxy
