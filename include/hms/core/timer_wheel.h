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
      if (head->next == head) continue;
      // Detach the slot's list before firing anything: fire() may cancel or
      // re-arm any timer (closing a connection cancels its other timers, which
      // may sit next in this slot), so a plain walk could follow an unlinked node.
      Timer due;
      due.next = head->next;
      due.prev = head->prev;
      due.next->prev = &due;
      due.prev->next = &due;
      head->next = head->prev = head;
      while (due.next != &due) {
        Timer* t = due.next;
        Unlink(t);
        if (t->tick <= current_) {
          --armed_;
          fire(t);
        } else {
          LinkBefore(head, t);  // a later round
        }
      }
    }
  }

  // Milliseconds until the next tick boundary that may hold work; 0 while ticks
  // up to `now` still await Expire (its max_ticks bound); -1 if no timer is armed.
  int64_t MillisToNext(Instant now) const noexcept;
  size_t armed() const noexcept { return armed_; }

 private:
  uint64_t TickOf(Instant t) const noexcept { return (t - origin_) / (kTickMs * 1'000'000ull); }
  static void Unlink(Timer* t) noexcept;
  static void LinkBefore(Timer* head, Timer* t) noexcept {
    t->next = head;
    t->prev = head->prev;
    head->prev->next = t;
    head->prev = t;
  }

  std::vector<Timer> slots_;  // sentinel heads of circular lists
  Instant origin_;
  uint64_t current_ = 0;  // last tick processed
  size_t armed_ = 0;
};

}  // namespace hms::core
