// Prometheus text exposition format 0.0.4 writer, for the admin /metrics page.
//
// Control thread only (it allocates); one object per scrape. Families keep the
// order of their first Family() call and all their samples stay together even
// when the caller interleaves families, so HELP and TYPE appear once per family
// as the format requires. Metric and label names are program constants: an
// invalid one is a bug and fails HMS_CHECK. Label values are data: any bytes,
// escaped (\\, \", \n) as the format says.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace hms::obs {

struct Label {
  std::string_view name;
  std::string_view value;
};

class Exposition {
 public:
  // Content-Type of the rendered text.
  static constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

  // Starts (or, if `name` was declared before, returns to) a family. `type` is
  // one of counter, gauge, histogram, summary, untyped. A counter's name gets
  // "_total" appended when it lacks it (OpenMetrics and promtool expect it).
  // Re-declaring a family with another type fails HMS_CHECK.
  void Family(std::string_view name, std::string_view type, std::string_view help);

  // A sample of the current family, named as the family.
  template <typename T>
    requires std::is_arithmetic_v<T>
  void Sample(std::initializer_list<Label> labels, T value) {
    SampleSuffixed({}, labels.begin(), labels.size(), value);
  }
  template <typename T>
    requires std::is_arithmetic_v<T>
  void Sample(const std::vector<Label>& labels, T value) {
    SampleSuffixed({}, labels.data(), labels.size(), value);
  }
  // A sample named family + suffix, for histograms and summaries:
  // "_bucket" (with an "le" label), "_sum", "_count".
  template <typename T>
    requires std::is_arithmetic_v<T>
  void Sample(std::string_view suffix, std::initializer_list<Label> labels, T value) {
    SampleSuffixed(suffix, labels.begin(), labels.size(), value);
  }
  template <typename T>
    requires std::is_arithmetic_v<T>
  void Sample(std::string_view suffix, const std::vector<Label>& labels, T value) {
    SampleSuffixed(suffix, labels.data(), labels.size(), value);
  }

  // The whole exposition, families in declaration order, ending in '\n'.
  // Families without samples are left out. The object is empty afterwards.
  std::string Finish();

  // Appends `v` escaped as a label value (\\, \", \n).
  static void EscapeLabelValue(std::string_view v, std::string* out);
  // Appends `v` escaped as HELP text (\\, \n).
  static void EscapeHelp(std::string_view v, std::string* out);
  // Appends a sample value: integers exactly, doubles in shortest round-trip
  // form, and +Inf, -Inf, NaN as the format spells them.
  static void AppendValue(double v, std::string* out);
  static void AppendValue(uint64_t v, std::string* out);
  static void AppendValue(int64_t v, std::string* out);

  static bool ValidMetricName(std::string_view name);
  static bool ValidLabelName(std::string_view name);

 private:
  struct FamilyText {
    std::string name;
    std::string type;
    std::string help;
    std::string samples;  // rendered sample lines
  };

  template <typename T>
  void SampleSuffixed(std::string_view suffix, const Label* labels, size_t n, T value) {
    std::string* line = BeginSample(suffix, labels, n);
    if constexpr (std::is_floating_point_v<T>) {
      AppendValue(static_cast<double>(value), line);
    } else if constexpr (std::is_signed_v<T>) {
      AppendValue(static_cast<int64_t>(value), line);
    } else {
      AppendValue(static_cast<uint64_t>(value), line);
    }
    line->push_back('\n');
  }
  // Writes "name{labels} " into the current family and returns its text.
  std::string* BeginSample(std::string_view suffix, const Label* labels, size_t n);

  std::vector<FamilyText> families_;
  size_t current_ = SIZE_MAX;
};

}  // namespace hms::obs
