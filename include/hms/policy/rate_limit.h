// Process-wide rate limits (DESIGN §3 `rate_limit`, §5; docs/resilience.md).
//
// A `RateLimitState` is one route's limit: one token bucket, or with `per:` a
// bounded, preallocated table of buckets keyed by client (set-associative,
// least recently used evicted within a set). It is made by the control thread
// (through PolicyRegistry, which keeps it across reloads) and shared by every
// core. Each core reaches it through its own `CoreRateLimiter`, which is
// touched only by that core's thread.
//
// A bucket is one 64-bit word: the time at which it will be full again (GCRA,
// the "theoretical arrival time"). Admitting a request is one compare-and-swap
// on that word, so the process admits exactly what one global bucket would,
// whichever cores the requests land on: never more than burst + rate ×
// elapsed, and no refusal while a token sits unused anywhere. A refusal is
// remembered by the core until the next token is due, so a flood of refused
// requests reads only core-local memory. No call locks, blocks or allocates.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "hms/core/clock.h"

namespace hms::policy {

// One limit: a token every `interval_ns`, at most `burst` tokens banked.
struct Limit {
  uint64_t interval_ns = 0;  // > 0
  uint32_t burst = 1;        // >= 1

  // The config's form (config::RateLimit): tokens per second × 1000. The
  // interval is rounded up, so the limit never admits faster than written.
  static Limit PerSecondX1000(uint64_t rate_per_sec_x1000, uint32_t burst) noexcept;
  // `count` tokens per `period_ns`, exactly ("20 req/min" is Every(20, 60 s, 20)).
  static Limit Every(uint64_t count, uint64_t period_ns, uint32_t burst) noexcept;

  friend bool operator==(const Limit&, const Limit&) = default;
};

// What a core answers with; the header values of a 429 (and, if wanted, of
// an admitted response): RateLimit-Limit = limit, RateLimit-Remaining =
// remaining, RateLimit-Reset = reset_s, Retry-After = retry_after_s.
struct RateDecision {
  bool admitted = false;
  uint32_t limit = 0;          // the burst: the most a client can spend at once
  uint32_t remaining = 0;      // whole tokens left after this decision
  uint32_t reset_s = 0;        // seconds until the bucket is full again
  uint32_t retry_after_s = 0;  // refused: seconds until a token is due (>= 1); admitted: 0
};

// Seeded 64-bit hash of a client key (an address, a JWT subject, a header
// value); reads the bytes in place and never allocates. Never returns 0 or 1
// (reserved for empty slots).
uint64_t HashKey(std::string_view key, uint64_t seed) noexcept;

class RateLimitState {
 public:
  static constexpr uint32_t kWays = 8;  // slots one key may occupy, one set

  // `key_capacity` 0: one bucket for the route. Otherwise a keyed table of at
  // least `key_capacity` buckets (rounded up to a power of two, at least
  // kWays), allocated here once. `seed` keys HashKey, so that clients cannot
  // choose keys that collide in one set. Control thread only.
  RateLimitState(Limit limit, uint32_t key_capacity = 0, uint64_t seed = 0x9e3779b97f4a7c15ull);
  RateLimitState(const RateLimitState&) = delete;
  RateLimitState& operator=(const RateLimitState&) = delete;
  ~RateLimitState();

  // Takes effect on every core's next decision. Each bucket keeps the tokens
  // it had at `now` (capped at the new burst) and refills at the new rate
  // from there. Control thread only (one writer).
  void Reconfigure(Limit limit, core::Instant now) noexcept;

  // The limit now in force (any thread).
  Limit limit() const noexcept;
  bool keyed() const noexcept { return capacity_ != 0; }
  // The table size a `key_capacity` asks for (0 stays 0).
  static uint32_t RoundedCapacity(uint32_t key_capacity) noexcept;
  uint32_t key_capacity() const noexcept { return capacity_; }
  uint64_t seed() const noexcept { return seed_; }
  // Keyed buckets displaced so far to make room for new keys (any thread).
  uint64_t evictions() const noexcept { return evictions_.load(std::memory_order_relaxed); }
  // Whole tokens in the route's bucket at `now` (for /metrics; 0 when keyed).
  uint32_t Available(core::Instant now) const noexcept;

 private:
  friend class CoreRateLimiter;

  // A bucket in the keyed table: the key's hash, its full-again time, and the
  // time it was last used (for LRU). Two per cache line.
  struct Slot {
    std::atomic<uint64_t> key{0};  // 0 empty
    std::atomic<uint64_t> tat{0};
    std::atomic<uint64_t> last_used{0};
    uint64_t pad = 0;
  };

  // Seqlock over the limit: written by the control thread, read by a core
  // only when `seq_` moved since it last looked.
  alignas(64) std::atomic<uint64_t> seq_{0};
  std::atomic<uint64_t> interval_ns_{0};
  std::atomic<uint32_t> burst_{0};
  uint32_t capacity_ = 0;
  uint32_t set_mask_ = 0;
  uint64_t seed_ = 0;
  std::unique_ptr<Slot[]> slots_;
  std::atomic<uint64_t> evictions_{0};
  // The route's bucket, alone on its cache line: the one word cores write.
  alignas(64) std::atomic<uint64_t> tat_{0};
  char pad_[64 - sizeof(std::atomic<uint64_t>)];

  // Reads a consistent limit; returns the sequence it belongs to.
  uint64_t ReadLimit(Limit* out) const noexcept;
};

// One core's view of a route's limit. Lives in the core's per-route policy
// state; only that core's thread calls it. Holds the limit it last read and
// the time before which the shared bucket is known to be empty.
class CoreRateLimiter {
 public:
  CoreRateLimiter() = default;
  explicit CoreRateLimiter(RateLimitState* state) noexcept;

  // Admits one request to the route's bucket at `now`.
  RateDecision TryTake(core::Instant now) noexcept;
  // Admits one request to the bucket of `key` (a `per:` route); a key not in
  // the table takes the least recently used slot of its set, with a full
  // bucket.
  RateDecision TryTake(core::Instant now, std::string_view key) noexcept;

  RateLimitState* state() const noexcept { return state_; }

 private:
  void Refresh() noexcept;
  RateDecision TakeFrom(std::atomic<uint64_t>& tat, core::Instant now, bool cache) noexcept;
  RateLimitState::Slot* FindOrClaim(uint64_t h, core::Instant now) noexcept;

  RateLimitState* state_ = nullptr;
  uint64_t seq_ = ~0ull;  // never a valid sequence: the first call reads the limit
  uint64_t interval_ns_ = 1;
  uint64_t tolerance_ns_ = 0;  // (burst - 1) × interval, saturated
  uint32_t burst_ = 1;
  core::Instant empty_until_ = 0;  // refusals before this need no shared read
  uint64_t seen_tat_ = 0;          // the bucket word that set empty_until_
};

}  // namespace hms::policy
