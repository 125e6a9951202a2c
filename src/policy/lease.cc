#include "hms/policy/lease.h"

#include <algorithm>

namespace hms::policy {
namespace {

// Folds the request count of each finished window into the smoothed rate
// (half old, half new: a rate that doubles is followed within two windows).
void Observe(CoreLease& l, core::Instant now, const LeaseParams& p) noexcept {
  if (l.window_start == 0) l.window_start = now;
  const uint64_t elapsed = now - l.window_start;
  if (elapsed >= p.window_ns && elapsed > 0) {
    const unsigned __int128 scaled =
        static_cast<unsigned __int128>(l.window_count) * 1'000'000'000'000ull / elapsed;
    const uint64_t sample =
        static_cast<uint64_t>(std::min<unsigned __int128>(scaled, UINT64_MAX / 2));
    l.rate_x1000 = l.rate_x1000 == 0 ? sample : (l.rate_x1000 + sample) / 2;
    l.window_count = 0;
    l.window_start = now;
  }
  ++l.window_count;
}

// The rate to size a lease by: the smoothed one, or the current window's when
// that is higher once the window has run a whole horizon (two requests at
// once are not a rate). So a route that turns busy leases ahead after one
// horizon, not a whole window later; until then its requests wait, batched,
// one call per round trip.
uint64_t RateNow(const CoreLease& l, core::Instant now, const LeaseParams& p) noexcept {
  const uint64_t elapsed = now - l.window_start;
  if (l.window_start == 0 || elapsed < std::max<uint64_t>(p.horizon_ns, 1)) return l.rate_x1000;
  // The window's requests at its start and at `now` both counted: that many
  // less one intervals.
  const uint64_t intervals = l.window_count > 0 ? l.window_count - 1 : 0;
  const unsigned __int128 current =
      static_cast<unsigned __int128>(intervals) * 1'000'000'000'000ull / elapsed;
  return std::max<uint64_t>(
      l.rate_x1000, static_cast<uint64_t>(std::min<unsigned __int128>(current, UINT64_MAX / 2)));
}

void DropExpired(CoreLease& l, core::Instant now) noexcept {
  if (l.tokens > 0 && now >= l.tokens_until) l.tokens = 0;
}

}  // namespace

uint32_t LeaseSize(uint64_t rate_x1000, const LeaseParams& p) noexcept {
  const unsigned __int128 scaled = static_cast<unsigned __int128>(rate_x1000) * p.horizon_ns;
  const unsigned __int128 per = 1'000'000'000'000ull;  // ns/s × 1000
  const unsigned __int128 want = (scaled + per - 1) / per;
  const uint32_t cap = std::max<uint32_t>(p.max_lease, 1);
  return static_cast<uint32_t>(std::clamp<unsigned __int128>(want, 1, cap));
}

LeaseStep TakeToken(CoreLease& l, core::Instant now, const LeaseParams& p) noexcept {
  Observe(l, now, p);
  DropExpired(l, now);
  if (l.tokens > 0) {
    --l.tokens;
    return LeaseStep::kAdmit;
  }
  if (now < l.empty_until) return LeaseStep::kRefuse;
  ++l.waiting;
  return LeaseStep::kWait;
}

uint32_t StartAsk(CoreLease& l, core::Instant now, const LeaseParams& p) noexcept {
  if (l.asking || now < l.empty_until) return 0;
  DropExpired(l, now);
  // A lease of one is no stock: at that rate a held token is more likely to
  // be stranded than spent, so requests wait for their own token instead.
  const uint32_t size = LeaseSize(RateNow(l, now, p), p);
  const uint32_t target = size > 1 ? size : 0;
  const uint32_t stock = l.tokens * 2 < target ? target - l.tokens : 0;
  const uint32_t ask = l.waiting + stock;
  if (ask == 0) return 0;
  l.asking = true;
  return ask;
}

LeaseAnswer OnGrant(CoreLease& l, uint32_t granted, uint64_t retry_after_ns, core::Instant now,
                    const LeaseParams& p) noexcept {
  LeaseAnswer a;
  l.asking = false;
  a.admit = std::min(l.waiting, granted);
  a.refuse = l.waiting - a.admit;
  l.waiting = 0;
  DropExpired(l, now);
  const uint32_t left = granted - a.admit;
  if (left > 0) {
    l.tokens = std::min(l.tokens + left, std::max<uint32_t>(p.max_lease, 1));
    l.tokens_until = now + p.hold_ns;
  }
  // Nothing held and Redis says the bucket is empty: no other core or gateway
  // can make a token appear sooner, so refusing locally until then is exact.
  if (l.tokens == 0 && retry_after_ns > 0) l.empty_until = now + retry_after_ns;
  return a;
}

uint32_t OnAskFailed(CoreLease& l) noexcept {
  l.asking = false;
  const uint32_t n = l.waiting;
  l.waiting = 0;
  return n;
}

}  // namespace hms::policy
