// Route table: method + path template + optional host → route index.
//
// Built once by the control thread when it compiles a snapshot (allocates
// freely); immutable afterwards and read by every core at once. Find() never
// allocates and is safe from any thread.
//
// Templates (DESIGN §3): literal segments, `{name}` (exactly one non-empty
// segment), `{name*}` (the rest of the path, possibly empty; only as the last
// segment). Most specific match wins, segment by segment from the left:
// literal over `{param}` over `{rest*}`, with backtracking when a more
// specific branch dead-ends. Two routes with the same shape (same literals and
// parameter positions, whatever the parameter names), an overlapping method
// set and the same host are a build error naming both file:line places.
// A route allowing GET also answers HEAD. A route without methods answers any.
//
// Decisions where the above is silent:
// - Methods take part in the search: a node whose routes refuse the method
//   does not end it, a less specific route that accepts it still wins
//   ("GET /a/me" + "POST /a/{x}": "POST /a/me" finds the second). Only when
//   no route anywhere accepts it is the answer kMethodNotAllowed, with the
//   Allow list of the most specific node that matched the path.
// - A route without methods overlaps every route of its shape, so it can only
//   share a path with routes of other shapes or hosts; GET and HEAD overlap
//   only when both list HEAD explicitly, and an explicit HEAD route answers
//   HEAD before a GET route does.
// - The path "/" is the root ("/" template, or a catch-all at the root with
//   an empty value). Trailing slashes are strict: "/a/" and "/a" are distinct
//   templates and paths. An empty segment ("//") never matches `{param}`.
// - Host-specific routes are tried before any-host routes; the request host
//   is compared without its port (":443", "[::1]:80") and without case.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "hms/common/result.h"

namespace hms::route {

inline constexpr int kMaxParams = 16;

struct RouteSpec {
  std::string host;                  // empty: any host; else exact, case-insensitive, port ignored
  std::vector<std::string> methods;  // upper-case; empty: any method
  std::string path_template;         // "/sum/{a}/{b}"
  uint32_t target = 0;               // caller's index (the snapshot's route number)
  std::string where;                 // "file:line" for error messages
};

struct Param {
  std::string_view name;   // view into the table (lives as long as the table)
  std::string_view value;  // view into the request path
};

enum class MatchKind : uint8_t { kFound, kNotFound, kMethodNotAllowed };

struct Match {
  MatchKind kind = MatchKind::kNotFound;
  uint32_t target = 0;        // RouteSpec::target when kFound
  std::string_view allow;     // "GET, HEAD, POST" when kMethodNotAllowed (view into the table)
  std::string_view template_; // the matched template (for metrics labels) when kFound
  int param_count = 0;
  Param params[kMaxParams];
};

// Validates one template alone: "/a/{x}/{rest*}". Error text says why
// ("parameter a appears twice", "catch-all must be the last segment", ...).
Result<bool> ValidateTemplate(std::string_view path_template);

class RouteTable {
 public:
  RouteTable();
  ~RouteTable();
  RouteTable(RouteTable&&) noexcept;
  RouteTable& operator=(RouteTable&&) noexcept;

  // Builds the table; on a bad template or an ambiguity, the error message
  // starts with the offending route's `where`. Only the templates are kept:
  // the specs' other strings are freed when Build returns.
  static Result<RouteTable> Build(std::vector<RouteSpec> routes);
  // The same, with each route's "file:line" asked of `where` (given the
  // spec, only when an error names it) instead of carried in every spec.
  using WhereFn = std::function<std::string(const RouteSpec&)>;
  static Result<RouteTable> Build(std::vector<RouteSpec> routes, const WhereFn& where);

  // `path` is the request path without the query, as sent (not decoded).
  // `host` may carry a port; it is ignored for matching.
  Match Find(std::string_view host, std::string_view method, std::string_view path) const noexcept;

  size_t size() const noexcept;

 private:
  struct Impl;
  Impl* impl_ = nullptr;
};

}  // namespace hms::route
