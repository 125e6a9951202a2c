// Small writers for the bytes the proxy generates: heads toward either side
// and the JSON bodies of local responses. They write into caller buffers and
// never allocate. Used by the worker on its own thread.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

#include "hms/http/parser.h"

namespace hms::proxy {

// Appends into [p, end); silently truncates when full (heads are bounded by the
// block size, which leaves room for everything the proxy adds).
class Writer {
 public:
  Writer(char* p, size_t cap) : begin_(p), p_(p), end_(p + cap) {}
  Writer& S(std::string_view s) noexcept {
    size_t n = std::min(s.size(), static_cast<size_t>(end_ - p_));
    std::memcpy(p_, s.data(), n);
    p_ += n;
    overflow_ |= n < s.size();
    return *this;
  }
  Writer& C(char c) noexcept {
    if (p_ < end_) {
      *p_++ = c;
    } else {
      overflow_ = true;
    }
    return *this;
  }
  Writer& U(uint64_t v) noexcept {
    char tmp[20];
    int n = 0;
    do {
      tmp[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    while (n > 0) C(tmp[--n]);
    return *this;
  }
  // JSON string contents (without quotes), escaping per RFC 8259.
  Writer& Json(std::string_view s) noexcept {
    static constexpr char kHex[] = "0123456789abcdef";
    for (unsigned char ch : s) {
      if (ch == '"' || ch == '\\') {
        C('\\').C(static_cast<char>(ch));
      } else if (ch < 0x20) {
        S("\\u00").C(kHex[ch >> 4]).C(kHex[ch & 15]);
      } else {
        C(static_cast<char>(ch));
      }
    }
    return *this;
  }
  size_t size() const noexcept { return static_cast<size_t>(p_ - begin_); }
  bool overflow() const noexcept { return overflow_; }

 private:
  char* begin_;
  char* p_;
  char* end_;
  bool overflow_ = false;
};

// Which fields of a message are hop-by-hop (RFC 9110 §7.6.1): the fixed set
// plus every field its Connection headers name.
class HopByHop {
 public:
  HopByHop(const http::Header* headers, int count) noexcept {
    for (int i = 0; i < count && n_ < kMax; ++i)
      if (http::EqualsIgnoreCase(headers[i].name, "connection")) values_[n_++] = headers[i].value;
  }
  bool operator()(std::string_view name) const noexcept {
    if (n_ == 0) return http::IsHopByHop(name, {});
    for (int k = 0; k < n_; ++k)
      if (http::IsHopByHop(name, values_[k])) return true;
    return false;
  }

 private:
  static constexpr int kMax = 4;
  std::string_view values_[kMax];
  int n_ = 0;
};

inline std::string_view StatusText(int status) noexcept {
  switch (status) {
    case 100: return "Continue";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Error";
  }
}

}  // namespace hms::proxy
