#include "hms/obs/metrics_page.h"

#include "hms/obs/exposition.h"
#include "hms/obs/metrics_list.h"

namespace hms::obs {
namespace {

// hms_requests_total and the two duration histograms.
void RenderRequests(const MetricsPageInput& in, Exposition& e) {
  const CoreTotals& t = in.totals;
  e.Family("hms_requests_total", "counter",
           "Requests answered, by service, route and status code.");
  for (const auto& rc : t.requests) {
    auto [service, route] = in.route_labels(rc.route_key);
    std::string code = std::to_string(rc.status);
    e.Sample({{"service", service}, {"route", route}, {"code", code}}, rc.count);
  }
  auto histograms = [&](const char* name, const char* help, const std::vector<RequestCount>& rows) {
    e.Family(name, "histogram", help);
    for (const DurationHistogram& h : Histograms(rows)) {
      auto [service, route] = in.route_labels(h.route_key);
      for (uint16_t b = 0; b <= kDurationBuckets; ++b) {
        std::string le = DurationBucketLabel(b);
        e.Sample("_bucket", {{"service", service}, {"route", route}, {"le", le}}, h.cumulative[b]);
      }
      e.Sample("_sum", {{"service", service}, {"route", route}}, h.sum_us / 1e6);
      e.Sample("_count", {{"service", service}, {"route", route}}, h.count());
    }
  };
  histograms("hms_request_duration_seconds",
             "Gateway-side time from a request's head to its answer, by service and route.",
             t.durations);
  histograms(
      "hms_upstream_response_duration_seconds",
      "Upstream-side time of each attempt, from its request queued on an upstream connection "
      "(connect included) to the response head, by service and route; retries count apart.",
      t.upstream_durations);
}

// Per-route rows of a slotted table (route_bytes, policy): one family per slot.
void RenderSlot(const MetricsPageInput& in, Exposition& e, const std::vector<RequestCount>& rows,
                const char* name, const char* help, uint16_t slot) {
  e.Family(name, "counter", help);
  for (const auto& row : rows) {
    if (row.status != slot) continue;
    auto [service, route] = in.route_labels(row.route_key);
    e.Sample({{"service", service}, {"route", route}}, row.count);
  }
}

// Bytes, rate limits, retries and JWT refusals, per route.
void RenderRoutePolicy(const MetricsPageInput& in, Exposition& e) {
  const CoreTotals& t = in.totals;
  RenderSlot(
      in, e, t.route_bytes, "hms_request_bytes_total",
      "Request bytes (head and body as received) of answered requests, by service and route.",
      kBytesRequest);
  RenderSlot(in, e, t.route_bytes, "hms_response_bytes_total",
             "Response bytes (head and body as sent) of answered requests, by service and route.",
             kBytesResponse);
  RenderSlot(in, e, t.policy, "hms_rate_limit_admitted_total",
             "Requests a rate-limited route admitted.", kPolicyAdmitted);
  RenderSlot(in, e, t.policy, "hms_rate_limit_limited_total",
             "Requests a rate-limited route refused with 429.", kPolicyLimited);
  RenderSlot(in, e, t.policy, "hms_retries_total",
             "Retry attempts made, by the route of the request.", kPolicyRetried);
  RenderSlot(in, e, t.policy, "hms_retry_budget_exhausted_total",
             "Retries not made because the service's retry budget was spent.",
             kPolicyBudgetRefused);
  e.Family("hms_jwt_rejections_total", "counter",
           "Requests refused by JWT validation (401, or 403 insufficient_scope), by service, route "
           "and reason.");
  for (const auto& pc : t.policy) {
    if (pc.status < kPolicyJwtRejected || pc.status >= kPolicyJwtRejected + kJwtReasonSlots) {
      continue;
    }
    auto [service, route] = in.route_labels(pc.route_key);
    std::string reason = in.jwt_reason(static_cast<uint16_t>(pc.status - kPolicyJwtRejected));
    e.Sample({{"service", service}, {"route", route}, {"reason", reason}}, pc.count);
  }
  e.Family("hms_requests_unrecorded_total", "counter",
           "Requests whose per-route counter found no room in a core's table.");
  e.Sample({}, t.requests_overflow);
}

void ScalarSample(Exposition& e, const char* family, const char* type, const char* label_name,
                  const char* label_value, const char* help, uint64_t v) {
  e.Family(family, type, help);
  if (*label_name == '\0') {
    e.Sample({}, v);
  } else {
    e.Sample({{label_name, label_value}}, v);
  }
}

// Every entry of metrics_list.h, in its order.
void RenderScalars(const MetricsPageInput& in, Exposition& e) {
  const CoreTotals& t = in.totals;
#define HMS_METRIC_COUNTER(member, family, label_name, label_value, help) \
  ScalarSample(e, family, "counter", label_name, label_value, help, t.member);
#define HMS_METRIC_GAUGE(member, family, label_name, label_value, help) \
  ScalarSample(e, family, "gauge", label_name, label_value, help, t.member);
  HMS_CORE_METRICS(HMS_METRIC_COUNTER, HMS_METRIC_GAUGE, HMS_METRIC_COUNTER)
#undef HMS_METRIC_GAUGE
#undef HMS_METRIC_COUNTER
  // The HTTP/2 sessions (metrics_list.h, HMS_H2_COUNTERS): one family a
  // counter, one sample a side, so that a sum over `side` is the process's.
#define HMS_H2_COUNTER_SAMPLE(member, help)              \
  e.Family("hms_h2_" #member "_total", "counter", help); \
  e.Sample({{"side", "downstream"}}, t.h2.member);       \
  e.Sample({{"side", "upstream"}}, t.h2_up.member);
  HMS_H2_COUNTERS(HMS_H2_COUNTER_SAMPLE)
#undef HMS_H2_COUNTER_SAMPLE
}

// Process-wide policy state: breakers, endpoints, rate-limit buckets.
void RenderPolicyState(const MetricsPageInput& in, Exposition& e) {
  e.Family("hms_breaker_state", "gauge",
           "Circuit breaker per service: 0 closed, 1 open, 2 half-open.");
  for (const BreakerRow& b : in.breakers) e.Sample({{"service", b.service}}, b.state);
  e.Family("hms_breaker_next_probe_seconds", "gauge",
           "Seconds until an open breaker lets its probe through (0 when not open).");
  for (const BreakerRow& b : in.breakers)
    e.Sample({{"service", b.service}}, b.next_probe_in_ns / 1e9);
  e.Family("hms_breaker_opened_total", "counter", "Times each service's breaker opened.");
  for (const BreakerRow& b : in.breakers) e.Sample({{"service", b.service}}, b.opened_total);
  e.Family("hms_breaker_transitions_total", "counter",
           "Circuit breaker state changes per service, by the state entered.");
  for (const BreakerRow& b : in.breakers) {
    e.Sample({{"service", b.service}, {"to", "open"}}, b.opened_total);
    e.Sample({{"service", b.service}, {"to", "half_open"}}, b.half_opened_total);
    e.Sample({{"service", b.service}, {"to", "closed"}}, b.closed_total);
  }
  e.Family("hms_endpoint_ejected", "gauge",
           "1 while an endpoint is ejected for consecutive failures (outlier ejection).");
  for (const EndpointRow& r : in.endpoints) {
    e.Sample({{"service", r.service}, {"endpoint", r.address}}, r.ejected ? 1 : 0);
  }
  e.Family("hms_endpoint_healthy", "gauge",
           "0 while an endpoint fails its active health checks (services with health:), else 1.");
  for (const EndpointRow& r : in.endpoints) {
    e.Sample({{"service", r.service}, {"endpoint", r.address}}, r.check_failing ? 0 : 1);
  }
  e.Family("hms_endpoint_ejections_total", "counter", "Times each endpoint was ejected.");
  for (const EndpointRow& r : in.endpoints) {
    e.Sample({{"service", r.service}, {"endpoint", r.address}}, r.ejections_total);
  }
  e.Family("hms_rate_limit_available_tokens", "gauge",
           "Whole tokens left in each rate-limited route's bucket (unkeyed limits).");
  for (const TokenRow& r : in.tokens)
    e.Sample({{"service", r.service}, {"route", r.route}}, r.available);
}

// Snapshots and the per-core families.
void RenderCores(const MetricsPageInput& in, Exposition& e) {
  e.Family("hms_snapshot_live", "gauge", "Config snapshots alive in the process.");
  e.Sample({}, in.live_snapshots);
  e.Family("hms_core_snapshot_version", "gauge", "Config snapshot version each core runs.");
  for (size_t i = 0; i < in.cores.size(); ++i) {
    std::string core = std::to_string(i);
    e.Sample({{"core", core}}, in.cores[i]->snapshot_version.Get());
  }
  e.Family("hms_core_requests_total", "counter",
           "Requests answered by each core (how evenly the kernel spreads connections).");
  for (size_t i = 0; i < in.cores.size(); ++i) {
    uint64_t requests = 0;
    in.cores[i]->requests.ForEach([&](uint32_t, uint16_t, uint64_t n) { requests += n; });
    e.Sample({{"core", std::to_string(i)}}, requests);
  }
  // An info metric: one sample of 1 whose labels say what this process is,
  // so dashboards can pick instances by role (configs/grafana) without
  // another label on every series.
  e.Family("hms_info", "gauge",
           "Always 1; its labels say what this process is: role (gateway or sidecar) and "
           "version.");
  e.Sample({{"role", in.role}, {"version", in.version}}, 1);
}

}  // namespace

const char* BreakerStateName(int state) noexcept {
  static const char* const kStates[] = {"closed", "open", "half-open"};
  return state >= 0 && state <= 2 ? kStates[state] : "unknown";
}

std::string RenderMetricsPage(const MetricsPageInput& in) {
  Exposition e;
  RenderRequests(in, e);
  RenderRoutePolicy(in, e);
  RenderScalars(in, e);
  RenderPolicyState(in, e);
  RenderCores(in, e);
  return e.Finish();
}

}  // namespace hms::obs
