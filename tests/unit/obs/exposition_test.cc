#include "hms/obs/exposition.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>

#include "hms/obs/metrics.h"

namespace hms::obs {
namespace {

TEST(Exposition, RendersHelpTypeAndSamples) {
  Exposition e;
  e.Family("hms_requests_total", "counter", "Requests answered, by service, route and status code.");
  e.Sample({{"service", "calc-svc"}, {"route", "/sum/{a}/{b}"}, {"code", "200"}}, 42);
  EXPECT_EQ(e.Finish(),
            "# HELP hms_requests_total Requests answered, by service, route and status code.\n"
            "# TYPE hms_requests_total counter\n"
            "hms_requests_total{service=\"calc-svc\",route=\"/sum/{a}/{b}\",code=\"200\"} 42\n");
}

TEST(Exposition, EscapesLabelValues) {
  Exposition e;
  e.Family("hms_x", "gauge", "x");
  e.Sample({{"path", "a\\b\"c\nd"}}, 1);
  EXPECT_EQ(e.Finish(),
            "# HELP hms_x x\n# TYPE hms_x gauge\nhms_x{path=\"a\\\\b\\\"c\\nd\"} 1\n");
}

TEST(Exposition, EscapesHelpButNotQuotes) {
  std::string out;
  Exposition::EscapeHelp("say \"hi\"\\\nbye", &out);
  EXPECT_EQ(out, "say \"hi\"\\\\\\nbye");
}

TEST(Exposition, GroupsInterleavedFamiliesAndEmitsHelpOnce) {
  Exposition e;
  e.Family("hms_a", "gauge", "A.");
  e.Sample({{"core", "0"}}, 1);
  e.Family("hms_b", "gauge", "B.");
  e.Sample({{"core", "0"}}, 2);
  e.Family("hms_a", "gauge", "A.");
  e.Sample({{"core", "1"}}, 3);
  EXPECT_EQ(e.Finish(),
            "# HELP hms_a A.\n# TYPE hms_a gauge\nhms_a{core=\"0\"} 1\nhms_a{core=\"1\"} 3\n"
            "# HELP hms_b B.\n# TYPE hms_b gauge\nhms_b{core=\"0\"} 2\n");
}

TEST(Exposition, CounterGetsTotalSuffix) {
  Exposition e;
  e.Family("hms_retries", "counter", "Retries.");
  e.Sample({}, 5u);
  EXPECT_EQ(e.Finish(), "# HELP hms_retries_total Retries.\n# TYPE hms_retries_total counter\n"
                        "hms_retries_total 5\n");
}

TEST(Exposition, SkipsEmptyFamiliesAndResetsAfterFinish) {
  Exposition e;
  e.Family("hms_empty", "gauge", "Nothing.");
  e.Family("hms_one", "gauge", "One.");
  e.Sample({}, 1);
  EXPECT_EQ(e.Finish(), "# HELP hms_one One.\n# TYPE hms_one gauge\nhms_one 1\n");
  EXPECT_EQ(e.Finish(), "");
}

TEST(Exposition, HistogramSuffixesAndValues) {
  Exposition e;
  e.Family("hms_latency_seconds", "histogram", "Latency.");
  e.Sample("_bucket", {{"le", "0.005"}}, 3);
  e.Sample("_bucket", {{"le", "+Inf"}}, 4);
  e.Sample("_sum", {}, 0.25);
  e.Sample("_count", {}, 4);
  EXPECT_EQ(e.Finish(),
            "# HELP hms_latency_seconds Latency.\n# TYPE hms_latency_seconds histogram\n"
            "hms_latency_seconds_bucket{le=\"0.005\"} 3\n"
            "hms_latency_seconds_bucket{le=\"+Inf\"} 4\n"
            "hms_latency_seconds_sum 0.25\nhms_latency_seconds_count 4\n");
}

TEST(Exposition, ValueFormats) {
  auto render = [](auto v) {
    std::string s;
    Exposition::AppendValue(v, &s);
    return s;
  };
  EXPECT_EQ(render(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(render(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(render(std::nan("")), "NaN");
  EXPECT_EQ(render(0.1), "0.1");
  EXPECT_EQ(render(uint64_t{18446744073709551615u}), "18446744073709551615");
  EXPECT_EQ(render(int64_t{-3}), "-3");
}

TEST(Exposition, NameValidation) {
  EXPECT_TRUE(Exposition::ValidMetricName("hms_requests_total"));
  EXPECT_TRUE(Exposition::ValidMetricName("a:b_c9"));
  EXPECT_FALSE(Exposition::ValidMetricName("9abc"));
  EXPECT_FALSE(Exposition::ValidMetricName("a-b"));
  EXPECT_FALSE(Exposition::ValidMetricName(""));
  EXPECT_TRUE(Exposition::ValidLabelName("route"));
  EXPECT_FALSE(Exposition::ValidLabelName("__name__"));
  EXPECT_FALSE(Exposition::ValidLabelName("a:b"));
}

TEST(ExpositionDeathTest, InvalidLabelNameIsABug) {
  Exposition e;
  e.Family("hms_x", "gauge", "x");
  EXPECT_DEATH(e.Sample({{"bad-name", "v"}}, 1), "HMS_CHECK");
}

std::string FindOnPath(const char* name) {
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find(':', start);
    if (end == std::string::npos) end = p.size();
    std::string candidate = p.substr(start, end - start) + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return {};
}

// Runs `promtool check metrics` over `text`; returns its exit status and output.
int PromtoolCheck(const std::string& promtool, const std::string& text, std::string* output) {
  char in_path[] = "/tmp/hms-exposition-XXXXXX";
  int fd = mkstemp(in_path);
  if (fd < 0) return -1;
  if (write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    close(fd);
    return -1;
  }
  close(fd);
  std::string cmd = promtool + " check metrics < " + in_path + " 2>&1";
  FILE* f = popen(cmd.c_str(), "r");
  if (f == nullptr) return -1;
  char buf[512];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) output->append(buf, n);
  int status = pclose(f);
  unlink(in_path);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string RealisticScrape() {
  CoreMetrics core0;
  CoreMetrics core1;
  core0.connections_accepted.Add(10);
  core1.connections_accepted.Add(12);
  core0.requests.Count(1, 200, 40);
  core1.requests.Count(1, 200, 2);
  core1.requests.Count(0, 404, 1);
  CoreTotals t = Sum({&core0, &core1});

  Exposition e;
  e.Family("hms_requests_total", "counter", "Requests answered, by service, route and status code.");
  for (const RequestCount& r : t.requests) {
    std::string code = std::to_string(r.status);
    if (r.route_key == 0) {
      e.Sample({{"service", ""}, {"route", ""}, {"code", code}}, r.count);
    } else {
      e.Sample({{"service", "calc-svc"}, {"route", "/sum/{a}/{b}"}, {"code", code}}, r.count);
    }
  }
  e.Family("hms_connections_accepted_total", "counter", "Downstream connections accepted.");
  e.Sample({}, t.connections_accepted);
  e.Family("hms_request_duration_seconds", "histogram", "Time to answer, \"quoted\" \\ help.");
  e.Sample("_bucket", {{"route", "a\"b\\c\nd"}, {"le", "0.001"}}, 1);
  e.Sample("_bucket", {{"route", "a\"b\\c\nd"}, {"le", "+Inf"}}, 2);
  e.Sample("_sum", {{"route", "a\"b\\c\nd"}}, 0.0123);
  e.Sample("_count", {{"route", "a\"b\\c\nd"}}, 2);
  e.Family("hms_connections_active", "gauge", "Open downstream connections.");
  e.Sample({{"core", "0"}}, 3);
  e.Family("hms_requests_total", "counter", "Requests answered, by service, route and status code.");
  e.Sample({{"service", "other"}, {"route", "/x"}, {"code", "500"}}, 1);
  return e.Finish();
}

TEST(Exposition, PromtoolAcceptsRenderedText) {
  std::string promtool = FindOnPath("promtool");
  if (promtool.empty()) GTEST_SKIP() << "promtool not installed (Debian package prometheus)";
  std::string out;
  std::string text = RealisticScrape();
  EXPECT_EQ(PromtoolCheck(promtool, text, &out), 0) << out << "\n--- text:\n" << text;
}

TEST(Exposition, PromtoolRejectsBrokenText) {
  // Proves the check above can fail: a duplicated TYPE line is invalid.
  std::string promtool = FindOnPath("promtool");
  if (promtool.empty()) GTEST_SKIP() << "promtool not installed (Debian package prometheus)";
  std::string out;
  EXPECT_NE(PromtoolCheck(promtool,
                          "# TYPE hms_a gauge\nhms_a 1\n# TYPE hms_a gauge\nhms_a{x=\"1\"} 2\n",
                          &out),
            0);
}

}  // namespace
}  // namespace hms::obs
