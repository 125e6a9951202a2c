// Path normalization (include/hms/http/path.h).
#include "hms/http/path.h"

#include <emmintrin.h>

#include <cstring>

#include "hms/common/check.h"
#include "hms/http/char_class.h"

namespace hms::http {
namespace {

using internal::HexValue;

// RFC 3986 §2.3 unreserved: ALPHA DIGIT "-" "." "_" "~".
constexpr bool IsUnreserved(unsigned c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

constexpr char kUpperHex[] = "0123456789ABCDEF";

// What needs a look in a path: '%', '\', or a '/' followed by '.' or (when
// merging) another '/'.
inline bool NeedsWork(char c, char next, bool merge) noexcept {
  return c == '%' || c == '\\' || (c == '/' && (next == '.' || (merge && next == '/')));
}

}  // namespace

std::string_view PathErrorRule(PathError e) noexcept {
  switch (e) {
    case PathError::kNone: return "none";
    case PathError::kNotAbsolute: return "not_absolute";
    case PathError::kBadEscape: return "bad_escape";
    case PathError::kEncodedSlash: return "encoded_slash";
    case PathError::kBackslash: return "backslash";
    case PathError::kControl: return "control";
    case PathError::kAboveRoot: return "above_root";
  }
  return "unknown";
}

std::string_view PathErrorText(PathError e) noexcept {
  switch (e) {
    case PathError::kNone: return "the path is fine";
    case PathError::kNotAbsolute: return "the path does not start with '/'";
    case PathError::kBadEscape: return "the path holds a '%' not followed by two hex digits";
    case PathError::kEncodedSlash: return "the path holds an encoded '/' (%2F)";
    case PathError::kBackslash: return "the path holds a '\\' (raw or %5C)";
    case PathError::kControl:
      return "the path holds a control character, a space or a non-ASCII byte (raw or encoded)";
    case PathError::kAboveRoot: return "the path's '..' segments climb above the root";
  }
  return "the path is refused";
}

bool PathLooksCanonical(std::string_view path, PathOptions opts) noexcept {
  const char* p = path.data();
  const char* end = p + path.size();
  const bool merge = opts.merge_slashes;
  // Sixteen bytes at a time, each compared with the byte after it (a second,
  // overlapping load), so "/." and "//" are found across lane boundaries.
  const __m128i kPct = _mm_set1_epi8('%');
  const __m128i kBack = _mm_set1_epi8('\\');
  const __m128i kSlash = _mm_set1_epi8('/');
  const __m128i kDot = _mm_set1_epi8('.');
  const __m128i kMerge = merge ? _mm_set1_epi8('/') : _mm_set1_epi8('.');
  while (end - p >= 17) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i n = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 1));
    __m128i bad = _mm_or_si128(_mm_cmpeq_epi8(v, kPct), _mm_cmpeq_epi8(v, kBack));
    const __m128i after = _mm_or_si128(_mm_cmpeq_epi8(n, kDot), _mm_cmpeq_epi8(n, kMerge));
    bad = _mm_or_si128(bad, _mm_and_si128(_mm_cmpeq_epi8(v, kSlash), after));
    if (_mm_movemask_epi8(bad) != 0) return false;
    p += 16;
  }
  for (; p < end; ++p) {
    if (NeedsWork(*p, p + 1 < end ? p[1] : '\0', merge)) return false;
  }
  return true;
}

