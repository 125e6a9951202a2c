// The exchange's accounting at its end (recorder.h): metrics, the access-log
// line, the span.
#include "src/proxy/recorder.h"

#include <chrono>
#include <cstring>

#include "src/proxy/wire.h"

namespace hms::proxy {
namespace {

char Digit(uint64_t v) noexcept { return static_cast<char>('0' + v); }

// `v`'s last `n` decimal digits at p[0..n).
void Digits(char* p, int n, uint64_t v) noexcept {
  for (int i = n - 1; i >= 0; --i, v /= 10) p[i] = Digit(v % 10);
}

}  // namespace

std::string_view UtcStamp::Text(int64_t unix_ms) noexcept {
  using namespace std::chrono;
  const sys_time<milliseconds> t{milliseconds(unix_ms)};
  const sys_seconds second = floor<seconds>(t);
  if (second.time_since_epoch().count() != second_) {
    second_ = second.time_since_epoch().count();
    const sys_days day = floor<days>(second);
    const year_month_day date{day};
    const auto s = static_cast<uint64_t>((second - day).count());  // into the day
    Digits(text_, 4, static_cast<uint64_t>(static_cast<int>(date.year())));
    Digits(text_ + 5, 2, static_cast<unsigned>(date.month()));
    Digits(text_ + 8, 2, static_cast<unsigned>(date.day()));
    Digits(text_ + 11, 2, s / 3600);
    Digits(text_ + 14, 2, s / 60 % 60);
    Digits(text_ + 17, 2, s % 60);
  }
  Digits(text_ + 20, 3, static_cast<uint64_t>((t - second).count()));
  return std::string_view(text_, sizeof text_ - 1);
}

std::string_view LastUpstream(const ExchangeFacts& ex) noexcept {
  if (ex.attempts == 0 || ex.cluster == nullptr || ex.cluster->endpoints.empty()) return {};
  return ex.cluster->endpoints[ex.endpoint_index % ex.cluster->endpoints.size()].address;
}

size_t AccessLine(const ExchangeFacts& ex, const Caller& caller, core::Instant now,
                  std::string_view time, char* out, size_t cap) noexcept {
  if (cap == 0) return 0;
  Writer w(out, cap - 1);  // room for the newline
  std::string_view tid = ex.trace.external_len > 0
                             ? std::string_view(ex.trace.external_id, ex.trace.external_len)
                             : std::string_view(ex.trace.trace_id, 32);
  w.S("{\"time\":\"").S(time);
  w.S("\",\"trace_id\":\"").Json(tid);
  w.S("\",\"method\":\"").Json(std::string_view(ex.method_text, ex.method_len));
  w.S("\",\"service\":\"");
  if (ex.cluster != nullptr) w.Json(ex.cluster->name);
  w.S("\",\"route\":\"");
  if (ex.route != nullptr) w.Json(ex.route->path_template);
  w.S("\",\"status\":").U(ex.status);
  const uint64_t us = (now - ex.start) / 1000;
  char frac[] = ".000";
  Digits(frac + 1, 3, us % 1000);
  w.S(",\"duration_ms\":").U(us / 1000).S(std::string_view(frac, 4));
  // An address from the config: nothing to escape.
  w.S(",\"upstream\":\"").S(LastUpstream(ex));
  w.S("\",\"retries\":").U(ex.retries_done);
  w.S(",\"bytes_in\":").U(ex.bytes_in).S(",\"bytes_out\":").U(ex.bytes_out);
  w.S(",\"stamp\":\"").Json(std::string_view(ex.reason, ex.reason_len));
  // An IP address as the kernel gave it: nothing to escape.
  w.S("\",\"peer\":\"").S(caller.peer);
  w.S("\",\"peer_identity\":\"").Json(caller.identity.substr(0, kAccessIdentityMax));
  // Fields not forwarded for their names: how many, and the first one's name.
  w.S("\",\"dropped_headers\":").U(ex.dropped_headers);
  w.S(",\"dropped_header\":\"").Json(std::string_view(ex.dropped_name, ex.dropped_name_len));
  w.S(caller.protocol == Protocol::kHttp2 ? "\",\"protocol\":\"HTTP/2\"}"
                                          : "\",\"protocol\":\"HTTP/1.1\"}");
  if (w.overflow()) return 0;
  out[w.size()] = '\n';
  return w.size() + 1;
}

void FillSpan(const ExchangeFacts& ex, const Caller& caller, core::Instant now, int64_t unix_ns,
              obs::SpanRecord* s) noexcept {
  std::memcpy(s->trace_id, ex.trace.trace_id, sizeof s->trace_id);
  std::memcpy(s->span_id, ex.trace.span_id, sizeof s->span_id);
  if (ex.trace.parent_id[0] != '\0') {
    std::memcpy(s->parent_id, ex.trace.parent_id, sizeof s->parent_id);
  } else {
    s->parent_id[0] = '\0';
  }
  s->end_unix_ns = unix_ns;
  s->start_unix_ns = unix_ns - static_cast<int64_t>(now - ex.start);
  s->status = ex.status;
  s->retries = ex.retries_done;
  s->listener = caller.listener;
  s->version_minor = ex.version_minor;
  using R = obs::SpanRecord;
  R::Set(s->method, &s->method_len, std::string_view(ex.method_text, ex.method_len));
  R::Set(s->route, &s->route_len,
         ex.route != nullptr ? std::string_view(ex.route->path_template) : "");
  R::Set(s->service, &s->service_len,
         ex.cluster != nullptr ? std::string_view(ex.cluster->name) : "");
  R::Set(s->host, &s->host_len, std::string_view(ex.host, ex.host_len));
  R::Set(s->upstream, &s->upstream_len, LastUpstream(ex));
  R::Set(s->reason, &s->reason_len, std::string_view(ex.reason, ex.reason_len));
  R::Set(s->peer, &s->peer_len, caller.peer);
  R::Set(s->peer_identity, &s->peer_identity_len, caller.identity);
}

ExchangeRecorder::ExchangeRecorder(const CoreContext& core) : core_(core) {
  if (!core.config.access_log) return;
  access_log_ = std::make_unique<obs::LogRing>(core.config.access_log->buffer_bytes);
  const double ratio = core.config.access_log->sample_ratio;
  access_sample_below_ =
      ratio >= 1.0 ? UINT64_MAX : static_cast<uint64_t>(ratio * 18446744073709551615.0);
}

void ExchangeRecorder::StartTracing(const config::TracingConfig& tracing) {
  span_sample_below_ = obs::SampleThreshold(tracing.sample_ratio);
  if (tracing.exports()) spans_ = std::make_unique<obs::SpanRing>(kSpanRingSlots);
}

void ExchangeRecorder::Begin(ExchangeFacts& ex, const http::RequestHead& r) noexcept {
  if (spans_ == nullptr || (ex.trace.flags & 1) == 0) return;
  ex.sampled = true;
  obs::SpanRecord::Set(ex.host, &ex.host_len, r.host);
}

void ExchangeRecorder::End(const ExchangeFacts& ex, const Caller& caller) noexcept {
  // A tunnel's latency is its handshake's; its life is in the log and span.
  core_.metrics.Observe(ex.route_key, ex.status,
                        ((ex.tunnel.active ? ex.tunnel.opened : core_.now) - ex.start) / 1000);
  core_.metrics.ObserveBytes(ex.route_key, ex.bytes_in, ex.bytes_out);
  CountProtocol(caller);
  if (access_log_ != nullptr && core_.Random() <= access_sample_below_) Log(ex, caller);
  if (ex.sampled && spans_ != nullptr) Span(ex, caller);  // Begin marks it only with a ring
}

void ExchangeRecorder::Refused(ExchangeFacts& ex, const Caller& caller) noexcept {
  if (access_log_ != nullptr && core_.Random() <= access_sample_below_) Log(ex, caller);
  if (spans_ != nullptr && SampleTrace()) {
    ex.sampled = true;
    Span(ex, caller);
  }
  CountProtocol(caller);
}

void ExchangeRecorder::CountProtocol(const Caller& caller) noexcept {
  (caller.protocol == Protocol::kHttp2 ? core_.metrics.requests_h2 : core_.metrics.requests_http1)
      .Add();
}

void ExchangeRecorder::Log(const ExchangeFacts& ex, const Caller& caller) noexcept {
  char line[kAccessLineMax];
  const size_t n =
      AccessLine(ex, caller, core_.now, stamp_.Text(unix_ns_ / 1'000'000), line, sizeof line);
  // An outsized route template costs the line (never half a line), counted
  // with those a full ring drops.
  if (n != 0 && access_log_->TryWrite(line, n)) {
    core_.metrics.access_log_lines.Add();
  } else {
    core_.metrics.access_log_dropped.Add();
  }
}

void ExchangeRecorder::Span(const ExchangeFacts& ex, const Caller& caller) noexcept {
  obs::SpanRecord* s = spans_->Claim();
  if (s == nullptr) {
    // The exporter is behind: the span goes, the request does not wait.
    core_.metrics.spans_dropped.Add();
    return;
  }
  FillSpan(ex, caller, core_.now, unix_ns_, s);
  spans_->Publish();
  core_.metrics.spans_recorded.Add();
}

}  // namespace hms::proxy
