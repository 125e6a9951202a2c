// Active health checks (docs/resilience.md): each service with a `health:`
// section is checked by exactly one core (its name's hash modulo the cores),
// one small connection per endpoint and check, through the core's ring. The
// verdict goes to the endpoint's shared EndpointHealth, which every core
// reads when it picks.
//
// A HealthChecker is one core's room for its checks: the probes and their
// one completion switch (OnCqe) and timer (OnTimer). It reaches the core
// only through the CoreContext it is given; the Worker routes the op tag
// and timer kind it was made with here, after asking Current whether a
// completion is still the probe's. Owned by its Worker and touched by that
// core's thread only. Probes are made when a snapshot is adopted (reload
// time), never per request.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "hms/config/snapshot.h"
#include "hms/core/timer_wheel.h"
#include "hms/policy/outlier.h"
#include "src/proxy/core_context.h"

namespace hms::proxy {

// The check of one endpoint: every interval a fresh connection sends
// `GET path` and reads the status line.
struct HealthProbe {
  enum class State : uint8_t { kFree, kIdle, kConnecting, kSending, kReceiving };
  State state = State::kFree;
  uint32_t gen = 0;  // bumped when a check ends: late completions are ignored
  int fd = -1;
  bool wanted = false;  // still in the current snapshot (reconciliation)
  std::string key;      // service|address|path: what it checks
  std::shared_ptr<policy::EndpointHealth> health;
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  std::string request;
  config::HealthCheckConfig params;
  uint32_t ok_streak = 0, fail_streak = 0;
  uint32_t got = 0;
  char buf[128];
  core::Timer timer;  // the interval while idle, the timeout while checking
};

// The core that checks `service`'s endpoints: the same on every core and
// after every reload.
uint32_t HealthOwnerCore(std::string_view service, uint32_t cores) noexcept;

class HealthChecker {
 public:
  // `op`: the tag of the probes' operations in user_data; `timer_kind`:
  // their timers' kind, both the Worker's (it dispatches them back here).
  HealthChecker(const CoreContext& core, uint8_t op, uint8_t timer_kind) noexcept
      : core_(core), op_(op), timer_kind_(timer_kind) {}
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // Starts the checks of the endpoints whose service this core owns in `s`
  // (the first one soon, spread over its interval), and stops those no
  // longer there (their verdict no longer keeps an endpoint out).
  void Reconcile(const config::Snapshot& s);
  // A completion for probe `i` with generation `gen` (user_data's 24 bits)
  // is the probe's current check (else it is stale: ignore it).
  bool Current(uint32_t i, uint32_t gen) const noexcept;
  // The probe's operation completed: connect, send, then receive.
  void OnCqe(uint32_t i, int res);
  // The probe's timer: the next check, or the running one's timeout.
  void OnTimer(uint32_t i);

  // For tests and the admin view: the probes' slots (kFree ones unused).
  size_t size() const noexcept { return probes_.size(); }
  const HealthProbe& probe(uint32_t i) const noexcept { return *probes_[i]; }

 private:
  void Start(uint32_t i);
  void Finish(uint32_t i, bool ok);
  void Retire(uint32_t i);
  // The live probe checking `key` (nullptr: none).
  HealthProbe* Find(std::string_view key) noexcept;
  // A free slot (or a new one) set up to check `ep` of `cl` under `key`,
  // its first check armed.
  HealthProbe* Open(std::string key, const config::Cluster& cl, const config::Endpoint& ep);

  const CoreContext& core_;
  uint8_t op_;
  uint8_t timer_kind_;
  std::vector<std::unique_ptr<HealthProbe>> probes_;  // stable addresses: their timers are linked
};

}  // namespace hms::proxy
