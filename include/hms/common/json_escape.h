// The one JSON string escaper (RFC 8259 §7), for every JSON the gateway and
// hms-api write: local-response bodies and access-log lines on the data path,
// /status, /config, OTLP spans and the CLI's --json answers off it. Pure
// functions of their input; any thread.
//
// What comes out: '"' and '\\' escaped; the controls U+0000..U+001F as the
// short escapes \b \f \n \r \t where RFC 8259 has one, else \u00XX (lowercase
// hex); DEL (0x7f) and well-formed UTF-8 passed through unchanged. A byte
// that is not part of a well-formed UTF-8 sequence (RFC 3629 §4: no
// overlongs, no surrogates, nothing past U+10FFFF) becomes \ufffd, one per
// byte: the output is always valid JSON, which RFC 8259 §8.1 requires to be
// UTF-8, however malformed the input (a request path, an upstream's text).
#pragma once

#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>

namespace hms {
namespace json_internal {

// Length of the well-formed UTF-8 sequence that starts at s[i] (a byte >=
// 0x80), 0 when there is none (RFC 3629 §4, the table of well-formed
// byte sequences).
constexpr size_t Utf8Length(std::string_view s, size_t i) noexcept {
  const auto at = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const auto cont = [&](size_t k, unsigned char lo, unsigned char hi) {
    return i + k < s.size() && at(k) >= lo && at(k) <= hi;
  };
  const unsigned char c = at(0);
  if (c >= 0xc2 && c <= 0xdf) return cont(1, 0x80, 0xbf) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    const unsigned char lo = c == 0xe0 ? 0xa0 : 0x80;  // 0xe0: no overlongs
    const unsigned char hi = c == 0xed ? 0x9f : 0xbf;  // 0xed: no surrogates
    return cont(1, lo, hi) && cont(2, 0x80, 0xbf) ? 3 : 0;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    const unsigned char lo = c == 0xf0 ? 0x90 : 0x80;  // 0xf0: no overlongs
    const unsigned char hi = c == 0xf4 ? 0x8f : 0xbf;  // 0xf4: nothing past U+10FFFF
    return cont(1, lo, hi) && cont(2, 0x80, 0xbf) && cont(3, 0x80, 0xbf) ? 4 : 0;
  }
  return 0;
}

// The escape for byte `c` (a control, '"', '\\', or a byte of malformed
// UTF-8) into `esc`; returns its length.
inline size_t EscapeOf(unsigned char c, char esc[6]) noexcept {
  static constexpr char kHex[] = "0123456789abcdef";
  esc[0] = '\\';
  switch (c) {
    case '"': esc[1] = '"'; return 2;
    case '\\': esc[1] = '\\'; return 2;
    case '\b': esc[1] = 'b'; return 2;
    case '\f': esc[1] = 'f'; return 2;
    case '\n': esc[1] = 'n'; return 2;
    case '\r': esc[1] = 'r'; return 2;
    case '\t': esc[1] = 't'; return 2;
    default: break;
  }
  if (c >= 0x80) {
    std::memcpy(esc, "\\ufffd", 6);
    return 6;
  }
  std::memcpy(esc, "\\u00", 4);
  esc[4] = kHex[c >> 4];
  esc[5] = kHex[c & 15];
  return 6;
}

}  // namespace json_internal

// Writes `s` escaped as a JSON string's contents (no quotes) into
// [out, out + cap) and returns the length the escaped form needs. When that
// is more than `cap`, only its first `cap` bytes are written (a prefix, never
// a message: the caller compares). Never allocates: the data path's form.
inline size_t EscapeJson(std::string_view s, char* out, size_t cap) noexcept {
  size_t n = 0;
  const auto put = [&](const char* p, size_t len) {
    // len == 0 may come with p == nullptr (an empty view): memcpy forbids it.
    if (n < cap && len > 0) std::memcpy(out + n, p, len < cap - n ? len : cap - n);
    n += len;
  };
  // Runs that need no escape (nearly all text) are copied whole.
  size_t run = 0;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      if (const size_t k = json_internal::Utf8Length(s, i); k > 0) {
        i += k;
        continue;
      }
    }
    put(s.data() + run, i - run);
    char esc[6];
    put(esc, json_internal::EscapeOf(c, esc));
    run = ++i;
  }
  put(s.data() + run, s.size() - run);
  return n;
}

// The length of `s` escaped, without writing it.
inline size_t JsonEscapedSize(std::string_view s) noexcept { return EscapeJson(s, nullptr, 0); }

// Control-side conveniences (they allocate): the escaped contents appended
// to `out`; the same between quotes; a quoted JSON string.
inline void AppendJsonEscaped(std::string* out, std::string_view s) {
  const size_t at = out->size();
  const size_t n = JsonEscapedSize(s);
  out->resize(at + n);
  EscapeJson(s, out->data() + at, n);
}
inline void AppendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  AppendJsonEscaped(out, s);
  out->push_back('"');
}
inline std::string JsonString(std::string_view s) {
  std::string out;
  AppendJsonString(&out, s);
  return out;
}

}  // namespace hms
