// Per-core metrics, summed at scrape time (DESIGN §5 "metrics").
//
// Each core owns one CoreMetrics and is its only writer; the admin API (the
// control thread) reads every core's copy while they run. Counters are relaxed
// atomics written with load+store (single writer: no locked instructions on the
// hot path). Nothing here allocates after construction, except Sum(), which
// runs on the control thread at scrape time.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "hms/obs/metrics_list.h"
#include "hms/obs/recent_refusals.h"

namespace hms::obs {

class Counter {
 public:
  void Add(uint64_t n = 1) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void Sub(uint64_t n = 1) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
  }
  void Set(uint64_t n) noexcept { v_.store(n, std::memory_order_relaxed); }
  uint64_t Get() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// Requests by (route key, status code): a fixed-capacity open-addressing table,
// filled by one core, read by the admin thread. When full, counts go to the
// overflow counter (and the scrape says so) rather than allocating.
//
// Linear probing. A slot's key is published (release) once and never changes,
// so a reader that sees a key (acquire) sees a slot that stays that key's; its
// count only grows. The table accepts at most capacity - capacity/8 distinct
// keys: above 7/8 load a miss would probe most of the table, and the data path
// must stay bounded.
class RequestTable {
 public:
  // capacity_pow2 must be a power of two >= 2 (HMS_CHECK).
  explicit RequestTable(uint32_t capacity_pow2 = 4096);
  // Single writer (the owning core). Never allocates.
  void Count(uint32_t route_key, uint16_t status, uint64_t n = 1) noexcept;
  // Visits every (route_key, status, count) with count > 0. Any thread.
  template <typename F>
  void ForEach(F&& f) const {
    for (const Slot& s : slots_) {
      uint64_t k = s.key.load(std::memory_order_acquire);
      if (k == 0) continue;
      // The writer publishes the key before the first Add: skip the window in
      // which the slot exists but has not been counted yet.
      uint64_t c = s.count.Get();
      if (c != 0) f(static_cast<uint32_t>((k >> 16) - 1), static_cast<uint16_t>(k & 0xffff), c);
    }
  }
  uint64_t overflow() const noexcept { return overflow_.Get(); }
  uint32_t capacity() const noexcept { return mask_ + 1; }
  // Most distinct (route_key, status) pairs the table will hold.
  uint32_t max_keys() const noexcept { return max_used_; }
  // Distinct pairs held so far. Any thread.
  uint32_t size() const noexcept { return static_cast<uint32_t>(used_.Get()); }

 private:
  struct Slot {
    std::atomic<uint64_t> key{0};  // ((route_key + 1) << 16) | status; 0 = empty
    Counter count;
  };
  std::vector<Slot> slots_;
  uint32_t mask_;
  uint32_t max_used_;
  Counter used_;
  Counter overflow_;
};

// Request duration histogram buckets (upper bounds, microseconds), the
// Prometheus convention of 1-2.5-5 steps from 0.5 ms to 10 s; a last, implicit
// +Inf bucket follows. Durations are kept per (route key, bucket index) in a
// RequestTable, with the sum of microseconds under kDurationSumSlot.
inline constexpr uint64_t kDurationBucketsUs[] = {500,     1000,    2500,    5000,     10000,
                                                  25000,   50000,   100000,  250000,   500000,
                                                  1000000, 2500000, 5000000, 10000000};
inline constexpr uint16_t kDurationBuckets = sizeof(kDurationBucketsUs) / sizeof(uint64_t);
inline constexpr uint16_t kDurationSumSlot = 0xffff;

// The bucket index of a duration: the first bound it does not exceed, or
// kDurationBuckets for +Inf.
inline uint16_t DurationBucket(uint64_t us) noexcept {
  uint16_t i = 0;
  while (i < kDurationBuckets && us > kDurationBucketsUs[i]) ++i;
  return i;
}

// Slots of CoreMetrics::policy, per route.
inline constexpr uint16_t kPolicyAdmitted = 0;      // a rate-limited route let it through
inline constexpr uint16_t kPolicyLimited = 1;       // ... refused it (429)
inline constexpr uint16_t kPolicyRetried = 2;       // a retry attempt was made
inline constexpr uint16_t kPolicyBudgetRefused = 3; // a retry the retry budget refused
// A JWT refusal (401/403) is slot kPolicyJwtRejected + the refusal's reason
// code (auth::JwtReason, fewer than kJwtReasonSlots values); obs does not
// depend on auth, so the exposition names the reasons.
inline constexpr uint16_t kPolicyJwtRejected = 16;
inline constexpr uint16_t kJwtReasonSlots = 32;

// Slots of CoreMetrics::route_bytes, per route.
inline constexpr uint16_t kBytesRequest = 0;   // request head and body bytes read from the client
inline constexpr uint16_t kBytesResponse = 1;  // response head and body bytes queued to the client

// One route key's duration histogram, summed over cores, buckets cumulative
// as the exposition wants them: cumulative[b] counts the observations of at
// most kDurationBucketsUs[b]; cumulative[kDurationBuckets] (+Inf) is the count.
struct DurationHistogram {
  uint32_t route_key = 0;
  uint64_t cumulative[kDurationBuckets + 1] = {};
  uint64_t sum_us = 0;
  uint64_t count() const noexcept { return cumulative[kDurationBuckets]; }
};

// The "le" label of bucket `b`: the bound in seconds ("0.0005", ..., "10"),
// or "+Inf" for b == kDurationBuckets. Control thread (it allocates).
std::string DurationBucketLabel(uint16_t b);

// One HTTP/2 session side's counters (metrics_list.h, HMS_H2_COUNTERS; the
// h2 module's h2::Counters).
struct H2Counters {
#define HMS_H2_COUNTER_MEMBER(member, help) Counter member;
  HMS_H2_COUNTERS(HMS_H2_COUNTER_MEMBER)
#undef HMS_H2_COUNTER_MEMBER
};

struct CoreMetrics {
  // The scalar counters and gauges (metrics_list.h), one Counter each.
#define HMS_METRIC_MEMBER(member, family, label_name, label_value, help) Counter member;
#define HMS_METRIC_SKIP(member, family, label_name, label_value, help)
  HMS_CORE_METRICS(HMS_METRIC_MEMBER, HMS_METRIC_MEMBER, HMS_METRIC_SKIP)
#undef HMS_METRIC_SKIP
#undef HMS_METRIC_MEMBER
  // Not in the list: not summed (the version is a minimum, shown per core),
  // and not on the page as a process-wide family.
  Counter snapshot_version;       // gauge
  Counter snapshots_held;         // gauge: snapshots this core still references
  // Why this core's Redis link last failed (proxy::RedisFailure: 0 none, an
  // errno from connecting, or a call's status), shown by /healthz.
  Counter fleet_redis_failure;
  RequestTable requests;          // route key 0 = no route matched (404/405/400/...)
  // Stamp decisions per route key; the "status" is one of the kPolicy* slots.
  RequestTable policy{4096};
  // Gateway-side request durations (first byte of the head to the last byte
  // of the answer queued): (route key, bucket) → count, and the sum in µs.
  RequestTable durations{8192};
  // Upstream-side durations, one per attempt that got a response head: from
  // the attempt's request being queued on its upstream connection (a new
  // connection's connect included) to its response head parsed. Same shape.
  RequestTable upstream_durations{8192};
  // Bytes of answered requests per route key; the "status" is kBytesRequest
  // or kBytesResponse.
  RequestTable route_bytes{4096};
  // The last few answers the core made itself, with their reasons (the
  // admin page /ui lists them).
  RefusalRing refusals;
  // The core's HTTP/2 sessions: with clients (downstream), and with h2/h2c
  // services (upstream).
  H2Counters h2;
  H2Counters h2_up;

