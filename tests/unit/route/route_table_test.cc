#include "hms/route/route_table.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <utility>
#include <vector>

// Counts every heap allocation in this test binary, so a test can assert
// that Find allocates nothing (STYLE §4).
namespace {
std::atomic<long> g_allocations{0};
}  // namespace

// noinline: once inlined, GCC pairs the free() below with the operator new
// call site and reports -Wmismatched-new-delete, a false positive here.
__attribute__((noinline)) void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
__attribute__((noinline)) void operator delete(void* p) noexcept { std::free(p); }
__attribute__((noinline)) void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace hms::route {
namespace {

RouteSpec R(std::vector<std::string> methods, std::string path, uint32_t target,
            std::string host = "") {
  RouteSpec s;
  s.host = std::move(host);
  s.methods = std::move(methods);
  s.path_template = std::move(path);
  s.target = target;
  s.where = "routes.yaml:" + std::to_string(target);
  return s;
}

RouteTable MustBuild(std::vector<RouteSpec> specs) {
  auto r = RouteTable::Build(std::move(specs));
  EXPECT_TRUE(r.ok()) << r.error().message;
  if (!r.ok()) return RouteTable();
  return std::move(r).value();
}

std::string BuildError(std::vector<RouteSpec> specs) {
  auto r = RouteTable::Build(std::move(specs));
  if (r.ok()) return "(built fine)";
  EXPECT_EQ(r.error().side, Side::kConfig);
  return r.error().message;
}

// Renders params as "a=1 b=2" for compact table assertions.
std::string Params(const Match& m) {
  std::string s;
  for (int i = 0; i < m.param_count; i++) {
    if (i > 0) s += ' ';
    s += std::string(m.params[i].name) + "=" + std::string(m.params[i].value);
  }
  return s;
}

struct Case {
  const char* method;
  const char* path;
  MatchKind kind;
  uint32_t target;     // when kFound
  const char* params;  // when kFound: "name=value ..."; when 405: the Allow value
};

void RunCases(const RouteTable& t, const std::vector<Case>& cases, const char* host = "") {
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.method) + " " + c.path);
    Match m = t.Find(host, c.method, c.path);
    ASSERT_EQ(static_cast<int>(m.kind), static_cast<int>(c.kind));
    if (c.kind == MatchKind::kFound) {
      EXPECT_EQ(m.target, c.target);
      EXPECT_EQ(Params(m), c.params);
    } else if (c.kind == MatchKind::kMethodNotAllowed) {
      EXPECT_EQ(m.allow, c.params);
    }
  }
}

constexpr auto kFound = MatchKind::kFound;
constexpr auto k404 = MatchKind::kNotFound;
constexpr auto k405 = MatchKind::kMethodNotAllowed;

TEST(RouteTable, LiteralBeatsParamBeatsCatchAll) {
  RouteTable t = MustBuild({
      R({"GET"}, "/users/me", 1),
      R({"GET"}, "/users/{id}", 2),
      R({"GET"}, "/users/{rest*}", 3),
      R({"GET"}, "/", 4),
      R({"GET"}, "/hello", 5),
  });
  RunCases(t, {
                  {"GET", "/users/me", kFound, 1, ""},
                  {"GET", "/users/42", kFound, 2, "id=42"},
                  {"GET", "/users/42/photos", kFound, 3, "rest=42/photos"},
                  {"GET", "/users/", kFound, 3, "rest="},
                  {"GET", "/users", kFound, 3, "rest="},
                  {"GET", "/", kFound, 4, ""},
                  {"GET", "/hello", kFound, 5, ""},
                  {"GET", "/hello/", k404, 0, ""},  // strict trailing slash
                  {"GET", "/Hello", k404, 0, ""},   // literals are case-sensitive
                  {"GET", "/nope", k404, 0, ""},
                  {"GET", "", k404, 0, ""},
                  {"GET", "*", k404, 0, ""},
                  {"GET", "hello", k404, 0, ""},
              });
}

