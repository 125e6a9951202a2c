#include "hms/control/self_registration.h"

#include <algorithm>
#include <utility>

namespace hms::control {
namespace {

// Between failed attempts to register (the store away, or the service not
// registered yet).
constexpr auto kRetry = std::chrono::seconds(1);

}  // namespace

SelfRegistration::SelfRegistration(Store* store, std::string service, std::string address,
                                   int64_t ttl_s, LogFn log)
    : store_(store),
      service_(std::move(service)),
      address_(std::move(address)),
      ttl_s_(ttl_s),
      log_(std::move(log)) {}

int64_t SelfRegistration::Tick(Clock::time_point now) {
  if (now >= due_) {
    // Renew three times per TTL: one lost renewal never expires the lease.
    const auto renew_every = std::chrono::milliseconds(std::max<int64_t>(ttl_s_ * 1000 / 3, 100));
    if (lease_ != 0) {
      Result<int64_t> ttl = store_->KeepAlive(lease_);
      if (ttl.ok()) {
        due_ = now + renew_every;
      } else {
        log_("lease of " + address_ + " in " + service_ + " lost (" + ttl.error().message +
             "); registering again");
        lease_ = 0;
        due_ = now;
      }
    }
    if (lease_ == 0) {
      Result<int64_t> lease = store_->AddEndpointWithLease(service_, address_, ttl_s_);
      if (lease.ok()) {
        lease_ = lease.value();
        due_ = now + renew_every;
        last_error_.clear();
        log_("registered " + address_ + " as an endpoint of " + service_ + " (lease TTL " +
             std::to_string(ttl_s_) + " s)");
      } else {
        if (lease.error().message != last_error_) {
          last_error_ = lease.error().message;
          log_("cannot register " + address_ + " in " + service_ + " yet, retrying every second: " +
               last_error_);
        }
        due_ = now + kRetry;
      }
    }
  }
  return std::max<int64_t>(
      0, std::chrono::duration_cast<std::chrono::milliseconds>(due_ - now).count());
}

void SelfRegistration::Withdraw() {
  if (lease_ == 0) return;
  Result<bool> ok = store_->RevokeLease(lease_);
  lease_ = 0;
  if (ok.ok()) {
    log_("deregistered " + address_ + " from " + service_);
  } else {
    log_("could not deregister " + address_ + " from " + service_ + " (its lease expires on its own): " +
         ok.error().message);
  }
}

}  // namespace hms::control
