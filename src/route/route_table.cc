// Route table: one segment trie per host, flattened into arrays at build.
//
// Every node of every host's trie lives in one vector. The literal edges of
// all nodes share one open-addressing hash table keyed by (parent node,
// segment bytes), so a literal step costs one hash and usually one probe
// whatever the fan-out (the root of a 500-service table has 500 children,
// where a sorted vector would need ~9 string compares). Param and catch-all
// children are plain indices.
//
// Find walks depth-first, literal → param → catch-all. A node's depth fixes
// how much of the path has been consumed, so each node is visited at most
// once per walk: backtracking costs at most the size of the trie, never an
// exponential blow-up.
#include "hms/route/route_table.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>
#include <utility>

#include "hms/common/check.h"
#include "hms/http/char_class.h"

namespace hms::route {
namespace {

constexpr uint32_t kNone = UINT32_MAX;

enum class SegKind : uint8_t { kLiteral, kParam, kCatchAll };

struct Segment {
  SegKind kind;
  std::string_view text;  // literal bytes or parameter name (views the template)
};

bool IsAsciiAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool IsHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// RFC 3986 §3.3 pchar, without pct-encoded (checked by the caller).
bool IsPchar(char c) {
  if (IsAsciiAlnum(c)) return true;
  switch (c) {
    case '-': case '.': case '_': case '~':                        // unreserved
    case '!': case '$': case '&': case '\'': case '(': case ')':   // sub-delims
    case '*': case '+': case ',': case ';': case '=':
    case ':': case '@':
      return true;
    default:
      return false;
  }
}

char ToLowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c; }

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string ShowChar(char c) {
  auto u = static_cast<unsigned char>(c);
  if (u > 0x20 && u < 0x7f) return std::string("'") + c + "'";
  if (c == ' ') return "' ' (space)";
  char buf[8];
  std::snprintf(buf, sizeof(buf), "0x%02x", u);
  return std::string("byte ") + buf;
}

// Checks one `{...}` segment whose braces are already known to be the first
// and last bytes. Returns an error text, empty when fine.
std::string ParseParam(std::string_view seg, Segment* out) {
  std::string_view name = seg.substr(1, seg.size() - 2);
  bool catch_all = false;
  if (!name.empty() && name.back() == '*') {
    catch_all = true;
    name.remove_suffix(1);
  }
  if (name.empty()) return "empty parameter name in " + Quote(seg);
  for (char c : name) {
    if (!IsAsciiAlnum(c) && c != '_') {
      return "invalid character " + ShowChar(c) + " in parameter name " + Quote(name) +
             " (use letters, digits and '_')";
    }
  }
  *out = Segment{catch_all ? SegKind::kCatchAll : SegKind::kParam, name};
  return {};
}

// Splits a template into segments. "/" has none; "/a/" has "a" and a trailing
// empty literal (strict trailing slash, so "/a/" and "/a" are two routes).
// Returns an error text, empty when fine. Segment texts view `t`.
std::string ParseTemplate(std::string_view t, std::vector<Segment>* out) {
  out->clear();
  if (t.empty()) return "path template is empty; it must start with '/'";
  if (t[0] != '/') return "path template " + Quote(t) + " must start with '/'";
  if (t.size() == 1) return {};
  std::string_view rest = t.substr(1);
  int params = 0;
  while (true) {
    size_t slash = rest.find('/');
    bool last = slash == std::string_view::npos;
    std::string_view seg = last ? rest : rest.substr(0, slash);
    if (!out->empty() && out->back().kind == SegKind::kCatchAll) {
      return "catch-all {" + std::string(out->back().text) + "*} must be the last segment";
    }
    if (seg.empty()) {
      if (!last) return "empty segment (\"//\") in path template " + Quote(t);
      out->push_back(Segment{SegKind::kLiteral, seg});  // trailing slash
      break;
    }
    bool has_brace = seg.find_first_of("{}") != std::string_view::npos;
    if (has_brace) {
      int depth = 0;
      bool balanced = true;
      for (char c : seg) {
        if (c == '{') depth++;
        if (c == '}') depth--;
        if (depth < 0 || depth > 1) balanced = false;
      }
      if (!balanced || depth != 0) return "unbalanced braces in segment " + Quote(seg);
      bool whole = seg.front() == '{' && seg.back() == '}' &&
                   seg.substr(1, seg.size() - 2).find_first_of("{}") == std::string_view::npos;
      if (!whole) {
        return "segment " + Quote(seg) +
               " mixes a parameter with other text, which is not supported: a parameter must "
               "be a whole segment";
      }
      Segment s{};
      std::string err = ParseParam(seg, &s);
      if (!err.empty()) return err;
      for (const Segment& prev : *out) {
        if (prev.kind != SegKind::kLiteral && prev.text == s.text) {
          return "parameter " + std::string(s.text) + " appears twice";
        }
      }
      if (++params > kMaxParams) {
        return "too many parameters (at most " + std::to_string(kMaxParams) + ")";
      }
      out->push_back(s);
    } else {
      for (size_t i = 0; i < seg.size(); i++) {
        char c = seg[i];
        if (c == '%') {
          if (i + 2 >= seg.size() || !IsHex(seg[i + 1]) || !IsHex(seg[i + 2])) {
            return "bad percent-encoding in segment " + Quote(seg) + " (want %XX)";
          }
          i += 2;
          continue;
        }
        if (!IsPchar(c)) {
          return "invalid character " + ShowChar(c) + " in path template " + Quote(t);
        }
      }
      out->push_back(Segment{SegKind::kLiteral, seg});
    }
    if (last) break;
    rest = rest.substr(slash + 1);
  }
  return {};
}

// "Example.COM:8080" → "example.com"; "[::1]:443" → "[::1]". Port ignored.
std::string_view StripPort(std::string_view host) {
  if (!host.empty() && host[0] == '[') {
    size_t close = host.find(']');
    return close == std::string_view::npos ? host : host.substr(0, close + 1);
  }
  size_t colon = host.find(':');
  return colon == std::string_view::npos ? host : host.substr(0, colon);
}

// Three-way compare of a request host (any case) against a lower-case key.
int CompareHostNoCase(std::string_view host, std::string_view lower_key) {
  size_t n = std::min(host.size(), lower_key.size());
  for (size_t i = 0; i < n; i++) {
    char a = ToLowerAscii(host[i]);
    char b = lower_key[i];
    if (a != b) return static_cast<unsigned char>(a) < static_cast<unsigned char>(b) ? -1 : 1;
  }
  if (host.size() == lower_key.size()) return 0;
  return host.size() < lower_key.size() ? -1 : 1;
}

inline uint64_t Fold(uint64_t a, uint64_t b) {
  unsigned __int128 m = static_cast<unsigned __int128>(a ^ b) * 0x9E3779B97F4A7C15ull;
  return static_cast<uint64_t>(m) ^ static_cast<uint64_t>(m >> 64);
}

inline uint64_t Load64(const char* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}

inline uint64_t Load32(const char* p) {
  uint32_t w;
  std::memcpy(&w, p, 4);
  return w;
}

// Two words that, with the length, identify a segment of up to 16 bytes
// exactly (overlapping loads, as in wyhash), and summarize a longer one.
// Both the hash and the equality test use them, so a segment's bytes are read
// once per step and short keys never need memcmp. Never reads past `seg`.
struct KeyWords {
  uint64_t w0 = 0;
  uint64_t w1 = 0;
};

inline KeyWords WordsOf(std::string_view seg) {
  const char* p = seg.data();
  size_t n = seg.size();
  if (n >= 8) return {Load64(p), Load64(p + n - 8)};
  if (n >= 4) return {Load32(p), Load32(p + n - 4)};
  if (n > 0) {
    auto b = [p](size_t i) { return static_cast<uint64_t>(static_cast<unsigned char>(p[i])); };
    return {b(0) | (b(n / 2) << 8) | (b(n - 1) << 16), 0};
  }
  return {};
}

// Hash of (parent, segment). Short segments: two multiplies. Longer ones
// fold their middle 8 bytes at a time (first and last 8 are in the words
// already). The two words go through separate multiplies: a segment of
// exactly 8 (or 4) bytes has w0 == w1, and Fold(w0 ^ x, w1 ^ y) would cancel
// them, so every such sibling ("svc-1000" .. "svc-9999" under the root) hashed
// alike and a million-route table probed thousands of slots per lookup.
inline uint64_t HashEdge(uint32_t parent, std::string_view seg, KeyWords k) {
  uint64_t h = Fold(k.w0 ^ ((static_cast<uint64_t>(parent) << 32) | seg.size()),
                    0x243F6A8885A308D3ull);
  h = Fold(h ^ k.w1, 0x13198A2E03707344ull);
  for (size_t off = 8; off + 8 < seg.size(); off += 8) h = Fold(h, Load64(seg.data() + off));
  return h;
}

// The flattened table. Walker reads it directly, hence a namespace-scope type
// that RouteTable::Impl merely names.
struct Tables {
  struct Node {
    uint32_t literal_count = 0;
    uint32_t literal_begin = 0;  // into small_edges when literal_count <= kLinearEdges
    uint32_t param = kNone;
    uint32_t catch_all = kNone;
    uint32_t disp_begin = 0;
    uint32_t disp_count = 0;
    uint32_t any_route = kNone;  // the route without methods on this node, if any
    uint32_t allow = kNone;      // index into allow_strings; kNone if any_route is set
    bool terminal() const { return disp_count != 0 || any_route != kNone; }
  };
  // 32 bytes, two to a cache line; the key is compared through its words
  // (see WordsOf), with a trip to the template string only past 16 bytes.
  struct Edge {
    uint64_t w0 = 0;
    uint64_t w1 = 0;
    uint32_t key_len = 0;
    uint32_t child = kNone;  // kNone: empty hash slot
    uint32_t parent = kNone;
    uint32_t long_key = kNone;  // index into long_keys when key_len > 16

