// Unit tests of path normalization (include/hms/http/path.h): every spelling of
// issue 11's finding 1, the RFC 3986 §5.2.4 and §5.4 remove_dot_segments
// examples (a path that climbs above the root is refused), each switch, and
// whole request targets (query untouched, absolute-form to origin-form).
#include <gtest/gtest.h>

#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "hms/http/parser.h"
#include "hms/http/path.h"

namespace hms::http {
namespace {

constexpr PathOptions kStrict{};
constexpr PathOptions kKeepSlashes{.keep_encoded_slashes = true, .merge_slashes = true};
constexpr PathOptions kNoMerge{.keep_encoded_slashes = false, .merge_slashes = false};

struct Case {
  const char* in;
  const char* want;  // canonical path; nullptr when refused
  PathError error = PathError::kNone;
  PathOptions opts = kStrict;
};

// Runs one case both into a separate buffer and in place, and checks that the
// fast scan never calls a path canonical that normalization would change.
void Check(const Case& c) {
  SCOPED_TRACE(std::string("path ") + c.in);
  const std::string in = c.in;
  std::string out(in.size(), '\0');
  PathError e = PathError::kNone;
  const int n = NormalizePath(in, c.opts, out.data(), &e);
  if (c.want == nullptr) {
    EXPECT_EQ(n, kPathError);
    EXPECT_EQ(PathErrorRule(e), PathErrorRule(c.error));
  } else {
    ASSERT_GE(n, 0) << PathErrorRule(e);
    EXPECT_EQ(std::string_view(out.data(), static_cast<size_t>(n)), c.want);
    EXPECT_EQ(e, PathError::kNone);
  }
  std::string inplace = in;
  PathError e2 = PathError::kNone;
  const int n2 = NormalizePath(inplace, c.opts, inplace.data(), &e2);
  EXPECT_EQ(n2, n);
  if (n2 >= 0 && c.want != nullptr) {
    EXPECT_EQ(inplace.substr(0, static_cast<size_t>(n2)), c.want);
  }
  // The fast scan's domain: what the parser leaves, VCHARs after a '/'.
  bool vchar = !in.empty() && in[0] == '/';
  for (char ch : in) vchar = vchar && ch > 0x20 && ch < 0x7f;
  if (vchar && PathLooksCanonical(in, c.opts)) {
    ASSERT_NE(c.want, nullptr);
    EXPECT_EQ(in, c.want);
  }
}

TEST(HttpPath, FindingOneSpellings) {
  const Case cases[] = {
      {"/x/../secret", "/secret"},
      {"/./secret", "/secret"},
      {"//secret", "/secret"},
      {"/%73ecret", "/secret"},
      {"/x/%2e%2e/secret", "/secret"},
      {"/x/%2E%2E/secret", "/secret"},
      {"/x/.%2E/secret", "/secret"},
      {"/x/%2e./secret", "/secret"},
      {"/x/..%2fsecret", nullptr, PathError::kEncodedSlash},
      {"/%61dmin/users", "/admin/users"},
      {"/admin%2fusers", nullptr, PathError::kEncodedSlash},
      {"/admin%2Fusers", nullptr, PathError::kEncodedSlash},
      {"/secret", "/secret"},
  };
  for (const Case& c : cases) Check(c);
}

TEST(HttpPath, Refusals) {
  const Case cases[] = {
      {"/a\\b", nullptr, PathError::kBackslash},
      {"/a%5Cb", nullptr, PathError::kBackslash},
      {"/a%5cb", nullptr, PathError::kBackslash},
      {"/a%00b", nullptr, PathError::kControl},
      {"/a%0ab", nullptr, PathError::kControl},
      {"/a%0D%0Ab", nullptr, PathError::kControl},
      {"/a%1fb", nullptr, PathError::kControl},
      {"/a%7Fb", nullptr, PathError::kControl},
      {"/a b", nullptr, PathError::kControl},
      {"/a\tb", nullptr, PathError::kControl},
      {"/a\x01" "b", nullptr, PathError::kControl},
      {"/a\x7f" "b", nullptr, PathError::kControl},
      {"/caf\xc3\xa9", nullptr, PathError::kControl},
      {"/a%zz", nullptr, PathError::kBadEscape},
      {"/a%4", nullptr, PathError::kBadEscape},
      {"/a%", nullptr, PathError::kBadEscape},
      {"/a%4g/b", nullptr, PathError::kBadEscape},
      {"/a%%41", nullptr, PathError::kBadEscape},
      {"/..", nullptr, PathError::kAboveRoot},
      {"/../x", nullptr, PathError::kAboveRoot},
      {"/a/../../x", nullptr, PathError::kAboveRoot},
      {"/%2e%2e/x", nullptr, PathError::kAboveRoot},
      {"/.%2E/x", nullptr, PathError::kAboveRoot},
      {"/./../x", nullptr, PathError::kAboveRoot},
      {"", nullptr, PathError::kNotAbsolute},
      {"a/b", nullptr, PathError::kNotAbsolute},
      {"*", nullptr, PathError::kNotAbsolute},
  };
  for (const Case& c : cases) Check(c);
}

TEST(HttpPath, EscapesAndCase) {
  const Case cases[] = {
      {"/a%3fb", "/a%3Fb"},      // reserved: kept as an escape, hex upper-cased
      {"/a%3Fb", "/a%3Fb"},
      {"/%7e", "/~"},            // unreserved: decoded
      {"/%7E%5f%2D%2e%30%41%7a", "/~_-.0Az"},
      {"/a%20b", "/a%20b"},       // an escaped space stays escaped
      {"/%c3%a9", "/%C3%A9"},    // non-ASCII stays encoded
      {"/a%25b", "/a%25b"},      // an encoded '%' stays one
      {"/a%252F", "/a%252F"},    // and is never decoded twice
      {"/%3b%3D%40%2b", "/%3B%3D%40%2B"},
      {"/a;b=c,d", "/a;b=c,d"},  // raw sub-delims are left alone
      {"/{x}/*", "/{x}/*"},
      {"/.a/..b/a./a..", "/.a/..b/a./a.."},  // only whole segments are dot segments
      {"/...", "/..."},
  };
  for (const Case& c : cases) Check(c);
}

TEST(HttpPath, SlashesAndTrailing) {
  const Case cases[] = {
      {"/", "/"},
      {"//", "/"},
      {"///", "/"},
      {"/a/", "/a/"},
      {"/a//", "/a/"},
      {"/a//b///c", "/a/b/c"},
      {"/a/.", "/a/"},
      {"/a/./", "/a/"},
      {"/a/..", "/"},
      {"/a/../", "/"},
      {"/a/b/..", "/a/"},
      {"/a//../b", "/b"},
      {"/.", "/"},
      {"/./", "/"},
  };
  for (const Case& c : cases) Check(c);
}

TEST(HttpPath, Switches) {
  const Case cases[] = {
      // encoded_slashes: keep — "%2F" is a character of its segment.
      {"/admin%2fusers", "/admin%2Fusers", PathError::kNone, kKeepSlashes},
      {"/x/..%2fsecret", "/x/..%2Fsecret", PathError::kNone, kKeepSlashes},
      {"/a/%2F/../b", "/a/b", PathError::kNone, kKeepSlashes},
      {"/a%5Cb", nullptr, PathError::kBackslash, kKeepSlashes},
      {"//a//b", "/a/b", PathError::kNone, kKeepSlashes},
      // merge_slashes: false — empty segments are kept as sent.
      {"//secret", "//secret", PathError::kNone, kNoMerge},
      {"/a//b/", "/a//b/", PathError::kNone, kNoMerge},
      {"/a//../b", "/a/b", PathError::kNone, kNoMerge},
      {"//..", "/", PathError::kNone, kNoMerge},
      {"/x/../secret", "/secret", PathError::kNone, kNoMerge},
      {"/admin%2fusers", nullptr, PathError::kEncodedSlash, kNoMerge},
  };
  for (const Case& c : cases) Check(c);
}

// RFC 3986 §5.2.4's own examples, and §5.4's reference resolutions against
// the base "http://a/b/c/d;p?q" written as the merged path (§5.2.3) that
// remove_dot_segments receives. Where §5.4 clamps at the root ("abnormal
// examples"), the path is refused.
TEST(HttpPath, Rfc3986RemoveDotSegments) {
  const Case cases[] = {
      {"/a/b/c/./../../g", "/a/g"},           // §5.2.4
      {"/mid/content=5/../6", "/mid/6"},      // §5.2.4 (made absolute)
      // §5.4.1 normal examples
      {"/b/c/g", "/b/c/g"},                   // "g"
      {"/b/c/./g", "/b/c/g"},                 // "./g"
      {"/b/c/g/", "/b/c/g/"},                 // "g/"
      {"/g", "/g"},                           // "/g"
      {"/b/c/;x", "/b/c/;x"},                 // ";x"
      {"/b/c/g;x", "/b/c/g;x"},               // "g;x"
      {"/b/c/d;p", "/b/c/d;p"},               // ""
      {"/b/c/.", "/b/c/"},                    // "."
      {"/b/c/./", "/b/c/"},                   // "./"
      {"/b/c/..", "/b/"},                     // ".."
      {"/b/c/../", "/b/"},                    // "../"
      {"/b/c/../g", "/b/g"},                  // "../g"
      {"/b/c/../..", "/"},                    // "../.."
      {"/b/c/../../", "/"},                   // "../../"
      {"/b/c/../../g", "/g"},                 // "../../g"
      // §5.4.2 abnormal examples
      {"/b/c/../../../g", nullptr, PathError::kAboveRoot},     // "../../../g" → RFC "/g"
      {"/b/c/../../../../g", nullptr, PathError::kAboveRoot},  // "../../../../g" → RFC "/g"
      {"/./g", "/g"},                         // "/./g"
      {"/../g", nullptr, PathError::kAboveRoot},               // "/../g" → RFC "/g"
      {"/b/c/g.", "/b/c/g."},                 // "g."
      {"/b/c/.g", "/b/c/.g"},                 // ".g"
      {"/b/c/g..", "/b/c/g.."},               // "g.."
      {"/b/c/..g", "/b/c/..g"},               // "..g"
      {"/b/c/./../g", "/b/g"},                // "./../g"
      {"/b/c/./g/.", "/b/c/g/"},              // "./g/."
      {"/b/c/g/./h", "/b/c/g/h"},             // "g/./h"
      {"/b/c/g/../h", "/b/c/h"},              // "g/../h"
      {"/b/c/g;x=1/./y", "/b/c/g;x=1/y"},     // "g;x=1/./y"
      {"/b/c/g;x=1/../y", "/b/c/y"},          // "g;x=1/../y"
  };
  for (const Case& c : cases) Check(c);
}

TEST(HttpPath, FastScanIsExact) {
  // Long enough for the 16-byte loop, with the pair split across lanes.
  const std::string base = "/aaaaaaaaaaaaaaa";  // 16 bytes
  EXPECT_TRUE(PathLooksCanonical(base + "/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb/c", kStrict));
  EXPECT_FALSE(PathLooksCanonical(base + "/.bbbbbbbbbbbbbbbbbbbbbbbbb", kStrict));  // lane edge
  EXPECT_FALSE(PathLooksCanonical(base + "//bbbbbbbbbbbbbbbbbbbbbbbbb", kStrict));
  EXPECT_TRUE(PathLooksCanonical(base + "//bbbbbbbbbbbbbbbbbbbbbbbbb", kNoMerge));
  EXPECT_FALSE(PathLooksCanonical(base + "bbbbbbbbbbbbbbbbb%41", kStrict));
  EXPECT_FALSE(PathLooksCanonical(base + "bbbbbbbbbbbbbbbb\\", kStrict));
  EXPECT_FALSE(PathLooksCanonical("/a/.", kStrict));
  EXPECT_TRUE(PathLooksCanonical(base + "/", kStrict));
  EXPECT_FALSE(PathLooksCanonical(base.substr(0, 15) + "/.", kStrict));
  // Every position of a "/." in a 40-byte path is seen.
  for (size_t at = 0; at + 2 <= 40; ++at) {
    std::string p(40, 'x');
    p[0] = '/';
    p[at] = '/';
    p[at + 1] = '.';
    EXPECT_FALSE(PathLooksCanonical(p, kStrict)) << at;
  }
}

// Whole targets through the parser: the query is untouched, absolute-form
// becomes origin-form, '*' and CONNECT pass as sent.
struct TargetCase {
  const char* request_line;  // "METHOD target"
  const char* path;          // nullptr when refused
  const char* origin;
  PathError error = PathError::kNone;
};

TEST(HttpPath, CanonicalizeTarget) {
  const TargetCase cases[] = {
      {"GET /a/b?x=1", "/a/b", "/a/b?x=1"},
      {"GET /x/../secret?a=%2F..", "/secret", "/secret?a=%2F.."},
      {"GET /x/%2e%2e/y?q=/../%zz", "/y", "/y?q=/../%zz"},
      {"GET /a?", "/a", "/a?"},
      {"GET /%7euser/?%7e", "/~user/", "/~user/?%7e"},
      {"GET http://host/x/../secret", "/secret", "/secret"},
      {"GET http://host/x/../secret?a=%2f", "/secret", "/secret?a=%2f"},
      {"GET http://host:8080/h/x", "/h/x", "/h/x"},
      {"GET http://host", "/", "/"},
      {"GET http://host?q=1", "/", "/?q=1"},
      {"GET http://host/../x", nullptr, nullptr, PathError::kAboveRoot},
      {"GET /admin%2fusers?x", nullptr, nullptr, PathError::kEncodedSlash},
      {"OPTIONS *", "*", "*"},
      {"CONNECT host:443", "host:443", "host:443"},
  };
  for (const TargetCase& c : cases) {
    SCOPED_TRACE(c.request_line);
    const std::string raw = std::string(c.request_line) + " HTTP/1.1\r\nHost: other\r\n\r\n";
    auto head = std::make_unique<RequestHead>();
    ASSERT_GT(ParseRequest(raw.data(), raw.size(), 8192, head.get()), 0);
    std::vector<char> scratch(head->target.size() + 1);
    CanonicalTarget t;
    PathError e = PathError::kNone;
    const bool ok = CanonicalizeTarget(*head, kStrict, scratch.data(), scratch.size(), &t, &e);
    if (c.path == nullptr) {
      EXPECT_FALSE(ok);
      EXPECT_EQ(PathErrorRule(e), PathErrorRule(c.error));
      continue;
    }
    ASSERT_TRUE(ok) << PathErrorRule(e);
    EXPECT_EQ(t.path, c.path);
    EXPECT_EQ(t.origin, c.origin);
  }
}

TEST(HttpPath, AbsoluteFormRoutesOnItsAuthority) {
  const std::string raw = "GET http://secret.local/h/x?q HTTP/1.1\r\nHost: other\r\n\r\n";
  RequestHead head;
  ASSERT_GT(ParseRequest(raw.data(), raw.size(), 8192, &head), 0);
  EXPECT_EQ(head.host, "secret.local");
  char scratch[64];
  CanonicalTarget t;
  PathError e;
  ASSERT_TRUE(CanonicalizeTarget(head, kStrict, scratch, sizeof scratch, &t, &e));
  EXPECT_EQ(t.origin, "/h/x?q");
}

// A seeded sweep over paths made of the characters that matter: the result is
// a fixed point (normalizing it again changes nothing and the fast scan may
// accept it), holds no dot segment and, when merging, no "//"; and the fast
// scan never accepts a path that normalization changes or refuses.
TEST(HttpPath, RandomPathsNormalizeToFixedPoints) {
  static constexpr const char* kPieces[] = {"/", ".", "..", "a", "%2e", "%2E", "%2f", "%41",
                                            "%7e", "%3f", "%zz", "%", "%5c", "//", "b/c"};
  std::mt19937 rng(11);
  for (const PathOptions& opts : {kStrict, kKeepSlashes, kNoMerge}) {
    for (int n = 0; n < 20000; ++n) {
      std::string in = "/";
      const int parts = static_cast<int>(rng() % 8);
      for (int k = 0; k < parts; ++k) in += kPieces[rng() % std::size(kPieces)];
      std::string out(in.size(), '\0');
      PathError e = PathError::kNone;
      const int len = NormalizePath(in, opts, out.data(), &e);
      if (PathLooksCanonical(in, opts)) {
        ASSERT_EQ(len, static_cast<int>(in.size())) << in;
        ASSERT_EQ(out, in) << in;
      }
      if (len < 0) continue;
      out.resize(static_cast<size_t>(len));
      std::string again(out.size(), '\0');
      ASSERT_EQ(NormalizePath(out, opts, again.data(), &e), len) << in;
      ASSERT_EQ(again, out) << in;
      const std::string padded = out + "/";
      ASSERT_EQ(padded.find("/./"), std::string::npos) << in << " -> " << out;
      ASSERT_EQ(padded.find("/../"), std::string::npos) << in << " -> " << out;
      if (opts.merge_slashes) ASSERT_EQ(out.find("//"), std::string::npos) << in << " -> " << out;
    }
  }
}

TEST(HttpPath, RulesHaveNames) {
  for (PathError e : {PathError::kNotAbsolute, PathError::kBadEscape, PathError::kEncodedSlash,
                      PathError::kBackslash, PathError::kControl, PathError::kAboveRoot}) {
    EXPECT_NE(PathErrorRule(e), "unknown");
    EXPECT_FALSE(PathErrorText(e).empty());
  }
}

}  // namespace
}  // namespace hms::http
