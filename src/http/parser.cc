// HTTP/1.1 head parser (RFC 9112), strict where a proxy's safety depends on it
// (DESIGN §6). The structure follows picohttpparser: one forward pass over the
// bytes, no state kept between calls, partial input detected wherever the
// bytes run out. Unlike picohttpparser every framing ambiguity (bare CR/LF,
// obs-fold, CL+TE, differing Content-Length values) is an error, never handed
// to the caller.
#include "hms/http/parser.h"

#include <tmmintrin.h>

#include <array>
#include <climits>
#include <cstddef>
#include <cstring>

#include "hms/http/char_class.h"

namespace hms::http {
namespace {

using internal::HexValue;
using internal::Is;
using internal::IsTchar;
using internal::IsWs;

// Internal tri-state of the sub-parsers: kOk means "done, carry on".
constexpr int kOk = 0;

// Framing facts gathered while the fields are read; turned into the head's
// body/keep_alive once the blank line is reached.
struct Facts {
  uint64_t content_length = 0;
  bool has_content_length = false;
  bool has_transfer_encoding = false;
  bool te_last_chunked = false;
  bool te_chunked_seen = false;
  bool conn_close = false;
  bool conn_keep_alive = false;
  bool expect_continue = false;
  bool has_host = false;
  std::string_view host;
};

// SSE2 scanners. Each handles 16 bytes per iteration while at least 16 bytes
// remain and finishes with a scalar tail, so it never reads past `end`. Plain
// compares + movemask cost fewer micro-ops per block than `_mm_cmpestri` on
// the machines we measured, and the ranges we need fit in three compares.

// First byte that is a CTL (HTAB included) or DEL; end when none.
inline const char* FindCtl(const char* p, const char* end, const char* floor) noexcept {
  const __m128i k1f = _mm_set1_epi8(0x1f);
  const __m128i kDel = _mm_set1_epi8(0x7f);
  // Long values (cookies, user agents, tokens) go 32 bytes per branch.
  while (end - p >= 32) {
    const __m128i v0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i v1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16));
    const __m128i c0 =
        _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(v0, k1f), v0), _mm_cmpeq_epi8(v0, kDel));
    const __m128i c1 =
        _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(v1, k1f), v1), _mm_cmpeq_epi8(v1, kDel));
    const unsigned mask = static_cast<unsigned>(_mm_movemask_epi8(c0)) |
                          (static_cast<unsigned>(_mm_movemask_epi8(c1)) << 16);
    if (mask != 0) return p + __builtin_ctz(mask);
    p += 32;
  }
  if (end - p >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i ctl =
        _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(v, k1f), v), _mm_cmpeq_epi8(v, kDel));
    const int mask = _mm_movemask_epi8(ctl);
    if (mask != 0) return p + __builtin_ctz(static_cast<unsigned>(mask));
    p += 16;
  }
  const ptrdiff_t rest = end - p;
  if (rest > 0 && end - floor >= 16) {
    // Fewer than 16 bytes left: look at the 16 that end at `end` (all inside
    // the caller's buffer) and drop the bits of the bytes before p.
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(end - 16));
    const __m128i ctl =
        _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(v, k1f), v), _mm_cmpeq_epi8(v, kDel));
    const unsigned mask = static_cast<unsigned>(_mm_movemask_epi8(ctl)) >> (16 - rest);
    return mask != 0 ? p + __builtin_ctz(mask) : end;
  }
  for (; p < end; ++p) {
    const auto c = static_cast<uint8_t>(*p);
    if (c < 0x20 || c == 0x7f) return p;
  }
  return end;
}

// First byte of a field value that is a CTL other than HTAB, or DEL (this
// includes CR and LF, which end the value). Returns end when none. The vector
// test leaves HTAB in (two compares fewer per block; tabs in values are rare)
// and the loop steps over it.
inline const char* FindValueStop(const char* p, const char* end, const char* floor) noexcept {
  for (;;) {
    p = FindCtl(p, end, floor);
    if (p == end || *p != '\t') return p;
    ++p;
  }
}

// Nibble tables for the tchar test with PSHUFB (the classification trick of
// simdjson and Langdale's "vectorized classification"): every tchar has a high
// nibble 2..7, each high nibble gets its own bit, so `lo[b & 15] & hi[b >> 4]`
// is non-zero exactly for tchars.
struct TcharNibbles {
  alignas(16) uint8_t lo[16];
  alignas(16) uint8_t hi[16];
};

