#include "hms/policy/rate_limit.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

#include "hms/common/check.h"

namespace hms::policy {
namespace {

constexpr uint64_t kNsPerSec = 1'000'000'000ull;
// Far enough that no clock reaches it, small enough that adding an interval
// never wraps.
constexpr uint64_t kMaxAhead = uint64_t{1} << 62;

uint32_t CeilSeconds(uint64_t ns) noexcept {
  return static_cast<uint32_t>(std::min<uint64_t>((ns + kNsPerSec - 1) / kNsPerSec, UINT32_MAX));
}

uint64_t Tolerance(uint64_t interval_ns, uint32_t burst) noexcept {
  const unsigned __int128 t = static_cast<unsigned __int128>(burst - 1) * interval_ns;
  return t > kMaxAhead ? kMaxAhead : static_cast<uint64_t>(t);
}

uint64_t Mix(uint64_t a, uint64_t b) noexcept {
  const unsigned __int128 p = static_cast<unsigned __int128>(a) * b;
  return static_cast<uint64_t>(p) ^ static_cast<uint64_t>(p >> 64);
}

// A bucket word carried from `from` to `to` at `now`: the tokens it holds stay
// (capped at the new burst); what is missing refills at the new rate.
uint64_t Convert(uint64_t tat, Limit from, Limit to, core::Instant now) noexcept {
  const uint64_t ahead = tat > now ? tat - now : 0;  // time until full, old limit
  // Missing tokens × new interval = new time until full:
  //   (to.burst - (from.burst - ahead / from.interval)) × to.interval
  const __int128 v = (static_cast<__int128>(to.burst) - from.burst) * to.interval_ns +
                     static_cast<__int128>(ahead) * to.interval_ns / from.interval_ns;
  if (v <= 0) return now;
  const __int128 cap = static_cast<__int128>(to.burst) * to.interval_ns;
  return now + static_cast<uint64_t>(std::min<__int128>({v, cap, kMaxAhead}));
}

}  // namespace

Limit Limit::PerSecondX1000(uint64_t rate_per_sec_x1000, uint32_t burst) noexcept {
  const uint64_t r = std::max<uint64_t>(rate_per_sec_x1000, 1);
  const uint64_t num = kNsPerSec * 1000;
  return Limit{std::max<uint64_t>((num + r - 1) / r, 1), std::max(burst, 1u)};
}

Limit Limit::Every(uint64_t count, uint64_t period_ns, uint32_t burst) noexcept {
  const uint64_t c = std::max<uint64_t>(count, 1);
  return Limit{std::max<uint64_t>((period_ns + c - 1) / c, 1), std::max(burst, 1u)};
}

uint64_t HashKey(std::string_view key, uint64_t seed) noexcept {
  constexpr uint64_t kM0 = 0xa0761d6478bd642full;
  constexpr uint64_t kM1 = 0xe7037ed1a0b428dbull;
  uint64_t h = seed ^ Mix(key.size() ^ kM0, kM1);
  const char* p = key.data();
  size_t n = key.size();
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = Mix(h ^ w ^ kM0, kM1);
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = Mix(h ^ w ^ kM1, kM0 ^ n);
  }
  h = Mix(h, kM1);
  return h < 2 ? h + 2 : h;
}

RateLimitState::RateLimitState(Limit limit, uint32_t key_capacity, uint64_t seed) : seed_(seed) {
  HMS_CHECK(limit.interval_ns > 0 && limit.burst > 0);
  interval_ns_.store(limit.interval_ns, std::memory_order_relaxed);
  burst_.store(limit.burst, std::memory_order_relaxed);
  if (key_capacity > 0) {
    capacity_ = RoundedCapacity(key_capacity);
    set_mask_ = capacity_ / kWays - 1;
    slots_ = std::make_unique<Slot[]>(capacity_);
  }
}

RateLimitState::~RateLimitState() = default;

uint32_t RateLimitState::RoundedCapacity(uint32_t key_capacity) noexcept {
  if (key_capacity == 0) return 0;
  return std::bit_ceil(std::clamp(key_capacity, kWays, 1u << 30));
}

uint64_t RateLimitState::ReadLimit(Limit* out) const noexcept {
  for (;;) {
    const uint64_t s1 = seq_.load(std::memory_order_acquire);
    out->interval_ns = interval_ns_.load(std::memory_order_relaxed);
    out->burst = burst_.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    const uint64_t s2 = seq_.load(std::memory_order_relaxed);
    if (s1 == s2 && (s1 & 1) == 0) return s1;
    __builtin_ia32_pause();  // a Reconfigure is between its two stores
  }
}

Limit RateLimitState::limit() const noexcept {
  Limit l;
  ReadLimit(&l);
  return l;
}

