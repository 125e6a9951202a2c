// Scalar values as written in config files: durations, sizes, rates,
// host:port pairs and service names. Pure functions, no yaml-cpp.
#include <arpa/inet.h>

#include <cctype>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "hms/config/config.h"

#include "hms/common/address.h"

namespace hms::config {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Reads leading decimal digits into *out; false on none or overflow.
bool TakeNumber(std::string_view* s, uint64_t* out) {
  uint64_t v = 0;
  size_t i = 0;
  for (; i < s->size() && std::isdigit(static_cast<unsigned char>((*s)[i])); ++i) {
    const uint64_t d = static_cast<uint64_t>((*s)[i] - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) return false;
    v = v * 10 + d;
  }
  if (i == 0) return false;
  s->remove_prefix(i);
  *out = v;
  return true;
}

bool MulOverflows(uint64_t a, uint64_t b, uint64_t* out) {
  return __builtin_mul_overflow(a, b, out);
}

}  // namespace

std::optional<uint64_t> ParseDurationMs(std::string_view text) {
  std::string_view s = Trim(text);
  if (s.empty()) return std::nullopt;
  // A sequence of NUMBER UNIT pairs ("1m30s"), as Go's time.ParseDuration reads
  // them; a bare number is refused because "15" could mean seconds or ms.
  uint64_t total = 0;
  while (!s.empty()) {
    uint64_t n = 0;
    if (!TakeNumber(&s, &n)) return std::nullopt;
    uint64_t unit_ms = 0;
    if (s.starts_with("ms")) {
      unit_ms = 1;
      s.remove_prefix(2);
    } else if (s.starts_with("s")) {
      unit_ms = 1000;
      s.remove_prefix(1);
    } else if (s.starts_with("m")) {
      unit_ms = 60'000;
      s.remove_prefix(1);
    } else if (s.starts_with("h")) {
      unit_ms = 3'600'000;
      s.remove_prefix(1);
    } else if (s.starts_with("d")) {
      unit_ms = 86'400'000;
      s.remove_prefix(1);
    } else {
      return std::nullopt;
    }
    uint64_t part = 0;
    if (MulOverflows(n, unit_ms, &part)) return std::nullopt;
    if (__builtin_add_overflow(total, part, &total)) return std::nullopt;
  }
  return total;
}

std::optional<uint64_t> ParseSize(std::string_view text) {
  std::string_view s = Trim(text);
  uint64_t n = 0;
  if (!TakeNumber(&s, &n)) return std::nullopt;
  s = Trim(s);
  uint64_t mult = 0;
  if (s.empty() || s == "B") {
    mult = 1;
  } else if (s == "KiB") {
    mult = 1ull << 10;
  } else if (s == "MiB") {
    mult = 1ull << 20;
  } else if (s == "GiB") {
    mult = 1ull << 30;
  } else if (s == "TiB") {
    mult = 1ull << 40;
  } else {
    return std::nullopt;  // "64K", "1MB": refused rather than guessing 1000 vs 1024
  }
  uint64_t v = 0;
  if (MulOverflows(n, mult, &v)) return std::nullopt;
  return v;
}

std::optional<RateLimit> ParseRateText(std::string_view text) {
  const std::string_view trimmed = Trim(text);
  std::string_view s = trimmed;
  uint64_t n = 0;
  if (!TakeNumber(&s, &n)) return std::nullopt;
  if (n == 0 || n > std::numeric_limits<uint32_t>::max()) return std::nullopt;
  s = Trim(s);
  if (!s.starts_with("req")) return std::nullopt;
  s.remove_prefix(3);
  if (s.starts_with("uests")) {
    s.remove_prefix(5);
  } else if (s.starts_with("s")) {
    s.remove_prefix(1);
  }
  s = Trim(s);
  if (!s.starts_with("/")) return std::nullopt;
  s = Trim(s.substr(1));
  uint64_t period_s = 0;
  if (s == "s" || s == "sec" || s == "second") {
    period_s = 1;
  } else if (s == "min" || s == "minute" || s == "m") {
    period_s = 60;
  } else if (s == "h" || s == "hour") {
    period_s = 3600;
  } else {
    return std::nullopt;
  }
  RateLimit r;
  // Rounded to the nearest milli-token per second, and never 0 (which means
  // "no limit"): "1 req/h" is 0.28 tokens/s ×1000.
  r.rate_per_sec_x1000 = (n * 1000 + period_s / 2) / period_s;
  if (r.rate_per_sec_x1000 == 0) r.rate_per_sec_x1000 = 1;
  r.burst = static_cast<uint32_t>(n);
  r.text = std::string(trimmed);
  return r;
}

std::optional<EndpointAddress> ParseEndpoint(std::string_view text) {
  EndpointAddress e;
  if (text.starts_with(kMtlsScheme)) {
    e.mtls = true;
    text.remove_prefix(kMtlsScheme.size());
  }
  std::optional<HostPort> hp = ParseHostPort(text);
  if (!hp) return std::nullopt;
  e.hp = std::move(*hp);
  return e;
}

std::optional<HostPort> ParseHostPort(std::string_view text, bool allow_port_zero) {
  const std::optional<HostPortText> split = SplitHostPort(text);
  if (!split || (split->port == 0 && !allow_port_zero)) return std::nullopt;
  HostPort hp;
  hp.host = std::string(split->host);
  hp.port = split->port;
  if (split->bracketed) {
    in6_addr a6;
    if (inet_pton(AF_INET6, hp.host.c_str(), &a6) != 1) return std::nullopt;
    return hp;
  }
  // A DNS name (RFC 1123 labels) or a dotted IPv4 address.
  if (hp.host.size() > 253) return std::nullopt;
  size_t label = 0;
  for (size_t i = 0; i <= hp.host.size(); ++i) {
    if (i == hp.host.size() || hp.host[i] == '.') {
      if (label == 0 || label > 63) return std::nullopt;
      if (hp.host[i - 1] == '-' || hp.host[i - label] == '-') return std::nullopt;
      label = 0;
      continue;
    }
    const unsigned char c = static_cast<unsigned char>(hp.host[i]);
    if (!std::isalnum(c) && c != '-' && c != '_') return std::nullopt;
    ++label;
  }
  // All-numeric dotted hosts must be real IPv4 addresses ("1.2.3.400" is not).
  bool numeric = true;
  for (char c : hp.host) numeric = numeric && (c == '.' || std::isdigit(static_cast<unsigned char>(c)));
  in_addr a4;
  if (numeric && inet_pton(AF_INET, hp.host.c_str(), &a4) != 1) return std::nullopt;
  return hp;
}

std::vector<std::string> RetryOnNames(uint32_t retry_on) {
  std::vector<std::string> names;
  for (const policy::RetryOnToken& t : policy::kRetryOnTokens) {
    if ((retry_on & t.bit) != 0) names.emplace_back(t.name);
  }
  return names;
}

bool IsValidServiceName(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  if (name.front() == '-' || name.back() == '-') return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

}  // namespace hms::config