TEST(RouteTable, BacktracksWhenTheLiteralBranchDeadEnds) {
  RouteTable t = MustBuild({
      R({"GET"}, "/a/b/{x}", 1),
      R({"GET"}, "/a/{y}/c", 2),
      R({"GET"}, "/a/{y}/d/{z}", 3),
      R({"GET"}, "/a/b/d/{w*}", 4),
  });
  RunCases(t, {
                  {"GET", "/a/b/c", kFound, 1, "x=c"},
                  {"GET", "/a/z/c", kFound, 2, "y=z"},
                  {"GET", "/a/b/q", kFound, 1, "x=q"},
                  {"GET", "/a/b/d/e", kFound, 4, "w=e"},  // literal branch wins deeper
                  {"GET", "/a/q/d/e", kFound, 3, "y=q z=e"},
                  {"GET", "/a/b", k404, 0, ""},
                  {"GET", "/a/z/q", k404, 0, ""},
              });
}

TEST(RouteTable, BacktracksFromLiteralIntoParamDeeper) {
  // "/a/b/c/x" enters the literal "b" branch first, finds no "x" there, and
  // must come back to try {y} with the same tail.
  RouteTable t = MustBuild({
      R({"GET"}, "/a/b/c/d", 1),
      R({"GET"}, "/a/{y}/c/x", 2),
      R({"GET"}, "/a/{y}/{z}/{rest*}", 3),
  });
  RunCases(t, {
                  {"GET", "/a/b/c/d", kFound, 1, ""},
                  {"GET", "/a/b/c/x", kFound, 2, "y=b"},
                  {"GET", "/a/b/c/q/r", kFound, 3, "y=b z=c rest=q/r"},
                  {"GET", "/a/b/c", kFound, 3, "y=b z=c rest="},
              });
}

TEST(RouteTable, CatchAllMatchesEmptyRest) {
  RouteTable t = MustBuild({
      R({"GET"}, "/files/{p*}", 1),
      R({"POST"}, "/{rest*}", 2),
  });
  RunCases(t, {
                  {"GET", "/files", kFound, 1, "p="},
                  {"GET", "/files/", kFound, 1, "p="},
                  {"GET", "/files/a/b", kFound, 1, "p=a/b"},
                  {"GET", "/files//a", kFound, 1, "p=/a"},
                  {"POST", "/", kFound, 2, "rest="},
                  {"POST", "/a/b", kFound, 2, "rest=a/b"},
                  {"POST", "/files/x", kFound, 2, "rest=files/x"},
              });
}

TEST(RouteTable, EmptySegmentNeverMatchesAParam) {
  RouteTable t = MustBuild({
      R({"GET"}, "/a/{x}", 1),
      R({"GET"}, "/b/{x}/c", 2),
      R({"GET"}, "/{x}", 3),
  });
  RunCases(t, {
                  {"GET", "/a/", k404, 0, ""},
                  {"GET", "/b//c", k404, 0, ""},
                  {"GET", "//", k404, 0, ""},
                  {"GET", "/", k404, 0, ""},
                  {"GET", "/a/1", kFound, 1, "x=1"},
                  {"GET", "/b/2/c", kFound, 2, "x=2"},
              });
}

TEST(RouteTable, TrailingSlashTemplateIsItsOwnRoute) {
  RouteTable t = MustBuild({
      R({"GET"}, "/dir/", 1),
      R({"GET"}, "/dir", 2),
  });
  RunCases(t, {
                  {"GET", "/dir/", kFound, 1, ""},
                  {"GET", "/dir", kFound, 2, ""},
                  {"GET", "/dir//", k404, 0, ""},
              });
}

