// Trace ids (DESIGN §5 "tracing"): W3C traceparent, x-trace-id, and B3 on input.
//
// Pure functions over caller buffers; any thread; never allocate.
#pragma once

#include <cstdint>
#include <string_view>

namespace hms::obs {

struct TraceContext {
  char trace_id[33];  // 32 lower-case hex + NUL
  char span_id[17];   // this hop's span id
  // The caller's span (traceparent's parent-id), NUL-terminated; empty when
  // the trace came from x-trace-id or is new. Kept for span export.
  char parent_id[17] = {};
  uint8_t flags = 1;  // sampled
  // The caller's x-trace-id, verbatim, returned on the response as sent
  // (1..32 hex chars); empty when the trace came from traceparent or is new.
  char external_id[33];
  uint8_t external_len = 0;
};

// Parses "00-<32 hex>-<16 hex>-<2 hex>" (W3C Trace Context §3.2). Rejects
// version ff, all-zero ids, upper-case hex, wrong lengths; a future version
// (> 00) is accepted if its first four fields are well formed (and anything
// after them starts with '-', §3.2.4). On success span_id and parent_id both
// hold the caller's parent-id (so formatting reproduces the header); call
// NewSpan before forwarding. On failure *out is left untouched.
bool ParseTraceparent(std::string_view value, TraceContext* out) noexcept;

// Accepts an x-trace-id of 1..32 hex chars: trace_id is it in lower case,
// left-padded with zeros to 32 (all-zero refused), and external_id keeps it
// verbatim; anything else is refused (the caller then starts a new trace).
// span_id is left empty and flags set to sampled: call NewSpan before
// formatting. On failure *out is left untouched.
bool ParseTraceId(std::string_view value, TraceContext* out) noexcept;

// Parses a B3 single header (openzipkin/b3-propagation):
// "<trace>-<span>[-<sampling>[-<parent>]]" with a 16 or 32 lower-case hex
// trace id (16 is left-padded to 32), a 16 hex span id (kept as parent_id:
// the caller's span), sampling "1", "d" (sampled) or "0". A header carrying
// only a sampling decision ("0", "1", "d") has no ids: false. Call NewSpan
// before forwarding. On failure *out is left untouched.
bool ParseB3(std::string_view value, TraceContext* out) noexcept;

// Fresh random ids (never all zero) from a per-thread xoshiro256** generator
// seeded from getrandom() at the thread's first use. NewTrace makes a whole new
// context (sampled, no parent, no external id); NewSpan replaces span_id only.
void NewTrace(TraceContext* out) noexcept;
void NewSpan(TraceContext* out) noexcept;

// Where a request's trace context came from, which says who made the
// sampling decision (W3C Trace Context §3.2.2.5, "parent-based" sampling).
enum class TraceOrigin : uint8_t {
  kNew,          // no usable header: a new trace; this hop decides
  kTraceId,      // x-trace-id without a traceparent of the same trace: this hop decides
  kTraceparent,  // traceparent, alone or with an x-trace-id of the same trace: its flags decide
  kB3,           // a b3 header with a sampling field: it decides
  kB3Deferred,   // a b3 header with ids only ("defer"): this hop decides
};
inline bool CallerDecidedSampling(TraceOrigin o) noexcept {
  return o == TraceOrigin::kTraceparent || o == TraceOrigin::kB3;
}

// A request's trace, by precedence: its x-trace-id, else its traceparent,
// else its b3 header, else a new trace (empty views are absent headers).
// When the x-trace-id and the traceparent name the same trace, as they do on
// every request one HMS hop sends the next, the traceparent's parent span
// and flags are kept too: x-trace-id alone would cut the span tree at every
// hop. Call NewSpan before forwarding.
TraceOrigin AcceptTrace(std::string_view x_trace_id, std::string_view traceparent,
                        std::string_view b3, TraceContext* out) noexcept;

// Sets or clears the sampled bit (trace-flags bit 0) of a context whose
// sampling this hop decides.
inline void SetSampled(TraceContext* t, bool sampled) noexcept {
  t->flags = static_cast<uint8_t>((t->flags & ~1u) | (sampled ? 1u : 0u));
}

// Writes "00-<trace>-<span>-<flags>" (55 bytes) into out; returns 55.
int FormatTraceparent(const TraceContext& t, char* out) noexcept;

}  // namespace hms::obs
