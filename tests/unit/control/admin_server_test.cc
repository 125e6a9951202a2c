#include "hms/control/admin_server.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include "../../support/loopback.h"

namespace hms::control {
namespace {

using namespace std::chrono_literals;

// A blocking test client with a receive timeout, so a server bug fails the
// test instead of hanging it.
class Conn {
 public:
  explicit Conn(uint16_t port) {
    fd_ = hms::testing::ConnectLoopback(port);
    connected_ = fd_ >= 0;
    timeval tv{3, 0};
    if (connected_) setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~Conn() {
    if (fd_ >= 0) close(fd_);
  }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  bool connected() const { return connected_; }

  bool Send(std::string_view s) {
    while (!s.empty()) {
      ssize_t r = send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
      if (r <= 0) return false;
      s.remove_prefix(static_cast<size_t>(r));
    }
    return true;
  }

  // Reads one response: the head, then Content-Length bytes of body (none
  // for a response to HEAD). Returns "" on timeout or EOF before a head.
  std::string ReadResponse(bool head_request = false) {
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return {};
    }
    size_t head_len = end + 4;
    size_t body_len = 0;
    std::string head = buf_.substr(0, head_len);
    size_t cl = head.find("Content-Length: ");
    if (cl != std::string::npos && !head_request) body_len = std::stoul(head.substr(cl + 16));
    while (buf_.size() < head_len + body_len) {
      if (!Fill()) return {};
    }
    std::string resp = buf_.substr(0, head_len + body_len);
    buf_.erase(0, head_len + body_len);
    return resp;
  }

  // True when the server closed the connection (EOF) within the timeout,
  // with nothing more sent.
  bool ClosedByPeer() {
    char c;
    ssize_t r = recv(fd_, &c, 1, 0);
    return r == 0 && buf_.empty();
  }

  // True when nothing arrives within `wait`.
  bool Silent(std::chrono::milliseconds wait) {
    pollfd p{fd_, POLLIN, 0};
    return poll(&p, 1, static_cast<int>(wait.count())) == 0;
  }

  void Close() {
    close(fd_);
    fd_ = -1;
  }

 private:
  bool Fill() {
    char tmp[4096];
    ssize_t r = recv(fd_, tmp, sizeof(tmp), 0);
    if (r <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(r));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

std::string Body(const std::string& resp) { return resp.substr(resp.find("\r\n\r\n") + 4); }
std::string StatusLine(const std::string& resp) { return resp.substr(0, resp.find("\r\n")); }

class AdminServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.Handle("/healthz", [](const AdminRequest&) {
      return AdminResponse{200, "text/plain; charset=utf-8", "ok\n", {}};
    });
    server_.Handle("/echo", [this](const AdminRequest& r) {
      ++calls_;
      return AdminResponse{200, "application/json",
                           "{\"method\":\"" + r.method + "\",\"path\":\"" + r.path +
                               "\",\"query\":\"" + r.query + "\"}",
                           {{"X-Test", "yes"}}};
    });
    server_.Handle("/throws", [](const AdminRequest&) -> AdminResponse {
      throw std::runtime_error("boom");
    });
    server_.Handle("/empty", [](const AdminRequest&) { return AdminResponse{204, "", "", {}}; });
  }
  void Start() {
    auto r = server_.Start("127.0.0.1:0");
    ASSERT_TRUE(r.ok()) << r.error().message;
    ASSERT_NE(server_.port(), 0);
  }