TEST(RouteTable, LiteralKeysOfEveryLengthInNarrowAndWideNodes) {
  // Keys that agree on their first and last 8 bytes, short keys that are
  // permutations of each other, the empty trailing segment: under a narrow
  // node (scanned) and under a wide one (hashed).
  std::vector<std::string> keys = {
      "a", "b", "ab", "ba", "abc", "acb", "cba", "abcd", "abdc", "abcdefg", "abcdefgh",
      "abcdefghi", "0123456789abcdef", "0123456789abcdeg",
      "0123456789_MIDDLE_A_abcdefgh", "0123456789_MIDDLE_B_abcdefgh",
      "very-long-segment-name-for-a-service-endpoint",
  };
  std::vector<RouteSpec> specs;
  uint32_t target = 0;
  for (const std::string& k : keys) specs.push_back(R({"GET"}, "/wide/" + k, target++));
  for (int i = 0; i < 40; i++) specs.push_back(R({"GET"}, "/wide/filler" + std::to_string(i), 900 + i));
  for (size_t i = 0; i < 4; i++) specs.push_back(R({"GET"}, "/narrow/" + keys[i + 12], 100 + i));
  specs.push_back(R({"GET"}, "/narrow/", 200));
  RouteTable t = MustBuild(std::move(specs));
  for (size_t i = 0; i < keys.size(); i++) {
    SCOPED_TRACE(keys[i]);
    Match m = t.Find("", "GET", "/wide/" + keys[i]);
    ASSERT_EQ(m.kind, kFound);
    EXPECT_EQ(m.target, i);
    EXPECT_EQ(t.Find("", "GET", "/wide/" + keys[i] + "x").kind, k404);
    EXPECT_EQ(t.Find("", "GET", "/wide/x" + keys[i]).kind, k404);
  }
  RunCases(t, {
                  {"GET", "/wide/filler39", kFound, 939, ""},
                  {"GET", "/wide/", k404, 0, ""},
                  {"GET", "/wide/c", k404, 0, ""},
                  {"GET", "/wide/bac", k404, 0, ""},
                  {"GET", "/wide/0123456789_MIDDLE_C_abcdefgh", k404, 0, ""},
                  {"GET", "/narrow/0123456789abcdeg", kFound, 101, ""},
                  {"GET", "/narrow/0123456789_MIDDLE_B_abcdefgh", kFound, 103, ""},
                  {"GET", "/narrow/0123456789_MIDDLE_C_abcdefgh", k404, 0, ""},
                  {"GET", "/narrow/", kFound, 200, ""},
                  {"GET", "/narrow/a", k404, 0, ""},
              });
}

TEST(RouteTable, NotFoundVersusMethodNotAllowed) {
  RouteTable t = MustBuild({
      R({"POST"}, "/items", 1),
      R({"GET"}, "/items", 2),
      R({"DELETE", "PUT"}, "/items/{id}", 3),
      R({"PATCH"}, "/items/{id}", 4),
      R({"GET"}, "/items/{id}/{rest*}", 5),
      R({"OPTIONS"}, "/only-options", 6),
  });
  RunCases(t, {
                  {"GET", "/items", kFound, 2, ""},
                  {"POST", "/items", kFound, 1, ""},
                  {"PUT", "/items", k405, 0, "GET, HEAD, POST"},
                  {"get", "/items", k405, 0, "GET, HEAD, POST"},  // methods are case-sensitive
                  {"GET", "/items/7", kFound, 5, "id=7 rest="},   // backtracks into the catch-all
                  {"POST", "/items/7", k405, 0, "DELETE, PATCH, PUT"},
                  {"PATCH", "/items/7", kFound, 4, "id=7"},
                  {"POST", "/items/7/x", k405, 0, "GET, HEAD"},
                  {"GET", "/only-options", k405, 0, "OPTIONS"},
                  {"GET", "/missing", k404, 0, ""},
              });
}

TEST(RouteTable, HeadIsAnsweredByGetUnlessListed) {
  RouteTable t = MustBuild({
      R({"GET"}, "/a", 1),
      R({"GET"}, "/b", 2),
      R({"HEAD"}, "/b", 3),
      R({"GET", "HEAD"}, "/c", 4),
      R({"POST"}, "/d", 5),
  });
  RunCases(t, {
                  {"HEAD", "/a", kFound, 1, ""},
                  {"HEAD", "/b", kFound, 3, ""},  // an explicit HEAD route beats GET's
                  {"GET", "/b", kFound, 2, ""},
                  {"HEAD", "/c", kFound, 4, ""},
                  {"HEAD", "/d", k405, 0, "POST"},
                  {"POST", "/a", k405, 0, "GET, HEAD"},
                  {"POST", "/b", k405, 0, "GET, HEAD"},
              });
}

