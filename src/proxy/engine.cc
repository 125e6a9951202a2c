#include "hms/proxy/engine.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <thread>

#include "hms/common/address.h"
#include "src/proxy/listen_claim.h"
#include "src/proxy/worker.h"

namespace hms::proxy {
namespace {

int Listen(const sockaddr_storage& ss, socklen_t len) {
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // One listener per core on the same port: the kernel spreads connections.
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  // Accepted sockets inherit TCP_NODELAY; it cannot be set on them later
  // without a syscall per connection (FIELD-NOTES: Nagle costs 40 ms stalls).
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (bind(fd, reinterpret_cast<const sockaddr*>(&ss), len) < 0 || listen(fd, 4096) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

std::vector<int> AllowedCpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    for (int i = 0; i < CPU_SETSIZE; ++i)
      if (CPU_ISSET(i, &set)) cpus.push_back(i);
  }
  return cpus;
}

// "HOST:PORT" ("[HOST]:PORT" for IPv6) of a bound socket.
std::string BoundAddress(int fd) {
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  char host[64];
  if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(a->sin6_port));
  }
  auto* a = reinterpret_cast<sockaddr_in*>(&ss);
  inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
  return std::string(host) + ":" + std::to_string(ntohs(a->sin_port));
}

// A received socket listens where the config says (any port for port 0):
// the address to claim, with the socket's own port, in `*ss`.
Result<bool> CheckHandedOver(int fd, const std::string& address, sockaddr_storage* ss,
                             socklen_t len) {
  sockaddr_storage got;
  socklen_t got_len = sizeof got;
  int listening = 0;
  socklen_t opt_len = sizeof listening;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&got), &got_len) < 0 ||
      getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &opt_len) < 0 || !listening) {
    return Error{"upgrade: the socket handed over for " + address + " does not listen",
                 Side::kInternal};
  }
  const std::string have = BoundAddress(fd);
  const bool any_port = address.ends_with(":0");
  const std::string want_host = address.substr(0, address.rfind(':'));
  if (got.ss_family != ss->ss_family || (any_port ? have.substr(0, have.rfind(':')) != want_host
                                                  : have != address)) {
    return Error{"upgrade: the running gateway listens on " + have + " where the config says " +
                     address + ": a changed listener needs a restart, not an upgrade",
                 Side::kConfig};
  }
  std::memcpy(ss, &got, len);
  return true;
}

}  // namespace

Engine::Engine() = default;
Engine::~Engine() {
  // A start-up that fails after the cores started (the admin API, the span
  // exporter) ends here: its cores are stopped and joined, never left running
  // while their std::thread is destroyed (std::terminate).
  Stop();
  for (auto& per_core : listen_fds_)
    for (int fd : per_core) close(fd);
}

uint32_t CoresFor(const config::GatewayConfig& config) {
  uint32_t cores = config.cores != 0 ? config.cores : static_cast<uint32_t>(AllowedCpus().size());
  return cores == 0 ? 1 : cores;
}

Result<bool> Engine::Bind(const config::GatewayConfig& config,
                          std::vector<std::vector<int>>* handed_over) {
  uint32_t cores = CoresFor(config);
  listen_fds_.assign(cores, {});
  listen_of_.assign(cores, {});
  groups_.clear();
  bound_.clear();
  // The listeners in order; a sidecar's egress listener last (Worker tells
  // them apart by index).
  std::vector<std::string> addresses;
  for (const auto& l : config.listeners) addresses.push_back(l.address);
  if (config.role == "sidecar" && !config.egress.empty()) addresses.push_back(config.egress);
  // Every claim is held until every listener listens (docs/engine.md, "One
  // gateway per address"): a gateway starting at the same moment then finds
  // them listening.
  std::vector<ListenClaim> claims;
  for (uint16_t i = 0; i < addresses.size(); ++i) {
    const std::string& address = addresses[i];
    sockaddr_storage ss;
    socklen_t len;
    if (!ParseNumericAddress(address, &ss, &len)) {
      return Error{"listener address '" + address + "' is not HOST:PORT", Side::kConfig};
    }
    std::vector<int> members;
    if (handed_over != nullptr && i < handed_over->size()) members = std::move((*handed_over)[i]);
    groups_.push_back({});
    for (int fd : members) groups_.back().push_back(fd);  // owned from here, even on an error
    for (int fd : members) {
      if (auto c = CheckHandedOver(fd, address, &ss, len); !c.ok()) return c.error();
    }
    // Port 0: the claim takes the port the kernel picks, and every core's
    // socket binds that one.
    auto claim = ListenClaim::Take(&ss, len, address, !members.empty());
    if (!claim.ok()) return claim.error();
    claims.push_back(std::move(*claim));
    // Each member stays open and some core accepts from it; cores beyond the
    // group's size get a new member each.
    for (uint32_t core = static_cast<uint32_t>(members.size()); core < cores; ++core) {
      int fd = Listen(ss, len);
      if (fd < 0) {
        // EADDRINUSE here: a process that is no hms-gateway listened between
        // the probe and this socket.
        return Error{
            "cannot listen on " + address + ": " +
                (fd == -EADDRINUSE
                     ? std::string("another process listens there (Address already in use)")
                     : std::string(std::strerror(-fd))),
            Side::kInternal};
      }
      if (core == 0) getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
      groups_.back().push_back(fd);
    }
    bound_.push_back(BoundAddress(groups_.back().front()));
    for (size_t m = 0; m < groups_.back().size(); ++m) {
      listen_fds_[m % cores].push_back(groups_.back()[m]);
      listen_of_[m % cores].push_back(i);
    }
  }
  return true;
}

