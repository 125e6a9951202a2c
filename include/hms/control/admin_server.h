// Admin API HTTP/1.1 server (DESIGN §2, §5): /healthz, /metrics, config and
// status pages for operators, curl and Prometheus. Never on the data path.
//
// One AdminServer runs one thread of its own: a blocking poll() loop over a
// non-blocking listening socket, its clients and an eventfd that Stop() uses
// to wake it. Requests are parsed with the shared strict parser
// (hms::http::ParseRequest); answers carry Content-Length and honour
// keep-alive, pipelining and "Connection: close". Bounded: at most
// kMaxClients connections (more wait in the listen backlog) and
// kMaxRequestBytes per request, head and body together.
//
// Handlers are registered before Start() and run on the server's thread, one
// at a time; whatever they read from other threads must be safe to read from
// there (metrics are atomics; snapshots are immutable). A handler that throws
// gets a 500 answer: no exception leaves the server's thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "hms/common/result.h"

namespace hms::control {

struct AdminRequest {
  std::string method;  // "GET" or "HEAD" (others never reach a handler)
  std::string path;    // without the query
  std::string query;   // after '?', without it; empty when none
};

struct AdminResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  // Extra header fields (name, value); Content-Length, Content-Type and
  // Connection are the server's own and must not appear here.
  std::vector<std::pair<std::string, std::string>> headers;
};

class AdminServer {
 public:
  using Handler = std::function<AdminResponse(const AdminRequest&)>;

  static constexpr size_t kMaxClients = 64;
  static constexpr size_t kMaxRequestBytes = 16 * 1024;

  AdminServer() = default;
  ~AdminServer();  // Stop()s
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Registers the handler of an exact path ("/metrics"). Before Start() only
  // (HMS_CHECK): the server's thread reads the table without a lock.
  void Handle(std::string path, Handler handler);

  // Connections idle longer than this are closed (default 60 s). Before Start().
  void set_idle_timeout(std::chrono::milliseconds t) { idle_timeout_ = t; }

  // Binds and listens on "HOST:PORT" (IPv4 literal, "[IPv6]" literal or
  // "localhost"; port 0 picks a free one, see port()), with SO_REUSEADDR and
  // without SO_REUSEPORT, so the address is this server's alone. Nothing is
  // served until Start(): start-up claims the address before it starts any
  // thread. Errors: a malformed address (Side::kConfig); an address another
  // process listens on ("another process listens there", retryable); any
  // other failed socket/bind/listen (Side::kInternal, with errno's text).
  Result<bool> Listen(const std::string& address);
  // Instead of Listen(): serves a listening socket handed over by the
  // gateway this process replaces (control/handover.h); owned from here.
  Result<bool> Adopt(int fd);
  // The listening socket (-1 before Listen or Adopt), for a handover.
  int listen_fd() const { return listen_fd_; }
  // Starts the thread over the socket Listen() made.
  Result<bool> Start();
  // Listen(address), then Start().
  Result<bool> Start(const std::string& address);

  // The bound port, valid after a successful Listen().
  uint16_t port() const { return port_; }
  bool running() const { return thread_.joinable(); }

  // Wakes the loop, closes every connection and joins the thread (or closes
  // the socket of a Listen() never started). Idempotent.
  // Any thread but the server's own (not from a handler).
  void Stop();

 private:
  struct Client {
    int fd = -1;
    std::string in;                // bytes received, not yet answered
    std::string out;               // answers not yet sent
    size_t out_sent = 0;           // bytes of `out` already sent
    bool close_after_write = false;
    bool lingering = false;        // answered, write side shut: draining until EOF
    std::chrono::steady_clock::time_point deadline;
  };

  void Run();
  void Accept();
  // Reads what the socket has; returns false when the connection is finished.
  bool OnReadable(Client* c);
  // Sends pending output; returns false when the connection is finished.
  bool Flush(Client* c);
  // Answers every complete request buffered in c->in (while nothing is
  // pending to send, so output stays bounded by input).
  void Process(Client* c);
  void Respond(Client* c, int status, const AdminResponse& r, bool head_only, bool keep_alive,
               bool http10);
  void RespondError(Client* c, int status, std::string_view error, std::string_view reason,
                    bool keep_alive, bool http10, std::string_view allow = {},
                    bool head_only = false);
  void CloseClient(Client* c);

  std::unordered_map<std::string, Handler> handlers_;
  std::chrono::milliseconds idle_timeout_{60000};
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  uint16_t port_ = 0;
  std::vector<Client> clients_;  // touched only by the server's thread
  std::thread thread_;
};

}  // namespace hms::control