TEST(RouteTable, AnyMethodRoutes) {
  // An any-method route clashes with every other route of its shape (see
  // AmbiguityErrors), so exact-over-any only shows across shapes and hosts.
  RouteTable t = MustBuild({
      R({}, "/any/{x}", 1),
      R({"DELETE"}, "/any/{x}", 2, "h.example"),
      R({"GET"}, "/any/me", 3),
  });
  RunCases(t, {
                  {"GET", "/any/1", kFound, 1, "x=1"},
                  {"BREW", "/any/1", kFound, 1, "x=1"},
                  {"HEAD", "/any/1", kFound, 1, "x=1"},
                  {"DELETE", "/any/1", kFound, 1, "x=1"},
                  {"GET", "/any/me", kFound, 3, ""},
                  {"POST", "/any/me", kFound, 1, "x=me"},  // backtracks to the any route
              });
  RunCases(t, {{"DELETE", "/any/1", kFound, 2, "x=1"}, {"PUT", "/any/1", kFound, 1, "x=1"}},
           "h.example");
}

TEST(RouteTable, HostSpecificBeforeAnyHost) {
  RouteTable t = MustBuild({
      R({"GET"}, "/x", 1),
      R({"GET"}, "/x", 2, "API.example.com"),
      R({"GET"}, "/{p}", 3, "api.example.com:8443"),
      R({"POST"}, "/y/z", 4, "api.example.com"),
      R({"GET"}, "/y/z", 5),
      R({"GET"}, "/v6", 6, "[::1]"),
  });
  RunCases(t, {{"GET", "/x", kFound, 2, ""},
               {"GET", "/z", kFound, 3, "p=z"},
               {"GET", "/y", kFound, 3, "p=y"},
               {"GET", "/y/z", kFound, 5, ""},  // host tree dead-ends on method; any-host answers
               {"POST", "/y/z", kFound, 4, ""},
               {"PUT", "/y/z", k405, 0, "POST"}},  // the host's node is the most specific
           "api.example.com");
  RunCases(t, {{"GET", "/x", kFound, 2, ""}}, "Api.Example.COM:8080");
  RunCases(t, {{"GET", "/x", kFound, 2, ""}}, "API.EXAMPLE.COM");
  RunCases(t, {{"GET", "/x", kFound, 1, ""}, {"GET", "/z", k404, 0, ""}}, "other.example.com");
  RunCases(t, {{"GET", "/x", kFound, 1, ""}}, "api.example.co");
  RunCases(t, {{"GET", "/x", kFound, 1, ""}}, "");
  RunCases(t, {{"GET", "/v6", kFound, 6, ""}}, "[::1]:8080");
  RunCases(t, {{"GET", "/v6", k404, 0, ""}}, "[::2]:8080");
}

TEST(RouteTable, PercentEncodedBytesAreLeftAsIs) {
  RouteTable t = MustBuild({
      R({"GET"}, "/a%20b", 1),
      R({"GET"}, "/p/{x}", 2),
      R({"GET"}, "/f/{rest*}", 3),
  });
  RunCases(t, {
                  {"GET", "/a%20b", kFound, 1, ""},
                  {"GET", "/a b", k404, 0, ""},
                  {"GET", "/a%20B", k404, 0, ""},
                  {"GET", "/p/x%2Fy", kFound, 2, "x=x%2Fy"},
                  {"GET", "/f/%2e%2e/etc", kFound, 3, "rest=%2e%2e/etc"},
              });
}