Result<bool> Engine::Start(const config::GatewayConfig& config, config::Snapshot* snapshot) {
  if (listen_fds_.empty()) {  // not bound: cores without listening sockets (Adopt)
    listen_fds_.assign(CoresFor(config), {});
    listen_of_.assign(listen_fds_.size(), {});
  }
  std::vector<int> cpus = AllowedCpus();
  for (uint32_t i = 0; i < listen_fds_.size(); ++i) {
    int cpu = -1;
    if (!config.cpu_affinity.empty()) {
      cpu = config.cpu_affinity[i % config.cpu_affinity.size()];
    } else if (!cpus.empty()) {
      cpu = cpus[i % cpus.size()];
    }
    workers_.push_back(std::make_unique<Worker>(i, static_cast<uint32_t>(listen_fds_.size()), config,
                                                std::move(listen_fds_[i]), std::move(listen_of_[i]),
                                                cpu));
  }
  listen_fds_.clear();  // the workers own them now
  listen_of_.clear();
  if (config.redis) {
    // Read once here, on the control thread: a core never opens a file.
    std::string password;
    if (!config.redis->password_file.empty()) {
      auto read = fleet::ReadPasswordFile(config.redis->password_file);
      if (!read.ok()) {
        return ConfigError(config::WhereIs(config, "redis.password_file") + ": " +
                           read.error().message);
      }
      password = std::move(*read);
    }
    std::shared_ptr<const tls::ClientContext> tls_ctx;
    if (config.redis->tls) {
      tls::ClientOptions o;
      o.ca = config.redis->tls->ca;
      o.cert = config.redis->tls->cert;
      o.key = config.redis->tls->key;
      auto made = tls::ClientContext::Make(o);
      if (!made.ok()) {
        return ConfigError(config::WhereIs(config, "redis.tls") + ": " + made.error().message);
      }
      tls_ctx = *made;
    }
    for (auto& w : workers_) w->SetRedis(password, tls_ctx);
  }
  for (uint32_t i = 0; i < workers_.size(); ++i) {
    snapshot->Acquire();
    int rc = workers_[i]->Start(snapshot);
    if (rc < 0) {
      // The cores started before this one run until ~Engine stops them.
      return Error{"cannot start core " + std::to_string(i) + ": io_uring set-up (ring_entries " +
                       std::to_string(config.ring_entries) + ", buffers " +
                       std::to_string(config.buffer_count) + " x " +
                       std::to_string(config.buffer_size) + " bytes): " + std::strerror(-rc),
                   Side::kInternal};
    }
  }
  return true;
}

void Engine::Publish(config::Snapshot* snapshot) {
  for (auto& w : workers_) {
    snapshot->Acquire();
    core::Message m{core::Message::Kind::kSnapshot, snapshot};
    // The mailbox is bounded; a full one empties within a loop pass.
    while (!w->mailbox().Push(m)) std::this_thread::yield();
  }
}

void Engine::Adopt(uint32_t core, int fd, uint16_t listener) {
  // The mailbox is bounded; a full one empties within a loop pass.
  while (!workers_.at(core)->Adopt(fd, listener)) std::this_thread::yield();
}

void Engine::Drain(bool handed_over) {
  for (auto& w : workers_) {
    core::Message m{handed_over ? core::Message::Kind::kHandOver : core::Message::Kind::kDrain,
                    nullptr};
    while (!w->mailbox().Push(m)) std::this_thread::yield();
  }
}

void Engine::Join() {
  for (auto& w : workers_) w->Join();
  stopped_ = true;
}

void Engine::Stop() {
  if (workers_.empty() || stopped_) return;
  Drain();
  Join();
}

std::vector<obs::LogRing*> Engine::access_logs() {
  std::vector<obs::LogRing*> out;
  for (auto& w : workers_) out.push_back(w->access_log());
  return out;
}

std::vector<obs::SpanRing*> Engine::span_rings() {
  std::vector<obs::SpanRing*> out;
  for (auto& w : workers_) out.push_back(w->spans());
  return out;
}

uint32_t Engine::cores() const { return static_cast<uint32_t>(workers_.size()); }

const obs::CoreMetrics& Engine::metrics(uint32_t core) const { return workers_[core]->metrics(); }

std::vector<const obs::CoreMetrics*> Engine::all_metrics() const {
  std::vector<const obs::CoreMetrics*> out;
  for (const auto& w : workers_) out.push_back(&w->metrics());
  return out;
}

}  // namespace hms::proxy
