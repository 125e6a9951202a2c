#include "hms/control/reloader.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

namespace hms::control {

Reloader::Reloader(Store* store, ServedConfig* served, ReloaderHooks hooks, ReloaderOptions options,
                   Clock clock)
    : store_(store),
      served_(served),
      hooks_(std::move(hooks)),
      options_(options),
      clock_(std::move(clock)) {
  next_key_check_ = clock_() + core::Millis(options_.key_poll_ms);
}

int Reloader::BlockSignals() {
  // Every thread started from here on (the store's watch, the cores, the
  // admin API) inherits the mask, so none of them takes a signal meant for
  // the control loop.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  signal(SIGPIPE, SIG_IGN);
  int fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  return fd >= 0 ? fd : -errno;
}

bool Reloader::Reload() {
  Compiled c = hooks_.compile();
  if (!served_->Note(c)) return false;
  config::Snapshot* s = c.snapshot;
  hooks_.publish(s);       // one reference per core
  served_->SetCurrent(s);  // and the control thread's own
  Log("snapshot " + std::to_string(s->version) +
      " published: " + std::to_string(s->clusters.size()) + " services, " +
      std::to_string(s->routes.size()) + " routes");
  return true;
}

void Reloader::Schedule(core::Instant at) {
  if (reload_pending_) return;
  reload_pending_ = true;
  reload_at_ = at;
}

int64_t Reloader::WaitMs() {
  const core::Instant now = clock_();
  int64_t wait_ms = options_.max_wait_ms;
  if (reload_pending_) {
    wait_ms = reload_at_ > now ? static_cast<int64_t>((reload_at_ - now) / 1'000'000) : 0;
  }
  if (hooks_.tick) wait_ms = std::min(wait_ms, hooks_.tick(now));
  // A leased endpoint the store does not announce the expiry of (the file
  // store): look again when the first one is due.
  expiry_check_ = UINT64_MAX;
  if (int64_t ms = store_->NextExpiryMs(); ms >= 0) {
    expiry_check_ = now + core::Millis(static_cast<uint64_t>(ms) + 1);
    wait_ms = std::min(wait_ms, ms + 1);
  }
  return std::max<int64_t>(0, wait_ms);
}

void Reloader::NoteStoreHealth() {
  if (store_->healthy() == store_healthy_) return;
  store_healthy_ = !store_healthy_;
  if (store_healthy_) {
    Log("store " + store_->Uri() + " reachable again");
  } else {
    Log("store unreachable, serving the last good config: " + store_->last_error());
  }
}

void Reloader::CheckKeys(core::Instant now) {
  if (now < next_key_check_) return;
  next_key_check_ = now + core::Millis(options_.key_poll_ms);
  const int64_t now_s = static_cast<int64_t>(now / 1'000'000'000);
  if (hooks_.keys_changed && hooks_.keys_changed()) {
    Log("certificate, key or JWKS file changed: reloading");
    Reload();
  } else if (hooks_.wants_key_reload && hooks_.wants_key_reload(now_s)) {
    Log("a token named a kid the keys lack: reading the key file again");
    Reload();
  }
}

bool Reloader::Step(bool store_readable, const std::vector<int>& signals) {
  const core::Instant now = clock_();
  if (hooks_.flush) hooks_.flush();
  NoteStoreHealth();
  // A store whose directory was removed lost its watches; they come back
  // with the directory (and the store is read again then).
  if (store_->Rewatch() && !reload_pending_) {
    Log("store " + store_->Uri() + " is back: watching it again");
    Schedule(now);
  }
  if (store_readable && store_->DrainWatch()) Schedule(now + core::Millis(options_.coalesce_ms));
  if (!reload_pending_ && now >= expiry_check_ && hooks_.store_differs && hooks_.store_differs()) {
    Schedule(now);
  }
  CheckKeys(now);
  if (reload_pending_ && now >= reload_at_) {
    reload_pending_ = false;
    Reload();
  }
  bool go_on = true;
  for (int signo : signals) {
    if (signo == SIGHUP) {
      if (hooks_.reload_config) hooks_.reload_config();
      Reload();
    } else {
      go_on = false;
    }
  }
  return go_on;
}

void Reloader::Run(int signal_fd) {
  for (;;) {
    const int wait_ms = static_cast<int>(WaitMs());
    const int watch_fd = store_->WatchFd();
    pollfd fds[2] = {{signal_fd, POLLIN, 0}, {watch_fd, POLLIN, 0}};
    int n = poll(fds, watch_fd >= 0 ? 2 : 1, wait_ms);
    if (n < 0 && errno != EINTR) return;
    std::vector<int> signals;
    if (n > 0 && (fds[0].revents & POLLIN)) {
      signalfd_siginfo si;
      while (read(signal_fd, &si, sizeof si) == sizeof si) {
        signals.push_back(static_cast<int>(si.ssi_signo));
      }
    }
    const bool store_readable = n > 0 && watch_fd >= 0 && (fds[1].revents & POLLIN);
    if (!Step(store_readable, signals)) return;
  }
}

}  // namespace hms::control
