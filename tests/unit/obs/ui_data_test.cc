#include "hms/obs/ui_data.h"

#include <gtest/gtest.h>
#include <simdjson.h>
#include <pthread.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "hms/obs/ui_page.h"

namespace hms::obs {
namespace {

constexpr uint64_t kSecond = 1'000'000'000;

// A cumulative histogram with `per_bucket[b]` observations in bucket b.
std::vector<uint64_t> Cumulative(std::vector<uint64_t> per_bucket) {
  per_bucket.resize(kDurationBuckets + 1, 0);
  for (size_t b = 1; b < per_bucket.size(); ++b) per_bucket[b] += per_bucket[b - 1];
  return per_bucket;
}

TEST(HistogramQuantile, InterpolatesInsideTheBucketAsPrometheusDoes) {
  struct Case {
    const char* name;
    std::vector<uint64_t> per_bucket;
    double q;
    double want_us;
  };
  const Case cases[] = {
      {"empty", {}, 0.5, -1},
      {"all in the first bucket: from 0", {10}, 0.5, 250},
      {"first bucket, p99", {100}, 0.99, 495},
      {"second bucket: 500..1000 us", {0, 10}, 0.5, 750},
      {"half and half: p50 at the first bound", {5, 5}, 0.5, 500},
      {"p90 in the upper one", {5, 5}, 0.9, 900},
      {"skips empty buckets", {1, 0, 0, 3}, 0.5, 2500 + 2500 * (2.0 - 1) / 3},
      {"+Inf is the highest finite bound", {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4},
       0.5, 10'000'000},
  };
  for (const Case& c : cases) {
    const std::vector<uint64_t> h = Cumulative(c.per_bucket);
    EXPECT_NEAR(HistogramQuantileUs(h.data(), c.q), c.want_us, 1e-6) << c.name;
  }
}

struct Parsed {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  std::string text;
};

void Parse(const std::string& body, Parsed* p) {
  p->text = body;
  ASSERT_EQ(p->parser.parse(p->text).get(p->root), simdjson::SUCCESS) << body;
}

// Two cores, three routes (key 0 with a limit, key 1, and no route), a
// breaker and two endpoints.
struct Fixture {
  CoreMetrics a, b;
  UiInput Input(uint64_t clock_ns) {
    UiInput in;
    in.metrics.cores = {&a, &b};
    in.metrics.totals = Sum(in.metrics.cores);
    in.metrics.route_labels = [](uint32_t key) -> std::pair<std::string, std::string> {
      if (key == kNoRoute) return {"none", "none"};
      return {key == 0 ? "calc-svc" : "hello\"svc", key == 0 ? "/sum/{a}/{b}" : "/hello"};
    };
    in.metrics.breakers.push_back({"calc-svc", 1, 2'500'000'000, 3, 2, 1, 5});
    in.metrics.endpoints.push_back({"calc-svc", "127.0.0.1:7002", true, 4, false, 1'500'000'000});
    in.metrics.endpoints.push_back({"calc-svc", "127.0.0.1:7003", false, 0, true, 0});
    in.clock_ns = clock_ns;
    in.unix_ms = 1'764'395'563'120;
    in.role = "gateway";
    in.config = "ok";
    in.snapshot = 3;
    in.routes.push_back({0, "calc-svc", "GET /sum/{a}/{b}", "20 req/min", true, 15});
    in.routes.push_back({1, "hello\"svc", "GET, HEAD /hello"});
    in.core_cpu_ns = {clock_ns / 2, clock_ns / 4};  // half a CPU and a quarter
    return in;
  }
};

simdjson::dom::element Route(const Parsed& p, size_t i) { return p.root["routes"].at(i).value(); }

TEST(UiData, FirstAnswerHasCountsAndNoRates) {
  Fixture f;
  f.a.Observe(0, 200, 700);
  f.b.Observe(0, 503, 700);
  f.a.Observe(1, 404, 100);
  f.a.Observe(0xffffffffu, 404, 100);
  UiData ui;
  Parsed p;
  Parse(ui.Render(f.Input(10 * kSecond)), &p);
  EXPECT_EQ(std::string_view(p.root["role"].get_string()), "gateway");
  EXPECT_EQ(uint64_t(p.root["snapshot"].get_uint64()), 3u);
  EXPECT_TRUE(p.root["window_s"].is_null());
  simdjson::dom::element r0 = Route(p, 0);
  EXPECT_EQ(std::string_view(r0["service"].get_string()), "calc-svc");
  EXPECT_EQ(std::string_view(r0["route"].get_string()), "GET /sum/{a}/{b}");
  EXPECT_EQ(uint64_t(r0["requests"].get_uint64()), 2u);
  EXPECT_EQ(uint64_t(r0["errors_4xx"].get_uint64()), 0u);
  EXPECT_EQ(uint64_t(r0["errors_5xx"].get_uint64()), 1u);
  EXPECT_TRUE(r0["req_per_s"].is_null());
  EXPECT_TRUE(r0["p50_ms"].is_null());
  EXPECT_EQ(std::string_view(r0["rate_limit"].get_string()), "20 req/min");
  EXPECT_EQ(uint64_t(r0["tokens_left"].get_uint64()), 15u);
  simdjson::dom::element r1 = Route(p, 1);
  EXPECT_EQ(std::string_view(r1["service"].get_string()), "hello\"svc");  // escaped, parsed back
  EXPECT_EQ(uint64_t(r1["errors_4xx"].get_uint64()), 1u);
  EXPECT_TRUE(r1["rate_limit"].error() == simdjson::NO_SUCH_FIELD);
  EXPECT_TRUE(r1["tokens_left"].error() == simdjson::NO_SUCH_FIELD);
  EXPECT_EQ(uint64_t(p.root["unmatched"]["requests"].get_uint64()), 1u);
  // Per core: the counts of each.
  EXPECT_EQ(uint64_t(p.root["cores"].at(0)["requests"].get_uint64()), 3u);
  EXPECT_EQ(uint64_t(p.root["cores"].at(1)["requests"].get_uint64()), 1u);
  EXPECT_TRUE(p.root["cores"].at(0)["cpu_pct"].is_null());
}

TEST(UiData, RatesAndPercentilesCoverTheWindowOnly) {
  Fixture f;
  for (int i = 0; i < 50; ++i) f.a.Observe(0, 200, 20'000'000);  // 20 s each: before the window
  UiData ui;
  Parsed p;
  Parse(ui.Render(f.Input(10 * kSecond)), &p);
  // Over the next 2 s: 40 requests of 700 us, 10 of 3 ms (4 of them 5xx), 2 unmatched 404s.
  for (int i = 0; i < 40; ++i) f.a.Observe(0, 200, 700);
  for (int i = 0; i < 6; ++i) f.b.Observe(0, 200, 3000);
  for (int i = 0; i < 4; ++i) f.b.Observe(0, 502, 3000);
  f.a.Observe(0xffffffffu, 404, 50);
  f.b.Observe(0xffffffffu, 404, 50);
  Parse(ui.Render(f.Input(12 * kSecond)), &p);
  EXPECT_DOUBLE_EQ(double(p.root["window_s"].get_double()), 2.0);
  simdjson::dom::element r0 = Route(p, 0);
  EXPECT_EQ(uint64_t(r0["requests"].get_uint64()), 100u);
  EXPECT_DOUBLE_EQ(double(r0["req_per_s"].get_double()), 25.0);
  EXPECT_DOUBLE_EQ(double(r0["errors_5xx_per_s"].get_double()), 2.0);
  EXPECT_DOUBLE_EQ(double(r0["errors_4xx_per_s"].get_double()), 0.0);
  EXPECT_EQ(uint64_t(r0["window_requests"].get_uint64()), 50u);
  // p50: rank 25 of 40 in (500, 1000] us; p90: rank 45, 5 of 10 in (2.5, 5] ms.
  EXPECT_NEAR(double(r0["p50_ms"].get_double()), 0.5 + 0.5 * 25 / 40, 1e-3);
  EXPECT_NEAR(double(r0["p90_ms"].get_double()), 2.5 + 2.5 * 5 / 10, 1e-3);
  EXPECT_NEAR(double(r0["p99_ms"].get_double()), 2.5 + 2.5 * 9.5 / 10, 1e-3);
  // A route without traffic in the window has rates of 0 and no percentiles.
  simdjson::dom::element r1 = Route(p, 1);
  EXPECT_DOUBLE_EQ(double(r1["req_per_s"].get_double()), 0.0);
  EXPECT_TRUE(r1["p50_ms"].is_null());
  EXPECT_DOUBLE_EQ(double(p.root["unmatched"]["req_per_s"].get_double()), 1.0);
  // Per core: 41 and 11 requests in 2 s; CPU as given (half and a quarter).
  simdjson::dom::element c0 = p.root["cores"].at(0).value(), c1 = p.root["cores"].at(1).value();
  EXPECT_DOUBLE_EQ(double(c0["req_per_s"].get_double()), 20.5);
  EXPECT_DOUBLE_EQ(double(c1["req_per_s"].get_double()), 5.5);
  EXPECT_DOUBLE_EQ(double(c0["cpu_pct"].get_double()), 50.0);
  EXPECT_DOUBLE_EQ(double(c1["cpu_pct"].get_double()), 25.0);
}

TEST(UiData, KeepsAboutOneWindowOfSamplesSpacedApart) {
  struct Step {
    uint64_t at_ms;
    double want_window_s;  // -1: none yet
  };
  // Window 5 s, samples at least 250 ms apart: a base is the newest sample at
  // least 5 s old, else the oldest kept.
  const Step steps[] = {
      {0, -1},
      {100, 0.1},    // measured against 0; not kept (less than 250 ms after it)
      {200, 0.2},
      {300, 0.3},    // kept
      {1300, 1.3},   // kept
      {5300, 5.0},   // 300 is exactly 5 s old: the base; 0 goes
      {5400, 5.1},   // not kept
      {20000, 14.7}, // after a pause, the newest sample at least 5 s old: 5300
      {20100, 14.8},
      {25000, 5.0},  // 20000 is 5 s old: 5300 goes
  };
  Fixture f;
  UiData ui(5 * kSecond);
  for (const Step& s : steps) {
    Parsed p;
    Parse(ui.Render(f.Input(s.at_ms * 1'000'000)), &p);
    if (s.want_window_s < 0) {
      EXPECT_TRUE(p.root["window_s"].is_null()) << s.at_ms;
    } else {
      EXPECT_NEAR(double(p.root["window_s"].get_double()), s.want_window_s, 1e-9) << s.at_ms;
    }
  }
}

TEST(UiData, BreakersEndpointsAndRefusalsOfEveryCore) {
  Fixture f;
  f.a.refusals.Record(1000, 0, 429, "rate_limited", "GET", "aaaa");
  f.b.refusals.Record(1002, 0xffffffffu, 404, "no_route", "POST", "bbbb");
  f.a.refusals.Record(1001, 1, 503, "circuit_open", "GET", "cccc");
  UiData ui;
  Parsed p;
  Parse(ui.Render(f.Input(kSecond)), &p);
  simdjson::dom::element b = p.root["breakers"].at(0).value();
  EXPECT_EQ(std::string_view(b["state"].get_string()), "open");
  EXPECT_EQ(uint64_t(b["consecutive_failures"].get_uint64()), 5u);
  EXPECT_EQ(uint64_t(b["next_probe_s"].get_uint64()), 2u);  // whole seconds, as /status
  EXPECT_EQ(uint64_t(b["next_probe_ms"].get_uint64()), 2500u);
  simdjson::dom::element e0 = p.root["endpoints"].at(0).value();
  simdjson::dom::element e1 = p.root["endpoints"].at(1).value();
  EXPECT_TRUE(bool(e0["ejected"].get_bool()));
  EXPECT_FALSE(bool(e0["healthy"].get_bool()));
  EXPECT_EQ(uint64_t(e0["ejected_for_ms"].get_uint64()), 1500u);
  EXPECT_EQ(uint64_t(e0["ejections_total"].get_uint64()), 4u);
  EXPECT_TRUE(bool(e1["check_failing"].get_bool()));
  EXPECT_FALSE(bool(e1["healthy"].get_bool()));
  // Newest first over both cores, with the route's labels.
  simdjson::dom::array rs = p.root["refusals"].get_array();
  ASSERT_EQ(rs.size(), 3u);
  const char* want[][5] = {{"no_route", "none", "none", "POST", "bbbb"},
                           {"circuit_open", "hello\"svc", "/hello", "GET", "cccc"},
                           {"rate_limited", "calc-svc", "/sum/{a}/{b}", "GET", "aaaa"}};
  for (size_t i = 0; i < 3; ++i) {
    simdjson::dom::element r = rs.at(i).value();
    EXPECT_EQ(std::string_view(r["reason"].get_string()), want[i][0]) << i;
    EXPECT_EQ(std::string_view(r["service"].get_string()), want[i][1]) << i;
    EXPECT_EQ(std::string_view(r["route"].get_string()), want[i][2]) << i;
    EXPECT_EQ(std::string_view(r["method"].get_string()), want[i][3]) << i;
    EXPECT_EQ(std::string_view(r["trace_id"].get_string()), want[i][4]) << i;
  }
  EXPECT_EQ(uint64_t(rs.at(0)["core"].get_uint64()), 1u);
  EXPECT_EQ(uint64_t(rs.at(0)["status"].get_uint64()), 404u);
}

TEST(UiData, ShowsAtMostTheNewestRefusals) {
  Fixture f;
  for (int i = 0; i < 40; ++i) (i % 2 ? f.a : f.b).refusals.Record(i, 0, 429, "rate_limited", "GET", "t");
  UiData ui;
  Parsed p;
  Parse(ui.Render(f.Input(kSecond)), &p);
  simdjson::dom::array rs = p.root["refusals"].get_array();
  ASSERT_EQ(rs.size(), UiData::kRefusalsShown);
  for (size_t i = 0; i < rs.size(); ++i) {
    EXPECT_EQ(int64_t(rs.at(i)["unix_ms"].get_int64()), 39 - static_cast<int64_t>(i));
  }
}

TEST(UiData, CoreCpuTimesFindsThreadsByName) {
  // This thread, named as a core would be, burns some CPU: core 1 gets time,
  // core 0 (no such thread) is unknown.
  char old[16] = {};
  pthread_getname_np(pthread_self(), old, sizeof old);
  pthread_setname_np(pthread_self(), "hms-core-1");
  volatile uint64_t x = 0;
  const uint64_t start = CoreCpuTimes(2)[1];
  // Until a clock tick (10 ms at 100 Hz) is charged to it, at most 5 s of wall time.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (CoreCpuTimes(2)[1] == start && std::chrono::steady_clock::now() < until) {
    for (uint64_t i = 0; i < 1'000'000; ++i) x = x + i;
  }
  std::vector<uint64_t> t = CoreCpuTimes(2);
  pthread_setname_np(pthread_self(), old);
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0], kCpuUnknown);
  EXPECT_NE(t[1], kCpuUnknown);
  EXPECT_GT(t[1], start);
}

TEST(UiPage, ServesItsOwnFilesOnly) {
  size_t n = 0;
  const UiAsset* a = UiAssets(&n);
  ASSERT_EQ(n, 3u);
  EXPECT_EQ(a[0].path, "/ui");
  EXPECT_NE(a[0].body.find("<script src=\"/ui/app.js\""), std::string_view::npos);
  EXPECT_NE(a[0].body.find("href=\"/ui/style.css\""), std::string_view::npos);
  for (size_t i = 0; i < n; ++i) {
    EXPECT_FALSE(a[i].body.empty()) << a[i].path;
    // Nothing fetched from elsewhere: no absolute URL, no protocol-relative one.
    EXPECT_EQ(a[i].body.find("http://"), std::string_view::npos) << a[i].path;
    EXPECT_EQ(a[i].body.find("https://"), std::string_view::npos) << a[i].path;
    EXPECT_EQ(a[i].body.find("\"//"), std::string_view::npos) << a[i].path;
  }
}

}  // namespace
}  // namespace hms::obs