constexpr TcharNibbles MakeTcharNibbles() {
  TcharNibbles t{};
  for (int h = 2; h <= 7; ++h) t.hi[h] = static_cast<uint8_t>(1u << (h - 2));
  for (int c = 0x20; c < 0x80; ++c) {
    if (internal::kClasses[c] & internal::kClassTchar) t.lo[c & 15] |= t.hi[c >> 4];
  }
  return t;
}

constexpr TcharNibbles kTcharNibbles = MakeTcharNibbles();

// First byte that is not a tchar (ends a method or a field name).
inline const char* FindNonTchar(const char* p, const char* end, const char* floor) noexcept {
  const __m128i lo_tbl = _mm_load_si128(reinterpret_cast<const __m128i*>(kTcharNibbles.lo));
  const __m128i hi_tbl = _mm_load_si128(reinterpret_cast<const __m128i*>(kTcharNibbles.hi));
  const __m128i k0f = _mm_set1_epi8(0x0f);
  while (end - p >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i lo = _mm_shuffle_epi8(lo_tbl, _mm_and_si128(v, k0f));
    const __m128i hi = _mm_shuffle_epi8(hi_tbl, _mm_and_si128(_mm_srli_epi16(v, 4), k0f));
    const __m128i not_tchar = _mm_cmpeq_epi8(_mm_and_si128(lo, hi), _mm_setzero_si128());
    const int mask = _mm_movemask_epi8(not_tchar);
    if (mask != 0) return p + __builtin_ctz(static_cast<unsigned>(mask));
    p += 16;
  }
  const ptrdiff_t rest = end - p;
  if (rest > 0 && end - floor >= 16) {  // the same tail trick as FindCtl
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(end - 16));
    const __m128i lo = _mm_shuffle_epi8(lo_tbl, _mm_and_si128(v, k0f));
    const __m128i hi = _mm_shuffle_epi8(hi_tbl, _mm_and_si128(_mm_srli_epi16(v, 4), k0f));
    const __m128i not_tchar = _mm_cmpeq_epi8(_mm_and_si128(lo, hi), _mm_setzero_si128());
    const unsigned mask = static_cast<unsigned>(_mm_movemask_epi8(not_tchar)) >> (16 - rest);
    return mask != 0 ? p + __builtin_ctz(mask) : end;
  }
  while (p != end && IsTchar(*p)) ++p;
  return p;
}

// First byte of a request-target that is not VCHAR (0x21-0x7e) or is '#'
// (a fragment never belongs in a request-target, RFC 9112 §3.2). *question is
// set to the first '?' before that byte, or stays nullptr.
inline const char* FindTargetStop(const char* p, const char* end, const char** question) noexcept {
  const __m128i k21 = _mm_set1_epi8(0x21);
  const __m128i kDel = _mm_set1_epi8(0x7f);
  const __m128i kHash = _mm_set1_epi8('#');
  const __m128i kQuestion = _mm_set1_epi8('?');
  while (end - p >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    // Signed compare: obs-text (>= 0x80) is negative, so it falls below 0x21 too.
    __m128i stop = _mm_cmplt_epi8(v, k21);
    stop = _mm_or_si128(stop, _mm_cmpeq_epi8(v, kDel));
    stop = _mm_or_si128(stop, _mm_cmpeq_epi8(v, kHash));
    const unsigned smask = static_cast<unsigned>(_mm_movemask_epi8(stop));
    if (*question == nullptr) {
      unsigned qmask = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, kQuestion)));
      if (smask != 0) qmask &= (smask & (0u - smask)) - 1;  // only '?' before the stop byte
      if (qmask != 0) *question = p + __builtin_ctz(qmask);
    }
    if (smask != 0) return p + __builtin_ctz(smask);
    p += 16;
  }
  for (; p < end; ++p) {
    const auto c = static_cast<uint8_t>(*p);
    if (c < 0x21 || c >= 0x7f || c == '#') return p;
    if (c == '?' && *question == nullptr) *question = p;
  }
  return end;
}

// Compares a tchar-validated name against a lowercase literal. OR-ing 0x20
// folds case exactly here: among tchars only letters map onto letters and only
// '-' maps onto '-'.
inline bool NameIs(const char* name, size_t len, std::string_view lower) noexcept {
  if (len != lower.size()) return false;
  const char* l = lower.data();
  if (len >= 8) {
    // Eight bytes per compare; the last word overlaps the previous one.
    constexpr uint64_t kFold = 0x2020202020202020ull;
    uint64_t a, b;
    for (size_t i = 0; i + 8 <= len; i += 8) {
      std::memcpy(&a, name + i, 8);
      std::memcpy(&b, l + i, 8);
      if ((a | kFold) != b) return false;
    }
    std::memcpy(&a, name + len - 8, 8);
    std::memcpy(&b, l + len - 8, 8);
    return (a | kFold) == b;
  }
  if (len >= 4) {
    constexpr uint32_t kFold = 0x20202020u;
    uint32_t a, b, c, d;
    std::memcpy(&a, name, 4);
    std::memcpy(&b, l, 4);
    std::memcpy(&c, name + len - 4, 4);
    std::memcpy(&d, l + len - 4, 4);
    return ((a | kFold) == b) & ((c | kFold) == d);
  }
  for (size_t i = 0; i < len; ++i) {
    if ((static_cast<uint8_t>(name[i]) | 0x20) != static_cast<uint8_t>(l[i])) return false;
  }
  return true;
}

