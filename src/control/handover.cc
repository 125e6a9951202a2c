#include "hms/control/handover.h"

#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <utility>

#include "hms/common/hash.h"

namespace hms::control {
namespace {

// An abstract address: sun_path[0] is NUL and the name is the bytes after
// it, up to the given length; nothing on disk to clean up, and the kernel
// frees the name when its process dies, however it dies.
socklen_t AbstractAddress(const std::string& name, sockaddr_un* un) {
  *un = sockaddr_un{};
  un->sun_family = AF_UNIX;
  size_t n = std::min(name.size(), sizeof un->sun_path - 1);
  std::memcpy(un->sun_path + 1, name.data(), n);
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
}

// One message carrying at most one descriptor; true when sent whole.
bool SendOne(int conn, const std::string& text, int fd) {
  iovec iov{const_cast<char*>(text.data()), text.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  return sendmsg(conn, &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(text.size());
}

// One message and its descriptor (-1 when none came); the text, or an
// empty one at the end of the stream or on an error.
std::string ReceiveOne(int conn, int* fd) {
  char buf[64];
  iovec iov{buf, sizeof buf};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  *fd = -1;
  ssize_t n = recvmsg(conn, &msg, MSG_CMSG_CLOEXEC);
  if (n <= 0) return {};
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
      std::memcpy(fd, CMSG_DATA(c), sizeof *fd);
  }
  return std::string(buf, static_cast<size_t>(n));
}

}  // namespace

std::string HandoverName(const std::string& config_path) {
  std::string path = config_path;
  if (!path.empty()) {
    char real[PATH_MAX];
    if (realpath(path.c_str(), real) != nullptr) path = real;
  }
  // Hashed: the path may be longer than an abstract name may be.
  const uint64_t h = Fnv1a64(path);
  char name[64];
  std::snprintf(name, sizeof name, "hms-gateway-upgrade:%016llx",
                static_cast<unsigned long long>(h));
  return name;
}

HandoverServer::HandoverServer(std::string name, SocketsFn sockets,
                               std::function<void()> on_handed_over, LogFn log)
    : name_(std::move(name)),
      sockets_(std::move(sockets)),
      on_handed_over_(std::move(on_handed_over)),
      log_(std::move(log)) {}

HandoverServer::~HandoverServer() { Stop(); }

int HandoverServer::Bind() {
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  sockaddr_un un;
  socklen_t len = AbstractAddress(name_, &un);
  if (bind(fd, reinterpret_cast<const sockaddr*>(&un), len) < 0 || listen(fd, 1) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

Result<bool> HandoverServer::Start() {
  int fd = Bind();
  if (fd < 0) {
    return Error{"upgrade socket @" + name_ + ": " + std::strerror(-fd) +
                 (fd == -EADDRINUSE ? " (another gateway of this config runs)" : "")};
  }
  wake_fd_ = eventfd(0, EFD_CLOEXEC);
  if (wake_fd_ < 0) {
    close(fd);
    return Error{std::string("upgrade socket: eventfd: ") + std::strerror(errno)};
  }
  listen_fd_ = fd;
  thread_ = std::thread([this] { Run(); });
  return true;
}

void HandoverServer::Stop() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
    thread_.join();
  }
  if (listen_fd_ >= 0) close(listen_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
  listen_fd_ = wake_fd_ = -1;
}

void HandoverServer::Run() {
  while (listen_fd_ >= 0) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (p[1].revents != 0) return;  // Stop()
    int conn = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) continue;
    // An abstract name has no file permissions: any local process can
    // connect. Only one of this process's own user may take the listening
    // sockets (and, by confirming, stop this gateway accepting).
    ucred peer{};
    socklen_t peer_len = sizeof peer;
    if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &peer, &peer_len) != 0 ||
        peer.uid != geteuid()) {
      log_("upgrade: refused a process of uid " + std::to_string(peer.uid) + " (pid " +
           std::to_string(peer.pid) + "): only uid " + std::to_string(geteuid()) +
           " may take over this gateway's sockets");
      close(conn);
      continue;
    }
    // The name is let go while the new process takes over, so that it can
    // listen for the upgrade after it; taken again if the upgrade fails.
    close(listen_fd_);
    listen_fd_ = -1;
    log_("upgrade: a new process connected; handing over the listening sockets");
    bool done = Serve(conn);
    close(conn);
    if (done) {
      handed_over_.store(true, std::memory_order_release);
      log_("upgrade: the new process serves; this one stops accepting and drains");
      on_handed_over_();
      return;
    }
    if (handed_over()) return;  // Stop() during the upgrade
    log_("upgrade: the new process went away before serving; this one goes on serving");
    int fd = Bind();
    if (fd < 0) {
      log_("upgrade socket @" + name_ + ": " + std::strerror(-fd) +
           "; no further upgrade possible");
      return;
    }
    listen_fd_ = fd;
  }
}

bool HandoverServer::Serve(int conn) {
  for (const HandedSocket& s : sockets_()) {
    std::string text = s.listener == HandedSocket::kAdmin ? "A" : "L " + std::to_string(s.listener);
    if (!SendOne(conn, text, s.fd)) return false;
  }
  if (!SendOne(conn, "E", -1)) return false;
  // The new process starts its cores and admin API before it answers; the
  // wake fd still stops this wait.
  for (;;) {
    pollfd p[2] = {{conn, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (p[1].revents != 0) {
      // Stopped (SIGTERM) while a new process holds the sockets and may yet
      // serve on them: they are shared from here on, and the drain must not
      // shut them down under it.
      handed_over_.store(true, std::memory_order_release);
      log_("upgrade: stopping while a new process holds the listening sockets; it keeps them");
      return false;
    }
    char b = 0;
    ssize_t n = recv(conn, &b, 1, 0);
    return n == 1 && b == 'R';
  }
}

void ReceivedSockets::CloseAll() {
  for (auto& group : listeners)
    for (int fd : group) close(fd);
  listeners.clear();
  if (admin >= 0) close(admin);
  if (conn >= 0) close(conn);
  admin = conn = -1;
}

Result<ReceivedSockets> ReceiveSockets(const std::string& name) {
  ReceivedSockets r;
  r.conn = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (r.conn < 0) return Error{std::string("upgrade: socket: ") + std::strerror(errno)};
  sockaddr_un un;
  socklen_t len = AbstractAddress(name, &un);
  if (connect(r.conn, reinterpret_cast<const sockaddr*>(&un), len) < 0) {
    int e = errno;
    r.CloseAll();
    return Error{"upgrade: no running gateway of this config answers on @" + name + " (" +
                 std::strerror(e) + ")"};
  }
  for (;;) {
    int fd = -1;
    std::string text = ReceiveOne(r.conn, &fd);
    if (text == "E") return r;
    if (text.empty() || fd < 0) {
      if (fd >= 0) close(fd);
      r.CloseAll();
      return Error{"upgrade: the running gateway stopped handing its sockets over"};
    }
    if (text == "A") {
      r.admin = fd;
    } else {
      size_t i = static_cast<size_t>(std::strtoul(text.c_str() + 2, nullptr, 10));
      if (r.listeners.size() <= i) r.listeners.resize(i + 1);
      r.listeners[i].push_back(fd);
    }
  }
}

Result<bool> ConfirmServing(ReceivedSockets* received) {
  bool ok = send(received->conn, "R", 1, MSG_NOSIGNAL) == 1;
  int e = errno;
  close(received->conn);
  received->conn = -1;
  if (!ok) return Error{std::string("upgrade: cannot tell the old process: ") + std::strerror(e)};
  return true;
}

}  // namespace hms::control
