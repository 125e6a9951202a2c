// Snapshot adoption (docs/engine.md, "Snapshots"): a core takes a new
// config::Snapshot from its mailbox between passes, sizes its per-core state
// for it (pools, counters and round-robin cursors by stable ids, the JWT
// verifier, the rate limiters, the health checks it owns), and drops its
// hold on a retired snapshot once the last exchange that began under it ends.
#include <algorithm>

#include "hms/common/check.h"
#include "src/proxy/worker.h"

namespace hms::proxy {

void Worker::AdoptSnapshot(config::Snapshot* s) {
  SnapshotHold* old = current_;
  current_ = new SnapshotHold{s, 0};  // reload time, not the request path
  holds_.push_back(current_);
  SizeStateFor(*s);
  metrics_.snapshot_version.Set(s->version);
  if (old->inflight == 0) ReleaseHold(old);
  metrics_.snapshots_held.Set(holds_.size());
}

// Per-core state keyed by stable ids survives a reload: upstream pools are
// indexed by endpoint id, which the control thread never reuses. Pools of
// endpoints the snapshot no longer has are closed now, and connections still
// busy with one close when their exchange ends.
void Worker::SizeStateFor(const config::Snapshot& s) {
  uint32_t max_ep = 0;
  for (const auto& cl : s.clusters)
    for (const auto& ep : cl.endpoints) max_ep = std::max(max_ep, ep.id + 1);
  if (pool_head_.size() < max_ep) {
    pool_head_.resize(max_ep, kNone);
    pool_count_.resize(max_ep, 0);
    coalesce_.resize(max_ep, kNone);
  }
  if (busy_.size() < pool_head_.size()) busy_.resize(pool_head_.size(), 0);
  if (h2_conn_.size() < pool_head_.size()) h2_conn_.resize(pool_head_.size(), kNone);
  if (tls_saved_.size() < pool_head_.size()) tls_saved_.resize(pool_head_.size());
  endpoint_live_.assign(pool_head_.size(), false);
  for (const auto& cl : s.clusters)
    for (const auto& ep : cl.endpoints) endpoint_live_[ep.id] = true;
  for (uint32_t id = 0; id < pool_head_.size(); ++id) {
    while (!endpoint_live_[id] && pool_head_[id] != kNone) CloseUpstream(pool_head_[id]);
  }
  rr_.assign(s.clusters.size(), index_);
  if (s.jwt_keys != nullptr) {
    // A new key set or policy empties the token cache: a removed key stops
    // admitting its tokens at once.
    if (verifier_ == nullptr) {
      verifier_ = std::make_unique<auth::JwtVerifier>(s.jwt_keys.get(), s.jwt_policy);
    } else {
      verifier_->Rebind(s.jwt_keys.get(), s.jwt_policy);
    }
  } else {
    verifier_.reset();
  }
  health_.Reconcile(s);
  limiters_.clear();
  for (const auto& r : s.routes) {
    limiters_.push_back(r.limiter ? policy::CoreRateLimiter(r.limiter.get()) : policy::CoreRateLimiter());
  }
  fleet_.ResetFor(s);
}

void Worker::ReleaseHold(SnapshotHold* h) {
  if (h == current_) return;
  auto it = std::find(holds_.begin(), holds_.end(), h);
  HMS_CHECK(it != holds_.end());
  holds_.erase(it);
  h->snapshot->Release();
  delete h;
  metrics_.snapshots_held.Set(holds_.size());
}

}  // namespace hms::proxy
