#include "src/proxy/listen_claim.h"

#include <netinet/in.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <thread>

namespace hms::proxy {
namespace {

uint16_t PortOf(const sockaddr_storage& ss) {
  return ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6&>(ss).sin6_port
                                        : reinterpret_cast<const sockaddr_in&>(ss).sin_port);
}

void SetPort(sockaddr_storage* ss, uint16_t port) {
  if (ss->ss_family == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(ss)->sin6_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in*>(ss)->sin_port = htons(port);
  }
}

// A TCP socket bound to `ss` with SO_REUSEADDR only (see the header: it
// fails while anything listens there); the fd, or -errno.
int BindExclusive(const sockaddr_storage& ss, socklen_t len) {
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, reinterpret_cast<const sockaddr*>(&ss), len) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

// Binds the abstract unix name of `port`'s claim; the fd, or -errno
// (-EADDRINUSE while another process holds it).
int BindLock(uint16_t port) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  // Abstract namespace: sun_path[0] is NUL and the name is the bytes after
  // it, up to the given length (no terminator); nothing on disk to clean up.
  int n = std::snprintf(un.sun_path + 1, sizeof un.sun_path - 1, "hms-gateway-claim:%u", port);
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
  if (bind(fd, reinterpret_cast<const sockaddr*>(&un), len) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

Error Taken(const std::string& address) {
  return Error{"cannot listen on " + address +
                   ": another process listens there (Address already in use); a listener "
                   "belongs to one gateway",
               Side::kInternal, true};
}

}  // namespace

ClaimDecision Decide(int probe_result, bool handed_over) {
  if (handed_over) return ClaimDecision::kAdopt;
  return probe_result == -EADDRINUSE ? ClaimDecision::kRefuse : ClaimDecision::kListen;
}

Result<ListenClaim> ListenClaim::Take(sockaddr_storage* ss, socklen_t len,
                                      const std::string& address, bool handed_over) {
  ListenClaim claim;
  if (PortOf(*ss) == 0) {
    // The kernel picks a port no socket is bound to; the pick socket keeps
    // it from being handed to anyone else while the claim lives.
    int fd = BindExclusive(*ss, len);
    if (fd < 0) return Error{"cannot listen on " + address + ": " + std::strerror(-fd)};
    claim.pick_fd_ = fd;
    sockaddr_storage picked;
    socklen_t picked_len = sizeof picked;
    getsockname(fd, reinterpret_cast<sockaddr*>(&picked), &picked_len);
    SetPort(ss, PortOf(picked));
  }
  const uint16_t port = PortOf(*ss);
  // Errors name the port in use, also the one the kernel picked.
  const std::string where = address.substr(0, address.rfind(':') + 1) + std::to_string(port);
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(kLockWaitMs);
  for (;;) {
    int fd = BindLock(port);
    if (fd >= 0) {
      claim.lock_fd_ = fd;
      break;
    }
    if (fd != -EADDRINUSE) {
      return Error{"cannot claim " + where + ": start-up lock: " + std::strerror(-fd)};
    }
    if (std::chrono::steady_clock::now() >= give_up) {
      return Error{"cannot listen on " + where +
                       ": another hms-gateway has been starting on port " + std::to_string(port) +
                       " for over " + std::to_string(kLockWaitMs) + " ms",
                   Side::kInternal, true};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // Probed under the lock: a start-up that held it before us has its
  // sockets listening by now, and the probe sees them.
  const int probe = BindExclusive(*ss, len);
  switch (Decide(probe < 0 ? probe : 0, handed_over)) {
    case ClaimDecision::kRefuse:
      return Taken(where);
    case ClaimDecision::kAdopt:
      if (probe >= 0) close(probe);  // our group listens there: nothing to keep out
      return claim;
    case ClaimDecision::kListen:
      break;
  }
  if (probe < 0) return Error{"cannot listen on " + where + ": " + std::strerror(-probe)};
  claim.probe_fd_ = probe;
  return claim;
}

ListenClaim::ListenClaim(ListenClaim&& other) noexcept
    : lock_fd_(other.lock_fd_), pick_fd_(other.pick_fd_), probe_fd_(other.probe_fd_) {
  other.lock_fd_ = other.pick_fd_ = other.probe_fd_ = -1;
}

ListenClaim::~ListenClaim() {
  // The probe and the pick socket first: once the lock is free, the next
  // claimant's probe must find only our listening sockets.
  if (probe_fd_ >= 0) close(probe_fd_);
  if (pick_fd_ >= 0) close(pick_fd_);
  if (lock_fd_ >= 0) close(lock_fd_);
}

}  // namespace hms::proxy
