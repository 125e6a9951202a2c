// The gateway's control loop (docs/engine.md, "Reloads"): it decides when a
// new snapshot is compiled and published, and when the process drains.
//
//  - Store events are coalesced: the reload runs coalesce_ms (20) after the
//    first event of a burst; later events of the burst do not push it back,
//    so a stream of changes still reloads every coalesce_ms.
//  - A store whose directory was removed lost its watches: Rewatch() brings
//    them back with the directory, and the store is read again at once.
//  - A store that does not announce lease expiries (the file store) is
//    listed again when its first lease is due; a changed list reloads.
//  - Certificates, keys and JWKS files are looked at every key_poll_ms (1 s);
//    a change reloads (a file that fails to load keeps the old snapshot and
//    is tried again at its next change).
//  - Signals, read from a signalfd: SIGHUP reads the config file again and
//    reloads; SIGTERM and SIGINT end the loop (the caller drains).
//  - A reload that fails keeps the last good snapshot serving, and
//    ServedConfig says why (/healthz "config": "stale: ...").
//
// Time comes from the clock it is given, so tests drive it with a fake one:
// Step() is one pass of decisions, Run() waits (poll) and steps. Control
// thread only; it blocks (in Run's poll) and allocates.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "hms/control/served_config.h"
#include "hms/control/store.h"
#include "hms/core/clock.h"

namespace hms::control {

using Clock = std::function<core::Instant()>;

// What the loop asks of the gateway. Only `compile` and `publish` are
// required; an empty hook is skipped.
struct ReloaderHooks {
  // Compiles a snapshot from the current config and the store.
  std::function<Compiled()> compile;
  // Hands a snapshot to the cores (they take their own references).
  std::function<void(config::Snapshot*)> publish;
  // SIGHUP: reads the config file again (a file that fails keeps the
  // running config) and reopens the access log; a reload follows.
  std::function<void()> reload_config;
  // A certificate, key or JWKS file changed since the last compile.
  std::function<bool()> keys_changed;
  // A token named a key the keys lack, and the key file may be read again.
  std::function<bool(int64_t now_s)> wants_key_reload;
  // The store's list differs from what the last compile read.
  std::function<bool()> store_differs;
  // Every pass: hands the cores' access-log lines to the file.
  std::function<void()> flush;
  // Before every wait: the gateway's own periodic work (a sidecar's lease
  // upkeep; the access log, whose lines want flushing every 20 ms while the
  // config has one); returns the ms until it wants a pass again.
  std::function<int64_t(core::Instant now)> tick;
  std::function<void(const std::string&)> log;
};

struct ReloaderOptions {
  uint64_t coalesce_ms = 20;
  uint64_t key_poll_ms = 1000;
  // The longest wait: at least once a second to notice the store coming
  // and going.
  int64_t max_wait_ms = 1000;
};

class Reloader {
 public:
  // `store` and `served` outlive the reloader. The first key check is due
  // key_poll_ms after construction.
  Reloader(Store* store, ServedConfig* served, ReloaderHooks hooks, ReloaderOptions options,
           Clock clock = core::Now);

  // Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (and every
  // thread it starts afterwards), ignores SIGPIPE, and returns a signalfd
  // that reads the blocked ones (-errno on failure).
  static int BlockSignals();

  // Compiles and publishes now. False when nothing was published: the last
  // good snapshot serves, and `served` says why.
  bool Reload();

  // How long the next wait may last (ms, >= 0). Runs the tick hook.
  int64_t WaitMs();
  // One pass after a wait: `store_readable` when the store's WatchFd polled
  // readable, `signals` the signal numbers read since. False once a stop
  // signal came (signals after it in the same batch are still handled).
  bool Step(bool store_readable, const std::vector<int>& signals);

  // Waits and steps until SIGTERM or SIGINT (or poll fails).
  void Run(int signal_fd);

  bool reload_pending() const noexcept { return reload_pending_; }

 private:
  void Log(const std::string& line) const {
    if (hooks_.log) hooks_.log(line);
  }
  void NoteStoreHealth();
  void CheckKeys(core::Instant now);
  // Marks a reload due at `at` unless one is already pending.
  void Schedule(core::Instant at);

  Store* store_;
  ServedConfig* served_;
  ReloaderHooks hooks_;
  ReloaderOptions options_;
  Clock clock_;
  bool reload_pending_ = false;
  core::Instant reload_at_ = 0;
  core::Instant next_key_check_ = 0;
  // When the store's first lease is due (UINT64_MAX: none), from WaitMs.
  core::Instant expiry_check_ = UINT64_MAX;
  bool store_healthy_ = true;
};

}  // namespace hms::control