    bool Matches(std::string_view seg, KeyWords k, const std::vector<const char*>& long_keys) const {
      if (key_len != seg.size() || w0 != k.w0 || w1 != k.w1) return false;
      return key_len <= 16 || std::memcmp(long_keys[long_key], seg.data(), seg.size()) == 0;
    }
  };
  struct Dispatch {
    std::string_view method;
    uint32_t route;
  };
  struct Route {
    uint32_t target;
    std::string_view path_template;
    uint32_t names_begin;
    uint32_t names_count;
  };

  // Own every string the views below point into: the templates (reserved
  // before the first view is taken, so they never move) and the method
  // names, each once. The specs themselves die with Build: their `where`
  // and host copies are not kept a million times.
  std::vector<std::string> templates;
  std::set<std::string, std::less<>> method_names;
  std::vector<Route> routes;
  std::vector<std::string_view> names;
  std::vector<Node> nodes;  // node 0: the any-host root
  // A node with few literal children keeps them side by side and is scanned
  // (its children usually share a cache line); a wide node, such as a root
  // with one child per service, goes through the shared hash table.
  static constexpr uint32_t kLinearEdges = 8;
  std::vector<Edge> small_edges;
  std::vector<Edge> edges;  // open addressing, power-of-two sized
  uint64_t edge_mask = 0;
  std::vector<const char*> long_keys;
  std::vector<Dispatch> dispatch;
  std::vector<std::string> allow_strings;
  std::vector<std::pair<std::string, uint32_t>> hosts;  // lower-case name → root; sorted

