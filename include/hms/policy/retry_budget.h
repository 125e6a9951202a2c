// Retry budget of one service (DESIGN §5 retries; docs/resilience.md): stops
// retry storms. A retry is allowed while the retries of the last `window`
// stay under `ratio` of the requests of the same window, and in any case up
// to `min_per_sec` retries per second, so that a quiet service can still
// retry. Defaults: 20% over 10 s, at least 3 per second.
//
// Made by the control thread (through PolicyRegistry, which keeps it across
// reloads), shared by the cores. Each core counts its requests in its own
// cache line (one store, no read-modify-write of shared memory); a retry —
// the rare event — sums every core's counts and takes its place in the shared
// retry counter with one compare-and-swap, so the retry count never exceeds
// the budget. The window slides in whole seconds: it covers the current
// second and the `window_s - 1` before it. No call locks, blocks or
// allocates.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "hms/core/clock.h"

namespace hms::policy {

struct RetryBudgetParams {
  uint32_t ratio_percent = 20;  // retries ≤ this % of the window's requests
  uint32_t min_per_sec = 3;     // always allowed per second
  uint32_t window_s = 10;       // 1..kMaxWindow

  friend bool operator==(const RetryBudgetParams&, const RetryBudgetParams&) = default;
};

class RetryBudget {
 public:
  static constexpr uint32_t kMaxWindow = 60;

  // `cores`: how many CoreRetryBudget views may exist (indices 0..cores-1).
  RetryBudget(uint32_t cores, RetryBudgetParams params);
  RetryBudget(const RetryBudget&) = delete;
  RetryBudget& operator=(const RetryBudget&) = delete;
  ~RetryBudget();

  uint32_t cores() const noexcept { return cores_; }
  const RetryBudgetParams& params() const noexcept { return params_; }

  // Requests and retries counted in the window ending at `now` (any thread).
  uint64_t RequestsInWindow(core::Instant now) const noexcept;
  uint64_t RetriesInWindow(core::Instant now) const noexcept;
  uint64_t refused_total() const noexcept { return refused_.load(std::memory_order_relaxed); }

 private:
  friend class CoreRetryBudget;

  // A second's count: the second (upper 32 bits) and the count (lower 32),
  // one word so that a reader never pairs a count with the wrong second.
  static constexpr uint64_t Word(uint64_t sec, uint64_t n) noexcept { return (sec << 32) | n; }
  struct alignas(64) CoreCounts {
    std::atomic<uint64_t> seconds[kMaxWindow];
  };

  uint64_t SumWindow(const std::atomic<uint64_t>* ring, uint64_t sec) const noexcept;

  uint32_t cores_;
  RetryBudgetParams params_;
  std::unique_ptr<CoreCounts[]> requests_;  // one block per core, written by its core only
  alignas(64) std::atomic<uint64_t> retries_[kMaxWindow];
  std::atomic<uint64_t> refused_{0};
};

// One core's handle on a service's budget; only that core's thread calls it.
class CoreRetryBudget {
 public:
  CoreRetryBudget() = default;
  CoreRetryBudget(RetryBudget* budget, uint32_t core) noexcept;

  // Counts one downstream request (not one attempt) at `now`.
  void OnRequest(core::Instant now) noexcept;
  // Whether one more attempt may be made at `now`; true counts it.
  [[nodiscard]] bool TryRetry(core::Instant now) noexcept;

 private:
  RetryBudget* budget_ = nullptr;
  std::atomic<uint64_t>* mine_ = nullptr;
};

}  // namespace hms::policy
