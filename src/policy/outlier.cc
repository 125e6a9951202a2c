#include "hms/policy/outlier.h"

#include <algorithm>

namespace hms::policy {

void EndpointHealth::OnSuccess() noexcept {
  if (consecutive_.load(std::memory_order_relaxed) != 0) consecutive_.store(0, std::memory_order_relaxed);
  if (streak_.load(std::memory_order_relaxed) != 0) streak_.store(0, std::memory_order_relaxed);
}

bool EndpointHealth::OnFailure(core::Instant now) noexcept {
  if (Ejected(now)) return false;  // attempts that were already out when it was ejected
  uint32_t n = consecutive_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (n < params_.failures) return false;
  // Exactly one failure takes the count back to zero and ejects; racing
  // failures on other cores find the count below the threshold again.
  if (!consecutive_.compare_exchange_strong(n, 0, std::memory_order_relaxed)) return false;
  if (Ejected(now)) return false;  // stragglers of the ejection that just happened
  uint32_t streak = streak_.fetch_add(1, std::memory_order_relaxed);
  uint64_t d = params_.base_ejection_ns << std::min<uint32_t>(streak, 30);
  d = std::min(d, params_.max_ejection_ns);
  ejected_until_.store(now + static_cast<core::Instant>(d), std::memory_order_relaxed);
  ejections_total_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

}  // namespace hms::policy
