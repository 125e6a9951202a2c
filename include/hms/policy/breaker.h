// Circuit breaker of one service (DESIGN §3 `breaker`, §5; docs/resilience.md).
//
// One object per service, made by the control thread (through PolicyRegistry,
// which keeps it across reloads) and shared by every core; any core's thread
// may call any method. Closed → open after `failures` consecutive failed
// requests counted over all cores; open → half-open when `open_for` has
// passed since it opened, for exactly one probe request process-wide; the
// probe's success closes it for every core, its failure opens it again, and a
// probe whose outcome says nothing about the service (policy::Fault: the
// client left, the caller's deadline) gives the slot to the next request.
// What is a failure is decided by the caller, from policy/fault.h.
//
// The state and its time are one 64-bit word changed only by
// compare-and-swap, so exactly one core wins each transition; consecutive
// failures are one shared counter. While closed, Admit is one load of a word
// that is written only on transitions, and a success writes nothing unless
// failures had been counted. No call locks, blocks or allocates.
#pragma once

#include <atomic>
#include <cstdint>

#include "hms/core/clock.h"

namespace hms::policy {

struct BreakerParams {
  uint32_t failures = 3;                     // consecutive failed attempts that open it (>= 1)
  uint64_t open_for_ns = 30'000'000'000ull;  // open time before the probe (> 0)

  friend bool operator==(const BreakerParams&, const BreakerParams&) = default;
};

enum class BreakerState : uint8_t { kClosed = 0, kOpen = 1, kHalfOpen = 2 };

struct BreakerAdmission {
  bool allowed = false;   // false: answer 503 without touching the upstream
  bool is_probe = false;  // report this attempt's outcome with is_probe = true
};

// For /metrics and the admin API.
struct BreakerStatus {
  BreakerState state = BreakerState::kClosed;
  uint32_t consecutive_failures = 0;
  uint64_t next_probe_in_ns = 0;  // open: time until the probe may go; else 0
  uint64_t opened_total = 0;      // closed → open and half-open → open transitions
  uint64_t half_opened_total = 0;  // open → half-open (a probe went out)
  uint64_t closed_total = 0;       // half-open → closed (a probe succeeded)
};

class Breaker {
 public:
  explicit Breaker(BreakerParams params) noexcept;
  Breaker(const Breaker&) = delete;
  Breaker& operator=(const Breaker&) = delete;

  // Whether an attempt may go upstream at `now`. While open and `open_for`
  // has passed, exactly one caller gets {true, true}: the probe. While that
  // probe is out every caller is refused; a probe never reported (its
  // exchange vanished) is replaced by another after a further `open_for`.
  [[nodiscard]] BreakerAdmission Admit(core::Instant now) noexcept;

  // The outcome of an attempt that Admit allowed. A failure is one that
  // policy::CountsAgainstUpstream says is the upstream's. Outcomes of ordinary
  // attempts that finish while the breaker is open or half-open change
  // nothing: only the probe decides.
  void OnSuccess(bool is_probe) noexcept;
  void OnFailure(core::Instant now, bool is_probe) noexcept;
  // The probe ended with an outcome that is not counted either way: the
  // breaker goes back to open with the probe due at once, so the next
  // request probes instead of everyone waiting out another `open_for`.
  void ReleaseProbe(core::Instant now) noexcept;

  // New thresholds take effect at once; the state is kept. An open breaker
  // probes at its opening time plus the new `open_for` (at once if that has
  // passed). Control thread.
  void Reconfigure(BreakerParams params) noexcept;
  BreakerParams params() const noexcept;

  BreakerStatus Status(core::Instant now) const noexcept;

 private:
  // Word layout: state in the low 2 bits; the rest is a time (open: when it
  // opened, so that the probe's time follows a changed `open_for`; half-open:
  // when the probe went) or, when closed, the count of closings, so that a
  // stale compare-and-swap from before a close → open → close cycle fails.
  static constexpr uint64_t Pack(BreakerState s, uint64_t payload) noexcept {
    return (payload << 2) | static_cast<uint64_t>(s);
  }
  static constexpr BreakerState StateOf(uint64_t w) noexcept {
    return static_cast<BreakerState>(w & 3);
  }
  static constexpr uint64_t PayloadOf(uint64_t w) noexcept { return w >> 2; }

  bool Open(uint64_t expected, core::Instant now) noexcept;

  alignas(64) std::atomic<uint64_t> word_;
  std::atomic<uint32_t> threshold_;
  std::atomic<uint64_t> open_for_ns_;
  std::atomic<uint64_t> opened_total_{0};
  // Written on transitions only, like opened_total_.
  std::atomic<uint64_t> half_opened_total_{0};
  std::atomic<uint64_t> closed_total_{0};
  // Written on every failure and on the first success after failures.
  alignas(64) std::atomic<uint32_t> failures_{0};
};

}  // namespace hms::policy
