#include "hms/http/field_names.h"

#include <cstring>

namespace hms::http {

FieldVerdict JudgeFieldName(std::string_view name, UnderscorePolicy policy) noexcept {
  if (policy == UnderscorePolicy::kAllow) return FieldVerdict::kForward;
  if (name.empty() || std::memchr(name.data(), '_', name.size()) == nullptr) {
    return FieldVerdict::kForward;
  }
  return policy == UnderscorePolicy::kDrop ? FieldVerdict::kDrop : FieldVerdict::kReject;
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
