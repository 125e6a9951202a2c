// Rules on field names that the proxy applies before it forwards a field,
// whichever HTTP version carried it: HTTP/1.1 header fields today, HTTP/2
// header names through the same functions when HTTP/2 arrives, so both
// versions decide alike. Pure functions: any thread, no allocation.
#pragma once

#include <cstdint>
#include <string_view>

namespace hms::http {

// gateway.yaml `underscores_in_headers`: what happens to a request field whose
// name holds '_'. CGI, WSGI and many frameworks after them turn '-' into '_'
// when they map fields to variables, so `X_Forwarded_For` and the
// `X-Forwarded-For` the gateway writes reach such an application as the same
// name: a client could speak in the gateway's name. kDrop (the default, as
// NGINX's `underscores_in_headers off`) removes such fields, kReject refuses
// the request, kAllow forwards them unchanged.
enum class UnderscorePolicy : uint8_t { kAllow, kDrop, kReject };

enum class FieldVerdict : uint8_t { kForward, kDrop, kReject };

// The verdict on a request field by its name alone.
FieldVerdict JudgeFieldName(std::string_view name, UnderscorePolicy policy) noexcept;

// The config spelling ("allow", "drop", "reject") and back; false for any
// other text.
std::string_view UnderscorePolicyName(UnderscorePolicy policy) noexcept;
bool ParseUnderscorePolicy(std::string_view text, UnderscorePolicy* out) noexcept;

}  // namespace hms::http