int NormalizePath(std::string_view path, PathOptions opts, char* out, PathError* error) noexcept {
  const char* s = path.data();
  const size_t n = path.size();
  auto fail = [error](PathError e) {
    *error = e;
    return kPathError;
  };
  if (n == 0 || s[0] != '/') return fail(PathError::kNotAbsolute);
  // Invariant: o <= i, so writing out[o] never overtakes the input (in place
  // works). out[0, o) is the canonical path so far: "" or "/seg/seg...".
  size_t i = 0;
  size_t o = 0;
  while (i < n) {  // s[i] == '/'
    ++i;
    const size_t seg = o + 1;  // the segment's first byte in out
    size_t w = seg;
    out[o] = '/';
    while (i < n && s[i] != '/') {
      const auto c = static_cast<unsigned char>(s[i]);
      if (c == '%') {
        const int hi = i + 2 < n ? HexValue(s[i + 1]) : -1;
        const int lo = hi >= 0 ? HexValue(s[i + 2]) : -1;
        if (lo < 0) return fail(PathError::kBadEscape);
        const auto v = static_cast<unsigned>(hi * 16 + lo);
        if (v < 0x20 || v == 0x7f) return fail(PathError::kControl);
        if (v == '\\') return fail(PathError::kBackslash);
        if (v == '/' && !opts.keep_encoded_slashes) return fail(PathError::kEncodedSlash);
        if (IsUnreserved(v)) {
          out[w++] = static_cast<char>(v);
        } else {
          out[w++] = '%';
          out[w++] = kUpperHex[v >> 4];
          out[w++] = kUpperHex[v & 15];
        }
        i += 3;
        continue;
      }
      if (c == '\\') return fail(PathError::kBackslash);
      if (c <= 0x20 || c >= 0x7f) return fail(PathError::kControl);
      out[w++] = static_cast<char>(c);
      ++i;
    }
    const size_t len = w - seg;
    const bool last = i == n;
    if (len == 1 && out[seg] == '.') {
      // "/./" → "/"; a final "/." leaves its slash: "/a/." → "/a/" (§5.2.4 B).
      if (last) out[o++] = '/';
      continue;
    }
    if (len == 2 && out[seg] == '.' && out[seg + 1] == '.') {
      // §5.2.4 C drops the last output segment; with none left the path
      // climbs above the root, which §5.2.4 would silently clamp.
      if (o == 0) return fail(PathError::kAboveRoot);
      while (out[--o] != '/') {
      }
      if (last) out[o++] = '/';
      continue;
    }
    if (len == 0 && !last && opts.merge_slashes) continue;  // "//" → "/"
    o = w;
  }
  *error = PathError::kNone;
  return static_cast<int>(o);
}

bool CanonicalizeTarget(const RequestHead& r, PathOptions opts, char* scratch, size_t cap,
                        CanonicalTarget* out, PathError* error) noexcept {
  *error = PathError::kNone;
  if (r.path.empty() || r.path.front() != '/') {  // '*', CONNECT's authority
    out->path = out->origin = r.target;
    return true;
  }
  HMS_CHECK(cap > r.target.size());  // path + query never outgrow the target, plus "/"
  // The path lies inside the target except for absolute-form without a path,
  // where the parser gives a static "/" (RFC 9112 §3.3).
  const char* t_end = r.target.data() + r.target.size();
  const bool inside = r.path.data() >= r.target.data() && r.path.data() < t_end;
  // The query with its '?' (the parser leaves query.data() null without one).
  const std::string_view tail =
      r.query.data() != nullptr ? std::string_view(r.query.data() - 1, r.query.size() + 1)
                                : std::string_view();
  if (PathLooksCanonical(r.path, opts)) {
    out->path = r.path;
    if (inside) {
      out->origin = std::string_view(r.path.data(), static_cast<size_t>(t_end - r.path.data()));
      return true;
    }
    if (tail.empty()) {
      out->origin = r.path;
      return true;
    }
  } else {
    const int len = NormalizePath(r.path, opts, scratch, error);
    if (len < 0) return false;
    out->path = std::string_view(scratch, static_cast<size_t>(len));
  }
  // The path is in scratch (or is the static "/"): the query follows it.
  if (out->path.data() != scratch) {
    std::memcpy(scratch, out->path.data(), out->path.size());
    out->path = std::string_view(scratch, out->path.size());
  }
  // Without a query tail.data() is null, and memcpy from null is undefined
  // even for 0 bytes.
  if (!tail.empty()) std::memcpy(scratch + out->path.size(), tail.data(), tail.size());
  out->origin = std::string_view(scratch, out->path.size() + tail.size());
  return true;
}

}  // namespace hms::http
