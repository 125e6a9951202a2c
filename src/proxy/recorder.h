// What an exchange leaves behind when it ends (docs/observability.md): its
// metrics, its access-log line and its span.
//
// An ExchangeRecorder is one core's room for that accounting. It owns the
// core's access-log ring and span ring (their consumers, the gateway's log
// flusher and span exporter, read them from their own threads) and reaches
// the core only through the CoreContext it is given: the metrics, the
// pass's monotonic time and the random state the sampling draws from. The
// Worker calls it at an exchange's start (whether its trace is sampled, what
// a span keeps of the head) and once at its end, with the facts of the
// caller that the exchange does not hold (Caller). Owned by its Worker and
// touched by that core's thread only; the rings are made at start, nothing
// is allocated per request.
//
// What a record says is a pure function of its inputs: AccessLine writes
// the access-log line, FillSpan a span record, both unit-tested through
// this header (tests/unit/proxy/recorder_test.cc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "hms/config/config.h"
#include "hms/core/clock.h"
#include "hms/http/parser.h"
#include "hms/obs/log_ring.h"
#include "hms/obs/span.h"
#include "src/proxy/core_context.h"
#include "src/proxy/exchange.h"

namespace hms::proxy {

// The protocol that carried the request (the access log's `protocol`, the
// requests_http1 / requests_h2 counters).
enum class Protocol : uint8_t { kHttp1, kHttp2 };

// What the exchange does not know of its caller: its connection's facts.
struct Caller {
  std::string_view peer;      // the client's IP address, as text
  std::string_view identity;  // its mTLS identity (docs/tls.md), "" over plain TCP
  Protocol protocol = Protocol::kHttp1;
  obs::SpanListener listener = obs::SpanListener::kEdge;
};

// Spans a core's ring holds (about 2.5 MiB): at 50k sampled requests/s on one
// core, 80 ms of spans, four of the exporter's 20 ms passes.
inline constexpr size_t kSpanRingSlots = 4096;

// The longest access-log line, its newline included: a longer one is dropped.
inline constexpr size_t kAccessLineMax = 1024;
// The caller's identity in the line is cut to this many bytes, so the line
// always fits with everything else at its longest.
inline constexpr size_t kAccessIdentityMax = 256;

// The wall clock as an access-log line shows it, UTC with milliseconds:
// "YYYY-MM-DDTHH:MM:SS.mmmZ" (years 0 to 9999). Text is a function of
// `unix_ms` alone; the date and time of day are made once a second (the
// last second's text is kept: made on every line they cost about 15 ns of a
// 110 ns line, bench-recorder), the milliseconds on every call. <chrono>'s
// calendar, not gmtime_r, which takes libc's time-zone lock. The view is
// valid until the next call.
class UtcStamp {
 public:
  std::string_view Text(int64_t unix_ms) noexcept;

 private:
  int64_t second_ = INT64_MIN;  // the second text_ shows
  char text_[25] = "0000-00-00T00:00:00.000Z";
};

// Writes the exchange's access-log line (one JSON object and '\n') into
// `out`, ended `now` (monotonic: the duration) at the wall-clock `time`
// (UtcStamp's text). Returns its length, or 0 when it does not fit `cap`
// bytes: never half a line.
size_t AccessLine(const ExchangeFacts& ex, const Caller& caller, core::Instant now,
                  std::string_view time, char* out, size_t cap) noexcept;

// Fills every field of `s` for the exchange, ended `now` (monotonic) at
// `unix_ns` (the wall clock). The start is the end less the monotonic
// duration, so a step of the wall clock never makes a span negative. Copies
// only: nothing in `s` points into the snapshot, which may be gone by the
// time the exporter reads it.
void FillSpan(const ExchangeFacts& ex, const Caller& caller, core::Instant now, int64_t unix_ns,
              obs::SpanRecord* s) noexcept;

// The endpoint of the exchange's last attempt ("" when none was made).
std::string_view LastUpstream(const ExchangeFacts& ex) noexcept;

class ExchangeRecorder {
 public:
  // The access log is the core's config's (`access_log:`, none: no lines).
  explicit ExchangeRecorder(const CoreContext& core);
  ExchangeRecorder(const ExchangeRecorder&) = delete;
  ExchangeRecorder& operator=(const ExchangeRecorder&) = delete;

  // mesh-config's tracing, read once per process before the core runs: the
  // sampling ratio, and the span ring when spans are exported.
  void StartTracing(const config::TracingConfig& tracing);
  // Lines and spans need the precise wall clock: a hop's span must not seem
  // to start before its parent's (the coarse clock lags by up to a tick, 4 ms).
  bool wants_precise_clock() const noexcept { return access_log_ || spans_; }
  // The pass's wall clock, read once per pass by the loop.
  void SetWallClock(int64_t unix_ns) noexcept { unix_ns_ = unix_ns; }

  // A trace this hop decides: sampled at tracing.sample_ratio.
  bool SampleTrace() noexcept { return obs::SampleHit(core_.Random(), span_sample_below_); }
  // The exchange's trace is decided: a sampled one, when spans are
  // exported, is marked for a span and keeps the request's Host for it.
  void Begin(ExchangeFacts& ex, const http::RequestHead& r) noexcept;
  // The exchange ends: its latency, sizes and protocol into the metrics, its
  // access-log line (at access_log.sample_ratio), its span if sampled.
  void End(const ExchangeFacts& ex, const Caller& caller) noexcept;
  // A request that never became an exchange (bad framing, a header
  // timeout), answered `ex.status`: its line and a span, each sampled on
  // its own, and its protocol.
  void Refused(ExchangeFacts& ex, const Caller& caller) noexcept;

  // This core's rings, for their consumers (null when not configured).
  obs::LogRing* access_log() const noexcept { return access_log_.get(); }
  obs::SpanRing* spans() const noexcept { return spans_.get(); }

 private:
  void CountProtocol(const Caller& caller) noexcept;
  void Log(const ExchangeFacts& ex, const Caller& caller) noexcept;
  void Span(const ExchangeFacts& ex, const Caller& caller) noexcept;

  const CoreContext& core_;
  std::unique_ptr<obs::LogRing> access_log_;
  uint64_t access_sample_below_ = 0;  // log when Random() <= this (sample_ratio × 2^64)
  std::unique_ptr<obs::SpanRing> spans_;
  uint64_t span_sample_below_ = UINT64_MAX;  // obs::SampleThreshold of tracing.sample_ratio
  int64_t unix_ns_ = 0;                      // the pass's wall clock
  UtcStamp stamp_;                           // its text in the access log
};

}  // namespace hms::proxy
