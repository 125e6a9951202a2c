// Fuzz target: the request head parser (include/hms/http/parser.h) and the
// canonical target the gateway routes on (path.h's CanonicalizeTarget).
//
// Beyond "no crash, no overread": every view the parser returns lies inside
// the input; a complete head is no longer than the input; a prefix of the
// input never reports an error the whole does not, nor a different complete
// head (the engine re-parses growing prefixes as bytes arrive); and a
// canonical path is idempotent and free of dot segments.
#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "hms/http/parser.h"
#include "hms/http/path.h"

namespace {

using hms::http::RequestHead;

bool Inside(std::string_view v, const char* buf, size_t len) {
  if (v.empty()) return true;
  return v.data() >= buf && v.data() + v.size() <= buf + len;
}

bool HasDotSegment(std::string_view p) {
  size_t i = 0;
  while (i < p.size()) {
    const size_t slash = p.find('/', i);
    const size_t end = slash == std::string_view::npos ? p.size() : slash;
    const std::string_view seg = p.substr(i, end - i);
    if (seg == "." || seg == "..") return true;
    i = end + 1;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The first byte picks the head limit (small limits reach kHeadersTooLarge).
  size_t max = 8192;
  if (size > 0) {
    max = 64 + static_cast<size_t>(data[0]) * 64;
    ++data;
    --size;
  }
  const char* buf = reinterpret_cast<const char*>(data);
  static auto* head = new RequestHead();
  static auto* part = new RequestHead();

  const int whole = hms::http::ParseRequest(buf, size, max, head);
  FUZZ_CHECK(whole == hms::http::kPartial || whole == hms::http::kError || whole > 0);
  FUZZ_CHECK(whole <= static_cast<int>(size));
  if (whole == hms::http::kError) FUZZ_CHECK(head->error != hms::http::ParseError::kNone);
  if (whole > 0) {
    FUZZ_CHECK(head->error == hms::http::ParseError::kNone);
    FUZZ_CHECK(head->header_count <= hms::http::kMaxHeaders);
    FUZZ_CHECK(Inside(head->method_text, buf, size));
    FUZZ_CHECK(Inside(head->target, buf, size));
    // absolute-form without a path gets a static "/" (RFC 9112 §3.3).
    FUZZ_CHECK(Inside(head->path, buf, size) || head->path == "/");
    FUZZ_CHECK(Inside(head->query, buf, size));
    FUZZ_CHECK(Inside(head->host, buf, size));
    for (int i = 0; i < head->header_count; ++i) {
      FUZZ_CHECK(Inside(head->headers[i].name, buf, whole));
      FUZZ_CHECK(Inside(head->headers[i].value, buf, whole));
      FUZZ_CHECK(!head->headers[i].name.empty());
    }
    FUZZ_CHECK(!(head->body == hms::http::BodyKind::kUntilClose));

    // The canonical target, both path options: the path is a fixed point of
    // normalization and holds no dot segment.
    for (int o = 0; o < 4; ++o) {
      hms::http::PathOptions opts;
      opts.keep_encoded_slashes = (o & 1) != 0;
      opts.merge_slashes = (o & 2) != 0;
      std::vector<char> scratch(head->target.size() + 1);
      hms::http::CanonicalTarget t;
      hms::http::PathError err = hms::http::PathError::kNone;
      if (!hms::http::CanonicalizeTarget(*head, opts, scratch.data(), scratch.size(), &t, &err)) {
        FUZZ_CHECK(err != hms::http::PathError::kNone);
        continue;
      }
      if (head->target == "*" || head->method == hms::http::Method::kConnect) continue;
      if (t.path.empty() || t.path.front() != '/') continue;  // asterisk/authority forms
      FUZZ_CHECK(!HasDotSegment(t.path));
      FUZZ_CHECK(t.origin.substr(0, t.path.size()) == t.path);
      std::vector<char> again(t.path.size() + 1);
      hms::http::PathError err2 = hms::http::PathError::kNone;
      const int n = hms::http::NormalizePath(t.path, opts, again.data(), &err2);
      FUZZ_CHECK(n == static_cast<int>(t.path.size()));
      FUZZ_CHECK(std::memcmp(again.data(), t.path.data(), t.path.size()) == 0);
    }
  }

  // Prefixes agree with the whole (a sample of cut points, always the ones
  // right before and at the end of a complete head).
  const size_t step = size / 16 + 1;
  for (size_t cut = 0; cut < size; cut += step) {
    const int rc = hms::http::ParseRequest(buf, cut, max, part);
    if (rc == hms::http::kError) {
      FUZZ_CHECK(whole == hms::http::kError);
      FUZZ_CHECK(part->error == head->error);
    } else if (rc > 0) {
      FUZZ_CHECK(rc == whole);
    }
  }
  if (whole > 0) {
    FUZZ_CHECK(hms::http::ParseRequest(buf, whole, max, part) == whole);
    FUZZ_CHECK(hms::http::ParseRequest(buf, whole - 1, max, part) != whole);
  }
  return 0;
}