TEST(RouteTable, ParamsCapturedWithTheirNamesAndViewThePath) {
  RouteTable t = MustBuild({
      R({"GET"}, "/sum/{a}/{b}", 1),
      R({"GET"}, "/v2/sum/{x}/{y}/{more*}", 2),
  });
  std::string path = "/sum/3/4";
  Match m = t.Find("", "GET", path);
  ASSERT_EQ(m.kind, MatchKind::kFound);
  EXPECT_EQ(m.template_, "/sum/{a}/{b}");
  ASSERT_EQ(m.param_count, 2);
  EXPECT_EQ(m.params[0].name, "a");
  EXPECT_EQ(m.params[1].name, "b");
  EXPECT_EQ(m.params[0].value.data(), path.data() + 5);  // a view, not a copy
  EXPECT_EQ(m.params[1].value, "4");

  m = t.Find("", "GET", "/v2/sum/1/2/3/4");
  ASSERT_EQ(m.kind, MatchKind::kFound);
  EXPECT_EQ(Params(m), "x=1 y=2 more=3/4");
  EXPECT_EQ(m.template_, "/v2/sum/{x}/{y}/{more*}");
}

TEST(RouteTable, ParamNamesComeFromTheMatchedRouteNotTheSharedNode) {
  // Both routes share the param node of the first segment.
  RouteTable t = MustBuild({
      R({"GET"}, "/{user}/profile", 1),
      R({"GET"}, "/{org}/repos/{repo}", 2),
  });
  RunCases(t, {{"GET", "/ann/profile", kFound, 1, "user=ann"},
               {"GET", "/acme/repos/gw", kFound, 2, "org=acme repo=gw"}});
}

TEST(RouteTable, MaxParamsCaptured) {
  std::string tmpl, path, want;
  for (int i = 0; i < kMaxParams; i++) {
    tmpl += "/{p" + std::to_string(i) + "}";
    path += "/" + std::to_string(i);
    if (i > 0) want += ' ';
    want += "p" + std::to_string(i) + "=" + std::to_string(i);
  }
  RouteTable t = MustBuild({R({"GET"}, tmpl, 1)});
  Match m = t.Find("", "GET", path);
  ASSERT_EQ(m.kind, MatchKind::kFound);
  EXPECT_EQ(Params(m), want);
  EXPECT_FALSE(ValidateTemplate(tmpl + "/{extra}").ok());
}

TEST(RouteTable, AmbiguityErrors) {
  struct {
    std::vector<RouteSpec> specs;
    const char* want;
  } cases[] = {
      {{R({"GET"}, "/sum/{a}/{b}", 1), R({"GET"}, "/sum/{x}/{y}", 2)},
       "routes.yaml:2: route \"GET /sum/{x}/{y}\" clashes with \"GET /sum/{a}/{b}\" at "
       "routes.yaml:1"},
      {{R({"GET", "POST"}, "/a", 1), R({"PUT", "POST"}, "/a", 2)},
       "routes.yaml:2: route \"PUT,POST /a\" clashes with \"GET,POST /a\" at routes.yaml:1"},
      {{R({"GET"}, "/a", 1), R({}, "/a", 2)},
       "routes.yaml:2: route \"ANY /a\" clashes with \"GET /a\" at routes.yaml:1"},
      {{R({}, "/f/{p*}", 1), R({"DELETE"}, "/g", 2), R({"DELETE"}, "/f/{q*}", 3)},
       "routes.yaml:3: route \"DELETE /f/{q*}\" clashes with \"ANY /f/{p*}\" at routes.yaml:1"},
      {{R({"GET", "HEAD"}, "/h", 1), R({"HEAD"}, "/h", 2)},
       "routes.yaml:2: route \"HEAD /h\" clashes with \"GET,HEAD /h\" at routes.yaml:1"},
      {{R({"GET"}, "/x", 1, "a.example"), R({"GET"}, "/x", 2, "A.EXAMPLE:443")},
       "routes.yaml:2: route \"GET /x (host a.example)\" clashes with \"GET /x (host a.example)\" "
       "at routes.yaml:1"},
  };
  for (auto& c : cases) EXPECT_EQ(BuildError(std::move(c.specs)), c.want);
}

