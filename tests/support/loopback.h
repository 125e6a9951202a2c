// For tests and fuzz targets that serve something themselves: a listening
// TCP socket on 127.0.0.1 with a port the kernel picks (never a fixed or
// guessed one). Header-only; any thread.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace hms::testing {

// The listening socket (its port in `*port`), or -errno.
inline int ListenLoopback(uint16_t* port, int backlog = 128) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 || listen(fd, backlog) < 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) < 0) {
    const int e = errno;
    close(fd);
    return -e;
  }
  *port = ntohs(a.sin_port);
  return fd;
}

}  // namespace hms::testing
