// What one HTTP/2 connection may make the gateway hold or do, and what the
// gateway counts when a peer runs into a limit (docs/http2.md "Limits" and
// "Floods").
//
// Limits are per listener (plain data, copied into a ServerConfig at boot or
// reload); the defaults are safe for an edge. Counters are per core: the
// sessions of one core add to one Counters, its only writer; the admin
// thread may read them while they run (obs::Counter).
#pragma once

#include <cstdint>

#include "hms/obs/metrics.h"

namespace hms::h2 {

// A token bucket's shape: `burst` events at once, refilled at `per_second`.
struct Rate {
  uint32_t burst;
  uint32_t per_second;
};

struct Limits {
  // SETTINGS_MAX_CONCURRENT_STREAMS. A stream over it is refused with
  // RST_STREAM(REFUSED_STREAM), which a client may retry (RFC 9113 §8.7).
  uint32_t max_concurrent_streams = 100;
  // SETTINGS_MAX_HEADER_LIST_SIZE, enforced: the decoded fields of one header
  // block, each counted as name + value + 32 (RFC 9113 §6.5.2). A request
  // over it is answered 431 headers_too_large; an HPACK bomb (a few bytes that
  // decode to megabytes) stops counting here, whatever its encoded size.
  uint32_t max_header_list_bytes = 16384;
  // SETTINGS_HEADER_TABLE_SIZE: the HPACK dynamic table the peer's encoder
  // may make this side keep (RFC 7541 §4.2), per connection.
  uint32_t header_table_bytes = 4096;
  // Flow control (RFC 9113 §5.2): what a client may send on one stream, and
  // on the whole connection, before the engine has passed it on. Bounds the
  // request body bytes one connection can have in flight toward the gateway.
  uint32_t stream_window_bytes = 256 * 1024;
  uint32_t connection_window_bytes = 1024 * 1024;

  // Floods. Each answered with GOAWAY(ENHANCE_YOUR_CALM) and counted.
  // RST_STREAM received, and RST_STREAM the peer provoked (refused or
  // malformed streams): the rapid reset (CVE-2023-44487) and its
  // server-provoked variant. nghttp2's own limiter (its defaults 1000, 33/s)
  // backs this one at twice its numbers.
  Rate resets = {1000, 33};
  // CONTINUATION frames after one HEADERS (CVE-2024-28182): nghttp2's
  // max_continuations; a header block needing more is a flood.
  uint32_t max_continuations = 8;
  // SETTINGS, PING and PRIORITY frames: each costs work and the first two an
  // answer, and none carries a request.
  Rate control_frames = {200, 50};
  // Frames in a row that carry nothing: DATA with no payload and no
  // END_STREAM, HEADERS or CONTINUATION with an empty fragment that does not
  // end the block.
  uint32_t max_empty_frames = 10;
  // SETTINGS and PING acknowledgements queued for a peer that does not read
  // them (nghttp2's max_outbound_ack).
  uint32_t max_outbound_ack = 1000;
  // Entries in one SETTINGS frame (nghttp2's max_settings).
  uint32_t max_settings_entries = 32;
};

// Every counter, declared once (the way obs/metrics_list.h declares the
// core's): COUNTER(member, help).
// clang-format off
#define HMS_H2_COUNTERS(COUNTER)                                                                   \
  COUNTER(sessions, "HTTP/2 sessions started.")                                                   \
  COUNTER(streams, "Request streams whose head arrived (delivered or refused).")                  \
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
  COUNTER(streams_unprocessed, "Upstream streams never processed (GOAWAY, REFUSED_STREAM).")
// clang-format on

struct Counters {
#define HMS_H2_COUNTER_MEMBER(member, help) obs::Counter member;
  HMS_H2_COUNTERS(HMS_H2_COUNTER_MEMBER)
#undef HMS_H2_COUNTER_MEMBER
};

}  // namespace hms::h2
