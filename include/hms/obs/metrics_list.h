// Every per-core scalar metric, declared once (the way Envoy's
// ALL_..._STATS(COUNTER, GAUGE, ...) lists are): metrics.h expands this list
// into CoreMetrics' members, CoreTotals' fields and Sum(); the /metrics page
// (metrics_page.h) expands it into its families, in this order. Adding a
// counter is one line here plus its increment on the data path.
//
// CORE_COUNTER(member, family, label_name, label_value, help)
// CORE_GAUGE(member, family, label_name, label_value, help)
//   One Counter per core, summed over cores at scrape time (a gauge summed
//   over cores is the process-wide gauge). Rendered as one sample of
//   `family`, labelled label_name="label_value" unless label_name is empty.
// PROCESS_COUNTER(member, family, label_name, label_value, help)
//   Not per core: a CoreTotals field the control thread fills in before
//   rendering (the span exporter's counts), listed here for its place on
//   the page.
// Several entries may share a family (one sample each, one label value
// each); the first gives the help, later ones leave it empty.
//
// Header-only, no includes: a list, expanded where it is needed.
#pragma once

// The HTTP/2 sessions' counters (docs/http2.md "Limits" and "Floods"):
// COUNTER(member, help). h2::Counters is this list's struct (metrics.h,
// obs::H2Counters); the cores' downstream sessions count into
// CoreMetrics::h2, their upstream sessions into CoreMetrics::h2_up, both
// rendered as hms_h2_<member>_total, one sample a side:
// {side="downstream"} and {side="upstream"}. A counter of one side's events
// only (a request head refused, a response head too large) stays 0 on the
// other.
// clang-format off
#define HMS_H2_COUNTERS(COUNTER)                                                                   \
  COUNTER(sessions, "HTTP/2 sessions started, by side: with clients (downstream), with h2/h2c services (upstream).") \
  COUNTER(streams, "Streams opened, by side: request heads arrived (downstream), requests sent (upstream).") \
  COUNTER(requests_refused, "Request heads refused by a rule (400/431, each names its rule).")    \
  COUNTER(header_lists_too_large, "Request heads over max_header_list_bytes (431).")              \
  COUNTER(streams_refused, "Streams refused over max_concurrent_streams (REFUSED_STREAM).")       \
  COUNTER(resets_received, "RST_STREAM frames received.")                                         \
  COUNTER(resets_sent, "RST_STREAM frames sent.")                                                 \
  COUNTER(malformed_bodies, "Streams reset: DATA disagreed with content-length, or misplaced.")   \
  COUNTER(goaways_sent, "GOAWAY frames sent (drain notices included).")                           \
  COUNTER(flood_resets, "Sessions ended for too many stream resets (rapid reset).")               \
  COUNTER(flood_continuations, "Sessions ended for a CONTINUATION flood.")                        \
  COUNTER(flood_control_frames, "Sessions ended for a SETTINGS/PING/PRIORITY flood.")             \
  COUNTER(flood_empty_frames, "Sessions ended for a run of empty frames.")                        \
  COUNTER(flood_unread_acks, "Sessions ended: acknowledgements piled up unread.")                 \
  COUNTER(protocol_errors, "Sessions ended for another protocol error (bad preface, bad frame).") \
  COUNTER(response_heads_too_large, "Upstream response heads over max_header_list_bytes (reset).") \
  COUNTER(streams_unprocessed, "Upstream streams never processed (GOAWAY, REFUSED_STREAM).") \
  COUNTER(pings_timed_out, "Upstream connections closed: a liveness PING went unanswered.")
// clang-format on

