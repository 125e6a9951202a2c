// Fuzz target: the Prometheus text writer (src/obs/exposition.cc), where it
// writes strings that come from outside: label values (routes, services,
// hosts, reasons) and HELP text. Names are program constants (HMS_CHECKed).
//
// Input: HELP text, then label values cut at NUL bytes, each with an 8-byte
// sample value. Property: the output reads back, line by line, under the
// text format's grammar (# HELP / # TYPE / name{label="..."} value), every
// escaped label value and HELP text unescapes to what was given, and every
// value parses back to the same number.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "hms/obs/exposition.h"

namespace {

struct Sample {
  std::string route;
  double value;
};

// Unescapes a label value starting after its opening quote; returns the
// position after the closing quote, or npos when the grammar is broken.
size_t ReadQuoted(std::string_view line, size_t i, std::string* out) {
  while (i < line.size()) {
    const char c = line[i++];
    if (c == '"') return i;
    if (c == '\n') return std::string_view::npos;
    if (c != '\\') {
      out->push_back(c);
      continue;
    }
    if (i >= line.size()) return std::string_view::npos;
    const char e = line[i++];
    if (e == '\\') out->push_back('\\');
    else if (e == '"') out->push_back('"');
    else if (e == 'n') out->push_back('\n');
    else return std::string_view::npos;
  }
  return std::string_view::npos;
}

std::string UnescapeHelp(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      ++i;
      out.push_back(s[i] == 'n' ? '\n' : s[i]);
      FUZZ_CHECK(s[i] == 'n' || s[i] == '\\');
    } else {
      FUZZ_CHECK(s[i] != '\\');
      out.push_back(s[i]);
    }
  }
  return out;
}

bool SameNumber(double want, std::string_view text) {
  if (std::isnan(want)) return text == "NaN";
  if (std::isinf(want)) return text == (want > 0 ? "+Inf" : "-Inf");
  const std::string t(text);
  char* end = nullptr;
  const double got = std::strtod(t.c_str(), &end);
  return end == t.c_str() + t.size() && got == want;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t cut = in.find('\0');
  const std::string help(in.substr(0, cut));
  std::vector<Sample> samples;
  size_t i = cut == std::string_view::npos ? in.size() : cut + 1;
  while (i < in.size() && samples.size() < 32) {
    size_t end = in.find('\0', i);
    if (end == std::string_view::npos) end = in.size();
    Sample s{std::string(in.substr(i, end - i)), 0};
    i = end + 1;
    uint64_t bits = 0;
    for (int k = 0; k < 8 && i < in.size(); ++k, ++i) bits = bits << 8 | static_cast<uint8_t>(in[i]);
    std::memcpy(&s.value, &bits, sizeof bits);
    samples.push_back(std::move(s));
  }

  hms::obs::Exposition e;
  e.Family("hms_fuzz_requests", "counter", help);
  for (const Sample& s : samples) e.Sample({{"route", s.route}, {"code", "200"}}, s.value);
  const std::string text = e.Finish();

  if (samples.empty()) {
    FUZZ_CHECK(text.empty() || text == "\n");
    return 0;
  }
  FUZZ_CHECK(!text.empty() && text.back() == '\n');
  std::vector<std::string_view> lines;
  for (size_t p = 0; p < text.size();) {
    const size_t nl = text.find('\n', p);
    lines.emplace_back(text.data() + p, nl - p);
    p = nl + 1;
  }
  FUZZ_CHECK(lines.size() == samples.size() + 2);
  const std::string help_prefix = "# HELP hms_fuzz_requests_total ";
  FUZZ_CHECK(lines[0].starts_with(help_prefix));
  FUZZ_CHECK(UnescapeHelp(lines[0].substr(help_prefix.size())) == help);
  FUZZ_CHECK(lines[1] == "# TYPE hms_fuzz_requests_total counter");
  for (size_t k = 0; k < samples.size(); ++k) {
    const std::string_view line = lines[k + 2];
    const std::string_view head = "hms_fuzz_requests_total{route=\"";
    FUZZ_CHECK(line.starts_with(head));
    std::string route;
    size_t p = ReadQuoted(line, head.size(), &route);
    FUZZ_CHECK(p != std::string_view::npos);
    FUZZ_CHECK(route == samples[k].route);
    const std::string_view code = ",code=\"200\"} ";
    FUZZ_CHECK(line.substr(p, code.size()) == code);
    FUZZ_CHECK(SameNumber(samples[k].value, line.substr(p + code.size())));
  }
  return 0;
}
