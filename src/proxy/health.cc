// Active health checks (health.h): reconciliation with each snapshot, and
// one probe's check as one small connection: connect, send the request,
// read the status line, close; the verdict after `healthy` good or
// `unhealthy` failed checks in a row.
#include "src/proxy/health.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace hms::proxy {

uint32_t HealthOwnerCore(std::string_view service, uint32_t cores) noexcept {
  uint32_t h = 2166136261u;  // FNV-1a: the same owner on every core and every reload
  for (unsigned char ch : service) h = (h ^ ch) * 16777619u;
  return cores == 0 ? 0 : h % cores;
}

HealthChecker::~HealthChecker() {
  for (auto& p : probes_)
    if (p->fd >= 0) close(p->fd);
}

void HealthChecker::Reconcile(const config::Snapshot& s) {
  for (auto& p : probes_) p->wanted = false;
  for (const config::Cluster& cl : s.clusters) {
    if (!cl.health_check || HealthOwnerCore(cl.name, core_.cores) != core_.index) continue;
    for (const config::Endpoint& ep : cl.endpoints) {
      // Probes speak plain HTTP; an mTLS sidecar is watched by outlier
      // ejection and its own lease instead (docs/resilience.md).
      if (ep.health == nullptr || ep.mtls) continue;
      std::string key = cl.name + "|" + ep.address + "|" + cl.health_check->path;
      HealthProbe* found = Find(key);
      if (found == nullptr) found = Open(std::move(key), cl, ep);
      found->wanted = true;
      found->health = ep.health;
      found->params = *cl.health_check;
    }
  }
  for (uint32_t i = 0; i < probes_.size(); ++i) {
    if (probes_[i]->state != HealthProbe::State::kFree && !probes_[i]->wanted) Retire(i);
  }
}

HealthProbe* HealthChecker::Find(std::string_view key) noexcept {
  HealthProbe* found = nullptr;
  for (auto& p : probes_) {
    if (p->state != HealthProbe::State::kFree && p->key == key) found = p.get();
  }
  return found;
}

HealthProbe* HealthChecker::Open(std::string key, const config::Cluster& cl,
                                 const config::Endpoint& ep) {
  uint32_t i = 0;
  while (i < probes_.size() && probes_[i]->state != HealthProbe::State::kFree) ++i;
  if (i == probes_.size()) probes_.push_back(std::make_unique<HealthProbe>());
  HealthProbe* p = probes_[i].get();
  p->key = std::move(key);
  // What a check sends and where: fixed for the probe's life (its key names
  // both), never rewritten while a send may be reading it.
  p->addr = ep.addr;
  p->addr_len = ep.addr_len;
  p->request = "GET " + cl.health_check->path + " HTTP/1.1\r\nhost: " + ep.address +
               "\r\nuser-agent: hms-gateway-health\r\nconnection: close\r\n\r\n";
  p->state = HealthProbe::State::kIdle;
  p->ok_streak = p->fail_streak = 0;
  p->timer.owner = i;
  p->timer.kind = timer_kind_;
  // The first check soon, spread over the first interval.
  core_.timers.Arm(&p->timer, core_.now, 1 + core_.Random() % cl.health_check->interval_ms);
  return p;
}

void HealthChecker::Retire(uint32_t i) {
  HealthProbe& p = *probes_[i];
  if (p.fd >= 0) {
    close(p.fd);  // the ring holds its own reference until an op in flight completes
    p.fd = -1;
  }
  ++p.gen;
  core_.timers.Cancel(&p.timer);
  // Checks no longer configured: their verdict no longer keeps it out.
  if (p.health != nullptr) p.health->SetCheckFailing(false);
  p.health.reset();
  p.state = HealthProbe::State::kFree;
}

bool HealthChecker::Current(uint32_t i, uint32_t gen) const noexcept {
  return i < probes_.size() && (probes_[i]->gen & 0xffffff) == gen;
}

void HealthChecker::OnTimer(uint32_t i) {
  HealthProbe& p = *probes_[i];
  if (p.state == HealthProbe::State::kIdle) {
    Start(i);
  } else if (p.state != HealthProbe::State::kFree) {
    Finish(i, false);  // no status line within the timeout
  }
}

void HealthChecker::Start(uint32_t i) {
  HealthProbe& p = *probes_[i];
  if (core_.draining) return;
  p.fd = socket(p.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (p.fd < 0) {
    Finish(i, false);
    return;
  }
  int one = 1;
  setsockopt(p.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  p.got = 0;
  p.state = HealthProbe::State::kConnecting;
  io_uring_sqe* sqe = core_.ring.Sqe();
  io_uring_prep_connect(sqe, p.fd, reinterpret_cast<const sockaddr*>(&p.addr), p.addr_len);
  io_uring_sqe_set_data64(sqe, core::PackUserData(op_, p.gen, i));
  core_.timers.Arm(&p.timer, core_.now, p.params.timeout_ms);
}

void HealthChecker::OnCqe(uint32_t i, int res) {
  HealthProbe& p = *probes_[i];
  if (res < 0) {
    Finish(i, false);
    return;
  }
  io_uring_sqe* sqe = nullptr;
  switch (p.state) {
    case HealthProbe::State::kConnecting:
      p.state = HealthProbe::State::kSending;
      sqe = core_.ring.Sqe();
      io_uring_prep_send(sqe, p.fd, p.request.data(), p.request.size(), MSG_NOSIGNAL);
      break;
    case HealthProbe::State::kSending:
      p.state = HealthProbe::State::kReceiving;
      sqe = core_.ring.Sqe();
      io_uring_prep_recv(sqe, p.fd, p.buf, sizeof p.buf, 0);
      break;
    case HealthProbe::State::kReceiving: {
      p.got += static_cast<uint32_t>(res);
      // "HTTP/1.x NNN": the status is all a check needs.
      if (p.got >= 12 || res == 0) {
        bool ok = p.got >= 12 && std::memcmp(p.buf, "HTTP/1.", 7) == 0 && p.buf[9] == '2';
        Finish(i, ok);
        return;
      }
      sqe = core_.ring.Sqe();
      io_uring_prep_recv(sqe, p.fd, p.buf + p.got, sizeof p.buf - p.got, 0);
      break;
    }
    default:
      return;
  }
  io_uring_sqe_set_data64(sqe, core::PackUserData(op_, p.gen, i));
}

void HealthChecker::Finish(uint32_t i, bool ok) {
  HealthProbe& p = *probes_[i];
  if (p.fd >= 0) {
    close(p.fd);
    p.fd = -1;
  }
  ++p.gen;
  p.state = HealthProbe::State::kIdle;
  if (ok) {
    p.fail_streak = 0;
    if (++p.ok_streak >= p.params.healthy) p.health->SetCheckFailing(false);
  } else {
    p.ok_streak = 0;
    if (++p.fail_streak >= p.params.unhealthy) p.health->SetCheckFailing(true);
  }
  core_.metrics.health_checks.Add();
  if (!ok) core_.metrics.health_checks_failed.Add();
  core_.timers.Arm(&p.timer, core_.now, p.params.interval_ms);
}

}  // namespace hms::proxy
