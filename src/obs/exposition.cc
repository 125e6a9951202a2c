#include "hms/obs/exposition.h"

#include <charconv>
#include <cmath>

#include "hms/common/check.h"

namespace hms::obs {
namespace {

bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool ValidType(std::string_view t) {
  return t == "counter" || t == "gauge" || t == "histogram" || t == "summary" || t == "untyped";
}

}  // namespace

bool Exposition::ValidMetricName(std::string_view name) {
  // [a-zA-Z_:][a-zA-Z0-9_:]* (Prometheus data model).
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (!(IsAlpha(c) || c == '_' || c == ':' || (i > 0 && IsDigit(c)))) return false;
  }
  return true;
}

bool Exposition::ValidLabelName(std::string_view name) {
  // [a-zA-Z_][a-zA-Z0-9_]*; names starting with "__" are reserved for
  // Prometheus itself.
  if (name.empty() || name.starts_with("__")) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (!(IsAlpha(c) || c == '_' || (i > 0 && IsDigit(c)))) return false;
  }
  return true;
}

void Exposition::EscapeLabelValue(std::string_view v, std::string* out) {
  for (char c : v) {
    switch (c) {
      case '\\': out->append("\\\\"); break;
      case '"': out->append("\\\""); break;
      case '\n': out->append("\\n"); break;
      default: out->push_back(c);
    }
  }
}

void Exposition::EscapeHelp(std::string_view v, std::string* out) {
  for (char c : v) {
    switch (c) {
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      default: out->push_back(c);
    }
  }
}

void Exposition::AppendValue(double v, std::string* out) {
  if (std::isnan(v)) {
    out->append("NaN");
  } else if (std::isinf(v)) {
    out->append(v > 0 ? "+Inf" : "-Inf");
  } else {
    char buf[32];
    // Shortest form that reads back to the same double (Go's ParseFloat, which
    // Prometheus uses, accepts it, exponent included).
    auto r = std::to_chars(buf, buf + sizeof(buf), v);
    out->append(buf, r.ptr);
  }
}

void Exposition::AppendValue(uint64_t v, std::string* out) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, r.ptr);
}

void Exposition::AppendValue(int64_t v, std::string* out) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, r.ptr);
}

void Exposition::Family(std::string_view name, std::string_view type, std::string_view help) {
  HMS_CHECK(ValidMetricName(name));
  HMS_CHECK(ValidType(type));
  std::string full(name);
  if (type == "counter" && !EndsWith(full, "_total")) full.append("_total");
  for (size_t i = 0; i < families_.size(); ++i) {
    if (families_[i].name == full) {
      HMS_CHECK(families_[i].type == type);
      current_ = i;
      return;
    }
  }
  families_.push_back(FamilyText{std::move(full), std::string(type), std::string(help), {}});
  current_ = families_.size() - 1;
}

std::string* Exposition::BeginSample(std::string_view suffix, const Label* labels, size_t n) {
  HMS_CHECK(current_ < families_.size());
  FamilyText& f = families_[current_];
  std::string& s = f.samples;
  s.append(f.name);
  if (!suffix.empty()) {
    HMS_CHECK(ValidMetricName(std::string(f.name).append(suffix)));
    s.append(suffix);
  }
  if (n > 0) {
    s.push_back('{');
    for (size_t i = 0; i < n; ++i) {
      HMS_CHECK(ValidLabelName(labels[i].name));
      if (i > 0) s.push_back(',');
      s.append(labels[i].name);
      s.append("=\"");
      EscapeLabelValue(labels[i].value, &s);
      s.push_back('"');
    }
    s.push_back('}');
  }
  s.push_back(' ');
  return &s;
}

std::string Exposition::Finish() {
  size_t total = 0;
  for (const FamilyText& f : families_) total += f.samples.size() + f.help.size() + 64;
  std::string out;
  out.reserve(total);
  for (const FamilyText& f : families_) {
    if (f.samples.empty()) continue;
    out.append("# HELP ").append(f.name).push_back(' ');
    EscapeHelp(f.help, &out);
    out.push_back('\n');
    out.append("# TYPE ").append(f.name).push_back(' ');
    out.append(f.type).push_back('\n');
    out.append(f.samples);
  }
  families_.clear();
  current_ = SIZE_MAX;
  return out;
}

}  // namespace hms::obs
