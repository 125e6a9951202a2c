// Trace ids (DESIGN §5 "tracing"): W3C traceparent and x-trace-id.
//
// Pure functions over caller buffers; any thread; never allocate.
#pragma once

#include <cstdint>
#include <string_view>

namespace hms::obs {

struct TraceContext {
  char trace_id[33];  // 32 lower-case hex + NUL
  char span_id[17];   // this hop's span id
  uint8_t flags = 1;  // sampled
};

// Parses "00-<32 hex>-<16 hex>-<2 hex>" (W3C Trace Context §3.2). Rejects
// version ff, all-zero ids, upper-case hex, wrong lengths; a future version
// (> 00) is accepted if its first four fields are well formed.
bool ParseTraceparent(std::string_view value, TraceContext* out) noexcept;

// Accepts an x-trace-id of 1..32 hex chars (any case, normalised to lower) and
// left-pads it with zeros to 32; anything else is refused.
bool ParseTraceId(std::string_view value, TraceContext* out) noexcept;

// Fresh random ids from a per-thread xoshiro generator seeded at thread start.
void NewTrace(TraceContext* out) noexcept;
void NewSpan(TraceContext* out) noexcept;

// Writes "00-<trace>-<span>-<flags>" (55 bytes) into out; returns 55.
int FormatTraceparent(const TraceContext& t, char* out) noexcept;

}  // namespace hms::obs
