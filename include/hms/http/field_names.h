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

// A field a trailer section must not carry on (RFC 9110 §6.5.1): those that
// frame the message (content-length, transfer-encoding), route it (host),
// modify the request (cache-control, expect, max-forwards, pragma, range,
// te, the if-* conditionals), authenticate (authorization, cookie, ...),
// control the response (age, date, expires, location, retry-after, vary,
// warning) or say how to process the content (content-encoding,
// content-type, content-range, trailer); and the hop-by-hop ones
// (connection, keep-alive, proxy-connection, upgrade). A recipient may not
// merge such a field into the head, so a proxy drops it rather than pass
// on what the next hop must ignore.
bool ForbiddenInTrailers(std::string_view name) noexcept;

// The config spelling ("allow", "drop", "reject") and back; false for any
// other text.
std::string_view UnderscorePolicyName(UnderscorePolicy policy) noexcept;
bool ParseUnderscorePolicy(std::string_view text, UnderscorePolicy* out) noexcept;

}  // namespace hms::http