// clang-format off
#define HMS_CORE_METRICS(CORE_COUNTER, CORE_GAUGE, PROCESS_COUNTER)                               \
  CORE_COUNTER(connections_accepted, "hms_connections_accepted_total", "", "",                    \
               "Downstream connections accepted.")                                                \
  CORE_GAUGE(connections_active, "hms_connections_active", "", "",                                \
             "Downstream connections open.")                                                      \
  CORE_COUNTER(connections_refused, "hms_connections_refused_total", "", "",                      \
               "Downstream connections refused over max_connections_per_core.")                   \
  CORE_COUNTER(upstream_connect_errors, "hms_upstream_connect_errors_total", "", "",              \
               "Upstream connections that failed to open.")                                       \
  CORE_COUNTER(upstream_connections_new, "hms_upstream_connections_total", "", "",                \
               "Upstream connections opened.")                                                    \
  CORE_COUNTER(upstream_connections_reused, "hms_upstream_reused_total", "", "",                  \
               "Requests sent on a pooled upstream connection.")                                  \
  CORE_GAUGE(upstream_idle, "hms_upstream_idle_connections", "", "",                              \
             "Pooled idle upstream connections.")                                                 \
  /* -ENOBUFS seen */                                                                             \
  CORE_COUNTER(buffer_ring_exhausted, "hms_buffer_ring_exhausted_total", "", "",                  \
               "Receives that found the provided-buffer ring empty.")                             \
  /* requests queued behind another on one upstream connection */                                 \
  CORE_COUNTER(upstream_pipelined, "hms_upstream_pipelined_total", "", "",                        \
               "Requests sent pipelined behind another on one upstream connection.")              \
  CORE_COUNTER(zero_copy_sends, "hms_zero_copy_sends_total", "", "",                              \
               "Sends that went out as SEND_ZC (zero_copy_min_bytes).")                           \
  /* operator new calls on this core's thread */                                                  \
  CORE_COUNTER(heap_allocations, "hms_core_heap_allocations_total", "", "",                       \
               "operator new calls on core threads.")                                             \
  CORE_COUNTER(health_checks, "hms_health_checks_total", "", "", "Active health checks made.")    \
  /* access-log lines handed to the control thread */                                             \
  CORE_COUNTER(access_log_lines, "hms_access_log_lines_total", "", "",                            \
               "Access-log lines written.")                                                       \
  /* ... dropped because the core's ring was full */                                              \
  CORE_COUNTER(access_log_dropped, "hms_access_log_dropped_total", "", "",                        \
               "Access-log lines dropped: a core's ring was full.")                               \
  CORE_COUNTER(health_checks_failed, "hms_health_checks_failed_total", "", "",                    \
               "Active health checks that failed.")                                               \
  CORE_COUNTER(spans_recorded, "hms_spans_recorded_total", "", "",                                \
               "Sampled spans the cores handed to the span exporter.")                            \
  PROCESS_COUNTER(spans_exported, "hms_spans_exported_total", "", "",                             \
                  "Spans the OTLP collector accepted.")                                           \
  /* sampled spans dropped because the core's span ring was full */                               \
  CORE_COUNTER(spans_dropped, "hms_spans_dropped_total", "reason", "ring_full",                   \
               "Spans dropped: a core's span ring was full (ring_full), or their export failed "  \
               "or came while the exporter waited after a failure (export_failed).")              \
  PROCESS_COUNTER(spans_export_dropped, "hms_spans_dropped_total", "reason", "export_failed", "") \
  PROCESS_COUNTER(span_export_failures, "hms_span_export_failures_total", "", "",                 \
                  "OTLP export requests that failed (each drops its spans).")                     \
  /* requests answered, by the protocol that carried them */                                      \
  CORE_COUNTER(requests_http1, "hms_downstream_requests_total", "protocol", "HTTP/1.1",           \
               "Requests answered, by the downstream protocol that carried them.")               \
  CORE_COUNTER(requests_h2, "hms_downstream_requests_total", "protocol", "HTTP/2", "")            \
  /* client slots that are HTTP/2 streams (each an exchange in progress) */                     \
  CORE_GAUGE(h2_streams_open, "hms_h2_streams_open", "", "",                                      \
             "HTTP/2 request streams open (each an exchange in progress).")                      \
  CORE_COUNTER(bytes_in, "hms_downstream_received_bytes_total", "", "",                           \
               "Bytes received from clients.")                                                    \
  CORE_COUNTER(bytes_out, "hms_downstream_sent_bytes_total", "", "", "Bytes sent to clients.")    \
  /* TLS (docs/tls.md): downstream handshakes completed */                                        \
  CORE_COUNTER(tls_handshakes, "hms_tls_handshakes_total", "result", "ok",                        \
               "TLS handshakes with clients, by result (resumed ones are also ok).")              \
  /* ... of which resumed a session (ticket) */                                                   \
  CORE_COUNTER(tls_resumed, "hms_tls_handshakes_total", "result", "resumed", "")                  \
  /* downstream handshakes that failed (bad input, no client cert, ...) */                        \
  CORE_COUNTER(tls_failed, "hms_tls_handshakes_total", "result", "failed", "")                    \
  /* plain HTTP sent to a TLS listener (answered 400) */                                          \
  CORE_COUNTER(tls_plain_http, "hms_tls_handshakes_total", "result", "plain_http", "")            \
  /* mTLS handshakes to upstream sidecars */                                                      \
  CORE_COUNTER(upstream_tls_handshakes, "hms_upstream_tls_handshakes_total", "result", "ok",      \
               "mTLS handshakes with upstream sidecars, by result (resumed ones are also ok).")   \
  CORE_COUNTER(upstream_tls_resumed, "hms_upstream_tls_handshakes_total", "result", "resumed", "")\
  /* ... failed, or the peer was not the service it should be */                                  \
  CORE_COUNTER(upstream_tls_failed, "hms_upstream_tls_handshakes_total", "result", "failed", "")  \
  /* mTLS callers refused by allow_from (403 identity_not_allowed) */                             \
  CORE_COUNTER(identity_refused, "hms_identity_refused_total", "", "",                            \
               "mTLS callers refused: identity not in allow_from.")                               \
  /* request fields not forwarded for their names (docs/engine.md "Header fields"): */            \
  /* '_' in the name under underscores_in_headers: drop */                                        \
  CORE_COUNTER(headers_dropped_underscore, "hms_headers_dropped_total", "reason", "underscore",   \
               "Request fields not forwarded for their names, by reason: a '_' in the name "      \
               "(underscores_in_headers: drop).")                                                 \
  /* WebSocket tunnels (docs/engine.md "WebSocket"): upstream 101s sent on */                     \
  CORE_COUNTER(websocket_tunnels, "hms_websocket_tunnels_total", "", "",                          \
               "WebSocket upgrades that became tunnels (the upstream's 101 went to the client).") \
  CORE_GAUGE(websocket_active, "hms_websocket_tunnels_active", "", "",                            \
             "WebSocket tunnels open.")                                                           \
  CORE_COUNTER(websocket_bytes_to_upstream, "hms_websocket_bytes_total", "direction",             \
               "to_upstream", "Bytes carried by WebSocket tunnels, by direction.")                \
  CORE_COUNTER(websocket_bytes_to_client, "hms_websocket_bytes_total", "direction", "to_client",  \
               "")                                                                                \
  CORE_COUNTER(websocket_idle_closed, "hms_websocket_idle_timeouts_total", "", "",                \
               "WebSocket tunnels closed by their idle timeout.")                                 \
  /* fleet-scope rate limits (docs/resilience.md "Fleet scope"): per core 0 or 1 */               \
  CORE_GAUGE(fleet_redis_up, "hms_fleet_redis_up", "", "",                                        \
             "Cores whose connection to the fleet's Redis is up and answering.")                  \
  CORE_GAUGE(fleet_degraded, "hms_fleet_degraded", "", "",                                        \
             "Cores deciding fleet-scope limits by the fallback (Redis down or slow).")           \
  CORE_COUNTER(fleet_calls, "hms_fleet_redis_calls_total", "", "",                                \
               "Lease calls made to Redis (one GCRA script run each).")                           \
  CORE_COUNTER(fleet_errors, "hms_fleet_redis_errors_total", "", "",                              \
               "Lease calls and connections to Redis that failed (timeout, error, refused).")     \
  CORE_COUNTER(fleet_fallbacks, "hms_fleet_fallbacks_total", "", "",                              \
               "Requests on fleet-scope routes decided by the fallback instead of Redis.")        \
  CORE_COUNTER(fleet_lease_refills, "hms_fleet_lease_refills_total", "", "",                      \
               "Lease calls that granted stock ahead of need.")                                   \
  CORE_COUNTER(fleet_waits, "hms_fleet_waits_total", "", "",                                      \
               "Requests parked until Redis answered their lease call.")                          \
  CORE_COUNTER(fleet_connects, "hms_fleet_redis_connects_total", "", "",                          \
               "Connections made to Redis (the first and every reconnect).")
// clang-format on
