// A StoreClock a test moves by hand: lease renewals and expiries happen when
// the test advances it, not when the machine gets round to it. It starts at
// the real time, so a store on the real clock (another holder opened with
// OpenStore) agrees with it until the test moves it.
#pragma once

#include <atomic>
#include <cstdint>

#include "hms/control/store.h"

namespace hms::control {

class FakeStoreClock final : public StoreClock {
 public:
  FakeStoreClock() : now_ms_(SystemStoreClock().NowMs()) {}
  int64_t NowMs() const override { return now_ms_.load(std::memory_order_relaxed); }
  void Advance(int64_t ms) { now_ms_.fetch_add(ms, std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> now_ms_;
};

}  // namespace hms::control
