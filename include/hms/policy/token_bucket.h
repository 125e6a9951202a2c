// include/hms/policy/token_bucket.h
//
// Token bucket for one owner thread: the reference model of a rate limit.
// Touched only by the thread that made it; refilled lazily from the clock the
// caller passes. The gateway's process-wide limits use the same arithmetic on
// one shared word per bucket (rate_limit.h, docs/resilience.md) rather than
// leases from a pool, because a leased token idle on one core would refuse a
// request on another; this class is what they are measured against in tests,
// and is fit for state that never leaves one core.
#pragma once

#include <cstdint>

#include "hms/core/clock.h"

namespace hms::policy {

class TokenBucket {
 public:
  // A full bucket of `burst` tokens (at least 1), refilled at
  // `refill_per_sec_x1000` / 1000 tokens per second (at least 1).
  TokenBucket(uint32_t burst, uint64_t refill_per_sec_x1000) noexcept;

  // Takes one token at `now`. False means "refuse": the caller answers 429.
  [[nodiscard]] bool TryTake(core::Instant now) noexcept;

  // Seconds until one token is available, for Retry-After (0: one is there).
  [[nodiscard]] uint32_t SecondsUntilToken(core::Instant now) const noexcept;

  // Whole tokens in the bucket at `now`.
  [[nodiscard]] uint32_t Available(core::Instant now) const noexcept;

 private:
  // Credits the tokens earned since last_.
  void Refill(core::Instant now) noexcept;

  uint64_t tokens_x1000_;
  uint64_t refill_per_sec_x1000_;
  uint32_t burst_;
  core::Instant last_;
  uint64_t carry_;  // earned but uncredited fraction of a milli-token, so polling loses none
};

}  // namespace hms::policy
