#include "hms/http/field_names.h"

#include <cstring>

#include "hms/http/parser.h"

namespace hms::http {

FieldVerdict JudgeFieldName(std::string_view name, UnderscorePolicy policy) noexcept {
  if (policy == UnderscorePolicy::kAllow) return FieldVerdict::kForward;
  if (name.empty() || std::memchr(name.data(), '_', name.size()) == nullptr) {
    return FieldVerdict::kForward;
  }
  return policy == UnderscorePolicy::kDrop ? FieldVerdict::kDrop : FieldVerdict::kReject;
}

bool ForbiddenInTrailers(std::string_view name) noexcept {
  static constexpr std::string_view kNames[] = {
      // framing, routing
      "content-length", "transfer-encoding", "host",
      // request modifiers
      "cache-control", "expect", "max-forwards", "pragma", "range", "te", "if-match",
      "if-none-match", "if-modified-since", "if-unmodified-since", "if-range",
      // authentication
      "authorization", "proxy-authorization", "www-authenticate", "proxy-authenticate",
      "authentication-info", "proxy-authentication-info", "cookie", "set-cookie",
      // response control data
      "age", "date", "expires", "location", "retry-after", "vary", "warning",
      // how to process the content
      "content-encoding", "content-type", "content-range", "trailer",
      // hop-by-hop
      "connection", "keep-alive", "proxy-connection", "upgrade"};
  for (std::string_view n : kNames) {
    if (EqualsIgnoreCase(name, n)) return true;
  }
  return false;
}

std::string_view UnderscorePolicyName(UnderscorePolicy policy) noexcept {
  switch (policy) {
    case UnderscorePolicy::kAllow:
      return "allow";
    case UnderscorePolicy::kDrop:
      return "drop";
    case UnderscorePolicy::kReject:
      return "reject";
  }
  return "drop";
}

bool ParseUnderscorePolicy(std::string_view text, UnderscorePolicy* out) noexcept {
  for (UnderscorePolicy p :
       {UnderscorePolicy::kAllow, UnderscorePolicy::kDrop, UnderscorePolicy::kReject}) {
    if (text == UnderscorePolicyName(p)) {
      *out = p;
      return true;
    }
  }
  return false;
}

}  // namespace hms::http
