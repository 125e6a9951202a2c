// Fuzz target: route-table build and match (include/hms/route/route_table.h).
//
// Input, as text: route lines, a line "--", then request lines.
//   route:   METHODS HOST TEMPLATE    METHODS "GET,POST" or "*" (any); HOST a digit
//   request: METHOD HOST PATH         HOST a digit (see kRouteHosts, kRequestHosts)
// Build must never crash, whatever the templates. Each answer is checked
// against a naive matcher over the route list: a found route accepts the
// method and host and its template matches the path (and its parameters are
// pieces of the path); "not found" means no route matches the path, host and
// method; "method not allowed" means one matches the path and host but none
// also takes the method.
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "hms/route/route_table.h"

namespace {

using hms::route::RouteSpec;

constexpr std::string_view kRouteHosts[4] = {"", "a.example", "b.example", "c.example"};
constexpr std::string_view kRequestHosts[4] = {"", "a.example", "A.Example:8080", "b.example"};
constexpr std::string_view kRequestHostNames[4] = {"", "a.example", "a.example", "b.example"};

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t i = 0;
  for (;;) {
    const size_t j = s.find(sep, i);
    out.push_back(s.substr(i, j == std::string_view::npos ? std::string_view::npos : j - i));
    if (j == std::string_view::npos) return out;
    i = j + 1;
  }
}

// Does `tmpl` match `path`? `lenient`: a trailing catch-all also matches
// when its slash is missing ("/a/{r*}" and "/a"), which the contract leaves open.
bool TemplateMatches(std::string_view tmpl, std::string_view path, bool lenient) {
  if (tmpl.empty() || path.empty() || tmpl[0] != '/' || path[0] != '/') return false;
  const auto t = Split(tmpl.substr(1), '/');
  const auto p = Split(path.substr(1), '/');
  const bool catch_all = t.back().size() >= 3 && t.back().front() == '{' &&
                         t.back().substr(t.back().size() - 2) == "*}";
  const size_t fixed = catch_all ? t.size() - 1 : t.size();
  if (catch_all) {
    if (p.size() < fixed + (lenient ? 0 : 1)) return false;
  } else if (p.size() != t.size()) {
    return false;
  }
  for (size_t i = 0; i < fixed; ++i) {
    const bool param = t[i].size() >= 2 && t[i].front() == '{' && t[i].back() == '}';
    if (param) {
      if (p[i].empty()) return false;
    } else if (t[i] != p[i]) {
      return false;
    }
  }
  return true;
}

bool MethodAccepted(const RouteSpec& r, std::string_view m) {
  if (r.methods.empty()) return true;
  for (const auto& x : r.methods) {
    if (x == m) return true;
    if (m == "HEAD" && x == "GET") return true;
  }
  return false;
}

bool HostAccepted(const RouteSpec& r, int host) {
  return r.host.empty() || r.host == kRequestHostNames[host];
}

int Digit(std::string_view s) { return s.empty() ? 0 : static_cast<unsigned char>(s[0]) & 3; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 16384) return 0;  // a few hundred routes say all there is to say
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto lines = Split(text, '\n');
  std::vector<RouteSpec> specs;
  size_t i = 0;
  for (; i < lines.size() && lines[i] != "--"; ++i) {
    const auto f = Split(lines[i], ' ');
    if (f.size() != 3 || specs.size() >= 256) continue;
    RouteSpec s;
    if (f[0] != "*") {
      for (auto m : Split(f[0], ',')) s.methods.emplace_back(m);
    }
    s.host = std::string(kRouteHosts[Digit(f[1])]);
    s.path_template = std::string(f[2]);
    s.target = static_cast<uint32_t>(specs.size());
    s.where = "fuzz.yaml:" + std::to_string(i + 1);
    specs.push_back(std::move(s));
  }
  for (const auto& s : specs) (void)hms::route::ValidateTemplate(s.path_template);

  auto built = hms::route::RouteTable::Build(specs);
  if (!built) {
    FUZZ_CHECK(built.error().message.starts_with("fuzz.yaml:"));
    return 0;
  }
  const hms::route::RouteTable& table = built.value();
  FUZZ_CHECK(table.size() == specs.size());

  for (++i; i < lines.size(); ++i) {
    const auto f = Split(lines[i], ' ');
    if (f.size() != 3) continue;
    const std::string_view method = f[0];
    const int host = Digit(f[1]);
    const std::string_view path = f[2];
    const hms::route::Match m = table.Find(kRequestHosts[host], method, path);
    FUZZ_CHECK(m.param_count >= 0 && m.param_count <= hms::route::kMaxParams);
    if (path.empty() || path[0] != '/') continue;

    bool strict_full = false, path_host = false;
    for (const auto& s : specs) {
      if (!HostAccepted(s, host)) continue;
      if (TemplateMatches(s.path_template, path, true)) path_host = true;
      if (TemplateMatches(s.path_template, path, false) && MethodAccepted(s, method)) {
        strict_full = true;
      }
    }
    switch (m.kind) {
      case hms::route::MatchKind::kFound: {
        FUZZ_CHECK(m.target < specs.size());
        const RouteSpec& s = specs[m.target];
        FUZZ_CHECK(m.template_ == s.path_template);
        FUZZ_CHECK(TemplateMatches(s.path_template, path, true));
        FUZZ_CHECK(MethodAccepted(s, method));
        FUZZ_CHECK(HostAccepted(s, host));
        for (int k = 0; k < m.param_count; ++k) {
          const auto v = m.params[k].value;
          FUZZ_CHECK(v.empty() || (v.data() >= path.data() &&
                                   v.data() + v.size() <= path.data() + path.size()));
          FUZZ_CHECK(!m.params[k].name.empty());
        }
        break;
      }
      case hms::route::MatchKind::kNotFound:
        FUZZ_CHECK(!strict_full);
        break;
      case hms::route::MatchKind::kMethodNotAllowed:
        FUZZ_CHECK(!strict_full);
        FUZZ_CHECK(path_host);
        FUZZ_CHECK(!m.allow.empty());
        break;
    }
  }
  return 0;
}