TEST(RouteTable, NonOverlappingShapesAndMethodsBuild) {
  RouteTable t = MustBuild({
      R({"GET"}, "/a/{x}", 1),
      R({"POST"}, "/a/{y}", 2),        // same shape, other method
      R({"GET"}, "/a/{x}/", 3),        // trailing slash: other shape
      R({"GET"}, "/a/{x*}", 4),        // catch-all: other shape
      R({"GET"}, "/a/x", 5),           // literal: other shape
      R({"GET"}, "/a/{x}", 6, "h"),    // other host
      R({"HEAD"}, "/a/{x}", 7),        // GET's implied HEAD does not clash
  });
  EXPECT_EQ(t.size(), 7u);
  RunCases(t, {{"HEAD", "/a/1", kFound, 7, "x=1"}, {"POST", "/a/1", kFound, 2, "y=1"}});
}

TEST(RouteTable, BuildErrorsArePrefixedWithWhere) {
  EXPECT_EQ(BuildError({R({"GET"}, "/ok", 1), R({"GET"}, "/sum/{a}/{a}", 2)}),
            "routes.yaml:2: bad path template \"/sum/{a}/{a}\": parameter a appears twice");
  EXPECT_EQ(BuildError({R({"get"}, "/a", 3)}), "routes.yaml:3: method \"get\" must be upper-case");
  EXPECT_EQ(BuildError({R({""}, "/a", 3)}), "routes.yaml:3: empty method name");
  EXPECT_EQ(BuildError({R({"GE T"}, "/a", 3)}),
            "routes.yaml:3: invalid character ' ' (space) in method \"GE T\"");
  EXPECT_EQ(BuildError({R({"GET"}, "/a", 4, ":80")}), "routes.yaml:4: host \":80\" has no name");
  RouteSpec no_where = R({"GET"}, "x", 5);
  no_where.where.clear();
  EXPECT_EQ(BuildError({no_where}), "bad path template \"x\": path template \"x\" must start with '/'");
}

TEST(ValidateTemplate, Errors) {
  struct {
    const char* tmpl;
    const char* want;  // nullptr: valid
  } cases[] = {
      {"/", nullptr},
      {"/a/{b}/{c*}", nullptr},
      {"/{rest*}", nullptr},
      {"/a/", nullptr},
      {"/a%2Fb/{_x9}", nullptr},
      {"/a:b@c/~x/(y)", nullptr},
      {"", "path template is empty; it must start with '/'"},
      {"a/b", "path template \"a/b\" must start with '/'"},
      {"/a/{}", "empty parameter name in \"{}\""},
      {"/a/{*}", "empty parameter name in \"{*}\""},
      {"/a/{b-c}", "invalid character '-' in parameter name \"b-c\" (use letters, digits and '_')"},
      {"/a/{b*c}", "invalid character '*' in parameter name \"b*c\" (use letters, digits and '_')"},
      {"/{a}/{a}", "parameter a appears twice"},
      {"/{a}/{a*}", "parameter a appears twice"},
      {"/{rest*}/x", "catch-all {rest*} must be the last segment"},
      {"/{rest*}/", "catch-all {rest*} must be the last segment"},
      {"/a/{b", "unbalanced braces in segment \"{b\""},
      {"/a/b}", "unbalanced braces in segment \"b}\""},
      {"/a/}b{", "unbalanced braces in segment \"}b{\""},
      {"/{{a}}", "unbalanced braces in segment \"{{a}}\""},
      {"/a/x{b}",
       "segment \"x{b}\" mixes a parameter with other text, which is not supported: a parameter "
       "must be a whole segment"},
      {"/a/{b}.json",
       "segment \"{b}.json\" mixes a parameter with other text, which is not supported: a "
       "parameter must be a whole segment"},
      {"/a/{b}{c}",
       "segment \"{b}{c}\" mixes a parameter with other text, which is not supported: a "
       "parameter must be a whole segment"},
      {"/a//b", "empty segment (\"//\") in path template \"/a//b\""},
      {"//", "empty segment (\"//\") in path template \"//\""},
      {"/a b", "invalid character ' ' (space) in path template \"/a b\""},
      {"/a?x=1", "invalid character '?' in path template \"/a?x=1\""},
      {"/a#f", "invalid character '#' in path template \"/a#f\""},
      {"/a\n", "invalid character byte 0x0a in path template \"/a\n\""},
      {"/a%2", "bad percent-encoding in segment \"a%2\" (want %XX)"},
      {"/a%zz", "bad percent-encoding in segment \"a%zz\" (want %XX)"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.tmpl);
    Result<bool> r = ValidateTemplate(c.tmpl);
    if (c.want == nullptr) {
      EXPECT_TRUE(r.ok()) << r.error().message;
    } else {
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.error().message, c.want);
      EXPECT_EQ(r.error().side, Side::kConfig);
    }
  }
}

