#include "hms/control/admin_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <exception>
#include <string_view>
#include <system_error>

#include "hms/common/address.h"
#include "hms/common/check.h"
#include "hms/common/json_escape.h"
#include "hms/http/parser.h"
#include "hms/http/status_text.h"

namespace hms::control {
namespace {

using Clock = std::chrono::steady_clock;

// After a "Connection: close" answer the write side is shut and the socket
// read until the client's EOF, for at most this long: closing a socket with
// unread input makes the kernel send RST, which can destroy the answer
// before the client has read it (the "lingering close" of nginx and Apache).
constexpr std::chrono::milliseconds kLingerTimeout{2000};
constexpr size_t kReadChunk = 4096;

std::string Errno(std::string_view what, int err) {
  std::string s(what);
  s.append(": ").append(std::strerror(err));
  return s;
}

}  // namespace

AdminServer::~AdminServer() { Stop(); }

void AdminServer::Handle(std::string path, Handler handler) {
  HMS_CHECK(!running());
  handlers_[std::move(path)] = std::move(handler);
}

Result<bool> AdminServer::Listen(const std::string& address) {
  if (listen_fd_ >= 0) return Error{"admin: already listening on port " + std::to_string(port_)};
  sockaddr_storage ss;
  socklen_t ss_len = 0;
  if (!ParseNumericAddress(address, &ss, &ss_len)) {
    return Error{"admin: bad address \"" + address + "\" (want HOST:PORT, e.g. 127.0.0.1:9901)",
                 Side::kConfig};
  }
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error{Errno("admin: socket", errno)};
  int one = 1;
  // A restarted gateway must rebind at once although the last run's
  // connections sit in TIME_WAIT. Without SO_REUSEPORT the address stays
  // exclusive: bind (or, when two binds race, the second listen) fails with
  // EADDRINUSE while any other socket listens there.
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) {
    int err = errno;
    close(fd);
    return Error{Errno("admin: SO_REUSEADDR", err)};
  }
  auto failed = [&](const char* call, int err) -> Result<bool> {
    close(fd);
    if (err == EADDRINUSE) {
      return Error{"admin: cannot listen on " + address + ": another process listens there (" +
                       std::strerror(err) + ")",
                   Side::kInternal, true};
    }
    return Error{Errno(std::string("admin: ") + call + " " + address, err)};
  };
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), ss_len) < 0) return failed("bind", errno);
  if (listen(fd, 128) < 0) return failed("listen", errno);
  sockaddr_storage bound;
  socklen_t bound_len = sizeof(bound);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_len) < 0) {
    int err = errno;
    close(fd);
    return Error{Errno("admin: getsockname", err)};
  }
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  listen_fd_ = fd;
  return true;
}

Result<bool> AdminServer::Adopt(int fd) {
  if (listen_fd_ >= 0) return Error{"admin: already listening on port " + std::to_string(port_)};
  sockaddr_storage bound;
  socklen_t bound_len = sizeof(bound);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_len) < 0) {
    return Error{Errno("admin: getsockname", errno)};
  }
  // The loop polls and accepts without blocking, as with Listen's socket.
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  listen_fd_ = fd;
  return true;
}

Result<bool> AdminServer::Start() {
  if (running()) return Error{"admin: already running on port " + std::to_string(port_)};
  if (listen_fd_ < 0) return Error{"admin: Start() before Listen()"};
  int wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake < 0) return Error{Errno("admin: eventfd", errno)};
  wake_fd_ = wake;
  try {
    thread_ = std::thread(&AdminServer::Run, this);
  } catch (const std::system_error& e) {
    close(wake_fd_);
    wake_fd_ = -1;
    return Error{std::string("admin: thread: ") + e.what()};
  }
  return true;
}

Result<bool> AdminServer::Start(const std::string& address) {
  if (running()) return Error{"admin: already running on port " + std::to_string(port_)};
  if (auto l = Listen(address); !l.ok()) return l;
  return Start();
}

void AdminServer::Stop() {
  if (!thread_.joinable()) {
    // Listening but never started (start-up failed in between).
    if (listen_fd_ >= 0) close(listen_fd_);
    listen_fd_ = -1;
    return;
  }
  HMS_CHECK(thread_.get_id() != std::this_thread::get_id());
  uint64_t one = 1;
  // An eventfd write fails only when the counter would overflow, and then
  // it is already readable: the loop wakes either way.
  (void)!write(wake_fd_, &one, sizeof(one));
  thread_.join();
  close(listen_fd_);
  close(wake_fd_);
  listen_fd_ = wake_fd_ = -1;
}

