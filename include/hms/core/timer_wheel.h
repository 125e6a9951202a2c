// Per-core hashed timer wheel for header, idle and request timeouts.
//
// Owned by one core; touched only by its thread. Timers are intrusive nodes
// embedded in connection objects, so arming, re-arming and cancelling never
// allocate. Resolution is one tick (kTickMs); a deadline further out than the
// wheel's span waits extra rounds. Expire() runs a bounded number of ticks per
// call, so one loop pass never spends unbounded time on timers.
#pragma once

#include <cstdint>
#include <vector>

#include "hms/core/clock.h"

namespace hms::core {

struct Timer {
  Timer* prev = nullptr;
  Timer* next = nullptr;
  uint64_t tick = 0;   // absolute tick at which it fires
  uint32_t owner = 0;  // what to call back: the owner's slot
  uint8_t kind = 0;    // and which kind of owner (the caller's enum)
  bool armed() const noexcept { return prev != nullptr; }
};

class TimerWheel {
 public:
  static constexpr uint64_t kTickMs = 5;
  static constexpr uint32_t kSlots = 4096;  // 20.48 s per round

  explicit TimerWheel(Instant now);

  // Arms (or re-arms) `t` to fire `after_ms` from `now` (rounded up to a tick).
  void Arm(Timer* t, Instant now, uint64_t after_ms) noexcept;
  void Cancel(Timer* t) noexcept;

  // Calls fire(Timer*) for every timer due at `now`, at most `max_ticks` ticks
  // of catch-up per call. A fired timer is disarmed before the call.
  template <typename F>
  void Expire(Instant now, uint32_t max_ticks, F&& fire) {
    uint64_t target = TickOf(now);
    for (uint32_t n = 0; current_ < target && n < max_ticks; ++n) {
      ++current_;
      Timer* head = &slots_[current_ % kSlots];
      Timer* t = head->next;
      while (t != head) {
        Timer* next = t->next;
        if (t->tick <= current_) {
          Unlink(t);
          --armed_;
          fire(t);
        }
        t = next;
      }
    }
  }

  // Milliseconds until the next tick boundary that may hold work; -1 if no timer
  // is armed.
  int64_t MillisToNext(Instant now) const noexcept;
  size_t armed() const noexcept { return armed_; }

 private:
  uint64_t TickOf(Instant t) const noexcept { return (t - origin_) / (kTickMs * 1'000'000ull); }
  static void Unlink(Timer* t) noexcept;

  std::vector<Timer> slots_;  // sentinel heads of circular lists
  Instant origin_;
  uint64_t current_ = 0;  // last tick processed
  size_t armed_ = 0;
};

}  // namespace hms::core
