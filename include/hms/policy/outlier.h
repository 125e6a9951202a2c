// Outlier ejection and active health state of one endpoint of a service
// (DESIGN §5 "per-endpoint outlier ejection inside a healthy service";
// docs/resilience.md).
//
// One object per (service, endpoint), made by the control thread (through
// PolicyRegistry, which keeps it across reloads) and shared by every core.
// Every attempt on the endpoint reports its outcome; `failures` consecutive
// failed attempts, counted over all cores, eject the endpoint: for
// `base_ejection` the first time, doubling with each ejection in a row up to
// `max_ejection`. An ejected endpoint is skipped when a core picks one (unless
// every endpoint of the service is ejected: then the service's breaker
// decides). When the ejection ends the endpoint serves again and needs
// `failures` new failures to be ejected again; a success resets the doubling.
//
// The ejection deadline is one word written on ejection only, so the check a
// core makes when it picks an endpoint is one load of a line nobody writes
// while things go well; a success writes nothing unless failures were counted.
#pragma once

#include <atomic>
#include <cstdint>

#include "hms/core/clock.h"

namespace hms::policy {

struct OutlierParams {
  uint32_t failures = 5;                        // consecutive failed attempts that eject (>= 1)
  uint64_t base_ejection_ns = 1'000'000'000ull; // first ejection
  uint64_t max_ejection_ns = 30'000'000'000ull; // longest ejection

  friend bool operator==(const OutlierParams&, const OutlierParams&) = default;
};

class EndpointHealth {
 public:
  explicit EndpointHealth(OutlierParams params) noexcept : params_(params) {}
  EndpointHealth(const EndpointHealth&) = delete;
  EndpointHealth& operator=(const EndpointHealth&) = delete;

  bool Ejected(core::Instant now) const noexcept {
    return ejected_until_.load(std::memory_order_relaxed) > now;
  }
  // Whether a core may pick the endpoint: not ejected, and not failing its
  // active health checks.
  bool Usable(core::Instant now) const noexcept {
    return !Ejected(now) && !check_failing_.load(std::memory_order_relaxed);
  }
  // Set by the one core that runs the endpoint's active health checks.
  void SetCheckFailing(bool failing) noexcept {
    if (check_failing_.load(std::memory_order_relaxed) != failing) {
      check_failing_.store(failing, std::memory_order_relaxed);
    }
  }
  bool check_failing() const noexcept { return check_failing_.load(std::memory_order_relaxed); }
  void OnSuccess() noexcept;
  // True when this failure ejected the endpoint.
  bool OnFailure(core::Instant now) noexcept;

  const OutlierParams& params() const noexcept { return params_; }
  // For /metrics and the admin API.
  core::Instant ejected_until() const noexcept { return ejected_until_.load(std::memory_order_relaxed); }
  uint64_t ejections_total() const noexcept { return ejections_total_.load(std::memory_order_relaxed); }

 private:
  const OutlierParams params_;
  alignas(64) std::atomic<core::Instant> ejected_until_{0};
  std::atomic<bool> check_failing_{false};
  std::atomic<uint32_t> consecutive_{0};
  std::atomic<uint32_t> streak_{0};  // ejections in a row without a success in between
  std::atomic<uint64_t> ejections_total_{0};
};

}  // namespace hms::policy
