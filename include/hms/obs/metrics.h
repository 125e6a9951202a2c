// Per-core metrics, summed at scrape time (DESIGN §5 "metrics").
//
// Each core owns one CoreMetrics and is its only writer; the admin API (the
// control thread) reads every core's copy while they run. Counters are relaxed
// atomics written with load+store (single writer: no locked instructions on the
// hot path). Nothing here allocates after construction.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

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
class RequestTable {
 public:
  explicit RequestTable(uint32_t capacity_pow2 = 4096);
  void Count(uint32_t route_key, uint16_t status) noexcept;
  // Visits every (route_key, status, count) with count > 0.
  template <typename F>
  void ForEach(F&& f) const {
    for (const Slot& s : slots_) {
      uint64_t k = s.key.load(std::memory_order_acquire);
      if (k != 0) f(static_cast<uint32_t>((k >> 16) - 1), static_cast<uint16_t>(k & 0xffff), s.count.Get());
    }
  }
  uint64_t overflow() const noexcept { return overflow_.Get(); }

 private:
  struct Slot {
    std::atomic<uint64_t> key{0};  // ((route_key + 1) << 16) | status; 0 = empty
    Counter count;
  };
  std::vector<Slot> slots_;
  uint32_t mask_;
  Counter overflow_;
};

struct CoreMetrics {
  Counter connections_accepted;
  Counter connections_active;     // gauge
  Counter connections_refused;    // over max_connections_per_core
  Counter upstream_connect_errors;
  Counter upstream_connections_new;
  Counter upstream_connections_reused;
  Counter upstream_idle;          // gauge
  Counter buffer_ring_exhausted;  // -ENOBUFS seen
  Counter heap_allocations;       // operator new calls on this core's thread
  Counter bytes_in;
  Counter bytes_out;
  Counter snapshot_version;       // gauge
  Counter snapshots_held;         // gauge: snapshots this core still references
  RequestTable requests;          // route key 0 = no route matched (404/405/400/...)
};

}  // namespace hms::obs
