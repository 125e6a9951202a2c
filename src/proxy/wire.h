// Small writers for the bytes the proxy generates: heads toward either side
// and the JSON bodies of local responses. They write into caller buffers and
// never allocate. Used by the worker on its own thread.
#pragma once

#include <algorithm>
#include <bitset>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "hms/common/check.h"
#include "hms/common/json_escape.h"
#include "hms/core/block_pool.h"
#include "hms/http/parser.h"
#include "hms/http/status_text.h"

namespace hms::proxy {

// Bytes a block holds beyond max_header_bytes (worker.cc sizes blocks so): the
// room for what the proxy adds to a head it forwards. Toward an upstream that
// is at most ~500 bytes plus the caller's mTLS identity (x-hms-peer), which
// only the certificate bounds; toward a client at most ~400 (x-trace-id,
// framing, RateLimit-*, connection, and ": " for fields sent without the
// space). A head that still does not fit is refused, never cut.
inline constexpr size_t kHeadRoom = 4096;

// Appends into [p, end). When full it stops writing and remembers it: a writer
// that overflowed holds a prefix, never a message, so every caller checks
// overflow() before its bytes go anywhere. Where the input decides the size
// (a caller's head, an upstream's head) the caller answers (431, 502);
// where the bounds of what is written make it impossible, it HMS_CHECKs.
class Writer {
 public:
  Writer(char* p, size_t cap) : begin_(p), p_(p), end_(p + cap) {}
  Writer& S(std::string_view s) noexcept {
    size_t n = std::min(s.size(), static_cast<size_t>(end_ - p_));
    if (n != 0) std::memcpy(p_, s.data(), n);  // an empty view may have no data at all
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
  // JSON string contents (without quotes): hms/common/json_escape.h.
  Writer& Json(std::string_view s) noexcept {
    const size_t room = static_cast<size_t>(end_ - p_);
    const size_t n = EscapeJson(s, p_, room);
    overflow_ |= n > room;
    p_ += n > room ? room : n;
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
// (http::IsHopByHop) plus every field named by any of its Connection fields,
// however many Connection fields there are. Decided once per message, by
// field index: with n fields and k connection-options it costs at most
// n × (9 + k) name comparisons, and keeps nothing but a bit per field.
class HopByHop {
 public:
  // Connection-options (list elements, over all of a message's Connection
  // fields) a message may carry. One with more is refused: 400
  // too_many_connection_options from a client, 502 upstream_bad_response from
  // an upstream. Real peers send one or two (close, keep-alive, upgrade, TE);
  // the bound keeps each message's work small however its head is spent.
  static constexpr int kMaxOptions = 32;

  HopByHop(const http::Header* headers, int count) noexcept {
    HMS_CHECK(count >= 0 && count <= http::kMaxHeaders);
    for (int i = 0; i < count; ++i) {
      if (!http::IsHopByHop(headers[i].name, {})) continue;
      drop_[static_cast<size_t>(i)] = true;
      if (!http::EqualsIgnoreCase(headers[i].name, "connection")) continue;
      std::string_view v = headers[i].value;
      for (size_t pos = 0; pos <= v.size();) {
        size_t comma = v.find(',', pos);
        if (comma == std::string_view::npos) comma = v.size();
        std::string_view option = TrimOws(v.substr(pos, comma - pos));
        pos = comma + 1;
        if (option.empty()) continue;  // "a, , b": empty list elements (RFC 9110 §5.6.1)
        if (++options_ > kMaxOptions) return;
        for (int j = 0; j < count; ++j) {
          if (http::EqualsIgnoreCase(headers[j].name, option)) drop_[static_cast<size_t>(j)] = true;
        }
      }
    }
  }
  // The message named more than kMaxOptions options: refuse it (the marks
  // are then incomplete).
  bool too_many_options() const noexcept { return options_ > kMaxOptions; }
  // Field `i` of the message is not forwarded.
  bool operator()(int i) const noexcept { return drop_[static_cast<size_t>(i)]; }

 private:
  static std::string_view TrimOws(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
  }

  std::bitset<http::kMaxHeaders> drop_;
  int options_ = 0;
};

// Status lines the proxy writes itself take their phrase from the one table.
using http::StatusText;

// A chunk's size line ("1a2b\r\n", RFC 9112 §7.1) into `out` (18 bytes
// hold any); its length. For bodies re-framed chunked toward a peer.
inline size_t ChunkSizeLine(size_t n, char* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  char tmp[16];
  size_t len = 0;
  do {
    tmp[len++] = kHex[n & 15];
    n >>= 4;
  } while (n != 0);
  for (size_t i = 0; i < len; ++i) out[i] = tmp[len - 1 - i];
  out[len] = '\r';
  out[len + 1] = '\n';
  return len + 2;
}

// Appends `n` bytes of body data to `q` as one chunk (size line, data, CRLF):
// a body without a length re-framed chunked toward an HTTP/1.1 peer.
inline void AppendChunk(core::ByteQueue* q, core::BlockPool* blocks, const char* p, size_t n) {
  char line[18];
  q->Append(blocks, line, ChunkSizeLine(n, line));
  q->Append(blocks, p, n);
  q->Append(blocks, "\r\n", 2);
}

}  // namespace hms::proxy
