// Internal to src/config: typed reads from yaml-cpp nodes with "file:line:
// context: reason" errors. A failed read throws ConfigFailure, which never
// leaves src/config: every public function catches it (and yaml-cpp's own
// exceptions) and returns an Error instead (STYLE §2: control-plane code may
// throw internally and converts at its boundary).
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "hms/common/result.h"

namespace hms::config::internal {

struct ConfigFailure {
  std::string message;  // complete "file:line: reason"
};

// Levenshtein distance, for "did you mean" suggestions.
size_t EditDistance(std::string_view a, std::string_view b);

// The closest of `known` to `key` when it is close enough to be a typo, else "".
std::string Suggest(std::string_view key, std::initializer_list<std::string_view> known);

// 1-based line of a node, 0 when yaml-cpp has no mark for it.
int LineOf(const YAML::Node& node);

// One key of a mapping, with the line it was written on.
struct Field {
  std::string key;
  YAML::Node value;
  int line = 0;
};

class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  const std::string& source() const { return source_; }

  // Throws ConfigFailure with "source:line: context: reason".
  [[noreturn]] void Fail(int line, std::string_view context, std::string_view reason) const;
  [[noreturn]] void Fail(const YAML::Node& at, std::string_view context,
                         std::string_view reason) const {
    Fail(LineOf(at), context, reason);
  }

  // The fields of a mapping, in file order. Unknown keys (with a suggestion)
  // and keys written twice are errors; yaml-cpp itself accepts both silently.
  std::vector<Field> Fields(const YAML::Node& map, std::string_view context,
                            std::initializer_list<std::string_view> known) const;

  std::string String(const Field& f, std::string_view context) const;
  bool Bool(const Field& f, std::string_view context) const;
  uint64_t Unsigned(const Field& f, std::string_view context, uint64_t min, uint64_t max) const;
  uint64_t DurationMs(const Field& f, std::string_view context, uint64_t min_ms,
                      uint64_t max_ms) const;
  uint64_t Size(const Field& f, std::string_view context, uint64_t min, uint64_t max) const;
  std::vector<std::string> StringList(const Field& f, std::string_view context) const;
  // A `retry_on` list: policy::RetryOn bits (include/hms/policy/retry.h);
  // an unknown token, a repeated one or an empty list is an error.
  uint32_t RetryOn(const Field& f, std::string_view context) const;

 private:
  std::string source_;
};

// The first line (1-based) at or before `last_line` (0: any) whose
// indentation holds a tab; 0 when there is none.
int TabIndentedLine(std::string_view text, int last_line);

// Parses text into a document or throws ConfigFailure naming the line of the
// syntax error (a tab in the indentation is named as such, at its own line).
// An empty document is an error too ("file is empty").
YAML::Node ParseDocument(const std::string& text, const std::string& source);

// Reads a whole file; ConfigFailure "path: cannot read: strerror" on failure.
std::string ReadFile(const std::string& path);

// Joins a context path: Ctx("routes[0]", "rate_limit") = "routes[0].rate_limit".
std::string Ctx(std::string_view parent, std::string_view key);

}  // namespace hms::config::internal