// The loop. Each pass: (1) poll the eventfd, the listener (only while below
// kMaxClients) and every client (POLLOUT while it has output pending, else
// POLLIN), with a timeout at the nearest idle or linger deadline; (2) on the
// eventfd, close everything and return; (3) serve readable/writable clients
// and drop finished ones; (4) accept new connections; (5) close clients past
// their deadline. Handlers run inside (3).
void AdminServer::Run() {
  std::vector<pollfd> pfds;
  while (true) {
    pfds.clear();
    pfds.push_back({wake_fd_, POLLIN, 0});
    pfds.push_back({listen_fd_, static_cast<short>(clients_.size() < kMaxClients ? POLLIN : 0), 0});
    auto nearest = Clock::time_point::max();
    for (const Client& c : clients_) {
      const bool pending = c.out_sent < c.out.size();
      pfds.push_back({c.fd, static_cast<short>(pending ? POLLOUT : POLLIN), 0});
      nearest = std::min(nearest, c.deadline);
    }
    int timeout_ms = -1;
    if (nearest != Clock::time_point::max()) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(nearest - Clock::now()).count();
      timeout_ms = static_cast<int>(std::clamp<int64_t>(left, 0, 60000));
    }
    int n = poll(pfds.data(), pfds.size(), timeout_ms);
    if (n < 0) {
      HMS_CHECK(errno == EINTR);  // EFAULT/EINVAL/ENOMEM would be our bug or a dying process
      continue;
    }
    if (pfds[0].revents != 0) break;

    const size_t polled = pfds.size() - 2;  // clients_ may grow in Accept below
    for (size_t i = 0; i < polled; ++i) {
      const short rev = pfds[i + 2].revents;
      if (rev == 0) continue;
      Client& c = clients_[i];
      bool alive = true;
      if (rev & POLLOUT) {
        alive = Flush(&c);
      } else if (rev & (POLLIN | POLLHUP | POLLERR)) {
        alive = OnReadable(&c);
      }
      if (!alive) CloseClient(&c);
    }
    std::erase_if(clients_, [](const Client& c) { return c.fd < 0; });

    if (pfds[1].revents & POLLIN) Accept();

    const auto now = Clock::now();
    for (Client& c : clients_) {
      if (now >= c.deadline) CloseClient(&c);
    }
    std::erase_if(clients_, [](const Client& c) { return c.fd < 0; });
  }
  for (Client& c : clients_) CloseClient(&c);
  clients_.clear();
}

void AdminServer::Accept() {
  while (clients_.size() < kMaxClients) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      // EAGAIN: drained. ECONNABORTED and friends: that client is gone, the
      // next poll tells us about others. EMFILE: retry on the next pass.
      return;
    }
    Client c;
    c.fd = fd;
    c.deadline = Clock::now() + idle_timeout_;
    clients_.push_back(std::move(c));
  }
}

void AdminServer::CloseClient(Client* c) {
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
}

bool AdminServer::OnReadable(Client* c) {
  char buf[kReadChunk];
  while (true) {
    ssize_t r = recv(c->fd, buf, sizeof(buf), 0);
    if (r == 0) return false;  // EOF: the client is done (or, lingering, has read our answer)
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return false;
    }
    if (c->lingering) continue;  // discard
    c->in.append(buf, static_cast<size_t>(r));
    c->deadline = Clock::now() + idle_timeout_;
    // One byte past the bound is enough to know the request is too large.
    if (c->in.size() > kMaxRequestBytes) break;
  }
  if (c->lingering) return true;
  Process(c);
  return Flush(c);
}

bool AdminServer::Flush(Client* c) {
  while (c->out_sent < c->out.size()) {
    ssize_t r = send(c->fd, c->out.data() + c->out_sent, c->out.size() - c->out_sent, MSG_NOSIGNAL);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      return false;
    }
    c->out_sent += static_cast<size_t>(r);
    c->deadline = Clock::now() + idle_timeout_;
  }
  c->out.clear();
  c->out_sent = 0;
  if (c->close_after_write) {
    if (c->lingering) return true;
    shutdown(c->fd, SHUT_WR);
    c->lingering = true;
    c->in.clear();
    c->deadline = Clock::now() + kLingerTimeout;
    return true;
  }
  // Output drained: answer what was pipelined behind it.
  if (!c->in.empty()) {
    Process(c);
    if (!c->out.empty()) return Flush(c);
  }
  return true;
}

