#include "yaml_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <set>

#include "hms/common/file_check.h"
#include "hms/config/config.h"

namespace hms::config::internal {
namespace {

std::string Quote(std::string_view s) { return "'" + std::string(s) + "'"; }

const char* KindName(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Scalar:
      return "a scalar";
    default:
      return "an undefined value";
  }
}

}  // namespace

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string Suggest(std::string_view key, std::initializer_list<std::string_view> known) {
  std::string best;
  size_t best_d = std::numeric_limits<size_t>::max();
  // A truncated key ("hs256_secret" for "hs256_secret_file") is a typo too.
  for (std::string_view k : known) {
    if (key.size() >= 4 && k.starts_with(key)) return std::string(k);
  }
  for (std::string_view k : known) {
    const size_t d = EditDistance(key, k);
    if (d < best_d) {
      best_d = d;
      best = std::string(k);
    }
  }
  // A typo is a few edits away, and not most of the word (else "id" would
  // suggest "ca").
  const size_t limit = std::max<size_t>(1, std::min<size_t>(3, (key.size() + 1) / 2));
  return best_d <= limit ? best : std::string();
}

int LineOf(const YAML::Node& node) {
  if (!node.IsDefined()) return 0;
  const YAML::Mark m = node.Mark();
  return m.is_null() ? 0 : m.line + 1;
}

void Reader::Fail(int line, std::string_view context, std::string_view reason) const {
  std::string msg = source_;
  if (line > 0) msg += ":" + std::to_string(line);
  msg += ": ";
  if (!context.empty()) {
    msg += context;
    msg += ": ";
  }
  msg += reason;
  throw ConfigFailure{std::move(msg)};
}

std::vector<Field> Reader::Fields(const YAML::Node& map, std::string_view context,
                                  std::initializer_list<std::string_view> known) const {
  if (!map.IsMap()) {
    Fail(map, context, std::string("expected a map, found ") + KindName(map));
  }
  std::vector<Field> out;
  std::set<std::string> seen;
  for (auto it = map.begin(); it != map.end(); ++it) {
    const YAML::Node key = it->first;
    if (!key.IsScalar()) Fail(key, context, "keys must be plain strings");
    Field f{key.Scalar(), it->second, LineOf(key)};
    if (std::find(known.begin(), known.end(), f.key) == known.end()) {
      std::string reason = "unknown key " + Quote(f.key);
      const std::string hint = Suggest(f.key, known);
      if (!hint.empty()) reason += " (did you mean " + Quote(hint) + "?)";
      Fail(f.line, context, reason);
    }
    if (!seen.insert(f.key).second) Fail(f.line, context, "key " + Quote(f.key) + " appears twice");
    out.push_back(std::move(f));
  }
  return out;
}

std::string Reader::String(const Field& f, std::string_view context) const {
  if (!f.value.IsScalar()) {
    Fail(f.line, Ctx(context, f.key), std::string("expected a string, found ") + KindName(f.value));
  }
  return f.value.Scalar();
}

bool Reader::Bool(const Field& f, std::string_view context) const {
  const std::string s = String(f, context);
  if (s == "true" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "no" || s == "off") return false;
  Fail(f.line, Ctx(context, f.key), "expected true or false, found '" + s + "'");
}

uint64_t Reader::Unsigned(const Field& f, std::string_view context, uint64_t min,
                          uint64_t max) const {
  const std::string s = String(f, context);
  uint64_t v = 0;
  bool ok = !s.empty() && s.size() <= 20;
  for (char c : s) {
    if (c < '0' || c > '9' || __builtin_mul_overflow(v, 10, &v) ||
        __builtin_add_overflow(v, static_cast<uint64_t>(c - '0'), &v)) {
      ok = false;
      break;
    }
  }
  if (!ok) Fail(f.line, Ctx(context, f.key), "expected a whole number, found '" + s + "'");
  if (v < min || v > max) {
    Fail(f.line, Ctx(context, f.key),
         s + " is out of range " + std::to_string(min) + ".." + std::to_string(max));
  }
  return v;
}

uint64_t Reader::DurationMs(const Field& f, std::string_view context, uint64_t min_ms,
                            uint64_t max_ms) const {
  const std::string s = String(f, context);
  const std::optional<uint64_t> v = ParseDurationMs(s);
  if (!v) {
    Fail(f.line, Ctx(context, f.key),
         "'" + s + "' is not a duration (write it with a unit: 250ms, 2s, 1m, 1h)");
  }
  if (*v < min_ms) {
    Fail(f.line, Ctx(context, f.key),
         min_ms == 1 ? "'" + s + "' must be more than zero"
                     : "'" + s + "' is below the minimum of " + std::to_string(min_ms) + "ms");
  }
  if (*v > max_ms) {
    Fail(f.line, Ctx(context, f.key),
         "'" + s + "' is above the maximum of " + std::to_string(max_ms) + "ms");
  }
  return *v;
}

uint64_t Reader::Size(const Field& f, std::string_view context, uint64_t min, uint64_t max) const {
  const std::string s = String(f, context);
  const std::optional<uint64_t> v = ParseSize(s);
  if (!v) {
    Fail(f.line, Ctx(context, f.key),
         "'" + s + "' is not a size (bytes, or with a unit: 64KiB, 1MiB, 1GiB)");
  }
  if (*v < min || *v > max) {
    Fail(f.line, Ctx(context, f.key),
         "'" + s + "' is out of range " + std::to_string(min) + ".." + std::to_string(max) +
             " bytes");
  }
  return *v;
}

