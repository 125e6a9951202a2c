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

// Every counter is declared once, in obs/metrics_list.h (HMS_H2_COUNTERS):
// the struct below, and the /metrics families (hms_h2_<member>_total, one
// sample for the downstream sessions and one for the upstream ones, by
// `side`), come from that one list.
using Counters = obs::H2Counters;

}  // namespace hms::h2
