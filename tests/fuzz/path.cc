// Fuzz target: the path normalizer (include/hms/http/path.h), on raw bytes
// (route templates are not parsed first) under each of the four option sets.
//
// Properties, not just "no crash": the result is never longer than the input
// and starts with '/'; normalizing it again gives it back (idempotent); it
// holds no dot segment ("." or ".."), no "//" when merging, no '\' and no
// lower-case or unreserved escape; writing in place gives the same bytes as
// writing elsewhere; and PathLooksCanonical never accepts a parsed path
// (VCHARs, leading '/') that normalization would change or refuse.
#include <cctype>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "hms/http/path.h"

namespace {

using hms::http::PathError;
using hms::http::PathOptions;

bool HasDotSegment(std::string_view p) {
  size_t i = 0;
  while (i <= p.size()) {
    const size_t slash = p.find('/', i);
    const size_t end = slash == std::string_view::npos ? p.size() : slash;
    const std::string_view seg = p.substr(i, end - i);
    if (seg == "." || seg == "..") return true;
    if (slash == std::string_view::npos) break;
    i = end + 1;
  }
  return false;
}

bool IsUnreserved(unsigned char c) {
  return std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;  // lower case is not canonical
}

// The fast scan's domain: what CanonicalizeTarget hands it, a parsed path
// (VCHARs only) that starts with '/' (it does not look for the '/' itself).
bool ScanApplies(std::string_view p) {
  if (p.empty() || p.front() != '/') return false;
  for (unsigned char c : p) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view path(reinterpret_cast<const char*>(data), size);
  for (int o = 0; o < 4; ++o) {
    PathOptions opts;
    opts.keep_encoded_slashes = (o & 1) != 0;
    opts.merge_slashes = (o & 2) != 0;

    std::vector<char> out(size + 1);
    PathError err = PathError::kNone;
    const int n = hms::http::NormalizePath(path, opts, out.data(), &err);

    std::string in_place(path);
    PathError err_in_place = PathError::kNone;
    const int n_in_place =
        hms::http::NormalizePath(path, opts, in_place.data(), &err_in_place);
    FUZZ_CHECK(n == n_in_place);
    FUZZ_CHECK(err == err_in_place);

    if (n == hms::http::kPathError) {
      FUZZ_CHECK(err != PathError::kNone);
      FUZZ_CHECK(!hms::http::PathErrorRule(err).empty());
      // A path the fast scan calls canonical is never refused.
      if (ScanApplies(path)) FUZZ_CHECK(!hms::http::PathLooksCanonical(path, opts));
      continue;
    }
    FUZZ_CHECK(n >= 1 && static_cast<size_t>(n) <= size);
    const std::string_view canon(out.data(), static_cast<size_t>(n));
    FUZZ_CHECK(std::memcmp(in_place.data(), canon.data(), canon.size()) == 0);
    FUZZ_CHECK(canon.front() == '/');
    FUZZ_CHECK(!HasDotSegment(canon));
    if (opts.merge_slashes) FUZZ_CHECK(canon.find("//") == std::string_view::npos);
    FUZZ_CHECK(canon.find('\\') == std::string_view::npos);
    for (size_t i = 0; i < canon.size(); ++i) {
      const unsigned char c = static_cast<unsigned char>(canon[i]);
      FUZZ_CHECK(c > 0x20 && c < 0x7f);
      if (c != '%') continue;
      FUZZ_CHECK(i + 2 < canon.size());
      const int hi = HexValue(canon[i + 1]);
      const int lo = HexValue(canon[i + 2]);
      FUZZ_CHECK(hi >= 0 && lo >= 0);
      const int byte = hi * 16 + lo;
      FUZZ_CHECK(!IsUnreserved(static_cast<unsigned char>(byte)));
      if (!opts.keep_encoded_slashes) FUZZ_CHECK(byte != '/');
    }

    // Idempotent: the canonical form is its own canonical form.
    std::vector<char> again(canon.size() + 1);
    PathError err2 = PathError::kNone;
    const int n2 = hms::http::NormalizePath(canon, opts, again.data(), &err2);
    FUZZ_CHECK(n2 == n);
    FUZZ_CHECK(std::memcmp(again.data(), canon.data(), canon.size()) == 0);

    // The fast scan never accepts what normalization changes.
    if (ScanApplies(path) && hms::http::PathLooksCanonical(path, opts)) {
      FUZZ_CHECK(canon == path);
    }
  }
  return 0;
}
