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
  // Round the deadline itself up to a tick boundary, so a timer never fires
  // early: counting whole ticks from the start of `now`'s tick would fire up to
  // one tick before now + after_ms. At least one tick after the current.
  constexpr uint64_t kTickNs = kTickMs * 1'000'000ull;
  uint64_t at = (now - origin_ + after_ms * 1'000'000ull + kTickNs - 1) / kTickNs;
  if (at <= TickOf(now)) at = TickOf(now) + 1;
  if (at <= current_) at = current_ + 1;
  t->tick = at;
  LinkBefore(&slots_[at % kSlots], t);
  ++armed_;
}

void TimerWheel::Cancel(Timer* t) noexcept {
  if (!t->armed()) return;
  Unlink(t);
  --armed_;
}

int64_t TimerWheel::MillisToNext(Instant now) const noexcept {
  if (armed_ == 0) return -1;
  // Expire stopped at its max_ticks bound with ticks still due: do not sleep.
  if (current_ < TickOf(now)) return 0;
  uint64_t next_tick_ns = (TickOf(now) + 1) * kTickMs * 1'000'000ull + origin_;
  return static_cast<int64_t>((next_tick_ns - now + 999'999) / 1'000'000);
}

}  // namespace hms::core
