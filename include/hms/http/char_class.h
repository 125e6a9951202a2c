// Byte classes of RFC 9110 §5.6 and RFC 3986: the one table of them, shared by
// the head parser, the chunked decoder and the path normalizer (src/http), and
// through IsTokenChar / IsToken by the config and route checks of methods and
// field names. The lookups are constexpr tables, so the scalar loops cost one
// load per byte. Pure; any thread.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace hms::http::internal {

enum CharClass : uint8_t {
  kClassTchar = 1 << 0,    // token: "!#$%&'*+-.^_`|~" DIGIT ALPHA
  kClassFieldVc = 1 << 1,  // field-vchar / obs-text plus SP and HTAB (RFC 9110 §5.5)
  kClassHex = 1 << 2,      // HEXDIG
  kClassRegName = 1 << 3,  // RFC 3986 unreserved / sub-delims (reg-name without pct-encoded)
  kClassQdtext = 1 << 4,   // RFC 9110 §5.6.4 qdtext
};

constexpr std::array<uint8_t, 256> MakeClasses() {
  std::array<uint8_t, 256> t{};
  constexpr std::string_view kTcharPunct = "!#$%&'*+-.^_`|~";
  constexpr std::string_view kRegNamePunct = "-._~!$&'()*+,;=";
  for (int c = 0; c < 256; ++c) {
    uint8_t v = 0;
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    const bool digit = c >= '0' && c <= '9';
    if (alpha || digit || kTcharPunct.find(static_cast<char>(c)) != std::string_view::npos) {
      v |= kClassTchar;
    }
    if (alpha || digit || kRegNamePunct.find(static_cast<char>(c)) != std::string_view::npos) {
      v |= kClassRegName;
    }
    if ((c >= 0x21 && c <= 0x7e) || c >= 0x80 || c == ' ' || c == '\t') v |= kClassFieldVc;
    if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) v |= kClassHex;
    if (c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e) ||
        c >= 0x80) {
      v |= kClassQdtext;
    }
    t[c] = v;
  }
  return t;
}

inline constexpr std::array<uint8_t, 256> kClasses = MakeClasses();

inline bool Is(char c, CharClass cls) noexcept {
  return (kClasses[static_cast<uint8_t>(c)] & cls) != 0;
}
inline bool IsTchar(char c) noexcept { return Is(c, kClassTchar); }
inline bool IsWs(char c) noexcept { return c == ' ' || c == '\t'; }

inline int HexValue(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace hms::http::internal

namespace hms::http {

// RFC 9110 §5.6.2: tchar, and token = 1*tchar (methods, field names).
inline bool IsTokenChar(char c) noexcept { return internal::IsTchar(c); }
inline bool IsToken(std::string_view s) noexcept {
  for (char c : s) {
    if (!IsTokenChar(c)) return false;
  }
  return !s.empty();
}

}  // namespace hms::http
