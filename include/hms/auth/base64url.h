// Base64url (RFC 4648 §5) as JWS compact serialization uses it (RFC 7515 §2):
// no padding, no line breaks, no whitespace. The decoder is strict: '=',
// whitespace, bytes outside the alphabet, a length of 1 mod 4 and non-zero
// unused bits in the last character are all errors, so each byte string has
// exactly one accepted encoding. Pure functions; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace hms::auth {

// Bytes that decoding `n` input characters yields when the input is valid.
constexpr size_t Base64UrlDecodedSize(size_t n) noexcept {
  return n / 4 * 3 + (n % 4 == 0 ? 0 : n % 4 - 1);
}

// Characters that encoding `n` bytes yields.
constexpr size_t Base64UrlEncodedSize(size_t n) noexcept {
  return n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

// Decodes `in` into `out` (room for `cap` bytes). Returns the decoded length,
// -EINVAL for input that is not strict unpadded base64url, -ENOSPC when `cap`
// is too small.
[[nodiscard]] int64_t DecodeBase64Url(std::string_view in, uint8_t* out, size_t cap) noexcept;

// Encodes `n` bytes into `out`, which has room for Base64UrlEncodedSize(n).
// Returns the number of characters written.
size_t EncodeBase64Url(const uint8_t* in, size_t n, char* out) noexcept;

// Control-plane convenience (allocates).
std::string EncodeBase64Url(std::string_view bytes);

}  // namespace hms::auth
