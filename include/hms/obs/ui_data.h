// The admin page /ui and its data, /ui/data (docs/observability.md "The live
// page"): per route requests/s, latency percentiles, 4xx/5xx and rate-limit
// tokens; breakers with the time to their next probe; endpoints with health
// and ejection; per core load; the last few requests the gateway answered
// itself, with their reasons.
//
// Nothing here runs on a core. The admin thread computes everything when the
// page asks, from what the cores already publish (CoreMetrics, each core's
// RefusalRing, the policy objects' atomics) and from the core threads' CPU
// time in /proc. The gateway keeps counts only; rates and percentiles come
// from the difference between this answer's counts and an earlier sample
// that UiData keeps (at most one per kMinSpacingNs, none older than needed),
// so every open page shares one bounded history.
//
// Control thread only (UiData is not thread-safe: the admin server runs one
// handler at a time).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "hms/obs/metrics.h"
#include "hms/obs/metrics_page.h"
#include "hms/obs/recent_refusals.h"

namespace hms::obs {

// One route of the current snapshot, as /status lists it.
struct UiRoute {
  uint32_t key = 0;
  std::string service;
  std::string route;       // "METHODS /template"
  std::string rate_limit;  // "20 req/min"; empty without a limit
  bool has_tokens = false; // an unkeyed limit: its bucket's tokens are known
  uint32_t tokens_left = 0;
};

struct UiInput {
  // Breakers, endpoints, the cores and their sum, route labels (the input of
  // /metrics, gathered the same way).
  MetricsPageInput metrics;
  uint64_t clock_ns = 0;   // the monotonic clock when the counts were read
  int64_t unix_ms = 0;     // the wall clock, for the page's "updated at"
  std::string role;        // "gateway" or "sidecar"
  std::string config;      // "ok", or "stale: WHY" as /healthz says
  uint64_t snapshot = 0;
  std::vector<UiRoute> routes;
  // Each core thread's CPU time in ns (CoreCpuTimes), in core order; empty
  // or kCpuUnknown when unknown.
  std::vector<uint64_t> core_cpu_ns;
};

// The latency at quantile q (0 < q < 1) of a cumulative duration histogram
// (kDurationBuckets + 1 counts, the last one +Inf), in microseconds,
// interpolated linearly inside the bucket that holds it, as Prometheus'
// histogram_quantile() does, so the page and the dashboard agree; a quantile
// in the +Inf bucket is the highest finite bound. -1 when the histogram is
// empty.
double HistogramQuantileUs(const uint64_t* cumulative, double q) noexcept;

// Each core thread's (named "hms-core-N") user + system CPU time in ns, read
// from /proc/self/task (in clock ticks: 10 ms steps at the usual 100 Hz);
// kCpuUnknown for a thread not found.
inline constexpr uint64_t kCpuUnknown = ~0ull;
std::vector<uint64_t> CoreCpuTimes(uint32_t cores);

class UiData {
 public:
  // Samples are kept at least this far apart (several open pages share them).
  static constexpr uint64_t kMinSpacingNs = 250'000'000;
  // Rates and percentiles cover about this much time, less just after start.
  static constexpr uint64_t kDefaultWindowNs = 5'000'000'000;
  // How many refusals the page lists (the newest, over every core).
  static constexpr size_t kRefusalsShown = RefusalRing::kSlots;  // one core's whole ring

  explicit UiData(uint64_t window_ns = kDefaultWindowNs) : window_ns_(window_ns) {}

  // The JSON of /ui/data for `in`; notes in's counts as a sample.
  std::string Render(const UiInput& in);

 private:
  struct RouteSample {
    uint32_t key = 0;
    uint64_t requests = 0, errors_4xx = 0, errors_5xx = 0;
    uint64_t cumulative[kDurationBuckets + 1] = {};
  };
  struct Sample {
    uint64_t clock_ns = 0;
    std::vector<RouteSample> routes;  // sorted by key
    std::vector<uint64_t> core_requests;
    std::vector<uint64_t> core_cpu_ns;
  };
  static Sample Take(const UiInput& in);
  // The sample's row of a route key (zeros when the key had no request then).
  static const RouteSample& RouteIn(const Sample& s, uint32_t key);
  // A route's counts now and, against `then` (null without a window), its
  // rates and percentiles over dt_ns: the members of its JSON object.
  static std::string RouteJson(const RouteSample& now, const RouteSample* then, uint64_t dt_ns);
  // The sample rates are measured against (null when there is none yet), once
  // `now` is noted: the newest one at least window_ns_ old, else the oldest.
  const Sample* Base(const Sample& now);

  uint64_t window_ns_;
  std::deque<Sample> history_;  // oldest first
};

}  // namespace hms::obs
