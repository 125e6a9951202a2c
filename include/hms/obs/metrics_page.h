// The admin API's /metrics page (Prometheus text format 0.0.4): every family
// the gateway exposes, in a fixed order, from values the control thread has
// gathered. Pure: it reads only its input, so unit tests can render a page
// from made-up numbers. The scalar families come from metrics_list.h.
//
// Control thread only (it allocates).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "hms/obs/metrics.h"

namespace hms::obs {

// A route key's labels: (service, route). The key kNoRoute stands for
// requests that matched no route.
inline constexpr uint32_t kNoRoute = 0xffffffffu;
using RouteLabels = std::function<std::pair<std::string, std::string>(uint32_t route_key)>;

// One service's circuit breaker, as policy::BreakerStatus reports it.
struct BreakerRow {
  std::string service;
  int state = 0;  // 0 closed, 1 open, 2 half-open
  uint64_t next_probe_in_ns = 0;
  uint64_t opened_total = 0;
  uint64_t half_opened_total = 0;
  uint64_t closed_total = 0;
  uint32_t consecutive_failures = 0;
};

// A BreakerRow's state as /status and /ui/data name it: "closed", "open" or
// "half-open".
const char* BreakerStateName(int state) noexcept;

// One endpoint's outlier and health-check state.
struct EndpointRow {
  std::string service;
  std::string address;
  bool ejected = false;
  uint64_t ejections_total = 0;
  bool check_failing = false;
  uint64_t ejected_for_ns = 0;  // while ejected: the time until it is back in rotation
};

// One unkeyed rate-limited route's bucket.
struct TokenRow {
  std::string service;
  std::string route;
  uint32_t available = 0;
};

struct MetricsPageInput {
  CoreTotals totals;                      // Sum() of the cores, process-wide entries set
  std::vector<const CoreMetrics*> cores;  // per-core families, in core order
  RouteLabels route_labels;               // required
  // The token of JWT refusal reason `code` (auth::ReasonToken; obs does not
  // depend on auth). Required.
  std::function<std::string(uint16_t code)> jwt_reason;
  std::vector<BreakerRow> breakers;
  std::vector<EndpointRow> endpoints;
  std::vector<TokenRow> tokens;
  uint64_t live_snapshots = 0;
  // This process, for hms_info: "gateway" or "sidecar" (config `role`), and
  // its version. Dashboards select an instance by role with it.
  std::string role = "gateway";
  std::string version;
};

// The whole page.
std::string RenderMetricsPage(const MetricsPageInput& in);

}  // namespace hms::obs
