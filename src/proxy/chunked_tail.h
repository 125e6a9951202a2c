// The end of a chunked body as it is unframed for HTTP/2, where trailers are
// a HEADERS frame of their own: the framing since the body's last data (the
// CRLF after it, the last chunk's line, the trailer section), kept while a
// ChunkedDecoder walks the body, so that at its end the trailer fields can be
// read (RFC 9112 §7.1.2). H2Stream keeps one for an answer going to an h2
// client, H2UpStream for a request going to an h2 upstream. Bounded: a tail
// longer than kBytes is not kept, and its trailers are dropped whole rather
// than cut; of a section with more than the caller's `max` fields that
// go on, those past the first `max` are left out (the fields that do not
// go on are filtered while reading, so they take none of the places).
// Pure and inline: no allocation, the caller's thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "hms/http/parser.h"

namespace hms::proxy {

struct ChunkedTail {
  static constexpr size_t kBytes = 512;

  // A step of the decoder that gave body data: what came before is no tail.
  void Data() noexcept { len = 0; }
  // A step that consumed framing only.
  void Framing(const char* p, size_t n) noexcept {
    if (len <= kBytes && len + n <= kBytes) {
      std::memcpy(bytes + len, p, n);
      len = static_cast<uint16_t>(len + n);
    } else {
      len = kBytes + 1;  // too long to carry: the trailers are dropped
    }
  }
  // The trailer fields (pointing into this tail) for which keep(name) is
  // true, at most `max`; 0 when there are none or the tail was too long.
  template <typename Keep>
  uint16_t Trailers(http::Header* fields, uint16_t max, Keep keep) const noexcept {
    if (len > kBytes) return 0;
    const std::string_view tail(bytes, len);
    size_t pos = 0;
    // Skip up to and past the last chunk's line ("0[;ext]\r\n").
    while (pos < tail.size() && (tail[pos] == '\r' || tail[pos] == '\n')) ++pos;
    size_t eol = tail.find('\n', pos);
    if (eol == std::string_view::npos) return 0;
    pos = eol + 1;
    uint16_t n = 0;
    while (pos < tail.size() && n < max) {
      eol = tail.find('\n', pos);
      if (eol == std::string_view::npos) break;
      std::string_view line = tail.substr(pos, eol - pos);
      pos = eol + 1;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty()) break;
      const size_t colon = line.find(':');
      if (colon == std::string_view::npos || colon == 0) continue;  // the decoder refused these
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
      if (keep(line.substr(0, colon))) fields[n++] = http::Header{line.substr(0, colon), value};
    }
    return n;
  }

  char bytes[kBytes];
  uint16_t len = 0;
};

}  // namespace hms::proxy