  // One answered request: its status and how long it took.
  void Observe(uint32_t route_key, uint16_t status, uint64_t duration_us) noexcept {
    requests.Count(route_key, status);
    durations.Count(route_key, DurationBucket(duration_us));
    durations.Count(route_key, kDurationSumSlot, duration_us);
  }
  // One upstream attempt's time to its response head.
  void ObserveUpstream(uint32_t route_key, uint64_t duration_us) noexcept {
    upstream_durations.Count(route_key, DurationBucket(duration_us));
    upstream_durations.Count(route_key, kDurationSumSlot, duration_us);
  }
  // One answered request's bytes, both ways (zeros are not counted).
  void ObserveBytes(uint32_t route_key, uint64_t request_bytes, uint64_t response_bytes) noexcept {
    if (request_bytes != 0) route_bytes.Count(route_key, kBytesRequest, request_bytes);
    if (response_bytes != 0) route_bytes.Count(route_key, kBytesResponse, response_bytes);
  }
};

// One (route key, status) row of a scrape, summed over cores.
struct RequestCount {
  uint32_t route_key = 0;
  uint16_t status = 0;
  uint64_t count = 0;
};

// Every core's CoreMetrics added up at scrape time. Counters and gauges alike
// are sums (a gauge summed over cores is the process-wide gauge), except
// snapshot_version, which is the lowest version any core still runs (the one
// a reload is waiting for).
struct CoreTotals {
  uint32_t cores = 0;
  // Every entry of metrics_list.h; Sum() adds the per-core ones up, the
  // control thread sets the process-wide ones.
#define HMS_METRIC_TOTAL(member, family, label_name, label_value, help) uint64_t member = 0;
  HMS_CORE_METRICS(HMS_METRIC_TOTAL, HMS_METRIC_TOTAL, HMS_METRIC_TOTAL)
#undef HMS_METRIC_TOTAL
  uint64_t snapshot_version_min = 0;
  uint64_t snapshots_held = 0;
  struct H2Totals {
#define HMS_H2_COUNTER_TOTAL(member, help) uint64_t member = 0;
    HMS_H2_COUNTERS(HMS_H2_COUNTER_TOTAL)
#undef HMS_H2_COUNTER_TOTAL
  } h2, h2_up;
  std::vector<RequestCount> requests;  // sorted by (route_key, status), no duplicates
  // Same shape; `status` is the bucket index (kDurationSumSlot: the sum in µs).
  std::vector<RequestCount> durations;
  std::vector<RequestCount> upstream_durations;  // same shape as durations
  std::vector<RequestCount> route_bytes;         // same shape; `status` is a kBytes* slot
  std::vector<RequestCount> policy;    // same shape; `status` is a kPolicy* slot
  uint64_t requests_overflow = 0;      // counts no core's table had room for
};

// Sums the given cores' metrics (null entries are skipped). Control thread
// only: it allocates. Reads race benignly with the cores' writers.
CoreTotals Sum(const std::vector<const CoreMetrics*>& cores);

// The histograms held in `rows` (CoreTotals::durations or upstream_durations:
// sorted by route key, then bucket), one per route key in that order. Rows of
// unknown buckets are ignored. Control thread only.
std::vector<DurationHistogram> Histograms(const std::vector<RequestCount>& rows);

}  // namespace hms::obs
