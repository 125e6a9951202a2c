// Unit tests of the exchange's accounting (src/proxy/recorder.h): the
// access-log line as a pure function (its fields, their JSON escaping, the
// time stamp and the duration, a line too long dropped whole, the protocol),
// the span's fields, and the ExchangeRecorder over a CoreContext: what it
// counts, logs and records at an exchange's end.
#include "src/proxy/recorder.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "tests/unit/proxy/test_core.h"

namespace hms::proxy {
namespace {

constexpr int64_t kWallMs = 1796550238123;  // 2026-12-06T09:43:58.123Z

void Text(char* field, uint8_t* len, std::string_view s) {
  std::memcpy(field, s.data(), s.size());
  *len = static_cast<uint8_t>(s.size());
}

// An answered exchange of `route` on `cluster`, begun at 5 s, its one
// attempt on the cluster's second endpoint.
struct Fixture {
  config::Cluster cluster;
  config::Route route;
  ExchangeFacts ex;

  Fixture() {
    cluster.name = "orders";
    for (const char* address : {"127.0.0.1:7001", "127.0.0.1:7002"}) {
      cluster.endpoints.emplace_back().address = address;
    }
    route.path_template = "/orders/{id}";
    ex.cluster = &cluster;
    ex.route = &route;
    ex.status = 200;
    ex.start = core::Millis(5'000);
    ex.attempts = 1;
    ex.endpoint_index = 3;  // modulo the endpoints: the second
    ex.retries_done = 1;
    ex.bytes_in = 120;
    ex.bytes_out = 4096;
    std::memcpy(ex.trace.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736", 33);
    std::memcpy(ex.trace.span_id, "00f067aa0ba902b7", 17);
    Text(ex.method_text, &ex.method_len, "GET");
  }
};

Caller Plain() { return Caller{"10.0.0.7", "", Protocol::kHttp1, obs::SpanListener::kEdge}; }

std::string Line(const ExchangeFacts& ex, const Caller& caller, core::Instant now,
                 int64_t unix_ms = kWallMs, size_t cap = kAccessLineMax) {
  std::vector<char> buf(cap + 1, '#');
  UtcStamp stamp;
  const size_t n = AccessLine(ex, caller, now, stamp.Text(unix_ms), buf.data(), cap);
  EXPECT_EQ(buf[cap], '#') << "wrote past its buffer";
  return std::string(buf.data(), n);
}

TEST(AccessLine, EveryField) {
  Fixture f;
  Text(f.ex.reason, &f.ex.reason_len, "");
  f.ex.dropped_headers = 2;
  Text(f.ex.dropped_name, &f.ex.dropped_name_len, "bad_name");
  const Caller caller{"10.0.0.7", "spiffe://mesh/ns/a/sa/web", Protocol::kHttp1,
                      obs::SpanListener::kInbound};
  EXPECT_EQ(Line(f.ex, caller, f.ex.start + core::Millis(12) + 345'000),
            "{\"time\":\"2026-12-06T09:43:58.123Z\","
            "\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"method\":\"GET\","
            "\"service\":\"orders\",\"route\":\"/orders/{id}\",\"status\":200,"
            "\"duration_ms\":12.345,\"upstream\":\"127.0.0.1:7002\",\"retries\":1,"
            "\"bytes_in\":120,\"bytes_out\":4096,\"stamp\":\"\",\"peer\":\"10.0.0.7\","
            "\"peer_identity\":\"spiffe://mesh/ns/a/sa/web\",\"dropped_headers\":2,"
            "\"dropped_header\":\"bad_name\",\"protocol\":\"HTTP/1.1\"}\n");
}

// A request that matched nothing and reached no upstream: empty service,
// route and upstream; the local answer's reason in `stamp`; the caller's own
// x-trace-id as its trace id.
TEST(AccessLine, NoRouteNoAttempt) {
  Fixture f;
  f.ex.cluster = nullptr;
  f.ex.route = nullptr;
  f.ex.attempts = 0;
  f.ex.status = 404;
  Text(f.ex.reason, &f.ex.reason_len, "no_route");
  std::memcpy(f.ex.trace.external_id, "abc123", 6);
  f.ex.trace.external_len = 6;
  const std::string line = Line(f.ex, Plain(), f.ex.start);
  EXPECT_NE(line.find("\"trace_id\":\"abc123\",\"method\":\"GET\",\"service\":\"\",\"route\":\"\","
                      "\"status\":404,\"duration_ms\":0.000,\"upstream\":\"\""),
            std::string::npos)
      << line;
  EXPECT_NE(line.find("\"stamp\":\"no_route\""), std::string::npos) << line;
}

TEST(AccessLine, TimeStampUtcWithMilliseconds) {
  Fixture f;
  const std::string line = Line(f.ex, Plain(), f.ex.start, kWallMs);
  EXPECT_EQ(line.substr(0, 35), "{\"time\":\"2026-12-06T09:43:58.123Z\",") << line;
}

// One stamp through a run of times, as a core's passes give them: within a
// second (only the milliseconds change), into the next, across a day, a
// month and a leap day, and back (the wall clock may step back).
TEST(UtcStamp, TextOfEachTime) {
  struct Case {
    int64_t unix_ms;
    const char* text;
  } cases[] = {
      {kWallMs, "2026-12-06T09:43:58.123Z"},
      {kWallMs + 7, "2026-12-06T09:43:58.130Z"},
      {kWallMs + 876, "2026-12-06T09:43:58.999Z"},
      {kWallMs + 877, "2026-12-06T09:43:59.000Z"},
      {kWallMs + 887, "2026-12-06T09:43:59.010Z"},
      {1709251199999, "2024-02-29T23:59:59.999Z"},  // a leap day's last millisecond
      {1709251200000, "2024-03-01T00:00:00.000Z"},
      {951868800007, "2000-03-01T00:00:00.007Z"},
      {951868800070, "2000-03-01T00:00:00.070Z"},
      {0, "1970-01-01T00:00:00.000Z"},
      {86'399'999, "1970-01-01T23:59:59.999Z"},
      {kWallMs, "2026-12-06T09:43:58.123Z"},  // back to the first
  };
  UtcStamp stamp;
  for (const Case& c : cases) EXPECT_EQ(stamp.Text(c.unix_ms), c.text) << c.unix_ms;
  // The same times, each to a fresh stamp: the text is the time's alone.
  for (const Case& c : cases) EXPECT_EQ(UtcStamp().Text(c.unix_ms), c.text) << c.unix_ms;
}

TEST(AccessLine, DurationInMillisecondsToTheMicrosecond) {
  struct Case {
    core::Instant took;  // ns
    const char* text;
  } cases[] = {
      {0, "0.000"},           {999, "0.000"},
      {1'000, "0.001"},       {10'000, "0.010"},
      {999'999, "0.999"},     {1'000'000, "1.000"},
      {12'345'678, "12.345"}, {60'000'000'000, "60000.000"},
  };
  Fixture f;
  for (const Case& c : cases) {
    const std::string line = Line(f.ex, Plain(), f.ex.start + c.took);
    EXPECT_NE(line.find(std::string("\"duration_ms\":") + c.text + ","), std::string::npos)
        << c.took << ": " << line;
  }
}

TEST(AccessLine, ProtocolField) {
  Fixture f;
  Caller caller = Plain();
  EXPECT_NE(Line(f.ex, caller, f.ex.start).find("\"protocol\":\"HTTP/1.1\"}\n"), std::string::npos);
  caller.protocol = Protocol::kHttp2;
  EXPECT_NE(Line(f.ex, caller, f.ex.start).find("\"protocol\":\"HTTP/2\"}\n"), std::string::npos);
}

// What a caller or a config controls is escaped: the method, the route
// template, the service, the identity, the reason, the dropped field's name.
TEST(AccessLine, EscapesWhatCallersAndConfigsWrite) {
  Fixture f;
  Text(f.ex.method_text, &f.ex.method_len, "G\"E\x01T");
  f.route.path_template = "/a\\b\"c\n\td";
  f.cluster.name = "or\177ders";  // DEL passes unchanged (RFC 8259 needs no escape)
  Caller caller = Plain();
  caller.identity = "spiffe://x/\"y\"\x1f";
  const std::string line = Line(f.ex, caller, f.ex.start);
  EXPECT_NE(line.find("\"method\":\"G\\\"E\\u0001T\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"route\":\"/a\\\\b\\\"c\\n\\td\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"service\":\"or\x7f"
                      "ders\""),
            std::string::npos)
      << line;
  EXPECT_NE(line.find("\"peer_identity\":\"spiffe://x/\\\"y\\\"\\u001f\""), std::string::npos)
      << line;
  // One line: no raw newline before the one that ends it.
  EXPECT_EQ(line.find('\n'), line.size() - 1);
}

// An identity is cut to kAccessIdentityMax bytes, so the line still fits
// with a long route and method.
TEST(AccessLine, IdentityCutTo256Bytes) {
  Fixture f;
  const std::string identity = "spiffe://" + std::string(600, 'i');
  Caller caller = Plain();
  caller.identity = identity;
  const std::string line = Line(f.ex, caller, f.ex.start);
  ASSERT_FALSE(line.empty());
  EXPECT_NE(line.find("\"peer_identity\":\"" + identity.substr(0, kAccessIdentityMax) + "\","),
            std::string::npos);
  EXPECT_EQ(line.find(identity.substr(0, kAccessIdentityMax + 1)), std::string::npos);
}

// A line that does not fit is dropped whole, never cut: a long route
// template (escaping can make it six times longer), or a small buffer.
TEST(AccessLine, TooLongIsDroppedWhole) {
  Fixture f;
  f.route.path_template = "/" + std::string(200, '\x01');  // 1,200 bytes escaped
  char buf[kAccessLineMax];
  const std::string_view time = "2026-12-06T09:43:58.123Z";
  EXPECT_EQ(AccessLine(f.ex, Plain(), f.ex.start, time, buf, sizeof buf), 0u);

  Fixture g;
  const size_t n = Line(g.ex, Plain(), g.ex.start).size();
  ASSERT_GT(n, 0u);
  EXPECT_EQ(Line(g.ex, Plain(), g.ex.start, kWallMs, n).size(), n);  // exactly fits
  EXPECT_EQ(Line(g.ex, Plain(), g.ex.start, kWallMs, n - 1), "");
  EXPECT_EQ(Line(g.ex, Plain(), g.ex.start, kWallMs, 1), "");
  EXPECT_EQ(AccessLine(g.ex, Plain(), g.ex.start, time, buf, 0), 0u);
}

TEST(FillSpan, EveryField) {
  Fixture f;
  std::memcpy(f.ex.trace.parent_id, "b7ad6b7169203331", 17);
  Text(f.ex.host, &f.ex.host_len, "api.example.com");
  Text(f.ex.reason, &f.ex.reason_len, "upstream_timeout");
  f.ex.status = 504;
  f.ex.version_minor = 0;
  const Caller caller{"10.0.0.7", "spiffe://mesh/web", Protocol::kHttp2,
                      obs::SpanListener::kEgress};
  const int64_t wall_ns = kWallMs * 1'000'000;
  obs::SpanRecord s;
  std::memset(&s, 0x5a, sizeof s);  // a ring slot's old contents
  FillSpan(f.ex, caller, f.ex.start + 2'500'000, wall_ns, &s);
  EXPECT_EQ(std::string_view(s.trace_id, 32), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(std::string_view(s.span_id, 16), "00f067aa0ba902b7");
  EXPECT_EQ(std::string_view(s.parent_id, 16), "b7ad6b7169203331");
  EXPECT_EQ(s.end_unix_ns, wall_ns);
  EXPECT_EQ(s.start_unix_ns, wall_ns - 2'500'000);  // the monotonic duration
  EXPECT_EQ(s.status, 504);
  EXPECT_EQ(s.retries, 1);
  EXPECT_EQ(s.listener, obs::SpanListener::kEgress);
  EXPECT_EQ(s.version_minor, 0);
  EXPECT_EQ(std::string_view(s.method, s.method_len), "GET");
  EXPECT_EQ(std::string_view(s.route, s.route_len), "/orders/{id}");
  EXPECT_EQ(std::string_view(s.service, s.service_len), "orders");
  EXPECT_EQ(std::string_view(s.host, s.host_len), "api.example.com");
  EXPECT_EQ(std::string_view(s.upstream, s.upstream_len), "127.0.0.1:7002");
  EXPECT_EQ(std::string_view(s.reason, s.reason_len), "upstream_timeout");
  EXPECT_EQ(std::string_view(s.peer, s.peer_len), "10.0.0.7");
  EXPECT_EQ(std::string_view(s.peer_identity, s.peer_identity_len), "spiffe://mesh/web");
}

// A root span (no caller's span), nothing matched, no attempt; a field
// longer than its slot is cut to it.
TEST(FillSpan, RootWithoutRouteOrAttempt) {
  Fixture f;
  f.ex.route = nullptr;
  f.ex.cluster = nullptr;
  Caller caller = Plain();
  const std::string identity(300, 'i');
  caller.identity = identity;
  obs::SpanRecord s;
  std::memset(&s, 0x5a, sizeof s);
  FillSpan(f.ex, caller, f.ex.start, 1'000, &s);
  EXPECT_EQ(s.parent_id[0], '\0');
  EXPECT_EQ(s.start_unix_ns, 1'000);
  EXPECT_EQ(s.route_len, 0);
  EXPECT_EQ(s.service_len, 0);
  EXPECT_EQ(s.upstream_len, 0);
  EXPECT_EQ(s.peer_identity_len, sizeof s.peer_identity);
}

TEST(LastUpstream, OnlyAfterAnAttempt) {
  Fixture f;
  EXPECT_EQ(LastUpstream(f.ex), "127.0.0.1:7002");
  f.ex.endpoint_index = 4;
  EXPECT_EQ(LastUpstream(f.ex), "127.0.0.1:7001");
  f.ex.attempts = 0;
  EXPECT_EQ(LastUpstream(f.ex), "");
  f.ex.attempts = 1;
  f.cluster.endpoints.clear();
  EXPECT_EQ(LastUpstream(f.ex), "");
}

// The recorder over a core's tools: an access log of every request and
// spans exported for every trace.
struct Recording {
  TestCore core;
  std::unique_ptr<ExchangeRecorder> rec;

  explicit Recording(bool log = true, bool spans = true) {
    if (log) core.config.access_log = config::AccessLogConfig{};
    rec = std::make_unique<ExchangeRecorder>(core.ctx);
    config::TracingConfig tracing;
    if (spans) tracing.otlp_endpoint = "http://127.0.0.1:4318";
    rec->StartTracing(tracing);
    rec->SetWallClock(kWallMs * 1'000'000);
  }
  std::string Lines() {
    std::string out;
    if (rec->access_log() != nullptr) rec->access_log()->Drain(&out);
    return out;
  }
  size_t Spans() {
    if (rec->spans() == nullptr) return 0;
    std::vector<obs::SpanRecord> out;
    return rec->spans()->Drain(&out, 1'000'000);
  }
  uint64_t Requests(uint32_t key, uint16_t status) {
    uint64_t n = 0;
    core.metrics.requests.ForEach([&](uint32_t k, uint16_t st, uint64_t c) {
      if (k == key && st == status) n += c;
    });
    return n;
  }
};

TEST(ExchangeRecorder, EndCountsLogsAndRecords) {
  Recording r;
  Fixture f;
  f.ex.route_key = 7;
  f.ex.sampled = true;
  r.core.now = f.ex.start + core::Millis(3);
  Caller caller = Plain();
  caller.protocol = Protocol::kHttp2;
  r.rec->End(f.ex, caller);
  EXPECT_EQ(r.Requests(7, 200), 1u);
  EXPECT_EQ(r.core.metrics.requests_h2.Get(), 1u);
  EXPECT_EQ(r.core.metrics.requests_http1.Get(), 0u);
  EXPECT_EQ(r.core.metrics.access_log_lines.Get(), 1u);
  EXPECT_EQ(r.Lines(), Line(f.ex, caller, r.core.now));
  EXPECT_EQ(r.core.metrics.spans_recorded.Get(), 1u);
  EXPECT_EQ(r.Spans(), 1u);

  f.ex.sampled = false;  // the trace was not sampled: no span
  r.rec->End(f.ex, Plain());
  EXPECT_EQ(r.core.metrics.requests_http1.Get(), 1u);
  EXPECT_EQ(r.Requests(7, 200), 2u);
  EXPECT_EQ(r.Spans(), 0u);
}

TEST(ExchangeRecorder, LineTooLongCountedDroppedAndNotWritten) {
  Recording r;
  Fixture f;
  f.route.path_template = std::string(1100, 'r');
  r.rec->End(f.ex, Plain());
  EXPECT_EQ(r.core.metrics.access_log_dropped.Get(), 1u);
  EXPECT_EQ(r.core.metrics.access_log_lines.Get(), 0u);
  EXPECT_EQ(r.Lines(), "");
}

TEST(ExchangeRecorder, FullSpanRingDropsTheSpan) {
  Recording r;
  Fixture f;
  f.ex.sampled = true;
  const size_t slots = r.rec->spans()->capacity();
  for (size_t i = 0; i < slots + 3; ++i) r.rec->End(f.ex, Plain());
  EXPECT_EQ(r.core.metrics.spans_recorded.Get(), slots);
  EXPECT_EQ(r.core.metrics.spans_dropped.Get(), 3u);
}

TEST(ExchangeRecorder, NothingConfiguredNothingWritten) {
  Recording r(false, false);
  Fixture f;
  f.ex.sampled = true;
  EXPECT_FALSE(r.rec->wants_precise_clock());
  r.rec->End(f.ex, Plain());
  EXPECT_EQ(r.rec->access_log(), nullptr);
  EXPECT_EQ(r.rec->spans(), nullptr);
  EXPECT_EQ(r.core.metrics.requests_http1.Get(), 1u);
  EXPECT_EQ(r.core.metrics.access_log_dropped.Get(), 0u);
}

// Begin marks a sampled trace's exchange for a span (keeping its Host)
// only when spans are exported.
TEST(ExchangeRecorder, BeginKeepsTheHostOfASampledTrace) {
  http::RequestHead head;
  head.host = "api.example.com";
  Recording on;
  EXPECT_TRUE(on.rec->wants_precise_clock());
  ExchangeFacts sampled;
  sampled.trace.flags = 1;
  on.rec->Begin(sampled, head);
  EXPECT_TRUE(sampled.sampled);
  EXPECT_EQ(std::string_view(sampled.host, sampled.host_len), "api.example.com");
  ExchangeFacts unsampled;
  unsampled.trace.flags = 0;
  on.rec->Begin(unsampled, head);
  EXPECT_FALSE(unsampled.sampled);

  Recording off(true, false);
  ExchangeFacts ex;
  ex.trace.flags = 1;
  off.rec->Begin(ex, head);
  EXPECT_FALSE(ex.sampled);
}

// A request refused before it became an exchange: its line, a span of its
// own sampling, its protocol; its answer is counted by the caller.
TEST(ExchangeRecorder, RefusedLogsAndRecords) {
  Recording r;
  Fixture f;
  f.ex.status = 400;
  r.rec->Refused(f.ex, Plain());
  EXPECT_TRUE(f.ex.sampled);
  EXPECT_EQ(r.core.metrics.access_log_lines.Get(), 1u);
  EXPECT_EQ(r.core.metrics.spans_recorded.Get(), 1u);
  EXPECT_EQ(r.core.metrics.requests_http1.Get(), 1u);
  EXPECT_EQ(r.Requests(f.ex.route_key, 400), 0u);
}

}  // namespace
}  // namespace hms::proxy