// The same fold for a validated field value against a lowercase literal of
// letters, digits and '-': a value holds no CTL but HTAB, and no byte other
// than the letter's other case ORs into one of those (0x0d would alias '-',
// 0x10-0x19 the digits, all CTLs).
inline bool ValueIs(std::string_view value, std::string_view lower) noexcept {
  return NameIs(value.data(), value.size(), lower);
}

constexpr std::array<char, 256> MakeLower() {
  std::array<char, 256> t{};
  for (int c = 0; c < 256; ++c) {
    t[c] = static_cast<char>((c >= 'A' && c <= 'Z') ? (c | 0x20) : c);
  }
  return t;
}

constexpr std::array<char, 256> kLower = MakeLower();

inline char ToLower(char c) noexcept { return kLower[static_cast<uint8_t>(c)]; }

std::string_view TrimOws(std::string_view s) noexcept {
  while (!s.empty() && IsWs(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsWs(s.back())) s.remove_suffix(1);
  return s;
}

// Calls fn(element) for each comma-separated element of a list field
// (RFC 9110 §5.6.1), trimmed of OWS; empty elements are passed too and the
// callback decides. Stops early when fn returns false.
template <typename Fn>
bool ForEachListElement(std::string_view value, Fn fn) noexcept {
  for (;;) {
    const size_t comma = value.find(',');
    if (!fn(TrimOws(value.substr(0, comma)))) return false;
    if (comma == std::string_view::npos) return true;
    value.remove_prefix(comma + 1);
  }
}

// RFC 3986 host [ ":" port ] where host is an IP-literal or a reg-name
// (IPv4 addresses are reg-names syntactically). No userinfo.
bool ValidHost(std::string_view h) noexcept {
  size_t i = 0;
  const size_t n = h.size();
  if (n > 0 && h[0] == '[') {
    i = 1;
    for (; i < n && h[i] != ']'; ++i) {
      // IPv6address / IPvFuture: HEXDIG, ':', '.', 'v', unreserved, sub-delims.
      if (!Is(h[i], internal::kClassRegName) && h[i] != ':') return false;
    }
    if (i == n || i == 1) return false;
    ++i;  // ']'
  } else {
    for (;;) {
      while (i < n && Is(h[i], internal::kClassRegName)) ++i;
      if (i == n || h[i] != '%') break;
      if (i + 2 >= n || HexValue(h[i + 1]) < 0 || HexValue(h[i + 2]) < 0) return false;
      i += 3;
    }
  }
  if (i == n) return true;
  if (h[i] != ':') return false;
  for (++i; i < n; ++i) {
    if (h[i] < '0' || h[i] > '9') return false;
  }
  return true;
}

// Content-Length: 1*DIGIT, or a list of identical values (RFC 9110 §8.6),
// possibly over several fields. Values above 2^63-1 are refused as overflow.
ParseError OnContentLength(std::string_view value, Facts* f) noexcept {
  ParseError err = ParseError::kNone;
  ForEachListElement(value, [&](std::string_view e) {
    if (e.empty()) {
      err = ParseError::kBadContentLength;
      return false;
    }
    uint64_t n = 0;
    for (char c : e) {
      if (c < '0' || c > '9') {
        err = ParseError::kBadContentLength;
        return false;
      }
      if (n > (uint64_t{INT64_MAX} - static_cast<uint64_t>(c - '0')) / 10) {
        err = ParseError::kBadContentLength;
        return false;
      }
      n = n * 10 + static_cast<uint64_t>(c - '0');
    }
    if (f->has_content_length && f->content_length != n) {
      err = ParseError::kDuplicateContentLength;
      return false;
    }
    f->has_content_length = true;
    f->content_length = n;
    return true;
  });
  return err;
}

// Transfer-Encoding: chunked must be the last coding and appear once
// (RFC 9112 §6.1). A request may carry no other coding: the gateway would
// have to decode it to find the body's end, and a request body with gzip
// under chunked is something no upstream of ours expects.
ParseError OnTransferEncoding(std::string_view value, bool is_request, Facts* f) noexcept {
  ParseError err = ParseError::kNone;
  f->has_transfer_encoding = true;
  ForEachListElement(value, [&](std::string_view e) {
    if (e.empty()) return true;  // RFC 9110 §5.6.1: ignore empty list elements
    size_t name_end = 0;
    while (name_end < e.size() && IsTchar(e[name_end])) ++name_end;
    const std::string_view coding = e.substr(0, name_end);
    const std::string_view rest = TrimOws(e.substr(name_end));
    if (coding.empty() || (!rest.empty() && rest.front() != ';')) {
      err = ParseError::kTransferEncodingNotChunked;
      return false;
    }
    if (f->te_chunked_seen) {  // anything after chunked, including a second chunked
      err = ParseError::kTransferEncodingNotChunked;
      return false;
    }
    if (ValueIs(coding, "chunked")) {
      if (!rest.empty()) {  // chunked takes no parameters
        err = ParseError::kTransferEncodingNotChunked;
        return false;
      }
      f->te_chunked_seen = true;
      f->te_last_chunked = true;
    } else {
      if (is_request) {
        err = ParseError::kTransferEncodingNotChunked;
        return false;
      }
      f->te_last_chunked = false;
    }
    return true;
  });
  return err;
}

void OnConnection(std::string_view value, Facts* f) noexcept {
  ForEachListElement(value, [&](std::string_view e) {
    if (ValueIs(e, "close")) {
      f->conn_close = true;
    } else if (ValueIs(e, "keep-alive")) {
      f->conn_keep_alive = true;
    }
    return true;
  });
}

// Consumes CRLF at p. Anything else than CR or LF yields `other`.
inline int ExpectCrlf(const char*& p, const char* end, ParseError other, ParseError* err) noexcept {
  if (p == end) return kPartial;
  if (*p == '\r') {
    if (p + 1 == end) return kPartial;
    if (p[1] != '\n') {
      *err = ParseError::kBareCr;
      return kError;
    }
    p += 2;
    return kOk;
  }
  *err = *p == '\n' ? ParseError::kBareLf : other;
  return kError;
}

// "HTTP/1.0" or "HTTP/1.1", exactly (HTTP-name is case-sensitive).
inline int ParseVersion(const char*& p, const char* end, uint8_t* minor, ParseError* err) noexcept {
  static constexpr char kPrefix[] = "HTTP/1.";
  const size_t avail = static_cast<size_t>(end - p);
  if (avail >= 8) {
    if (std::memcmp(p, kPrefix, 7) != 0 || (p[7] != '0' && p[7] != '1')) {
      *err = ParseError::kBadVersion;
      return kError;
    }
    *minor = static_cast<uint8_t>(p[7] - '0');
    p += 8;
    return kOk;
  }
  // Refuse garbage before it is complete, so a client cannot park a
  // connection on bytes that can never become a version.
  for (size_t i = 0; i < avail; ++i) {
    if (i < 7 ? p[i] != kPrefix[i] : (p[i] != '0' && p[i] != '1')) {
      *err = ParseError::kBadVersion;
      return kError;
    }
  }
  return kPartial;
}

constexpr int kEndOfHead = 1;

// One field line (or the blank line) at p, byte by byte in order, so the first
// offending byte decides the error. Returns kOk with the field, kEndOfHead
// after the blank line, kPartial or kError.
int ParseFieldLine(const char*& p, const char* end, const char* floor, const char** name_out,
                   size_t* name_len_out, std::string_view* value_out, ParseError* err) noexcept {
  const char* name = p;
  p = FindNonTchar(p, end, floor);
  if (p == end) return kPartial;
  const size_t name_len = static_cast<size_t>(p - name);
  if (*p != ':' || name_len == 0) {
    if (name_len == 0) {
      if (*p == '\r') {
        if (p + 1 == end) return kPartial;
        if (p[1] != '\n') {
          *err = ParseError::kBareCr;
          return kError;
        }
        p += 2;
        return kEndOfHead;
      }
      if (*p == '\n') {
        *err = ParseError::kBareLf;
      } else if (IsWs(*p)) {
        // obs-fold, or whitespace before the first field (RFC 9112 §2.2): both refused.
        *err = ParseError::kObsFold;
      } else {
        *err = ParseError::kInvalidHeaderName;
      }
    } else if (IsWs(*p)) {
      while (p != end && IsWs(*p)) ++p;
      if (p == end) return kPartial;
      *err = *p == ':' ? ParseError::kSpaceBeforeColon : ParseError::kInvalidHeaderName;
    } else if (*p == '\r') {
      if (p + 1 == end) return kPartial;
      *err = p[1] == '\n' ? ParseError::kInvalidHeaderName : ParseError::kBareCr;
    } else if (*p == '\n') {
      *err = ParseError::kBareLf;
    } else {
      *err = ParseError::kInvalidHeaderName;
    }
    return kError;
  }
  ++p;  // ':'
  while (p != end && IsWs(*p)) ++p;
  const char* value = p;
  p = FindValueStop(p, end, floor);
  if (p == end) return kPartial;
  if (*p != '\r') {
    *err = *p == '\n' ? ParseError::kBareLf : ParseError::kInvalidHeaderValue;
    return kError;
  }
  if (p + 1 == end) return kPartial;
  if (p[1] != '\n') {
    *err = ParseError::kBareCr;
    return kError;
  }
  const char* value_end = p;
  while (value_end > value && IsWs(value_end[-1])) --value_end;
  p += 2;
  *name_out = name;
  *name_len_out = name_len;
  *value_out = std::string_view(value, static_cast<size_t>(value_end - value));
  return kOk;
}

// Reads header fields up to and including the blank line. Framing fields are
// interpreted as they come so a bad one fails before the head completes.
//
// The fast path finds the line's CR first and checks the name afterwards:
// the next line's start then depends on one vector scan instead of two in
// sequence, and the name check runs in the shadow of the next scan. A line
// the fast path does not fully accept (blank line, any error, partial input)
// is re-read by ParseFieldLine, which reports the first offending byte, so
// both paths give the same answer.
// `floor` is the start of the caller's buffer: every byte from it to `end`
// may be read.
int ParseFields(const char*& p, const char* end, const char* floor, bool is_request,
                Header* headers, uint16_t* count, Facts* f, ParseError* err) noexcept {
  uint16_t n = 0;
  for (;;) {
    const char* name = p;
    size_t name_len;
    std::string_view v;
    const char* cr = FindValueStop(p, end, floor);
    const char* colon;
    if (__builtin_expect(end - cr >= 2 && cr[0] == '\r' && cr[1] == '\n', 1) &&
        (colon = FindNonTchar(p, cr, floor)) != p && colon != cr && *colon == ':') {
      name_len = static_cast<size_t>(colon - p);
      const char* value = colon + 1;
      while (value != cr && IsWs(*value)) ++value;
      const char* value_end = cr;
      while (value_end > value && IsWs(value_end[-1])) --value_end;
      v = std::string_view(value, static_cast<size_t>(value_end - value));
      p = cr + 2;
    } else {
      const int rc = ParseFieldLine(p, end, floor, &name, &name_len, &v, err);
      if (rc == kEndOfHead) {
        *count = n;
        return kOk;
      }
      if (rc != kOk) return rc;
    }
    if (n == kMaxHeaders) {
      *err = ParseError::kTooManyHeaders;
      return kError;
    }
    headers[n++] = Header{std::string_view(name, name_len), v};

    // Only five names matter for framing; the length switch keeps the
    // common fields (Accept, User-Agent, Cookie...) to one compare.
    switch (name_len) {
      case 4:
        if (is_request && NameIs(name, name_len, "host")) {
          if (f->has_host) {
            *err = ParseError::kDuplicateHost;
            return kError;
          }
          if (!ValidHost(v)) {
            *err = ParseError::kBadHost;
            return kError;
          }
          f->has_host = true;
          f->host = v;
        }
        break;
      case 6:
        if (is_request && NameIs(name, name_len, "expect") && ValueIs(v, "100-continue")) {
          f->expect_continue = true;
        }
        break;
      case 10:
        if (NameIs(name, name_len, "connection")) OnConnection(v, f);
        break;
      case 14:
        if (NameIs(name, name_len, "content-length")) {
          *err = OnContentLength(v, f);
          if (*err != ParseError::kNone) return kError;
        }
        break;
      case 17:
        if (NameIs(name, name_len, "transfer-encoding")) {
          *err = OnTransferEncoding(v, is_request, f);
          if (*err != ParseError::kNone) return kError;
        }
        break;
      default:
        break;
    }
  }
}

// Checks shared by requests and responses once all fields are known.
ParseError CheckFraming(const Facts& f, uint8_t version_minor) noexcept {
  if (f.has_transfer_encoding) {
    if (f.has_content_length) return ParseError::kBothLengthAndChunked;
    // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing.
    if (!f.te_last_chunked || version_minor == 0) return ParseError::kTransferEncodingNotChunked;
  }
  return ParseError::kNone;
}

Method MethodFromText(const char* m, size_t len) noexcept {
  switch (len) {
    case 3:
      if (std::memcmp(m, "GET", 3) == 0) return Method::kGet;
      if (std::memcmp(m, "PUT", 3) == 0) return Method::kPut;
      break;
    case 4:
      if (std::memcmp(m, "POST", 4) == 0) return Method::kPost;
      if (std::memcmp(m, "HEAD", 4) == 0) return Method::kHead;
      break;
    case 5:
      if (std::memcmp(m, "PATCH", 5) == 0) return Method::kPatch;
      if (std::memcmp(m, "TRACE", 5) == 0) return Method::kTrace;
      break;
    case 6:
      if (std::memcmp(m, "DELETE", 6) == 0) return Method::kDelete;
      break;
    case 7:
      if (std::memcmp(m, "OPTIONS", 7) == 0) return Method::kOptions;
      if (std::memcmp(m, "CONNECT", 7) == 0) return Method::kConnect;
      break;
    default:
      break;
  }
  return Method::kOther;
}

// Splits the target into path and query by its form (RFC 9112 §3.2).
// `question` is the first '?' in the target or nullptr.
bool SplitTarget(std::string_view target, const char* question, RequestHead* out,
                 std::string_view* authority) noexcept {
  const char* t = target.data();
  const char* t_end = t + target.size();
  const char* path_end = question != nullptr ? question : t_end;
  out->query = question != nullptr
                   ? std::string_view(question + 1, static_cast<size_t>(t_end - question - 1))
                   : std::string_view();
  if (out->method == Method::kConnect) {
    // authority-form: host ":" port, nothing else.
    if (question != nullptr || !ValidHost(target) || target.find(':') == std::string_view::npos) {
      return false;
    }
    *authority = target;
    out->path = std::string_view();
    return true;
  }
  if (t[0] == '/') {  // origin-form, the common case
    out->path = std::string_view(t, static_cast<size_t>(path_end - t));
    return true;
  }
  if (target.size() == 1 && t[0] == '*') {  // asterisk-form
    if (out->method != Method::kOptions) return false;
    out->path = target;
    return true;
  }
  // absolute-form: scheme "://" authority path-abempty [ "?" query ].
  size_t i = 0;
  const size_t n = static_cast<size_t>(path_end - t);
  if (!((t[0] >= 'a' && t[0] <= 'z') || (t[0] >= 'A' && t[0] <= 'Z'))) return false;
  for (i = 1; i < n && t[i] != ':'; ++i) {
    const char c = t[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '+' || c == '-' || c == '.';
    if (!ok) return false;
  }
  if (i + 3 > n || t[i + 1] != '/' || t[i + 2] != '/') return false;
  const char* auth = t + i + 3;
  const char* slash = auth;
  while (slash < path_end && *slash != '/') ++slash;
  const std::string_view a(auth, static_cast<size_t>(slash - auth));
  if (a.empty() || !ValidHost(a)) return false;
  *authority = a;
  // RFC 9112 §3.3: an empty path in absolute-form means "/".
  out->path = slash == path_end ? std::string_view("/")
                                : std::string_view(slash, static_cast<size_t>(path_end - slash));
  return true;
}

int ParseRequestImpl(const char* buf, const char* end, RequestHead* out) noexcept {
  const char* p = buf;
  ParseError& err = out->error;
  // RFC 9112 §2.2: ignore empty lines before the request-line (a client's
  // stray CRLF after a POST body). Only CRLF pairs; a bare LF is refused.
  for (;;) {
    if (p == end) return kPartial;
    if (*p != '\r') break;
    if (p + 1 == end) return kPartial;
    if (p[1] != '\n') {
      err = ParseError::kBareCr;
      return kError;
    }
    p += 2;
  }
  if (*p == '\n') {
    err = ParseError::kBareLf;
    return kError;
  }

  // method SP
  const char* method = p;
  p = FindNonTchar(p, end, buf);
  if (p == end) return kPartial;
  if (*p != ' ' || p == method) {
    err = ParseError::kBadRequestLine;
    return kError;
  }
  const size_t method_len = static_cast<size_t>(p - method);
  out->method_text = std::string_view(method, method_len);
  out->method = MethodFromText(method, method_len);
  ++p;

  // request-target SP
  const char* target = p;
  const char* question = nullptr;
  p = FindTargetStop(p, end, &question);
  if (p == end) return kPartial;
  if (*p != ' ' || p == target) {
    err = ParseError::kBadRequestLine;
    return kError;
  }
  out->target = std::string_view(target, static_cast<size_t>(p - target));
  ++p;

  // HTTP-version CRLF
  int rc = ParseVersion(p, end, &out->version_minor, &err);
  if (rc != kOk) return rc;
  rc = ExpectCrlf(p, end, ParseError::kBadVersion, &err);
  if (rc != kOk) return rc;

  Facts f;
  rc = ParseFields(p, end, buf, /*is_request=*/true, out->headers, &out->header_count, &f, &err);
  if (rc != kOk) return rc;

  // The whole head is here: validate the target's form and the framing.
  std::string_view authority;
  if (!SplitTarget(out->target, question, out, &authority)) {
    err = ParseError::kBadRequestLine;
    return kError;
  }
  err = CheckFraming(f, out->version_minor);
  if (err != ParseError::kNone) return kError;
  if (out->version_minor == 1 && !f.has_host) {
    err = ParseError::kMissingHost;  // RFC 9112 §3.2
    return kError;
  }
  // RFC 9112 §3.2.2: with absolute-form the target's authority replaces Host.
  out->host = authority.empty() ? f.host : authority;
  if (f.has_transfer_encoding) {
    out->body = BodyKind::kChunked;
  } else if (f.has_content_length) {
    out->body = BodyKind::kContentLength;
    out->content_length = f.content_length;
  }
  out->keep_alive = out->version_minor == 1 ? !f.conn_close : (f.conn_keep_alive && !f.conn_close);
  out->expect_continue = f.expect_continue && out->version_minor == 1;  // RFC 9110 §10.1.1
  return static_cast<int>(p - buf);
}

int ParseResponseImpl(const char* buf, const char* end, Method request_method,
                      ResponseHead* out) noexcept {
  const char* p = buf;
  ParseError& err = out->error;
  int rc = ParseVersion(p, end, &out->version_minor, &err);
  if (rc != kOk) return rc;
  if (p == end) return kPartial;
  if (*p != ' ') {
    err = ParseError::kBadVersion;
    return kError;
  }
  ++p;
  unsigned status = 0;
  for (int i = 0; i < 3; ++i, ++p) {
    if (p == end) return kPartial;
    if (*p < '0' || *p > '9') {
      err = ParseError::kBadStatusLine;
      return kError;
    }
    status = status * 10 + static_cast<unsigned>(*p - '0');
  }
  if (status < 100 || status > 599) {
    err = ParseError::kBadStatusLine;
    return kError;
  }
  out->status = static_cast<uint16_t>(status);
  if (p == end) return kPartial;
  // RFC 9112 §4 wants SP even before an empty reason; servers that omit it
  // are common and unambiguous, so "HTTP/1.1 204\r\n" is accepted.
  const char* reason = p;
  if (*p == ' ') {
    reason = ++p;
    p = FindValueStop(p, end, buf);
    if (p == end) return kPartial;
  }
  out->reason = std::string_view(reason, static_cast<size_t>(p - reason));
  rc = ExpectCrlf(p, end, ParseError::kBadStatusLine, &err);
  if (rc != kOk) return rc;

  Facts f;
  rc = ParseFields(p, end, buf, /*is_request=*/false, out->headers, &out->header_count, &f, &err);
  if (rc != kOk) return rc;
  err = CheckFraming(f, out->version_minor);
  if (err != ParseError::kNone) return kError;

  out->keep_alive = out->version_minor == 1 ? !f.conn_close : (f.conn_keep_alive && !f.conn_close);
  // RFC 9112 §6.3, in its order.
  if (request_method == Method::kHead || status < 200 || status == 204 || status == 304 ||
      (request_method == Method::kConnect && status < 300)) {
    out->body = BodyKind::kNone;
  } else if (f.has_transfer_encoding) {
    out->body = BodyKind::kChunked;
  } else if (f.has_content_length) {
    out->body = BodyKind::kContentLength;
    out->content_length = f.content_length;
  } else {
    out->body = BodyKind::kUntilClose;
    out->keep_alive = false;  // the close is the body's end
  }
  return static_cast<int>(p - buf);
}

// The parse window: at most max_header_bytes (and at most INT_MAX, the
// return type's range).
inline size_t Window(size_t len, size_t max_header_bytes) noexcept {
  size_t limit = max_header_bytes < len ? max_header_bytes : len;
  return limit > static_cast<size_t>(INT_MAX) ? static_cast<size_t>(INT_MAX) : limit;
}

}  // namespace

std::string_view ParseErrorReason(ParseError e) noexcept {
  switch (e) {
    case ParseError::kNone: return "none";
    case ParseError::kBadRequestLine: return "bad_request_line";
    case ParseError::kBadVersion: return "bad_version";
    case ParseError::kBadStatusLine: return "bad_status_line";
    case ParseError::kInvalidHeaderName: return "invalid_header_name";
    case ParseError::kSpaceBeforeColon: return "space_before_colon";
    case ParseError::kObsFold: return "obs_fold";
    case ParseError::kBareCr: return "bare_cr";
    case ParseError::kBareLf: return "bare_lf";
    case ParseError::kInvalidHeaderValue: return "invalid_header_value";
    case ParseError::kTooManyHeaders: return "too_many_headers";
    case ParseError::kHeadersTooLarge: return "headers_too_large";
    case ParseError::kBothLengthAndChunked: return "both_length_and_chunked";
    case ParseError::kDuplicateContentLength: return "duplicate_content_length";
    case ParseError::kBadContentLength: return "bad_content_length";
    case ParseError::kTransferEncodingNotChunked: return "transfer_encoding_not_chunked";
    case ParseError::kMissingHost: return "missing_host";
    case ParseError::kDuplicateHost: return "duplicate_host";
    case ParseError::kBadHost: return "bad_host";
    case ParseError::kBadChunkSize: return "bad_chunk_size";
    case ParseError::kBadChunkFraming: return "bad_chunk_framing";
  }
  return "unknown";
}

int ParseErrorStatus(ParseError e) noexcept {
  return (e == ParseError::kHeadersTooLarge || e == ParseError::kTooManyHeaders) ? 431 : 400;
}

bool IsIdempotent(Method m) noexcept {
  switch (m) {
    case Method::kGet:
    case Method::kHead:
    case Method::kPut:
    case Method::kDelete:
    case Method::kOptions:
    case Method::kTrace:
      return true;
    default:
      return false;
  }
}

int ParseRequest(const char* buf, size_t len, size_t max_header_bytes, RequestHead* out) noexcept {
  // Reset only the scalar fields: clearing the 100-entry header array would
  // cost more than the parse itself.
  out->method_text = {};
  out->method = Method::kOther;
  out->target = out->path = out->query = {};
  out->version_minor = 1;
  out->header_count = 0;
  out->body = BodyKind::kNone;
  out->content_length = 0;
  out->keep_alive = true;
  out->expect_continue = false;
  out->host = {};
  out->error = ParseError::kNone;
  const size_t window = Window(len, max_header_bytes);
  const int rc = ParseRequestImpl(buf, buf + window, out);
  if (rc == kPartial && len >= max_header_bytes) {
    out->error = ParseError::kHeadersTooLarge;
    return kError;
  }
  return rc;
}

int ParseResponse(const char* buf, size_t len, size_t max_header_bytes, Method request_method,
                  ResponseHead* out) noexcept {
  out->version_minor = 1;
  out->status = 0;
  out->reason = {};
  out->header_count = 0;
  out->body = BodyKind::kNone;
  out->content_length = 0;
  out->keep_alive = true;
  out->error = ParseError::kNone;
  const size_t window = Window(len, max_header_bytes);
  const int rc = ParseResponseImpl(buf, buf + window, request_method, out);
  if (rc == kPartial && len >= max_header_bytes) {
    out->error = ParseError::kHeadersTooLarge;
    return kError;
  }
  return rc;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ToLower(a[i]) != ToLower(b[i])) return false;
  }
  return true;
}

