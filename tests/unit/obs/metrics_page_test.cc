#include "hms/obs/metrics_page.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "hms/obs/metrics.h"
#include "hms/obs/metrics_list.h"

namespace hms::obs {
namespace {

// Every per-core entry of the list is a CoreMetrics member that Sum() adds
// up into the CoreTotals field of the same name.
TEST(MetricsList, EveryCoreEntryIsSummed) {
  CoreMetrics a, b;
  uint64_t n = 1;
#define HMS_TEST_SET(member, family, label_name, label_value, help) \
  a.member.Set(n);                                                  \
  b.member.Set(100 * n);                                            \
  ++n;
#define HMS_TEST_SKIP(member, family, label_name, label_value, help)
  HMS_CORE_METRICS(HMS_TEST_SET, HMS_TEST_SET, HMS_TEST_SKIP)
  CoreTotals t = Sum({&a, &b});
  n = 1;
#define HMS_TEST_CHECK(member, family, label_name, label_value, help) \
  EXPECT_EQ(t.member, 101 * n) << #member;                            \
  ++n;
  HMS_CORE_METRICS(HMS_TEST_CHECK, HMS_TEST_CHECK, HMS_TEST_SKIP)
#define HMS_TEST_ZERO(member, family, label_name, label_value, help) \
  EXPECT_EQ(t.member, 0u) << #member;
  // Process-wide entries are the control thread's to fill in.
  HMS_CORE_METRICS(HMS_TEST_SKIP, HMS_TEST_SKIP, HMS_TEST_ZERO)
#undef HMS_TEST_ZERO
#undef HMS_TEST_CHECK
#undef HMS_TEST_SKIP
#undef HMS_TEST_SET
}

MetricsPageInput Input(const std::vector<const CoreMetrics*>& cores) {
  MetricsPageInput in;
  in.cores = cores;
  in.totals = Sum(cores);
  in.route_labels = [](uint32_t key) -> std::pair<std::string, std::string> {
    if (key == kNoRoute) return {"none", "none"};
    return {"calc-svc", "/sum/{a}/{b}"};
  };
  in.jwt_reason = [](uint16_t code) { return code == 1 ? std::string("expired") : "other"; };
  return in;
}

// The families in page order, as `# TYPE` lines name them.
std::vector<std::string> Families(const std::string& page) {
  std::vector<std::string> out;
  std::istringstream lines(page);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("# TYPE ", 0) == 0) out.push_back(line.substr(7, line.find(' ', 7) - 7));
  }
  return out;
}

