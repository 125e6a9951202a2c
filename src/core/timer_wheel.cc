#include "hms/core/timer_wheel.h"

namespace hms::core {

TimerWheel::TimerWheel(Instant now) : slots_(kSlots), origin_(now) {
  for (Timer& s : slots_) s.prev = s.next = &s;
}

void TimerWheel::Unlink(Timer* t) noexcept {
  t->prev->next = t->next;
  t->next->prev = t->prev;
  t->prev = t->next = nullptr;
}

void TimerWheel::Arm(Timer* t, Instant now, uint64_t after_ms) noexcept {
  if (t->armed()) {
    Unlink(t);
    --armed_;
  }
  // Round up so a timer never fires early; at least one tick after the current.
  uint64_t ticks = (after_ms + kTickMs - 1) / kTickMs;
  uint64_t at = TickOf(now) + (ticks == 0 ? 1 : ticks);
  if (at <= current_) at = current_ + 1;
  t->tick = at;
  Timer* head = &slots_[at % kSlots];
  t->next = head;
  t->prev = head->prev;
  head->prev->next = t;
  head->prev = t;
  ++armed_;
}

void TimerWheel::Cancel(Timer* t) noexcept {
  if (!t->armed()) return;
  Unlink(t);
  --armed_;
}

int64_t TimerWheel::MillisToNext(Instant now) const noexcept {
  if (armed_ == 0) return -1;
  uint64_t next_tick_ns = (TickOf(now) + 1) * kTickMs * 1'000'000ull + origin_;
  return static_cast<int64_t>((next_tick_ns - now + 999'999) / 1'000'000);
}

}  // namespace hms::core