TEST(RouteTable, EmptyAndMovedTables) {
  RouteTable empty;
  EXPECT_EQ(empty.size(), 0u);
  EXPECT_EQ(empty.Find("", "GET", "/").kind, MatchKind::kNotFound);

  RouteTable built = MustBuild({});
  EXPECT_EQ(built.Find("h", "GET", "/x").kind, MatchKind::kNotFound);

  RouteTable a = MustBuild({R({"GET"}, "/a/{x}", 1)});
  RouteTable b = std::move(a);
  Match m = b.Find("", "GET", "/a/1");
  ASSERT_EQ(m.kind, MatchKind::kFound);
  EXPECT_EQ(m.params[0].name, "x");
  a = std::move(b);
  EXPECT_EQ(a.Find("", "GET", "/a/1").target, 1u);
  EXPECT_EQ(a.size(), 1u);
}

// 10,000 routes over 500 services, in the shapes services really register.
std::vector<RouteSpec> TenThousandRoutes() {
  std::vector<RouteSpec> specs;
  const char* shapes[20][2] = {
      {"GET", "/v1/items"},
      {"POST", "/v1/items"},
      {"GET", "/v1/items/{id}"},
      {"PUT", "/v1/items/{id}"},
      {"DELETE", "/v1/items/{id}"},
      {"GET", "/v1/items/{id}/parts"},
      {"GET", "/v1/items/{id}/parts/{part}"},
      {"PATCH", "/v1/items/{id}/parts/{part}"},
      {"GET", "/v1/orders/{order}/lines/{line}"},
      {"GET", "/v1/orders/search"},
      {"GET", "/v1/health"},
      {"GET", "/v1/metrics"},
      {"GET", "/v2/items/{id}"},
      {"POST", "/v2/items/{id}/actions/{action}"},
      {"GET", "/v2/users/{user}/settings"},
      {"PUT", "/v2/users/{user}/settings"},
      {"GET", "/static/{path*}"},
      {"", "/proxy/{rest*}"},
      {"GET", "/v2/users/me"},
      {"POST", "/v1/upload"},
  };
  for (int s = 0; s < 500; s++) {
    for (int r = 0; r < 20; r++) {
      RouteSpec spec;
      spec.path_template = "/svc" + std::to_string(s) + shapes[r][1];
      if (shapes[r][0][0] != '\0') spec.methods.push_back(shapes[r][0]);
      spec.target = static_cast<uint32_t>(specs.size());
      spec.where = "svc" + std::to_string(s) + ".yaml:" + std::to_string(r + 3);
      specs.push_back(std::move(spec));
    }
  }
  return specs;
}