  AdminServer server_;
  std::atomic<int> calls_{0};
};

TEST_F(AdminServerTest, GetsRegisteredPath) {
  Start();
  Conn c(server_.port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send("GET /echo?x=1&y=2 HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  std::string r = c.ReadResponse();
  EXPECT_EQ(StatusLine(r), "HTTP/1.1 200 OK");
  EXPECT_NE(r.find("Content-Type: application/json\r\n"), std::string::npos) << r;
  EXPECT_NE(r.find("X-Test: yes\r\n"), std::string::npos) << r;
  std::string body = Body(r);
  EXPECT_EQ(body, "{\"method\":\"GET\",\"path\":\"/echo\",\"query\":\"x=1&y=2\"}");
  EXPECT_NE(r.find("Content-Length: " + std::to_string(body.size()) + "\r\n"), std::string::npos);
  EXPECT_EQ(r.find("Connection: close"), std::string::npos);
}

TEST_F(AdminServerTest, KeepAliveServesTwoRequestsOnOneConnection) {
  Start();
  Conn c(server_.port());
  ASSERT_TRUE(c.Send("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"));
  EXPECT_EQ(Body(c.ReadResponse()), "ok\n");
  ASSERT_TRUE(c.Send("GET /echo HTTP/1.1\r\nHost: a\r\n\r\n"));
  std::string r = c.ReadResponse();
  EXPECT_EQ(StatusLine(r), "HTTP/1.1 200 OK");
  EXPECT_EQ(calls_.load(), 1);
}

TEST_F(AdminServerTest, AnswersPipelinedRequestsInOrder) {
  Start();
  Conn c(server_.port());
  ASSERT_TRUE(c.Send("GET /echo?n=1 HTTP/1.1\r\nHost: a\r\n\r\n"
                     "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
                     "GET /echo?n=3 HTTP/1.1\r\nHost: a\r\n\r\n"));
  EXPECT_NE(Body(c.ReadResponse()).find("n=1"), std::string::npos);
  EXPECT_EQ(Body(c.ReadResponse()), "ok\n");
  EXPECT_NE(Body(c.ReadResponse()).find("n=3"), std::string::npos);
}

TEST_F(AdminServerTest, RequestSplitAcrossWrites) {
  Start();
  Conn c(server_.port());
  ASSERT_TRUE(c.Send("GET /heal"));
  EXPECT_TRUE(c.Silent(50ms));
  ASSERT_TRUE(c.Send("thz HTTP/1.1\r\nHo"));
  ASSERT_TRUE(c.Send("st: a\r\n\r\n"));
  EXPECT_EQ(Body(c.ReadResponse()), "ok\n");
}

TEST_F(AdminServerTest, HeadHasLengthButNoBody) {
  Start();
  Conn c(server_.port());
  ASSERT_TRUE(c.Send("HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n"));
  std::string r = c.ReadResponse(/*head_request=*/true);
  EXPECT_EQ(StatusLine(r), "HTTP/1.1 200 OK");
  EXPECT_NE(r.find("Content-Length: 3\r\n"), std::string::npos);
  EXPECT_EQ(Body(r), "");
  // The connection is still in step: the next answer starts cleanly.
  ASSERT_TRUE(c.Send("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"));
  EXPECT_EQ(Body(c.ReadResponse()), "ok\n");
}

TEST_F(AdminServerTest, UnknownPathIs404Json) {
  Start();
  Conn c(server_.port());
  ASSERT_TRUE(c.Send("GET /nope HTTP/1.1\r\nHost: a\r\n\r\n"));
  std::string r = c.ReadResponse();
  EXPECT_EQ(StatusLine(r), "HTTP/1.1 404 Not Found");
  EXPECT_NE(r.find("Content-Type: application/json\r\n"), std::string::npos);
  EXPECT_NE(Body(r).find("\"error\": \"not_found\""), std::string::npos) << r;
  // 404 keeps the connection.
  ASSERT_TRUE(c.Send("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"));
  EXPECT_EQ(Body(c.ReadResponse()), "ok\n");
}

TEST_F(AdminServerTest, PostIs405WithAllow) {
  Start();
  Conn c(server_.port());
  ASSERT_TRUE(c.Send("POST /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"));
  std::string r = c.ReadResponse();
  EXPECT_EQ(StatusLine(r), "HTTP/1.1 405 Method Not Allowed");
  EXPECT_NE(r.find("Allow: GET, HEAD\r\n"), std::string::npos) << r;
  // The body was skipped, so the next request parses.
  ASSERT_TRUE(c.Send("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"));
  EXPECT_EQ(Body(c.ReadResponse()), "ok\n");
}

TEST_F(AdminServerTest, GarbageIs400AndCloses) {
  Start();
  Conn c(server_.port());
  ASSERT_TRUE(c.Send("\x01\x02 garbage \r\n\r\n"));
  std::string r = c.ReadResponse();
  EXPECT_EQ(StatusLine(r), "HTTP/1.1 400 Bad Request");
  EXPECT_NE(r.find("Connection: close\r\n"), std::string::npos);
  EXPECT_NE(r.find("x-hms-reason: bad_request\r\n"), std::string::npos) << r;
  EXPECT_TRUE(c.ClosedByPeer());
}

TEST_F(AdminServerTest, StrictParserRefusesSpaceBeforeColon) {
  Start();
  Conn c(server_.port());
  ASSERT_TRUE(c.Send("GET /healthz HTTP/1.1\r\nHost : a\r\n\r\n"));
  EXPECT_EQ(StatusLine(c.ReadResponse()), "HTTP/1.1 400 Bad Request");
  EXPECT_EQ(calls_.load(), 0);
}

TEST_F(AdminServerTest, OversizedHeadIsRefusedAndCloses) {
  Start();
  Conn c(server_.port());
  std::string big = "GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(20000, 'a') +
                    "\r\n\r\n";
  c.Send(big);  // the server may close before reading it all
  std::string r = c.ReadResponse();
  EXPECT_EQ(StatusLine(r), "HTTP/1.1 431 Request Header Fields Too Large") << r;
  EXPECT_NE(r.find("Connection: close\r\n"), std::string::npos);
}

TEST_F(AdminServerTest, OversizedBodyIs413) {
  Start();
  Conn c(server_.port());
  ASSERT_TRUE(c.Send("GET /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n"));
  std::string r = c.ReadResponse();
  EXPECT_EQ(StatusLine(r), "HTTP/1.1 413 Content Too Large");
  EXPECT_TRUE(c.ClosedByPeer());
}

TEST_F(AdminServerTest, ConnectionCloseIsHonoured) {
  Start();
  Conn c(server_.port());
  ASSERT_TRUE(c.Send("GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"));
  std::string r = c.ReadResponse();
  EXPECT_EQ(Body(r), "ok\n");
  EXPECT_NE(r.find("Connection: close\r\n"), std::string::npos);
  EXPECT_TRUE(c.ClosedByPeer());
}

TEST_F(AdminServerTest, Http10ClosesUnlessKeepAlive) {
  Start();
  {
    Conn c(server_.port());
    ASSERT_TRUE(c.Send("GET /healthz HTTP/1.0\r\n\r\n"));
    std::string r = c.ReadResponse();
    EXPECT_EQ(StatusLine(r), "HTTP/1.0 200 OK");
    EXPECT_TRUE(c.ClosedByPeer());
  }
  {
    Conn c(server_.port());
    ASSERT_TRUE(c.Send("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    std::string r = c.ReadResponse();
    EXPECT_NE(r.find("Connection: keep-alive\r\n"), std::string::npos) << r;
    ASSERT_TRUE(c.Send("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    EXPECT_EQ(Body(c.ReadResponse()), "ok\n");
  }
}

TEST_F(AdminServerTest, ThrowingHandlerIs500) {
  Start();
  Conn c(server_.port());
  ASSERT_TRUE(c.Send("GET /throws HTTP/1.1\r\nHost: a\r\n\r\n"));
  std::string r = c.ReadResponse();
  EXPECT_EQ(StatusLine(r), "HTTP/1.1 500 Internal Server Error");
  EXPECT_NE(Body(r).find("boom"), std::string::npos);
  ASSERT_TRUE(c.Send("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"));
  EXPECT_EQ(Body(c.ReadResponse()), "ok\n");
}

TEST_F(AdminServerTest, NoContentHasNoLength) {
  Start();
  Conn c(server_.port());
  ASSERT_TRUE(c.Send("GET /empty HTTP/1.1\r\nHost: a\r\n\r\n"));
  std::string r = c.ReadResponse();
  EXPECT_EQ(StatusLine(r), "HTTP/1.1 204 No Content");
  EXPECT_EQ(r.find("Content-Length"), std::string::npos);
}

TEST_F(AdminServerTest, BoundsClientsAndServesWaitingOneWhenASlotFrees) {
  Start();
  std::vector<std::unique_ptr<Conn>> idle;
  for (size_t i = 0; i < AdminServer::kMaxClients; ++i) {
    idle.push_back(std::make_unique<Conn>(server_.port()));
    ASSERT_TRUE(idle.back()->connected());
  }
  // Make sure the server has accepted all of them.
  ASSERT_TRUE(idle.back()->Send("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"));
  ASSERT_EQ(Body(idle.back()->ReadResponse()), "ok\n");

  Conn extra(server_.port());  // completes in the kernel's backlog
  ASSERT_TRUE(extra.connected());
  ASSERT_TRUE(extra.Send("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"));
  EXPECT_TRUE(extra.Silent(200ms));
  idle.front()->Close();
  EXPECT_EQ(Body(extra.ReadResponse()), "ok\n");
}

TEST_F(AdminServerTest, IdleConnectionsAreClosed) {
  server_.set_idle_timeout(100ms);
  Start();
  Conn c(server_.port());
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.ClosedByPeer());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
}

TEST_F(AdminServerTest, StopJoinsPromptlyWithClientsConnected) {
  Start();
  Conn c(server_.port());
  ASSERT_TRUE(c.Send("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"));
  ASSERT_EQ(Body(c.ReadResponse()), "ok\n");
  Conn half(server_.port());
  ASSERT_TRUE(half.Send("GET /heal"));
  auto t0 = std::chrono::steady_clock::now();
  server_.Stop();
  // Waiting for the half-sent request would take the 60 s idle timeout; the
  // bound is far from both that and a loaded machine's scheduling delays.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  EXPECT_FALSE(server_.running());
  EXPECT_TRUE(c.ClosedByPeer());
  server_.Stop();  // idempotent
}

TEST_F(AdminServerTest, RestartsAfterStop) {
  Start();
  server_.Stop();
  Start();
  Conn c(server_.port());
  ASSERT_TRUE(c.Send("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"));
  EXPECT_EQ(Body(c.ReadResponse()), "ok\n");
}

TEST(AdminServer, BusyPortIsAnError) {
  AdminServer a;
  ASSERT_TRUE(a.Start("127.0.0.1:0").ok());
  AdminServer b;
  const std::string address = "127.0.0.1:" + std::to_string(a.port());
  auto r = b.Start(address);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(
      r.error().message.find("cannot listen on " + address + ": another process listens there"),
      std::string::npos)
      << r.error().message;
  EXPECT_FALSE(b.running());
}

// Start-up claims the admin address before any thread runs, and may fail
// before it serves: the socket of a Listen() never started is let go.
TEST(AdminServer, ListenHoldsTheAddressUntilStopWithoutAThread) {
  AdminServer a;
  ASSERT_TRUE(a.Listen("127.0.0.1:0").ok());
  EXPECT_FALSE(a.running());
  const std::string address = "127.0.0.1:" + std::to_string(a.port());
  AdminServer b;
  EXPECT_FALSE(b.Listen(address).ok());
  a.Stop();
  auto r = b.Start(address);
  EXPECT_TRUE(r.ok()) << r.error().message;
}

TEST(AdminServer, BadAddressesAreConfigErrors) {
  for (const char* addr : {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:70000", "127.0.0.1:8x",
                           "example.com:80", "[::1:80", "1.2.3:80"}) {
    AdminServer s;
    auto r = s.Start(addr);
    ASSERT_FALSE(r.ok()) << addr;
    EXPECT_EQ(r.error().side, Side::kConfig) << addr;
  }
}

TEST(AdminServer, StartsOnLocalhostAndIpv6Loopback) {
  AdminServer s;
  ASSERT_TRUE(s.Start("localhost:0").ok());
  EXPECT_NE(s.port(), 0);
  s.Stop();
  AdminServer s6;
  auto r = s6.Start("[::1]:0");
  if (!r.ok()) GTEST_SKIP() << "no IPv6 loopback here: " << r.error().message;
  EXPECT_NE(s6.port(), 0);
}

}  // namespace
}  // namespace hms::control
