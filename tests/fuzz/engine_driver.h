// What the two engine-level fuzz targets share (docs/fuzzing.md): whole
// connections through one core's worker (src/proxy), the way a client drives
// them: bytes in any number of pieces, half-closes, resets and several
// connections in turn, against an upstream this process answers itself. They
// find what the one-function targets cannot: held connections and
// state-machine bugs. `engine` reaches the core over loopback TCP through a
// listening socket; `engine_mem` hands it one end of a socketpair per
// connection (Engine::Adopt), with no port and no wait for a piece to
// arrive.
//
// Once per process: an Engine (the proxy's public interface) with one core
// and short timeouts, and an upstream listener on 127.0.0.1:0 served by a
// thread of this process, whose answer the input picks from kAnswers (a good
// one, chunked, until close, 100-continue, none, a close, a bad head, a short
// body). Its route table routes any path there.
//
// Input: a list of operations, each one byte then its operands:
//   0 N bytes[N]  send N bytes on the current connection
//   1             half-close it (shutdown SHUT_WR)
//   2             reset it (close with SO_LINGER 0) and open a new one
//   3             read what the gateway sent so far
//   4             close it normally and open a new one
//   5 M           the upstream's next answers are kAnswers[M % 8]
// After the last operation every connection is closed. Property: the
// worker's live client count (connections and HTTP/2 streams) returns to 0
// within kSettleMs (longer than every timeout configured here), so no input
// leaves a connection or a stream held. Plain connections that start with
// the h2 preface are served as h2c (seeds from make_corpus.py).
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "../support/loopback.h"
#include "fuzz_check.h"
#include "hms/config/config.h"
#include "hms/config/snapshot.h"
#include "hms/proxy/engine.h"

namespace engine_fuzz {

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

inline std::atomic<int> g_answer{0};

// The upstream: answers each request head it sees ("\r\n\r\n") with the
// answer the input chose. Bodies are not parsed: a body that holds a blank
// line gets an extra answer, which the worker must survive too.
inline void ServeUpstream(int lfd) {
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

// The engine both targets drive: one core, listener 0 on 127.0.0.1:0 (bound
// only when `bind` is set), short timeouts, every path routed to the
// upstream. Null when it cannot run here (no io_uring: nothing to drive).
inline std::unique_ptr<hms::proxy::Engine> StartEngine(bool bind) {
  uint16_t up_port = 0;
  const int up = hms::testing::ListenLoopback(&up_port);
  FUZZ_CHECK(up >= 0);
  std::thread(ServeUpstream, up).detach();

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
  auto engine = std::make_unique<hms::proxy::Engine>();
  if (bind) {
    if (auto b = engine->Bind(g); !b.ok()) {
      std::fprintf(stderr, "engine target: cannot bind: %s\n", b.error().message.c_str());
      return nullptr;
    }
  }
  if (auto r = engine->Start(g, snap->release()); !r.ok()) {
    // No io_uring here (a container that forbids it): nothing to drive.
    std::fprintf(stderr, "engine target: cannot start: %s\n", r.error().message.c_str());
    return nullptr;
  }
  return engine;
}

// Reads whatever the gateway sent, waiting up to `ms` for the first byte.
inline void ReadSent(int fd, int ms) {
  char buf[16384];
  pollfd p{fd, POLLIN, 0};
  while (poll(&p, 1, ms) > 0) {
    if (recv(fd, buf, sizeof buf, MSG_DONTWAIT) <= 0) return;
    ms = 0;
  }
}

// How a target reaches the core: a new connection, what follows a piece
// sent (so the worker takes each piece on its own, as recv would hand it),
// and how long operation 3 waits for a first byte.
struct Transport {
  int (*open)(hms::proxy::Engine& engine);
  void (*after_send)(int fd);
  int read_wait_ms;
};

// Connections, and HTTP/2 streams (client slots without a socket of their own).
inline uint64_t Live(const hms::obs::CoreMetrics& m) {
  return m.connections_active.Get() + m.h2_streams_open.Get();
}

// Runs one input (the operations above) and checks the property.
inline void Run(hms::proxy::Engine& engine, const Transport& t, const uint8_t* data,
                size_t size) {
  g_answer.store(0);
  // Connections reach the worker after their open returns (an accept queue,
  // a mailbox): the property is checked once every one has arrived.
  const hms::obs::CoreMetrics& m = engine.metrics(0);
  const auto arrived = [&m] { return m.connections_accepted.Get() + m.connections_refused.Get(); };
  const uint64_t before = arrived();
  uint64_t opened = 0;
  const auto open_new = [&] {
    ++opened;
    return t.open(engine);
  };
  std::vector<int> open;
  int fd = open_new();
  open.push_back(fd);
  size_t i = 0;
  while (i < size && open.size() < 16) {
    const uint8_t op = data[i++] % 6;
    switch (op) {
      case 0: {
        if (i >= size) break;
        const size_t want = data[i++];
        const size_t n = std::min<size_t>(want, size - i);
        if (n > 0) (void)send(fd, data + i, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        i += n;
        t.after_send(fd);
        break;
      }
      case 1:
        shutdown(fd, SHUT_WR);
        break;
      case 2: {
        // A unix socket ignores SO_LINGER; it resets its peer when it
        // closes with bytes unread, as TCP does.
        const linger l{1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        close(fd);
        open.back() = fd = open_new();
        break;
      }
      case 3:
        ReadSent(fd, t.read_wait_ms);
        break;
      case 4:
        close(fd);
        fd = open_new();
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
  const auto settled = [&] {
    return arrived() >= before + opened && Live(m) == 0;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kSettleMs);
  while (!settled() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  const uint64_t held = Live(m);  // read once: the message says what failed
  if (held != 0) {
    std::fprintf(stderr, "engine target: %llu client connection(s) or stream(s) still held %d ms after "
                 "their peers closed\n", static_cast<unsigned long long>(held), kSettleMs);
  }
  FUZZ_CHECK(held == 0);
}

}  // namespace engine_fuzz
