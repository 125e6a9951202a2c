// Active health checks (docs/resilience.md): each service with a `health:`
// section is checked by exactly one core (its name's hash modulo the cores),
// one small connection per endpoint and check, through the core's ring. The
// verdict is shared with every core through the endpoint's EndpointHealth.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "src/proxy/worker.h"

namespace hms::proxy {
namespace {

uint32_t OwnerCore(const std::string& service, uint32_t cores) {
  uint32_t h = 2166136261u;  // FNV-1a: the same owner on every core and every reload
  for (unsigned char ch : service) h = (h ^ ch) * 16777619u;
  return cores == 0 ? 0 : h % cores;
}

}  // namespace

void Worker::ReconcileProbes(const config::Snapshot& s) {
  for (auto& p : probes_) p->wanted = false;
  for (const config::Cluster& cl : s.clusters) {
    if (!cl.health_check || OwnerCore(cl.name, cores_) != index_) continue;
    for (const config::Endpoint& ep : cl.endpoints) {
      // Probes speak plain HTTP; an mTLS sidecar is watched by outlier
      // ejection and its own lease instead (docs/resilience.md).
      if (ep.health == nullptr || ep.mtls) continue;
      std::string key = cl.name + "|" + ep.address + "|" + cl.health_check->path;
      HealthProbe* found = nullptr;
      for (auto& p : probes_) {
        if (p->state != HealthProbe::State::kFree && p->key == key) found = p.get();
      }
      if (found == nullptr) {
        uint32_t i = 0;
        while (i < probes_.size() && probes_[i]->state != HealthProbe::State::kFree) ++i;
        if (i == probes_.size()) probes_.push_back(std::make_unique<HealthProbe>());
        found = probes_[i].get();
        found->key = std::move(key);
        // What a check sends and where: fixed for the probe's life (its key
        // names both), never rewritten while a send may be reading it.
        found->addr = ep.addr;
        found->addr_len = ep.addr_len;
        found->request = "GET " + cl.health_check->path + " HTTP/1.1\r\nhost: " + ep.address +
                         "\r\nuser-agent: hms-gateway-health\r\nconnection: close\r\n\r\n";
        found->state = HealthProbe::State::kIdle;
        found->ok_streak = found->fail_streak = 0;
        found->timer.owner = i;
        found->timer.kind = kTimerHealth;
        // The first check soon, spread over the first interval.
        timers_.Arm(&found->timer, now_, 1 + Random() % cl.health_check->interval_ms);
      }
      found->wanted = true;
      found->health = ep.health;
      found->params = *cl.health_check;
    }
  }
  for (uint32_t i = 0; i < probes_.size(); ++i) {
    if (probes_[i]->state != HealthProbe::State::kFree && !probes_[i]->wanted) RetireProbe(i);
  }
}

void Worker::RetireProbe(uint32_t i) {
  HealthProbe& p = *probes_[i];
  if (p.fd >= 0) {
    close(p.fd);  // the ring holds its own reference until an op in flight completes
    p.fd = -1;
  }
  ++p.gen;
  timers_.Cancel(&p.timer);
  // Checks no longer configured: their verdict no longer keeps it out.
  if (p.health != nullptr) p.health->SetCheckFailing(false);
  p.health.reset();
  p.state = HealthProbe::State::kFree;
}

void Worker::OnProbeTimer(uint32_t i) {
  HealthProbe& p = *probes_[i];
  if (p.state == HealthProbe::State::kIdle) {
    StartProbe(i);
  } else if (p.state != HealthProbe::State::kFree) {
    FinishProbe(i, false);  // no status line within the timeout
  }
}

void Worker::StartProbe(uint32_t i) {
  HealthProbe& p = *probes_[i];
  if (draining_) return;
  p.fd = socket(p.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (p.fd < 0) {
    FinishProbe(i, false);
    return;
  }
  int one = 1;
  setsockopt(p.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  p.got = 0;
  p.state = HealthProbe::State::kConnecting;
  io_uring_sqe* sqe = ring_.Sqe();
  io_uring_prep_connect(sqe, p.fd, reinterpret_cast<const sockaddr*>(&p.addr), p.addr_len);
  io_uring_sqe_set_data64(sqe, core::PackUserData(kOpHealth, p.gen, i));
  timers_.Arm(&p.timer, now_, p.params.timeout_ms);
}

void Worker::OnProbe(uint32_t i, int res) {
  HealthProbe& p = *probes_[i];
  if (res < 0) {
    FinishProbe(i, false);
    return;
  }
  io_uring_sqe* sqe = nullptr;
  switch (p.state) {
    case HealthProbe::State::kConnecting:
      p.state = HealthProbe::State::kSending;
      sqe = ring_.Sqe();
      io_uring_prep_send(sqe, p.fd, p.request.data(), p.request.size(), MSG_NOSIGNAL);
      break;
    case HealthProbe::State::kSending:
      p.state = HealthProbe::State::kReceiving;
      sqe = ring_.Sqe();
      io_uring_prep_recv(sqe, p.fd, p.buf, sizeof p.buf, 0);
      break;
    case HealthProbe::State::kReceiving: {
      p.got += static_cast<uint32_t>(res);
      // "HTTP/1.x NNN": the status is all a check needs.
      if (p.got >= 12 || res == 0) {
        bool ok = p.got >= 12 && std::memcmp(p.buf, "HTTP/1.", 7) == 0 && p.buf[9] == '2';
        FinishProbe(i, ok);
        return;
      }
      sqe = ring_.Sqe();
      io_uring_prep_recv(sqe, p.fd, p.buf + p.got, sizeof p.buf - p.got, 0);
      break;
    }
    default:
      return;
  }
  io_uring_sqe_set_data64(sqe, core::PackUserData(kOpHealth, p.gen, i));
}

void Worker::FinishProbe(uint32_t i, bool ok) {
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
  metrics_.health_checks.Add();
  if (!ok) metrics_.health_checks_failed.Add();
  timers_.Arm(&p.timer, now_, p.params.interval_ms);
}

}  // namespace hms::proxy
