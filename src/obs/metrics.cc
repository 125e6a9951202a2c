#include "hms/obs/metrics.h"

#include <algorithm>
#include <bit>
#include <cstdio>

#include "hms/common/check.h"

namespace hms::obs {
namespace {

// Murmur3's 64-bit finalizer: route keys are small sequential integers and
// statuses cluster around 200/404, so the raw key would pile up in a few slots.
inline uint64_t Mix(uint64_t k) noexcept {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

}  // namespace

RequestTable::RequestTable(uint32_t capacity_pow2)
    : slots_(capacity_pow2),
      mask_(capacity_pow2 - 1),
      max_used_(capacity_pow2 - capacity_pow2 / 8) {
  HMS_CHECK(capacity_pow2 >= 2 && std::has_single_bit(capacity_pow2));
}

void RequestTable::Count(uint32_t route_key, uint16_t status, uint64_t n) noexcept {
  const uint64_t key = ((static_cast<uint64_t>(route_key) + 1) << 16) | status;
  uint32_t i = static_cast<uint32_t>(Mix(key)) & mask_;
  // Bounded: at most capacity probes, and in practice few since load <= 7/8.
  for (uint32_t probes = 0; probes <= mask_; ++probes, i = (i + 1) & mask_) {
    Slot& s = slots_[i];
    // Single writer: a relaxed load sees our own earlier stores.
    const uint64_t k = s.key.load(std::memory_order_relaxed);
    if (k == key) {
      s.count.Add(n);
      return;
    }
    if (k == 0) {
      if (used_.Get() >= max_used_) break;
      used_.Add();
      // Release: a reader that sees the key sees a zeroed count, then only
      // growth (ForEach skips count 0).
      s.key.store(key, std::memory_order_release);
      s.count.Add(n);
      return;
    }
  }
  overflow_.Add(n);
}

namespace {

// Sorts rows by (route_key, status) and adds up those several cores reported.
void SortAndMerge(std::vector<RequestCount>* rows) {
  std::vector<RequestCount>& r = *rows;
  std::sort(r.begin(), r.end(), [](const RequestCount& a, const RequestCount& b) {
    return a.route_key != b.route_key ? a.route_key < b.route_key : a.status < b.status;
  });
  size_t out = 0;
  for (size_t i = 0; i < r.size(); ++i) {
    if (out > 0 && r[out - 1].route_key == r[i].route_key && r[out - 1].status == r[i].status) {
      r[out - 1].count += r[i].count;
    } else {
      r[out++] = r[i];
    }
  }
  r.resize(out);
}

}  // namespace

CoreTotals Sum(const std::vector<const CoreMetrics*>& cores) {
  CoreTotals t;
  bool first = true;
  for (const CoreMetrics* m : cores) {
    if (m == nullptr) continue;
    ++t.cores;
#define HMS_METRIC_ADD(member, family, label_name, label_value, help) t.member += m->member.Get();
#define HMS_METRIC_SKIP(member, family, label_name, label_value, help)
    HMS_CORE_METRICS(HMS_METRIC_ADD, HMS_METRIC_ADD, HMS_METRIC_SKIP)
#undef HMS_METRIC_SKIP
#undef HMS_METRIC_ADD
#define HMS_H2_COUNTER_ADD(member, help) \
  t.h2.member += m->h2.member.Get();     \
  t.h2_up.member += m->h2_up.member.Get();
    HMS_H2_COUNTERS(HMS_H2_COUNTER_ADD)
#undef HMS_H2_COUNTER_ADD
    const uint64_t v = m->snapshot_version.Get();
    t.snapshot_version_min = first ? v : std::min(t.snapshot_version_min, v);
    first = false;
    t.snapshots_held += m->snapshots_held.Get();
    t.requests_overflow += m->requests.overflow();
    m->requests.ForEach([&t](uint32_t route_key, uint16_t status, uint64_t count) {
      t.requests.push_back(RequestCount{route_key, status, count});
    });
    m->durations.ForEach([&t](uint32_t route_key, uint16_t bucket, uint64_t count) {
      t.durations.push_back(RequestCount{route_key, bucket, count});
    });
    m->policy.ForEach([&t](uint32_t route_key, uint16_t slot, uint64_t count) {
      t.policy.push_back(RequestCount{route_key, slot, count});
    });
    m->upstream_durations.ForEach([&t](uint32_t route_key, uint16_t bucket, uint64_t count) {
      t.upstream_durations.push_back(RequestCount{route_key, bucket, count});
    });
    m->route_bytes.ForEach([&t](uint32_t route_key, uint16_t slot, uint64_t count) {
      t.route_bytes.push_back(RequestCount{route_key, slot, count});
    });
  }
  SortAndMerge(&t.requests);
  SortAndMerge(&t.durations);
  SortAndMerge(&t.policy);
  SortAndMerge(&t.upstream_durations);
  SortAndMerge(&t.route_bytes);
  return t;
}

std::vector<DurationHistogram> Histograms(const std::vector<RequestCount>& rows) {
  std::vector<DurationHistogram> out;
  for (size_t i = 0; i < rows.size();) {
    DurationHistogram h;
    h.route_key = rows[i].route_key;
    for (; i < rows.size() && rows[i].route_key == h.route_key; ++i) {
      const RequestCount& r = rows[i];
      if (r.status == kDurationSumSlot) {
        h.sum_us = r.count;
      } else if (r.status <= kDurationBuckets) {
        h.cumulative[r.status] += r.count;
      }
    }
    for (uint16_t b = 1; b <= kDurationBuckets; ++b) h.cumulative[b] += h.cumulative[b - 1];
    out.push_back(h);
  }
  return out;
}

std::string DurationBucketLabel(uint16_t b) {
  if (b >= kDurationBuckets) return "+Inf";
  // %g of these bounds is exact and short: 0.0005, 0.001, ..., 2.5, 5, 10.
  char le[32];
  std::snprintf(le, sizeof le, "%g", static_cast<double>(kDurationBucketsUs[b]) / 1e6);
  return le;
}

}  // namespace hms::obs
