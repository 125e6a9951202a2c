// A sidecar's own endpoint in the store (DESIGN §2, docs/sidecar.md).
//
// When the sidecar starts it registers its inbound address as an endpoint of
// its service under a lease of `ttl_s` seconds, renews the lease every
// ttl_s / 3, registers again when the lease is lost (the store was away
// longer than the TTL, or the service was registered after the sidecar
// started), and revokes it on shutdown, before draining. A sidecar killed
// with SIGKILL stops renewing: its entry leaves the store within the TTL.
//
// Runs on the gateway's control thread, which owns the Store; Tick() makes at
// most one blocking store call.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "hms/control/store.h"

namespace hms::control {

class SelfRegistration {
 public:
  using Clock = std::chrono::steady_clock;
  using LogFn = std::function<void(const std::string&)>;

  SelfRegistration(Store* store, std::string service, std::string address, int64_t ttl_s,
                   LogFn log);
  // Does what is due at `now` (register, renew); returns the milliseconds
  // until the next thing is due.
  int64_t Tick(Clock::time_point now);
  // Revokes the lease: the endpoint leaves the store at once.
  void Withdraw();
  bool registered() const { return lease_ != 0; }
  const std::string& address() const { return address_; }

 private:
  Store* store_;
  std::string service_, address_;
  int64_t ttl_s_;
  LogFn log_;
  int64_t lease_ = 0;
  Clock::time_point due_{};    // next register attempt, or next renewal
  std::string last_error_;     // logged once until it changes
};

}  // namespace hms::control
