// Fuzz target: whole connections through one core's worker (src/proxy), the
// way a client drives them: bytes in any number of pieces, half-closes,
// resets and several connections in turn, against an upstream this process
// answers itself. It finds what the one-function targets cannot: held
// connections and state-machine bugs.
//
// Once per process: an Engine (the proxy's public interface) with one core,
// a listener on 127.0.0.1:0 and short timeouts, and an upstream listener on
// 127.0.0.1:0 served by a thread of this process, whose answer the input
// picks from kAnswers (a good one, chunked, until close, 100-continue, none,
// a close, a bad head, a short body). Its route table routes any path there.
//
// Input: a list of operations, each one byte then its operands:
//   0 N bytes[N]  send N bytes on the current connection
//   1             half-close it (shutdown SHUT_WR)
//   2             reset it (SO_LINGER 0, close) and open a new one
//   3             read what the gateway sent so far
//   4             close it normally and open a new one
//   5 M           the upstream's next answers are kAnswers[M % 8]
// After the last operation every connection is closed. Property: the
// worker's live client count (connections and HTTP/2 streams) returns to 0
// within kSettleMs (longer than every timeout configured here), so no input
// leaves a connection or a stream held. Plain connections that start with
// the h2 preface are served as h2c (seeds from make_corpus.py).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "fuzz_check.h"
#include "hms/config/config.h"
#include "hms/config/snapshot.h"
#include "hms/proxy/engine.h"

