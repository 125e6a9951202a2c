// The data-plane engine: one pinned thread per configured core, each running a
// Worker over its own io_uring (DESIGN §4).
//
// Owned by the control thread (main), which binds the listeners, starts the
// cores, publishes snapshots and asks for a drain. Every public call here is
// for the control thread; cores are reached only through their mailboxes.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "hms/common/result.h"
#include "hms/config/config.h"
#include "hms/config/snapshot.h"
#include "hms/obs/log_ring.h"
#include "hms/obs/metrics.h"
#include "hms/obs/span.h"

namespace hms::proxy {

class Worker;

// Why a core's Redis link last failed (obs::CoreMetrics::fleet_redis_failure)
// as text, "" for none: for /healthz and /status (allocates; not a core's).
std::string RedisFailureText(uint64_t code);

// How many cores the engine runs for `config` (`cores`, or one per CPU the
// process may run on).
uint32_t CoresFor(const config::GatewayConfig& config);

class Engine {
 public:
  Engine();
  ~Engine();

  // Opens one SO_REUSEPORT listening socket per listener per core; port 0
  // picks a free port, shared by every core. Call before Start. Each address
  // is claimed first (src/proxy/listen_claim.h): when another process
  // listens there, nothing is bound and the error names the address.
  //
  // `handed_over` (an upgrade, control/handover.h): per listener, the
  // SO_REUSEPORT group members received from the gateway this process
  // replaces. Each is kept (closing one would drop its accept queue) and
  // spread over the cores (a core may accept from several); cores beyond
  // the group's size join it with sockets of their own. The engine owns them
  // from here. A received socket that does not listen where the config says
  // is an error: a changed listener needs a restart.
  Result<bool> Bind(const config::GatewayConfig& config,
                    std::vector<std::vector<int>>* handed_over = nullptr);
  // "127.0.0.1:PORT" per listener, after Bind; a sidecar's egress listener
  // comes last.
  const std::vector<std::string>& bound_addresses() const { return bound_; }

  // Starts the cores with `snapshot` (the engine takes one reference per core).
  // Returns once every core has set its ring up, or the first core's error.
  // Without Bind the cores accept nothing: connections reach them only
  // through Adopt.
  Result<bool> Start(const config::GatewayConfig& config, config::Snapshot* snapshot);

  // Serves `fd`, a connected stream socket (one end of a socketpair), on
  // core `core` as if that core had accepted it on listener `listener` (an
  // index into the config's listeners; a sidecar's egress listener comes
  // last). The engine owns `fd` from here. This is how unit tests and the
  // engine_mem fuzz target feed whole connections to a core without a port
  // (docs/engine.md, "Driving a core without sockets"). After Start.
  void Adopt(uint32_t core, int fd, uint16_t listener);

  // Hands a new snapshot to every core (one reference each) without locks.
  void Publish(config::Snapshot* snapshot);

  // Stops accepting, lets in-flight requests finish; cores exit once idle or
  // after drain_timeout. Join() waits for them. `handed_over`: the listening
  // sockets serve another process now, so the cores cancel their accepts
  // and close their copies instead of shutting the sockets down, and idle
  // keep-alive connections get a moment to send a request (answered with
  // Connection: close) before they are closed.
  void Drain(bool handed_over = false);
  void Join();
  // Drain() and Join() unless the cores were joined already or never
  // started; the destructor calls it, so a start-up that fails after Start
  // stops its cores before the process exits.
  void Stop();

  // Every listening socket, by listener index (each group's members), for a
  // handover; valid from Bind until the drain.
  const std::vector<std::vector<int>>& listening_sockets() const { return groups_; }

  uint32_t cores() const;
  const obs::CoreMetrics& metrics(uint32_t core) const;
  std::vector<const obs::CoreMetrics*> all_metrics() const;
  // Each core's access-log ring (null entries without an access_log).
  std::vector<obs::LogRing*> access_logs();
  // Each core's span ring (null entries unless mesh-config's tracing exports spans).
  std::vector<obs::SpanRing*> span_rings();

 private:
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::vector<int>> listen_fds_;  // [core][socket]
  std::vector<std::vector<uint16_t>> listen_of_;  // [core][socket] → listener index
  std::vector<std::vector<int>> groups_;      // [listener][member]
  std::vector<std::string> bound_;
  bool stopped_ = false;  // Join() returned: no core runs
};

}  // namespace hms::proxy