Method MethodFromText(std::string_view method) noexcept {
  return MethodFromText(method.data(), method.size());
}

bool IsValidHost(std::string_view host) noexcept { return ValidHost(host); }

ParseError FoldContentLength(std::string_view value, bool* seen, uint64_t* length) noexcept {
  Facts f;
  f.has_content_length = *seen;
  f.content_length = *length;
  const ParseError err = OnContentLength(value, &f);
  if (err == ParseError::kNone) {
    *seen = f.has_content_length;
    *length = f.content_length;
  }
  return err;
}

std::string_view FindHeader(const Header* headers, size_t count, std::string_view name) noexcept {
  for (size_t i = 0; i < count; ++i) {
    if (EqualsIgnoreCase(headers[i].name, name)) return headers[i].value;
  }
  return {};
}

bool ListHasToken(std::string_view value, std::string_view token) noexcept {
  return !ForEachListElement(value,
                             [&](std::string_view e) { return !EqualsIgnoreCase(e, token); });
}

bool IsHopByHop(std::string_view name, std::string_view connection_value) noexcept {
  static constexpr std::string_view kHopByHop[] = {
      "connection",          "keep-alive", "proxy-connection",   "te",
      "trailer",             "transfer-encoding", "upgrade", "proxy-authenticate",
      "proxy-authorization",
  };
  for (std::string_view h : kHopByHop) {
    if (EqualsIgnoreCase(name, h)) return true;
  }
  if (connection_value.empty() || name.empty()) return false;
  return !ForEachListElement(connection_value,
                             [&](std::string_view e) { return !EqualsIgnoreCase(e, name); });
}

}  // namespace hms::http
