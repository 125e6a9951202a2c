// SHA-1 of two strings joined, written in base64 (RFC 4648 §4, padded): what
// a WebSocket server's Sec-WebSocket-Accept is made of (RFC 6455 §4.2.2).
// SHA-1 serves only that handshake check here, never a signature or a MAC.
// wolfCrypt does the work (this module wraps it). Pure; any thread; no
// allocation.
#pragma once

#include <cstddef>
#include <string_view>

namespace hms::tls {

// Characters of a padded base64 SHA-1 digest (20 bytes).
inline constexpr size_t kSha1Base64Size = 28;

// Writes base64(SHA-1(a ‖ b)) into out[0, kSha1Base64Size).
void Sha1Base64(std::string_view a, std::string_view b, char* out) noexcept;

}  // namespace hms::tls
