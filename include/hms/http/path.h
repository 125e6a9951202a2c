// One canonical spelling of a request path: the path that routes are matched
// against is exactly the path the upstream receives (docs/engine.md "The
// canonical path").
//
// A route's stamps (JWT, rate limits, allow_from, breakers) are keyed by the
// route the path selects. If the gateway matched one spelling and the upstream
// resolved another (`/x/../secret`, `/%73ecret`, `//secret`), a client could
// reach a protected resource through an open route. So before routing the
// target is normalized per RFC 3986 §6.2.2 and the result is what goes
// upstream; what cannot be made unambiguous is refused.
//
// Pure functions: no state, no allocation; they write into a buffer the caller
// owns. Any thread may call them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "hms/http/parser.h"

namespace hms::http {

// Which rule refused a path. The request parser has already refused raw
// bytes outside VCHAR and '#' in a request-target (kBadRequestLine); the rules
// here cover what is left, and raw bytes too for callers that did not parse
// (route templates).
enum class PathError : uint8_t {
  kNone = 0,
  kNotAbsolute,   // does not start with '/'
  kBadEscape,     // '%' not followed by two hex digits (RFC 3986 §2.1)
  kEncodedSlash,  // %2F: a separator to some servers, a character to others
  kBackslash,     // '\' or %5C: a separator to some servers (Windows, IIS)
  kControl,       // %00-%1F or %7F, or such a raw byte, a space or a non-ASCII byte
  kAboveRoot,     // a ".." segment (however spelled) that climbs above "/"
};

// Stable lowercase token naming the rule, for messages and logs, e.g.
// "encoded_slash".
std::string_view PathErrorRule(PathError e) noexcept;
// One sentence for a client, e.g. "the path holds an encoded '/' (%2F)".
std::string_view PathErrorText(PathError e) noexcept;

// The relaxations a gateway may choose (gateway.yaml `paths:`); the defaults
// are the strict rules.
struct PathOptions {
  // %2F is kept (as "%2F") and is an ordinary character inside a segment,
  // never a separator. Default: refused.
  bool keep_encoded_slashes = false;
  // "//" collapses to "/". Off: empty segments are kept as sent.
  bool merge_slashes = true;
};

// One scan, no writes: true when NormalizePath would return `path` unchanged
// for a path made of VCHARs (as the parser leaves a request-target): it holds
// no '%', no '\', no "/." and, when merging, no "//". A path for which this
// is false may still be canonical (an upper-case escape such as %20); it only
// needs the full normalization to tell.
bool PathLooksCanonical(std::string_view path, PathOptions opts) noexcept;

inline constexpr int kPathError = -1;

// Writes the canonical form of `path` (the part of a target before '?') into
// out[0, path.size()) — the result is never longer than the input, and `out`
// may be path.data() itself (in place). Returns the canonical length, or
// kPathError with *error saying which rule refused it. In order (RFC 3986
// §6.2.2):
// - an escape of an unreserved character (ALPHA DIGIT - . _ ~) is decoded;
//   every other escape is kept with upper-case hex (%3f → %3F);
// - %2F is refused (or kept, keep_encoded_slashes); '\', %5C, encoded and raw
//   controls, and a '%' without two hex digits are refused;
// - empty segments are dropped (merge_slashes), then dot segments are removed
//   as in §5.2.4, escaped dots included (%2e%2e is ".."), except that a ".."
//   that would climb above the root is refused instead of dropped.
// A trailing slash is kept: "/a/" and "/a" stay different paths.
int NormalizePath(std::string_view path, PathOptions opts, char* out, PathError* error) noexcept;

// A request's target as the gateway uses it: routes match `path`; `origin`
// (origin-form: path [ "?" query ]) is the request-target sent upstream.
struct CanonicalTarget {
  std::string_view path;
  std::string_view origin;
};

// Canonicalizes a parsed request's target. origin-form and absolute-form
// (RFC 9112 §3.2.2: routed on its authority, which the parser put in
// `r.host`, and sent upstream in origin-form) give the normalized path and
// the query untouched; absolute-form without a path gives "/". The
// asterisk-form and authority-form have no path to normalize: both views are
// the target as sent. When the path needs work the result is written into
// scratch[0, cap), which needs r.target.size() + 1 bytes; a target that
// PathLooksCanonical accepts costs one scan and no copy. Returns false with
// *error when the path is refused.
bool CanonicalizeTarget(const RequestHead& r, PathOptions opts, char* scratch, size_t cap,
                        CanonicalTarget* out, PathError* error) noexcept;

}  // namespace hms::http