// Dashboards and alerts read these names: the order and the names are the
// page's contract (a change here is a change users see).
TEST(MetricsPage, HasEveryFamilyInItsOrder) {
  CoreMetrics core;
  core.Observe(7, 200, 1200);
  core.ObserveUpstream(7, 900);
  core.ObserveBytes(7, 100, 200);
  for (uint16_t slot : {kPolicyAdmitted, kPolicyLimited, kPolicyRetried, kPolicyBudgetRefused,
                        static_cast<uint16_t>(kPolicyJwtRejected + 1)}) {
    core.policy.Count(7, slot);
  }
  MetricsPageInput in = Input({&core});
  in.breakers.push_back({"calc-svc", 1, 2'500'000'000, 3, 2, 1});
  in.endpoints.push_back({"calc-svc", "127.0.0.1:7001", true, 4, false});
  in.tokens.push_back({"calc-svc", "/sum/{a}/{b}", 17});
  const std::vector<std::string> want = {"hms_requests_total",
                                         "hms_request_duration_seconds",
                                         "hms_upstream_response_duration_seconds",
                                         "hms_request_bytes_total",
                                         "hms_response_bytes_total",
                                         "hms_rate_limit_admitted_total",
                                         "hms_rate_limit_limited_total",
                                         "hms_retries_total",
                                         "hms_retry_budget_exhausted_total",
                                         "hms_jwt_rejections_total",
                                         "hms_requests_unrecorded_total",
                                         "hms_connections_accepted_total",
                                         "hms_connections_active",
                                         "hms_connections_refused_total",
                                         "hms_upstream_connect_errors_total",
                                         "hms_upstream_connections_total",
                                         "hms_upstream_reused_total",
                                         "hms_upstream_idle_connections",
                                         "hms_buffer_ring_exhausted_total",
                                         "hms_upstream_pipelined_total",
                                         "hms_zero_copy_sends_total",
                                         "hms_core_heap_allocations_total",
                                         "hms_health_checks_total",
                                         "hms_access_log_lines_total",
                                         "hms_access_log_dropped_total",
                                         "hms_health_checks_failed_total",
                                         "hms_spans_recorded_total",
                                         "hms_spans_exported_total",
                                         "hms_spans_dropped_total",
                                         "hms_span_export_failures_total",
                                         "hms_downstream_requests_total",
                                         "hms_h2_streams_open",
                                         "hms_downstream_received_bytes_total",
                                         "hms_downstream_sent_bytes_total",
                                         "hms_tls_handshakes_total",
                                         "hms_upstream_tls_handshakes_total",
                                         "hms_identity_refused_total",
                                         "hms_headers_dropped_total",
                                         "hms_websocket_tunnels_total",
                                         "hms_websocket_tunnels_active",
                                         "hms_websocket_bytes_total",
                                         "hms_websocket_idle_timeouts_total",
                                         "hms_fleet_redis_up",
                                         "hms_fleet_degraded",
                                         "hms_fleet_redis_calls_total",
                                         "hms_fleet_redis_errors_total",
                                         "hms_fleet_fallbacks_total",
                                         "hms_fleet_lease_refills_total",
                                         "hms_fleet_waits_total",
                                         "hms_fleet_redis_connects_total",
                                         "hms_h2_sessions_total",
                                         "hms_h2_streams_total",
                                         "hms_h2_requests_refused_total",
                                         "hms_h2_header_lists_too_large_total",
                                         "hms_h2_streams_refused_total",
                                         "hms_h2_resets_received_total",
                                         "hms_h2_resets_sent_total",
                                         "hms_h2_malformed_bodies_total",
                                         "hms_h2_goaways_sent_total",
                                         "hms_h2_flood_resets_total",
                                         "hms_h2_flood_continuations_total",
                                         "hms_h2_flood_control_frames_total",
                                         "hms_h2_flood_empty_frames_total",
                                         "hms_h2_flood_unread_acks_total",
                                         "hms_h2_protocol_errors_total",
                                         "hms_h2_response_heads_too_large_total",
                                         "hms_h2_streams_unprocessed_total",
                                         "hms_h2_pings_timed_out_total",
                                         "hms_breaker_state",
                                         "hms_breaker_next_probe_seconds",
                                         "hms_breaker_opened_total",
                                         "hms_breaker_transitions_total",
                                         "hms_endpoint_ejected",
                                         "hms_endpoint_healthy",
                                         "hms_endpoint_ejections_total",
                                         "hms_rate_limit_available_tokens",
                                         "hms_snapshot_live",
                                         "hms_core_snapshot_version",
                                         "hms_core_requests_total",
                                         "hms_info"};
  EXPECT_EQ(Families(RenderMetricsPage(in)), want);
}

TEST(MetricsPage, SharedFamiliesKeepOneHelpAndTheirSamplesInListOrder) {
  CoreMetrics a, b;
  a.tls_handshakes.Add(5);
  b.tls_resumed.Add(2);
  a.tls_failed.Add(1);
  b.tls_plain_http.Add(4);
  a.spans_dropped.Add(3);
  MetricsPageInput in = Input({&a, &b});
  in.totals.spans_export_dropped = 9;
  const std::string page = RenderMetricsPage(in);
  EXPECT_NE(page.find("# HELP hms_tls_handshakes_total TLS handshakes with clients, by result "
                      "(resumed ones are also ok).\n"
                      "# TYPE hms_tls_handshakes_total counter\n"
                      "hms_tls_handshakes_total{result=\"ok\"} 5\n"
                      "hms_tls_handshakes_total{result=\"resumed\"} 2\n"
                      "hms_tls_handshakes_total{result=\"failed\"} 1\n"
                      "hms_tls_handshakes_total{result=\"plain_http\"} 4\n"),
            std::string::npos)
      << page;
  EXPECT_NE(page.find("hms_spans_dropped_total{reason=\"ring_full\"} 3\n"
                      "hms_spans_dropped_total{reason=\"export_failed\"} 9\n"),
            std::string::npos);
  EXPECT_NE(page.find("# HELP hms_spans_dropped_total Spans dropped: a core's span ring was full "
                      "(ring_full), or their export failed or came while the exporter waited "
                      "after a failure (export_failed).\n"),
            std::string::npos);
}

// Both sides' HTTP/2 counters are summed over cores, each into its own
// sample of the one family per counter.
TEST(MetricsPage, H2CountersHaveASampleForEachSide) {
  CoreMetrics a, b;
  a.h2.sessions.Add(3);
  b.h2.sessions.Add(4);
  a.h2_up.sessions.Add(1);
  b.h2_up.sessions.Add(1);
  b.h2_up.streams_unprocessed.Add(5);
  const std::string page = RenderMetricsPage(Input({&a, &b}));
  EXPECT_NE(page.find("# TYPE hms_h2_sessions_total counter\n"
                      "hms_h2_sessions_total{side=\"downstream\"} 7\n"
                      "hms_h2_sessions_total{side=\"upstream\"} 2\n"),
            std::string::npos)
      << page;
  EXPECT_NE(page.find("hms_h2_streams_unprocessed_total{side=\"downstream\"} 0\n"
                      "hms_h2_streams_unprocessed_total{side=\"upstream\"} 5\n"),
            std::string::npos);
  // Every counter of the list, on both sides.
#define HMS_TEST_H2_SIDES(member, help)                                                     \
  EXPECT_NE(page.find("hms_h2_" #member "_total{side=\"downstream\"} "), std::string::npos); \
  EXPECT_NE(page.find("hms_h2_" #member "_total{side=\"upstream\"} "), std::string::npos);
  HMS_H2_COUNTERS(HMS_TEST_H2_SIDES)
#undef HMS_TEST_H2_SIDES
}

TEST(MetricsPage, ScalarsAreSummedOverCoresAndGaugesTyped) {
  CoreMetrics a, b;
  a.connections_accepted.Add(3);
  b.connections_accepted.Add(4);
  a.connections_active.Set(2);
  b.connections_active.Set(1);
  const std::string page = RenderMetricsPage(Input({&a, &b}));
  EXPECT_NE(page.find("# TYPE hms_connections_accepted_total counter\n"
                      "hms_connections_accepted_total 7\n"),
            std::string::npos);
  EXPECT_NE(page.find("# HELP hms_connections_active Downstream connections open.\n"
                      "# TYPE hms_connections_active gauge\n"
                      "hms_connections_active 3\n"),
            std::string::npos);
}

TEST(MetricsPage, RoutesAndPolicyStateAreLabelled) {
  CoreMetrics core;
  core.Observe(kNoRoute, 404, 10);
  core.policy.Count(7, kPolicyJwtRejected + 1);
  MetricsPageInput in = Input({&core});
  in.breakers.push_back({"calc-svc", 1, 2'500'000'000, 3, 2, 1});
  in.endpoints.push_back({"calc-svc", "127.0.0.1:7001", true, 4, true});
  in.live_snapshots = 2;
  in.role = "sidecar";
  in.version = "0.1.0";
  const std::string page = RenderMetricsPage(in);
  for (const char* line : {
           "hms_requests_total{service=\"none\",route=\"none\",code=\"404\"} 1\n",
           "hms_jwt_rejections_total{service=\"calc-svc\",route=\"/sum/{a}/"
           "{b}\",reason=\"expired\"} 1\n",
           "hms_breaker_state{service=\"calc-svc\"} 1\n",
           "hms_breaker_next_probe_seconds{service=\"calc-svc\"} 2.5\n",
           "hms_breaker_transitions_total{service=\"calc-svc\",to=\"half_open\"} 2\n",
           "hms_endpoint_ejected{service=\"calc-svc\",endpoint=\"127.0.0.1:7001\"} 1\n",
           "hms_endpoint_healthy{service=\"calc-svc\",endpoint=\"127.0.0.1:7001\"} 0\n",
           "hms_endpoint_ejections_total{service=\"calc-svc\",endpoint=\"127.0.0.1:7001\"} 4\n",
           "hms_snapshot_live 2\n",
           "hms_core_requests_total{core=\"0\"} 1\n",
           "hms_info{role=\"sidecar\",version=\"0.1.0\"} 1\n",
       }) {
    EXPECT_NE(page.find(line), std::string::npos) << line;
  }
}

}  // namespace
}  // namespace hms::obs