namespace {

// Each ends the upstream's answer to one request head.
constexpr std::string_view kAnswers[8] = {
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    "HTTP/1.0 200 OK\r\n\r\nuntil close",           // then the upstream closes
    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    "",                                             // no answer: the route's timeout
    "",                                             // the upstream closes at once
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nab",  // then the upstream closes
};
constexpr int kSettleMs = 3000;  // > header, idle and route timeouts below

std::atomic<int> g_answer{0};

int Listen(uint16_t* port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  FUZZ_CHECK(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  FUZZ_CHECK(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  FUZZ_CHECK(listen(fd, 128) == 0);
  socklen_t len = sizeof a;
  FUZZ_CHECK(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  *port = ntohs(a.sin_port);
  return fd;
}

// The upstream: answers each request head it sees ("\r\n\r\n") with the
// answer the input chose. Bodies are not parsed: a body that holds a blank
// line gets an extra answer, which the worker must survive too.
void Upstream(int lfd) {
  struct Conn {
    int fd;
    std::string seen;
  };
  std::vector<Conn> conns;
  for (;;) {
    std::vector<pollfd> p;
    p.push_back({lfd, POLLIN, 0});
    for (const Conn& c : conns) p.push_back({c.fd, POLLIN, 0});
    if (poll(p.data(), p.size(), 1000) <= 0) continue;
    if (p[0].revents & POLLIN) {
      const int fd = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) conns.push_back({fd, {}});
    }
    for (size_t i = 1; i < p.size(); ++i) {
      if (p[i].revents == 0) continue;
      Conn& c = conns[i - 1];
      char buf[4096];
      const ssize_t n = recv(c.fd, buf, sizeof buf, MSG_DONTWAIT);
      bool close_it = n <= 0;
      if (n > 0) {
        c.seen.append(buf, static_cast<size_t>(n));
        size_t end;
        while (!close_it && (end = c.seen.find("\r\n\r\n")) != std::string::npos) {
          c.seen.erase(0, end + 4);
          const int mode = g_answer.load();
          const std::string_view a = kAnswers[mode];
          if (!a.empty()) (void)send(c.fd, a.data(), a.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
          close_it = mode == 2 || mode == 5 || mode == 7;
        }
        if (c.seen.size() > 65536) c.seen.erase(0, c.seen.size() - 4);
      }
      if (close_it) {
        close(c.fd);
        c.fd = -1;
      }
    }
    std::erase_if(conns, [](const Conn& c) { return c.fd < 0; });
  }
}

struct State {
  hms::proxy::Engine engine;
  sockaddr_in gateway{};
  bool ok = false;
};

State& Get() {
  static State* s = [] {
    auto* st = new State();
    uint16_t up_port = 0;
    const int up = Listen(&up_port);
    std::thread(Upstream, up).detach();

    hms::config::GatewayConfig g = hms::config::DefaultGatewayConfig();
    g.source = "fuzz";
    g.cores = 1;
    g.listeners = {hms::config::ListenerConfig{"127.0.0.1:0", std::nullopt, {}}};
    g.admin = "off";
    g.ring_entries = 256;
    g.buffer_count = 64;
    g.buffer_size = 4096;
    g.max_connections_per_core = 256;
    g.upstream_idle_per_core = 4;
    g.max_header_bytes = 4096;
    g.header_timeout_ms = 500;
    g.idle_timeout_ms = 1000;
    g.drain_timeout_ms = 500;
    hms::config::MeshConfig mesh;
    mesh.retries = 0;
    mesh.timeout_ms = 500;
    mesh.breaker.failures = 0;
    mesh.tracing.enabled = false;
    hms::config::ServiceConfig svc;
    svc.service = "fuzz-svc";
    svc.source = "fuzz.yaml";
    svc.endpoints = {"127.0.0.1:" + std::to_string(up_port)};
    hms::config::RouteConfig any;
    any.path = "/{rest*}";
    any.line = 1;
    svc.routes.push_back(any);
    hms::config::RouteConfig one;
    one.path = "/a/{x}";
    one.methods = {"GET", "POST"};
    one.line = 2;
    svc.routes.push_back(one);
    static hms::config::Interner endpoint_ids, route_keys;
    auto snap = hms::config::CompileSnapshot(g, mesh, {svc}, 1, &endpoint_ids, &route_keys);
    FUZZ_CHECK(snap.ok());
    if (auto b = st->engine.Bind(g); !b.ok()) {
      std::fprintf(stderr, "engine target: cannot bind: %s\n", b.error().message.c_str());
      return st;
    }
    if (auto r = st->engine.Start(g, snap->release()); !r.ok()) {
      // No io_uring here (a container that forbids it): nothing to drive.
      std::fprintf(stderr, "engine target: cannot start: %s\n", r.error().message.c_str());
      return st;
    }
    const std::string& addr = st->engine.bound_addresses().at(0);
    st->gateway.sin_family = AF_INET;
    st->gateway.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    st->gateway.sin_port = htons(static_cast<uint16_t>(std::stoi(addr.substr(addr.rfind(':') + 1))));
    st->ok = true;
    return st;
  }();
  return *s;
}

int Connect(const State& st) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  FUZZ_CHECK(fd >= 0);
  FUZZ_CHECK(connect(fd, reinterpret_cast<const sockaddr*>(&st.gateway), sizeof st.gateway) == 0);
  return fd;
}

// Reads whatever the gateway sent, waiting up to `ms` for the first byte.
void Drain(int fd, int ms) {
  char buf[16384];
  pollfd p{fd, POLLIN, 0};
  while (poll(&p, 1, ms) > 0) {
    if (recv(fd, buf, sizeof buf, MSG_DONTWAIT) <= 0) return;
    ms = 0;
  }
}

// Connections, and HTTP/2 streams (client slots without a socket of their own).
uint64_t Live(State& st) {
  return st.engine.metrics(0).connections_active.Get() + st.engine.metrics(0).h2_streams_open.Get();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  State& st = Get();
  if (!st.ok || size > 8192) return 0;
  g_answer.store(0);
  std::vector<int> open;
  int fd = Connect(st);
  open.push_back(fd);
  size_t i = 0;
  while (i < size && open.size() < 16) {
    const uint8_t op = data[i++] % 6;
    switch (op) {
      case 0: {
        if (i >= size) break;
        const size_t n = std::min<size_t>(data[i++], size - i);
        if (n > 0) (void)send(fd, data + i, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        i += n;
        // Let the worker take this piece on its own, as recv would hand it.
        Drain(fd, 1);
        break;
      }
      case 1:
        shutdown(fd, SHUT_WR);
        break;
      case 2: {
        const linger l{1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        close(fd);
        open.back() = fd = Connect(st);
        break;
      }
      case 3:
        Drain(fd, 20);
        break;
      case 4:
        close(fd);
        fd = Connect(st);
        open.back() = -1;
        open.push_back(fd);
        break;
      case 5:
        if (i < size) g_answer.store(data[i++] % 8);
        break;
    }
  }
  for (int f : open) {
    if (f >= 0) close(f);
  }
  // Every connection is closed by its peer: the worker must let go of all.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kSettleMs);
  while (Live(st) != 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  if (Live(st) != 0) {
    std::fprintf(stderr, "engine target: %llu client connection(s) still held %d ms after "
                 "their peers closed\n", static_cast<unsigned long long>(Live(st)), kSettleMs);
  }
  FUZZ_CHECK(Live(st) == 0);
  return 0;
}