std::vector<std::string> Reader::StringList(const Field& f, std::string_view context) const {
  if (!f.value.IsSequence()) {
    Fail(f.line, Ctx(context, f.key), std::string("expected a list, found ") + KindName(f.value));
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < f.value.size(); ++i) {
    const YAML::Node item = f.value[i];
    const std::string ctx = Ctx(context, f.key) + "[" + std::to_string(i) + "]";
    if (!item.IsScalar())
      Fail(item, ctx, std::string("expected a string, found ") + KindName(item));
    out.push_back(item.Scalar());
  }
  return out;
}

uint32_t Reader::RetryOn(const Field& f, std::string_view context) const {
  const std::vector<std::string> tokens = StringList(f, context);
  if (tokens.empty()) Fail(f.line, Ctx(context, f.key), "empty: omit the key for the default");
  uint32_t bits = 0;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string ctx = Ctx(context, f.key) + "[" + std::to_string(i) + "]";
    const uint32_t bit = policy::ParseRetryOn(tokens[i]);
    if (bit == 0) {
      Fail(f.value[i], ctx,
           "'" + tokens[i] + "' must be 500, 502, 503, 504, connect-failure, reset or timeout");
    }
    if ((bits & bit) != 0) Fail(f.value[i], ctx, "'" + tokens[i] + "' appears twice");
    bits |= bit;
  }
  return bits;
}

int TabIndentedLine(std::string_view text, int last_line) {
  int line = 1;
  bool at_indent = true;  // still in the line's leading whitespace
  for (char c : text) {
    if (last_line > 0 && line > last_line) break;
    if (c == '\n') {
      ++line;
      at_indent = true;
    } else if (at_indent && c == '\t') {
      return line;
    } else if (c != ' ') {
      at_indent = false;
    }
  }
  return 0;
}

YAML::Node ParseDocument(const std::string& text, const std::string& source) {
  // Store texts reach here without a file read: the same limit, before parsing.
  if (std::string why = OversizedText(text.size(), source); !why.empty()) throw ConfigFailure{why};
  YAML::Node doc;
  try {
    doc = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    const int error_line = e.mark.is_null() ? 0 : e.mark.line + 1;
    // yaml-cpp reports a tab in the indentation as "illegal block entry" or
    // "illegal map value" somewhere below it; editors insert tabs unseen, so
    // name the tab and its line. Only on a failed parse: a tab before a
    // JSON (flow) line is legal YAML.
    if (const int tab = TabIndentedLine(text, error_line); tab > 0) {
      throw ConfigFailure{source + ":" + std::to_string(tab) +
                          ": syntax error: a tab indents this line; YAML indents with spaces "
                          "only"};
    }
    std::string msg = source;
    if (error_line > 0) msg += ":" + std::to_string(error_line);
    throw ConfigFailure{msg + ": syntax error: " + e.msg};
  }
  if (!doc.IsDefined() || doc.IsNull()) throw ConfigFailure{source + ": file is empty"};
  return doc;
}

std::string ReadFile(const std::string& path) {
  Result<std::string> text = ReadConfigFile(path);
  if (!text) throw ConfigFailure{text.error().message};
  return std::move(text.value());
}

std::string Ctx(std::string_view parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  return std::string(parent) + "." + std::string(key);
}

}  // namespace hms::config::internal

namespace hms::config {

std::string OversizedText(uint64_t bytes, const std::string& source) {
  if (bytes <= kMaxConfigFileBytes) return "";
  return source + ": " + std::to_string(bytes) + " bytes, over the limit of " +
         std::to_string(kMaxConfigFileBytes >> 20) +
         " MiB for a config or route file (refused before parsing; split it into one file "
         "per service)";
}

Result<std::string> ReadConfigFile(const std::string& path) {
  // A directory opens as an ifstream and reads as an empty file: say what it is.
  if (std::string why = UnreadableFile(path); !why.empty()) return ConfigError(why);
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ConfigError(path + ": cannot read: " + std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    close(fd);
    return ConfigError(path + ": cannot read: " + std::strerror(err));
  }
  // Judged on the size before a byte is read: yaml-cpp's tree takes about 30
  // times a file's size in memory and parses some 7 MB a second (a 40 MB list
  // took 6 s and 1.26 GB before being refused), so a huge file is refused at
  // once instead of after a long parse.
  if (std::string why = OversizedText(static_cast<uint64_t>(st.st_size), path); !why.empty()) {
    close(fd);
    return ConfigError(why);
  }
  std::string text;
  text.resize(static_cast<size_t>(st.st_size));
  size_t off = 0;
  for (;;) {
    if (off == text.size()) text.resize(off + 4096);  // grew since the fstat
    const ssize_t n = read(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      close(fd);
      return ConfigError(path + ": cannot read: " + std::strerror(err));
    }
    if (n == 0) break;
    off += static_cast<size_t>(n);
    if (std::string why = OversizedText(off, path); !why.empty()) {
      close(fd);
      return ConfigError(why);
    }
  }
  close(fd);
  text.resize(off);
  return text;
}

}  // namespace hms::config
