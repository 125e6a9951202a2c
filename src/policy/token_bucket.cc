#include "hms/policy/token_bucket.h"

#include <algorithm>

namespace hms::policy {
namespace {

constexpr uint64_t kNsPerSec = 1'000'000'000ull;

struct Level {
  uint64_t tokens_x1000;
  uint64_t carry;  // earned fraction of a milli-token, in 1e-9 milli-tokens
};

// The bucket's level at `now`. Earnings are exact: the fraction of a
// milli-token not yet credited is carried, so frequent polling loses nothing.
Level LevelAt(uint64_t tokens_x1000, uint64_t carry, core::Instant last, uint64_t rate_x1000,
              uint32_t burst, core::Instant now) {
  const uint64_t full = uint64_t{burst} * 1000;
  if (now <= last) return {tokens_x1000, carry};
  if (tokens_x1000 >= full) return {full, 0};
  const unsigned __int128 earned = static_cast<unsigned __int128>(now - last) * rate_x1000 + carry;
  const unsigned __int128 credited = earned / kNsPerSec;
  if (credited >= full - tokens_x1000) return {full, 0};
  return {tokens_x1000 + static_cast<uint64_t>(credited),
          static_cast<uint64_t>(earned % kNsPerSec)};
}

}  // namespace

TokenBucket::TokenBucket(uint32_t burst, uint64_t refill_per_sec_x1000) noexcept
    : tokens_x1000_(uint64_t{std::max(burst, 1u)} * 1000),
      refill_per_sec_x1000_(std::max<uint64_t>(refill_per_sec_x1000, 1)),
      burst_(std::max(burst, 1u)),
      last_(0),
      carry_(0) {}

void TokenBucket::Refill(core::Instant now) noexcept {
  const Level l = LevelAt(tokens_x1000_, carry_, last_, refill_per_sec_x1000_, burst_, now);
  tokens_x1000_ = l.tokens_x1000;
  carry_ = l.carry;
  if (now > last_) last_ = now;
}

bool TokenBucket::TryTake(core::Instant now) noexcept {
  Refill(now);
  if (tokens_x1000_ < 1000) return false;
  tokens_x1000_ -= 1000;
  return true;
}

uint32_t TokenBucket::Available(core::Instant now) const noexcept {
  return static_cast<uint32_t>(
      LevelAt(tokens_x1000_, carry_, last_, refill_per_sec_x1000_, burst_, now).tokens_x1000 /
      1000);
}

uint32_t TokenBucket::SecondsUntilToken(core::Instant now) const noexcept {
  const Level l = LevelAt(tokens_x1000_, carry_, last_, refill_per_sec_x1000_, burst_, now);
  if (l.tokens_x1000 >= 1000) return 0;
  // The carried fraction is already earned.
  const unsigned __int128 need =
      static_cast<unsigned __int128>(1000 - l.tokens_x1000) * kNsPerSec - l.carry;
  const uint64_t wait =
      static_cast<uint64_t>((need + refill_per_sec_x1000_ - 1) / refill_per_sec_x1000_);
  return static_cast<uint32_t>(std::max<uint64_t>((wait + kNsPerSec - 1) / kNsPerSec, 1));
}

}  // namespace hms::policy