// Sibling segments of exactly 8 bytes ("sv000123") fill both of a key's
// hash words with the same bytes; the hash must still tell them apart. When
// it did not, every one of them landed in one probe run: 30,000 siblings
// took seconds to place and to find (quadratic), where spread out they take
// a few milliseconds. The bound is ~20 times what a loaded machine needs.
TEST(RouteTable, EightByteSiblingsSpreadOverTheHashTable) {
  std::vector<RouteSpec> specs;
  for (int i = 0; i < 30000; i++) {
    char seg[16];
    std::snprintf(seg, sizeof seg, "sv%06d", i);
    RouteSpec spec;
    spec.methods = {"GET"};
    spec.path_template = std::string("/") + seg + "/x";
    spec.target = static_cast<uint32_t>(i);
    specs.push_back(std::move(spec));
  }
  const auto started = std::chrono::steady_clock::now();
  RouteTable t = MustBuild(std::move(specs));
  int found = 0;
  for (int i = 0; i < 30000; i++) {
    char path[24];
    std::snprintf(path, sizeof path, "/sv%06d/x", i);
    const Match m = t.Find("", "GET", path);
    found += m.kind == kFound && m.target == static_cast<uint32_t>(i);
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - started)
                      .count();
  EXPECT_EQ(found, 30000);
  EXPECT_LT(ms, 1000) << "30,000 sibling literals took " << ms << " ms to build and find";
}

TEST(RouteTable, TenThousandRoutesBuildAndMatch) {
  RouteTable t = MustBuild(TenThousandRoutes());
  ASSERT_EQ(t.size(), 10000u);
  for (int s = 0; s < 500; s += 7) {
    std::string svc = "/svc" + std::to_string(s);
    uint32_t base = static_cast<uint32_t>(s) * 20;
    SCOPED_TRACE(svc);
    RunCases(t, {
                    {"GET", (svc + "/v1/items").c_str(), kFound, base + 0, ""},
                    {"DELETE", (svc + "/v1/items/9").c_str(), kFound, base + 4, "id=9"},
                    {"PATCH", (svc + "/v1/items/9/parts/p").c_str(), kFound, base + 7,
                     "id=9 part=p"},
                    {"GET", (svc + "/v1/orders/search").c_str(), kFound, base + 9, ""},
                    {"GET", (svc + "/v1/orders/o/lines/2").c_str(), kFound, base + 8,
                     "order=o line=2"},
                    {"GET", (svc + "/v2/users/me").c_str(), kFound, base + 18, ""},
                    {"PUT", (svc + "/v2/users/me/settings").c_str(), kFound, base + 15,
                     "user=me"},
                    {"HEAD", (svc + "/static/css/a.css").c_str(), kFound, base + 16,
                     "path=css/a.css"},
                    {"OPTIONS", (svc + "/proxy/").c_str(), kFound, base + 17, "rest="},
                    {"POST", (svc + "/v1/health").c_str(), k405, 0, "GET, HEAD"},
                    {"GET", (svc + "/v1/items/9/nope").c_str(), k404, 0, ""},
                    {"GET", (svc + "x/v1/items").c_str(), k404, 0, ""},
                });
  }
  RunCases(t, {{"GET", "/svc500/v1/items", k404, 0, ""}});

  // 1,000 lookups of every kind after warm-up: not one allocation.
  std::vector<std::pair<std::string, std::string>> reqs = {
      {"GET", "/svc17/v1/items/9/parts/p"}, {"HEAD", "/svc499/static/a/b"},
      {"POST", "/svc3/v1/health"},          {"GET", "/svc3/v1/items/9/nope"},
      {"GET", "/nope"},                     {"PUT", "/svc3/proxy/x"},
  };
  long found = 0;
  long before = g_allocations.load();
  ASSERT_GT(before, 0);  // the counting hook is live
  for (int i = 0; i < 1000; i++) {
    const auto& r = reqs[i % reqs.size()];
    found += t.Find("api.example.com:443", r.first, r.second).kind == kFound;
  }
  EXPECT_EQ(g_allocations.load() - before, 0);
  EXPECT_EQ(found, 500);

  // One clashing route at the end is still found among the 10,000.
  std::vector<RouteSpec> specs = TenThousandRoutes();
  specs.push_back(R({"GET"}, "/svc250/v1/items/{item}/parts/{p}", 99999));
  EXPECT_EQ(BuildError(std::move(specs)),
            "routes.yaml:99999: route \"GET /svc250/v1/items/{item}/parts/{p}\" clashes with "
            "\"GET /svc250/v1/items/{id}/parts/{part}\" at svc250.yaml:9");
}

}  // namespace
}  // namespace hms::route