void AdminServer::Process(Client* c) {
  // RequestHead holds kMaxHeaders views: too big to want on every pass's
  // stack frame twice, small enough for one.
  http::RequestHead head;
  while (!c->close_after_write && c->out.empty() && !c->in.empty()) {
    head = http::RequestHead();
    const int r = http::ParseRequest(c->in.data(), c->in.size(), kMaxRequestBytes, &head);
    if (r == http::kPartial) {
      if (c->in.size() > kMaxRequestBytes) {
        RespondError(c, 431, "request_too_large", "request head over 16 KiB", false, false);
      }
      return;
    }
    if (r == http::kError) {
      RespondError(c, http::ParseErrorStatus(head.error), "bad_request",
                   http::ParseErrorReason(head.error), false, false);
      return;
    }
    const bool http10 = head.version_minor == 0;
    bool keep_alive = head.keep_alive;
    size_t used = static_cast<size_t>(r);
    if (head.body == http::BodyKind::kContentLength) {
      if (head.content_length > kMaxRequestBytes - used) {
        RespondError(c, 413, "request_too_large", "request over 16 KiB", false, http10);
        return;
      }
      if (c->in.size() - used < head.content_length) return;  // wait for the body
      used += static_cast<size_t>(head.content_length);       // read and ignored
    } else if (head.body == http::BodyKind::kChunked) {
      // No admin endpoint takes a body: answer, then close rather than decode
      // chunk framing only to skip it.
      keep_alive = false;
      used = c->in.size();
    }

    const bool is_head = head.method == http::Method::kHead;
    if (head.method != http::Method::kGet && !is_head) {
      RespondError(c, 405, "method_not_allowed", "the admin API answers GET and HEAD only",
                   keep_alive, http10, "GET, HEAD");
    } else if (auto it = handlers_.find(std::string(head.path)); it == handlers_.end()) {
      RespondError(c, 404, "not_found", "no admin endpoint at this path", keep_alive, http10, {},
                   is_head);
    } else {
      AdminRequest req{std::string(head.method_text), std::string(head.path),
                       std::string(head.query)};
      AdminResponse resp;
      bool ok = true;
      try {
        resp = it->second(req);
      } catch (const std::exception& e) {
        ok = false;
        RespondError(c, 500, "internal", e.what(), keep_alive, http10);
      } catch (...) {
        ok = false;
        RespondError(c, 500, "internal", "handler failed", keep_alive, http10);
      }
      if (ok) {
        if (resp.status < 200 || resp.status > 599) {
          RespondError(c, 500, "internal", "handler returned an invalid status", keep_alive,
                       http10);
        } else {
          Respond(c, resp.status, resp, is_head, keep_alive, http10);
        }
      }
    }
    c->in.erase(0, used);
  }
}

void AdminServer::Respond(Client* c, int status, const AdminResponse& r, bool head_only,
                          bool keep_alive, bool http10) {
  // RFC 9110 §6.4.1: 204 and 304 carry no content; 204 no Content-Length.
  const bool no_content = status == 204 || status == 304;
  std::string& o = c->out;
  o.append(http10 ? "HTTP/1.0 " : "HTTP/1.1 ").append(std::to_string(status)).push_back(' ');
  o.append(http::StatusText(status)).append("\r\n");
  if (!no_content && !r.content_type.empty()) {
    o.append("Content-Type: ").append(r.content_type).append("\r\n");
  }
  if (status != 204) {
    o.append("Content-Length: ").append(std::to_string(no_content ? 0 : r.body.size()));
    o.append("\r\n");
  }
  o.append("Cache-Control: no-store\r\n");
  for (const auto& [name, value] : r.headers) {
    o.append(name).append(": ").append(value).append("\r\n");
  }
  // An HTTP/1.0 client keeps the connection only when told so (RFC 9112 §9.3).
  if (!keep_alive) {
    o.append("Connection: close\r\n");
  } else if (http10) {
    o.append("Connection: keep-alive\r\n");
  }
  o.append("\r\n");
  if (!head_only && !no_content) o.append(r.body);
  if (!keep_alive) c->close_after_write = true;
}

void AdminServer::RespondError(Client* c, int status, std::string_view error,
                               std::string_view reason, bool keep_alive, bool http10,
                               std::string_view allow, bool head_only) {
  AdminResponse r;
  r.status = status;
  r.body = "{\"error\": ";
  AppendJsonString(&r.body, error);
  r.body.append(", \"reason\": ");
  AppendJsonString(&r.body, reason);
  r.body.append("}\n");
  r.headers.emplace_back("x-hms-reason", std::string(error));
  if (!allow.empty()) r.headers.emplace_back("Allow", std::string(allow));
  Respond(c, status, r, head_only, keep_alive, http10);
}

}  // namespace hms::control