void RateLimitState::Reconfigure(Limit limit, core::Instant now) noexcept {
  HMS_CHECK(limit.interval_ns > 0 && limit.burst > 0);
  const Limit old = this->limit();
  if (old == limit) return;
  const uint64_t s = seq_.load(std::memory_order_relaxed);
  seq_.store(s + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  interval_ns_.store(limit.interval_ns, std::memory_order_relaxed);
  burst_.store(limit.burst, std::memory_order_relaxed);
  seq_.store(s + 2, std::memory_order_release);

  auto convert = [&](std::atomic<uint64_t>& tat) {
    uint64_t cur = tat.load(std::memory_order_relaxed);
    while (
        !tat.compare_exchange_weak(cur, Convert(cur, old, limit, now), std::memory_order_relaxed)) {
    }
  };
  convert(tat_);
  for (uint32_t i = 0; i < capacity_; ++i) {
    if (slots_[i].key.load(std::memory_order_relaxed) != 0) convert(slots_[i].tat);
  }
}

uint32_t RateLimitState::Available(core::Instant now) const noexcept {
  if (keyed()) return 0;
  Limit l;
  ReadLimit(&l);
  const uint64_t tat = tat_.load(std::memory_order_relaxed);
  const uint64_t ahead = tat > now ? tat - now : 0;
  const uint64_t tol = Tolerance(l.interval_ns, l.burst);
  if (ahead > tol) return 0;
  return static_cast<uint32_t>(std::min<uint64_t>((tol - ahead) / l.interval_ns + 1, l.burst));
}

CoreRateLimiter::CoreRateLimiter(RateLimitState* state) noexcept : state_(state) { Refresh(); }

void CoreRateLimiter::Refresh() noexcept {
  Limit l;
  seq_ = state_->ReadLimit(&l);
  interval_ns_ = l.interval_ns;
  burst_ = l.burst;
  tolerance_ns_ = Tolerance(l.interval_ns, l.burst);
  empty_until_ = 0;
}

RateDecision CoreRateLimiter::TakeFrom(std::atomic<uint64_t>& tat, core::Instant now,
                                       bool cache) noexcept {
  uint64_t cur = tat.load(std::memory_order_relaxed);
  for (;;) {
    const uint64_t base = std::max(cur, now);
    const uint64_t ahead = base - now;  // until full
    if (ahead > tolerance_ns_) {
      // Not even one token: the next is due when `ahead` falls to the tolerance.
      const uint64_t wait = ahead - tolerance_ns_;
      if (cache) {
        empty_until_ = now + wait;
        seen_tat_ = base;
      }
      return RateDecision{false, burst_, 0, CeilSeconds(ahead), std::max(CeilSeconds(wait), 1u)};
    }
    const uint64_t next = base + interval_ns_;
    if (tat.compare_exchange_weak(cur, next, std::memory_order_relaxed)) {
      const uint64_t left = (tolerance_ns_ - ahead) / interval_ns_;
      return RateDecision{true, burst_, static_cast<uint32_t>(std::min<uint64_t>(left, burst_ - 1)),
                          CeilSeconds(ahead + interval_ns_), 0};
    }
  }
}

RateDecision CoreRateLimiter::TryTake(core::Instant now) noexcept {
  if (state_->seq_.load(std::memory_order_acquire) != seq_) Refresh();
  if (now < empty_until_) {
    // The shared word said no token before empty_until_; only time adds
    // tokens (and a Reconfigure, caught above), so the answer is still no.
    return RateDecision{false, burst_, 0, CeilSeconds(seen_tat_ - now),
                        std::max(CeilSeconds(empty_until_ - now), 1u)};
  }
  return TakeFrom(state_->tat_, now, /*cache=*/true);
}

RateDecision CoreRateLimiter::TryTake(core::Instant now, std::string_view key) noexcept {
  if (!state_->keyed()) return TryTake(now);
  if (state_->seq_.load(std::memory_order_acquire) != seq_) Refresh();
  RateLimitState::Slot* slot = FindOrClaim(HashKey(key, state_->seed_), now);
  return TakeFrom(slot->tat, now, /*cache=*/false);
}

RateLimitState::Slot* CoreRateLimiter::FindOrClaim(uint64_t h, core::Instant now) noexcept {
  RateLimitState::Slot* set = &state_->slots_[(h & state_->set_mask_) * RateLimitState::kWays];
  for (;;) {
    RateLimitState::Slot* victim = nullptr;
    uint64_t victim_key = 0;
    uint64_t victim_used = UINT64_MAX;
    for (uint32_t i = 0; i < RateLimitState::kWays; ++i) {
      const uint64_t k = set[i].key.load();
      if (k == h) {
        if (set[i].last_used.load(std::memory_order_relaxed) < now) {
          set[i].last_used.store(now, std::memory_order_relaxed);
        }
        return &set[i];
      }
      // The first empty slot, else the least recently used one.
      const uint64_t used = k == 0 ? 0 : set[i].last_used.load(std::memory_order_relaxed);
      if (victim == nullptr || (victim_key != 0 && (k == 0 || used < victim_used))) {
        victim = &set[i];
        victim_key = k;
        victim_used = used;
      }
    }
    uint64_t old_tat = victim->tat.load(std::memory_order_relaxed);
    if (!victim->key.compare_exchange_strong(victim_key, h)) continue;  // another core won
    if (victim_key != 0) state_->evictions_.fetch_add(1, std::memory_order_relaxed);
    // A full bucket for the new key, unless a core that already found the key
    // took from it (then its take stands).
    victim->tat.compare_exchange_strong(old_tat, 0, std::memory_order_relaxed);
    victim->last_used.store(now, std::memory_order_relaxed);
    // Two cores may claim different slots for one new key at once. All key
    // operations are sequentially consistent, so at least one of them sees
    // the other: the lower slot stays, the higher one is emptied.
    for (uint32_t i = 0; i < RateLimitState::kWays; ++i) {
      RateLimitState::Slot* other = &set[i];
      if (other == victim || other->key.load() != h) continue;
      if (other < victim) {
        uint64_t mine = h;
        victim->key.compare_exchange_strong(mine, 0);
        return other;
      }
      uint64_t theirs = h;
      other->key.compare_exchange_strong(theirs, 0);
    }
    return victim;
  }
}

}  // namespace hms::policy