  uint32_t FindLiteral(uint32_t parent, std::string_view seg) const noexcept {
    const Node& nd = nodes[parent];
    KeyWords k = WordsOf(seg);
    if (nd.literal_count <= kLinearEdges) {
      for (uint32_t i = nd.literal_begin; i < nd.literal_begin + nd.literal_count; i++) {
        if (small_edges[i].Matches(seg, k, long_keys)) return small_edges[i].child;
      }
      return kNone;
    }
    uint64_t h = HashEdge(parent, seg, k);
    for (uint64_t i = h & edge_mask;; i = (i + 1) & edge_mask) {
      const Edge& e = edges[i];
      if (e.child == kNone) return kNone;
      if (e.parent == parent && e.Matches(seg, k, long_keys)) return e.child;
    }
  }

  uint32_t FindHost(std::string_view host) const noexcept {
    size_t lo = 0, hi = hosts.size();
    while (lo < hi) {
      size_t mid = (lo + hi) / 2;
      int c = CompareHostNoCase(host, hosts[mid].first);
      if (c == 0) return hosts[mid].second;
      if (c < 0) {
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    return kNone;
  }
};

// One depth-first walk. Writes param values into the Match as it descends;
// a later branch overwrites what a dead end left behind.
class Walker {
 public:
  Walker(const Tables& t, std::string_view method, std::string_view path, Match* m)
      : t_(t), method_(method), path_(path), m_(m) {}

  // `pos`: where the next segment starts; `more`: whether there is one (the
  // path "/a" ends after "a", the path "/a/" has one more, empty, segment).
  bool Visit(uint32_t node, size_t pos, bool more, int n) noexcept {
    const Tables::Node& nd = t_.nodes[node];
    if (!more) {
      if (nd.terminal() && TryRoutes(node, n)) return true;
      if (nd.catch_all != kNone && n < kMaxParams) {
        m_->params[n].value = path_.substr(path_.size());
        return TryRoutes(nd.catch_all, n + 1);
      }
      return false;
    }
    size_t slash = path_.find('/', pos);
    bool next_more = slash != std::string_view::npos;
    size_t end = next_more ? slash : path_.size();
    std::string_view seg = path_.substr(pos, end - pos);
    size_t next = next_more ? slash + 1 : path_.size();
    if (nd.literal_count != 0) {
      uint32_t child = t_.FindLiteral(node, seg);
      if (child != kNone && Visit(child, next, next_more, n)) return true;
    }
    if (nd.param != kNone && !seg.empty() && n < kMaxParams) {
      m_->params[n].value = seg;
      if (Visit(nd.param, next, next_more, n + 1)) return true;
    }
    if (nd.catch_all != kNone && n < kMaxParams) {
      m_->params[n].value = path_.substr(pos);
      return TryRoutes(nd.catch_all, n + 1);
    }
    return false;
  }

  uint32_t not_allowed_node() const { return not_allowed_node_; }

 private:
  bool TryRoutes(uint32_t node, int n) noexcept {
    const Tables::Node& nd = t_.nodes[node];
    if (!nd.terminal()) return false;
    uint32_t route = nd.any_route;
    for (uint32_t i = nd.disp_begin; i < nd.disp_begin + nd.disp_count; i++) {
      if (t_.dispatch[i].method == method_) {
        route = t_.dispatch[i].route;
        break;
      }
    }
    if (route == kNone) {
      // The most specific node that matched the path answers the 405.
      if (not_allowed_node_ == kNone) not_allowed_node_ = node;
      return false;
    }
    const Tables::Route& r = t_.routes[route];
    HMS_CHECK(static_cast<int>(r.names_count) == n);
    m_->kind = MatchKind::kFound;
    m_->target = r.target;
    m_->template_ = r.path_template;
    m_->param_count = n;
    for (int i = 0; i < n; i++) m_->params[i].name = t_.names[r.names_begin + i];
    return true;
  }

  const Tables& t_;
  std::string_view method_;
  std::string_view path_;
  Match* m_;
  uint32_t not_allowed_node_ = kNone;
};

// The trie while it is built. Literal edges of every node live in one map
// keyed by (parent, segment), not a map per node: a million-route table has
// millions of nodes, most with one child, and a per-node map costs ~200 bytes
// where the shared one costs ~50 per edge.
struct BuildNode {
  uint32_t literal_count = 0;
  uint32_t param = kNone;
  uint32_t catch_all = kNone;
  uint32_t first_route = kNone;  // routes ending here, linked through BuildTrie::next_route
  uint32_t last_route = kNone;
};

struct EdgeKey {
  uint32_t parent;
  std::string_view seg;
  bool operator==(const EdgeKey&) const = default;
};

struct EdgeKeyHash {
  size_t operator()(const EdgeKey& k) const noexcept {
    return HashEdge(k.parent, k.seg, WordsOf(k.seg));
  }
};

struct BuildTrie {
  std::vector<BuildNode> nodes{1};  // node 0: the any-host root
  std::unordered_map<EdgeKey, uint32_t, EdgeKeyHash> literals;
  std::vector<uint32_t> next_route;  // per route: the next route ending at its node

  uint32_t NewNode() {
    nodes.emplace_back();
    return static_cast<uint32_t>(nodes.size() - 1);
  }
  void AddRoute(uint32_t node, uint32_t route) {
    BuildNode& b = nodes[node];
    if (b.last_route == kNone) {
      b.first_route = route;
    } else {
      next_route[b.last_route] = route;
    }
    b.last_route = route;
  }
};

struct RouteInfo {
  std::vector<std::string_view> methods;  // deduplicated, in the order given; empty: any
  std::string host;                       // normalized; empty: any host
};

bool MethodsOverlap(const RouteInfo& a, const RouteInfo& b) {
  if (a.methods.empty() || b.methods.empty()) return true;
  for (std::string_view m : a.methods) {
    if (std::find(b.methods.begin(), b.methods.end(), m) != b.methods.end()) return true;
  }
  return false;
}

std::string Describe(std::string_view path_template, const RouteInfo& info) {
  std::string s;
  if (info.methods.empty()) {
    s = "ANY";
  } else {
    for (size_t i = 0; i < info.methods.size(); i++) {
      if (i > 0) s += ',';
      s += info.methods[i];
    }
  }
  s += ' ';
  s += path_template;
  if (!info.host.empty()) s += " (host " + info.host + ")";
  return s;
}

// Empty on success, else the reason.
std::string CheckMethods(const RouteSpec& spec, std::vector<std::string_view>* out) {
  for (const std::string& m : spec.methods) {
    if (m.empty()) return "empty method name";
    for (char c : m) {
      if (c >= 'a' && c <= 'z') return "method " + Quote(m) + " must be upper-case";
      if (!http::IsTokenChar(c)) return "invalid character " + ShowChar(c) + " in method " + Quote(m);
    }
    if (std::find(out->begin(), out->end(), m) == out->end()) out->push_back(m);
  }
  return {};
}

std::string NormalizeHost(std::string_view host) {
  std::string h(StripPort(host));
  for (char& c : h) c = ToLowerAscii(c);
  return h;
}

// Walks (and grows) the build trie from `node` along a template's segments;
// returns the node where the route ends. Parameter names go to `t->names`.
uint32_t Descend(BuildTrie* trie, uint32_t node, const std::vector<Segment>& segs, Tables* t,
                 Tables::Route* route) {
  for (const Segment& s : segs) {
    uint32_t next = kNone;
    switch (s.kind) {
      case SegKind::kLiteral: {
        const auto [it, inserted] = trie->literals.try_emplace(EdgeKey{node, s.text}, kNone);
        if (inserted) {
          it->second = trie->NewNode();  // invalidates references into nodes: index only
          trie->nodes[node].literal_count++;
        }
        next = it->second;
        break;
      }
      case SegKind::kParam:
        next = trie->nodes[node].param;
        if (next == kNone) next = trie->nodes[node].param = trie->NewNode();
        break;
      case SegKind::kCatchAll:
        next = trie->nodes[node].catch_all;
        if (next == kNone) next = trie->nodes[node].catch_all = trie->NewNode();
        break;
    }
    if (s.kind != SegKind::kLiteral) {
      t->names.push_back(s.text);
      route->names_count++;
    }
    node = next;
  }
  return node;
}

// The literal edges of every node: a short list scanned in order (side by
// side, at offsets counted first), or slots in the shared open-addressing
// table. Placed straight from the build map, with no sorted copy of it.
void AddEdges(const BuildTrie& trie, Tables* t) {
  size_t hashed = 0, small = 0;
  for (uint32_t n = 0; n < trie.nodes.size(); n++) {
    const uint32_t count = trie.nodes[n].literal_count;
    if (count > Tables::kLinearEdges) {
      hashed += count;
    } else {
      t->nodes[n].literal_begin = static_cast<uint32_t>(small);
      small += count;
    }
  }
  size_t cap = 16;
  while (cap < hashed * 2) cap <<= 1;  // load factor ≤ 0.5: short probe runs
  t->edges.assign(cap, Tables::Edge{});
  t->edge_mask = cap - 1;
  t->small_edges.resize(small);
  for (const auto& [key, child] : trie.literals) {
    const uint32_t n = key.parent;
    KeyWords k = WordsOf(key.seg);
    Tables::Edge e;
    e.w0 = k.w0;
    e.w1 = k.w1;
    e.key_len = static_cast<uint32_t>(key.seg.size());
    e.child = child;
    e.parent = n;
    if (key.seg.size() > 16) {
      e.long_key = static_cast<uint32_t>(t->long_keys.size());
      t->long_keys.push_back(key.seg.data());
    }
    Tables::Node& node = t->nodes[n];
    if (trie.nodes[n].literal_count <= Tables::kLinearEdges) {
      t->small_edges[node.literal_begin + node.literal_count++] = e;
      continue;
    }
    node.literal_count++;
    uint64_t i = HashEdge(n, key.seg, k) & t->edge_mask;
    while (t->edges[i].child != kNone) i = (i + 1) & t->edge_mask;
    t->edges[i] = e;
  }
}

// The method dispatch of a node where routes end, and its Allow text.
void AddDispatch(const BuildTrie& trie, const BuildNode& b, const std::vector<RouteInfo>& infos,
                 Tables::Node* out, Tables* t) {
  // Explicit methods first, then HEAD answered by the GET route unless some
  // route lists HEAD itself: TryRoutes takes the first entry that matches.
  out->disp_begin = static_cast<uint32_t>(t->dispatch.size());
  bool has_get = false, has_head = false;
  uint32_t get_route = kNone;
  std::set<std::string_view> allow;
  for (uint32_t r = b.first_route; r != kNone; r = trie.next_route[r]) {
    if (infos[r].methods.empty()) {
      out->any_route = r;
      continue;
    }
    for (std::string_view m : infos[r].methods) {
      t->dispatch.push_back(Tables::Dispatch{m, r});
      allow.insert(m);
      if (m == "GET") {
        has_get = true;
        get_route = r;
      }
      if (m == "HEAD") has_head = true;
    }
  }
  if (has_get && !has_head) {
    t->dispatch.push_back(Tables::Dispatch{"HEAD", get_route});
    allow.insert("HEAD");
  }
  out->disp_count = static_cast<uint32_t>(t->dispatch.size()) - out->disp_begin;
  if (out->any_route == kNone) {
    std::string s;
    for (std::string_view m : allow) {
      if (!s.empty()) s += ", ";
      s += m;
    }
    out->allow = static_cast<uint32_t>(t->allow_strings.size());
    t->allow_strings.push_back(std::move(s));
  }
}

}  // namespace

struct RouteTable::Impl : Tables {};

Result<bool> ValidateTemplate(std::string_view path_template) {
  std::vector<Segment> segs;
  std::string err = ParseTemplate(path_template, &segs);
  if (!err.empty()) return ConfigError(std::move(err));
  return true;
}

RouteTable::RouteTable() = default;

RouteTable::~RouteTable() { delete impl_; }

RouteTable::RouteTable(RouteTable&& other) noexcept : impl_(std::exchange(other.impl_, nullptr)) {}

RouteTable& RouteTable::operator=(RouteTable&& other) noexcept {
  if (this != &other) {
    delete impl_;
    impl_ = std::exchange(other.impl_, nullptr);
  }
  return *this;
}

size_t RouteTable::size() const noexcept { return impl_ == nullptr ? 0 : impl_->routes.size(); }

Result<RouteTable> RouteTable::Build(std::vector<RouteSpec> routes) {
  return Build(std::move(routes), nullptr);
}

Result<RouteTable> RouteTable::Build(std::vector<RouteSpec> specs, const WhereFn& where_of) {
  auto impl = std::make_unique<Impl>();
  // Reserved once: views into the templates stay valid for the table's life.
  impl->templates.reserve(specs.size());
  for (RouteSpec& spec : specs) impl->templates.push_back(std::move(spec.path_template));
  auto prefix = [&](uint32_t i) {
    const std::string where = where_of ? where_of(specs[i]) : specs[i].where;
    return where.empty() ? std::string() : where + ": ";
  };

  BuildTrie trie;
  // Reserved (address space; pages are touched as used), so no vector is
  // copied on growth while a million routes go in: a copy's peak is twice
  // the vector.
  trie.nodes.reserve(specs.size() * 4 + 1);
  impl->names.reserve(specs.size() * 2);
  trie.literals.reserve(specs.size() * 2);
  trie.next_route.assign(specs.size(), kNone);
  std::map<std::string, uint32_t> host_roots;
  std::vector<RouteInfo> infos(specs.size());
  std::vector<Segment> segs;
  impl->routes.reserve(specs.size());

  for (uint32_t i = 0; i < specs.size(); i++) {
    const RouteSpec& spec = specs[i];
    const std::string& path_template = impl->templates[i];
    RouteInfo& info = infos[i];
    std::string err = ParseTemplate(path_template, &segs);
    if (!err.empty()) {
      return ConfigError(prefix(i) + "bad path template " + Quote(path_template) + ": " + err);
    }
    err = CheckMethods(spec, &info.methods);
    if (!err.empty()) return ConfigError(prefix(i) + err);
    for (std::string_view& m : info.methods) m = *impl->method_names.emplace(m).first;
    uint32_t node = 0;
    if (!spec.host.empty()) {
      info.host = NormalizeHost(spec.host);
      if (info.host.empty()) {
        return ConfigError(prefix(i) + "host " + Quote(spec.host) + " has no name");
      }
      auto [it, inserted] = host_roots.emplace(info.host, kNone);
      if (inserted) it->second = trie.NewNode();
      node = it->second;
    }

    Tables::Route route{spec.target, path_template, static_cast<uint32_t>(impl->names.size()), 0};
    node = Descend(&trie, node, segs, impl.get(), &route);

    for (uint32_t earlier = trie.nodes[node].first_route; earlier != kNone;
         earlier = trie.next_route[earlier]) {
      if (MethodsOverlap(infos[earlier], info)) {
        std::string msg = prefix(i) + "route " + Quote(Describe(path_template, info)) +
                          " clashes with " +
                          Quote(Describe(impl->templates[earlier], infos[earlier]));
        const std::string at = prefix(earlier);
        if (!at.empty()) msg += " at " + at.substr(0, at.size() - 2);
        return ConfigError(std::move(msg));
      }
    }
    trie.AddRoute(node, i);
    impl->routes.push_back(route);
  }

  // Flatten, freeing each build structure once its last reader is done (a
  // million-route build's peak is the sum of what is alive at once).
  specs = {};
  impl->nodes.resize(trie.nodes.size());
  for (uint32_t n = 0; n < trie.nodes.size(); n++) {
    const BuildNode& b = trie.nodes[n];
    Impl::Node& out = impl->nodes[n];
    out.param = b.param;
    out.catch_all = b.catch_all;
    if (b.first_route != kNone) AddDispatch(trie, b, infos, &out, impl.get());
  }
  infos = {};
  AddEdges(trie, impl.get());
  impl->hosts.assign(host_roots.begin(), host_roots.end());

  RouteTable table;
  table.impl_ = impl.release();
  return table;
}

Match RouteTable::Find(std::string_view host, std::string_view method,
                       std::string_view path) const noexcept {
  Match m;
  if (impl_ == nullptr || path.empty() || path[0] != '/') return m;
  Walker w(*impl_, method, path, &m);
  bool more = path.size() > 1;  // "/" is the root itself, no segment
  if (!impl_->hosts.empty()) {
    uint32_t root = impl_->FindHost(StripPort(host));
    if (root != kNone && w.Visit(root, 1, more, 0)) return m;
  }
  if (w.Visit(0, 1, more, 0)) return m;
  m.param_count = 0;
  if (w.not_allowed_node() != kNone) {
    m.kind = MatchKind::kMethodNotAllowed;
    m.allow = impl_->allow_strings[impl_->nodes[w.not_allowed_node()].allow];
  }
  return m;
}

}  // namespace hms::route
