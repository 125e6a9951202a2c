// The one parser of "HOST:PORT" text: the split (host and port, brackets
// around an IPv6 host) that config's ParseHostPort validates further, and the
// numeric socket address that listeners and the admin API bind. Pure
// functions of their input (inet_pton only); any thread; header-only, so the
// modules below config (control's admin server, proxy) share it.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace hms {

struct HostPortText {
  std::string_view host;  // without the brackets of "[v6]"
  uint16_t port = 0;
  bool bracketed = false;  // written "[host]:port"
};

// Splits "host:port" or "[v6]:port". The port is 1 to 5 digits up to 65535
// (0 included: the caller decides whether it means "any"); the host is not
// empty, has no ':' unless bracketed, and is otherwise not checked.
inline std::optional<HostPortText> SplitHostPort(std::string_view text) noexcept {
  HostPortText hp;
  std::string_view port;
  if (text.starts_with("[")) {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    hp.host = text.substr(1, close - 1);
    hp.bracketed = true;
    port = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    hp.host = text.substr(0, colon);
    if (hp.host.find(':') != std::string_view::npos) return std::nullopt;  // unbracketed IPv6
    port = text.substr(colon + 1);
  }
  if (hp.host.empty() || port.empty() || port.size() > 5) return std::nullopt;
  uint32_t p = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return std::nullopt;
    p = p * 10 + static_cast<uint32_t>(c - '0');
  }
  if (p > 65535) return std::nullopt;
  hp.port = static_cast<uint16_t>(p);
  return hp;
}

// Fills `ss`/`len` from a numeric host (IPv4 dotted quad, or IPv6 without
// brackets) and a port; false when the host is not numeric.
inline bool NumericSockaddr(std::string_view host, uint16_t port, sockaddr_storage* ss,
                            socklen_t* len) noexcept {
  char buf[INET6_ADDRSTRLEN];
  if (host.size() >= sizeof buf) return false;
  std::memcpy(buf, host.data(), host.size());
  buf[host.size()] = '\0';
  std::memset(ss, 0, sizeof *ss);
  auto* a4 = reinterpret_cast<sockaddr_in*>(ss);
  if (inet_pton(AF_INET, buf, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    *len = sizeof(sockaddr_in);
    return true;
  }
  auto* a6 = reinterpret_cast<sockaddr_in6*>(ss);
  if (inet_pton(AF_INET6, buf, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    *len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

// "127.0.0.1:8080", "[::1]:9901", "0.0.0.0:0" (port 0: the kernel picks),
// "localhost:9901" (127.0.0.1): the address a listener or the admin API
// binds. Other names are refused: a gateway binds, it does not resolve
// (config's listener check refuses "localhost" too: a config says the
// address it means).
inline bool ParseNumericAddress(std::string_view text, sockaddr_storage* ss,
                                socklen_t* len) noexcept {
  std::optional<HostPortText> hp = SplitHostPort(text);
  if (!hp) return false;
  // "[1.2.3.4]:80" is not an address, nor "::1:80" (SplitHostPort refuses it).
  if (hp->bracketed != (hp->host.find(':') != std::string_view::npos)) return false;
  if (!hp->bracketed && hp->host == "localhost") hp->host = "127.0.0.1";
  return NumericSockaddr(hp->host, hp->port, ss, len);
}

}  // namespace hms
