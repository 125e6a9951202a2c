#include "hms/policy/retry_budget.h"

#include <algorithm>

#include "hms/common/check.h"

namespace hms::policy {
namespace {

constexpr uint64_t kNsPerSec = 1'000'000'000ull;

uint64_t SecondOf(core::Instant now) noexcept { return now / kNsPerSec; }

}  // namespace

RetryBudget::RetryBudget(uint32_t cores, RetryBudgetParams params)
    : cores_(cores), params_(params), requests_(std::make_unique<CoreCounts[]>(cores)) {
  HMS_CHECK(cores > 0);
  HMS_CHECK(params.window_s >= 1 && params.window_s <= kMaxWindow);
  for (uint32_t c = 0; c < cores; ++c) {
    for (auto& s : requests_[c].seconds) s.store(0, std::memory_order_relaxed);
  }
  for (auto& s : retries_) s.store(0, std::memory_order_relaxed);
}

RetryBudget::~RetryBudget() = default;

uint64_t RetryBudget::SumWindow(const std::atomic<uint64_t>* ring, uint64_t sec) const noexcept {
  uint64_t total = 0;
  for (uint32_t i = 0; i < params_.window_s; ++i) {
    const uint64_t w = ring[i].load(std::memory_order_relaxed);
    const uint64_t s = w >> 32;
    // A slot belongs to the window when its second is one of the last window_s.
    if (s <= sec && sec - s < params_.window_s) total += w & 0xffffffffu;
  }
  return total;
}

uint64_t RetryBudget::RequestsInWindow(core::Instant now) const noexcept {
  const uint64_t sec = SecondOf(now);
  uint64_t total = 0;
  for (uint32_t c = 0; c < cores_; ++c) total += SumWindow(requests_[c].seconds, sec);
  return total;
}

uint64_t RetryBudget::RetriesInWindow(core::Instant now) const noexcept {
  return SumWindow(retries_, SecondOf(now));
}

CoreRetryBudget::CoreRetryBudget(RetryBudget* budget, uint32_t core) noexcept : budget_(budget) {
  HMS_CHECK(core < budget->cores_);
  mine_ = budget->requests_[core].seconds;
}

void CoreRetryBudget::OnRequest(core::Instant now) noexcept {
  const uint64_t sec = SecondOf(now);
  std::atomic<uint64_t>& slot = mine_[sec % budget_->params_.window_s];
  const uint64_t w = slot.load(std::memory_order_relaxed);
  // Single writer: a plain store, never a locked instruction. A count that
  // would overflow 32 bits (4 billion requests in a second) saturates.
  if ((w >> 32) != sec) {
    slot.store(RetryBudget::Word(sec, 1), std::memory_order_relaxed);
  } else if ((w & 0xffffffffu) != 0xffffffffu) {
    slot.store(w + 1, std::memory_order_relaxed);
  }
}

bool CoreRetryBudget::TryRetry(core::Instant now) noexcept {
  RetryBudget& b = *budget_;
  const uint64_t sec = SecondOf(now);
  const uint32_t window = b.params_.window_s;
  const uint64_t requests = b.RequestsInWindow(now);
  std::atomic<uint64_t>& slot = b.retries_[sec % window];
  uint64_t w = slot.load(std::memory_order_relaxed);
  for (;;) {
    const uint64_t this_sec = (w >> 32) == sec ? (w & 0xffffffffu) : 0;
    // Retries of the earlier seconds of the window; only this second's slot
    // can still move, and the swap below re-checks it.
    uint64_t earlier = 0;
    for (uint32_t i = 0; i < window; ++i) {
      if (i == sec % window) continue;
      const uint64_t o = b.retries_[i].load(std::memory_order_relaxed);
      const uint64_t s = o >> 32;
      if (s < sec && sec - s < window) earlier += o & 0xffffffffu;
    }
    const bool in_ratio = (earlier + this_sec + 1) * 100 <= requests * b.params_.ratio_percent;
    const bool in_floor = this_sec < b.params_.min_per_sec;
    if (!in_ratio && !in_floor) {
      b.refused_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    if (slot.compare_exchange_weak(w, RetryBudget::Word(sec, this_sec + 1),
                                   std::memory_order_relaxed)) {
      return true;
    }
  }
}

}  // namespace hms::policy
