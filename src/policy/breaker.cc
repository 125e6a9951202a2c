#include "hms/policy/breaker.h"

#include <algorithm>

#include "hms/common/check.h"

namespace hms::policy {

Breaker::Breaker(BreakerParams params) noexcept
    : word_(Pack(BreakerState::kClosed, 0)),
      threshold_(std::max(params.failures, 1u)),
      open_for_ns_(params.open_for_ns) {
  HMS_CHECK(params.open_for_ns > 0);
}

void Breaker::Reconfigure(BreakerParams params) noexcept {
  HMS_CHECK(params.open_for_ns > 0);
  threshold_.store(std::max(params.failures, 1u), std::memory_order_relaxed);
  open_for_ns_.store(params.open_for_ns, std::memory_order_relaxed);
}

BreakerParams Breaker::params() const noexcept {
  return BreakerParams{threshold_.load(std::memory_order_relaxed),
                       open_for_ns_.load(std::memory_order_relaxed)};
}

bool Breaker::Open(uint64_t expected, core::Instant now) noexcept {
  // The opening time, not the probe's: Admit adds `open_for` as it is then.
  if (!word_.compare_exchange_strong(expected, Pack(BreakerState::kOpen, now),
                                     std::memory_order_acq_rel)) {
    return false;
  }
  failures_.store(0, std::memory_order_relaxed);
  opened_total_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

BreakerAdmission Breaker::Admit(core::Instant now) noexcept {
  uint64_t w = word_.load(std::memory_order_acquire);
  for (;;) {
    switch (StateOf(w)) {
      case BreakerState::kClosed:
        return {true, false};
      case BreakerState::kOpen:
        if (now < PayloadOf(w) + open_for_ns_.load(std::memory_order_relaxed)) {
          return {false, false};
        }
        break;
      case BreakerState::kHalfOpen:
        // A probe is out; replace it only if it never came back.
        if (now < PayloadOf(w) + open_for_ns_.load(std::memory_order_relaxed)) {
          return {false, false};
        }
        break;
    }
    // The one caller whose swap lands is the probe; the others see half-open.
    if (word_.compare_exchange_weak(w, Pack(BreakerState::kHalfOpen, now),
                                    std::memory_order_acq_rel)) {
      // A lost probe's replacement stays half-open: not a transition.
      if (StateOf(w) == BreakerState::kOpen) {
        half_opened_total_.fetch_add(1, std::memory_order_relaxed);
      }
      return {true, true};
    }
  }
}

void Breaker::OnSuccess(bool is_probe) noexcept {
  uint64_t w = word_.load(std::memory_order_acquire);
  if (is_probe) {
    if (StateOf(w) != BreakerState::kHalfOpen) return;  // a replaced probe's late answer
    // Closing starts a new closed epoch; the count of closings lives in the
    // opened total's place in the payload.
    const uint64_t epoch = opened_total_.load(std::memory_order_relaxed);
    if (word_.compare_exchange_strong(w, Pack(BreakerState::kClosed, epoch),
                                      std::memory_order_acq_rel)) {
      failures_.store(0, std::memory_order_relaxed);
      closed_total_.fetch_add(1, std::memory_order_relaxed);
    }
    return;
  }
  if (StateOf(w) != BreakerState::kClosed) return;
  // Read first: a steady run of successes leaves the shared line unwritten.
  if (failures_.load(std::memory_order_relaxed) != 0) {
    failures_.store(0, std::memory_order_relaxed);
  }
}

void Breaker::ReleaseProbe(core::Instant now) noexcept {
  uint64_t w = word_.load(std::memory_order_acquire);
  if (StateOf(w) != BreakerState::kHalfOpen) return;  // decided meanwhile
  // Open "one open_for ago": the next Admit is the probe. Not counted as an
  // opening (opened_total): nothing failed. Only a clock younger than
  // open_for (a fresh boot) makes the next probe wait until open_for.
  const uint64_t open_for = open_for_ns_.load(std::memory_order_relaxed);
  const uint64_t since = now >= open_for ? now - open_for : 0;
  word_.compare_exchange_strong(w, Pack(BreakerState::kOpen, since), std::memory_order_acq_rel);
}

void Breaker::OnFailure(core::Instant now, bool is_probe) noexcept {
  uint64_t w = word_.load(std::memory_order_acquire);
  if (is_probe) {
    if (StateOf(w) == BreakerState::kHalfOpen) Open(w, now);
    return;
  }
  if (StateOf(w) != BreakerState::kClosed) return;
  const uint32_t n = failures_.fetch_add(1, std::memory_order_relaxed) + 1;
  // `w` is the closed word read before counting: if the breaker has opened
  // and closed since, the swap fails and this stale count opens nothing.
  if (n >= threshold_.load(std::memory_order_relaxed)) Open(w, now);
}

BreakerStatus Breaker::Status(core::Instant now) const noexcept {
  const uint64_t w = word_.load(std::memory_order_acquire);
  BreakerStatus s;
  s.state = StateOf(w);
  s.consecutive_failures = failures_.load(std::memory_order_relaxed);
  s.opened_total = opened_total_.load(std::memory_order_relaxed);
  s.half_opened_total = half_opened_total_.load(std::memory_order_relaxed);
  s.closed_total = closed_total_.load(std::memory_order_relaxed);
  if (s.state == BreakerState::kOpen) {
    const uint64_t due = PayloadOf(w) + open_for_ns_.load(std::memory_order_relaxed);
    if (due > now) s.next_probe_in_ns = due - now;
  }
  return s;
}

}  // namespace hms::policy
