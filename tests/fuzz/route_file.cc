// Fuzz target: the route-file reader (src/config/service_config.cc over
// yaml-cpp). ParseServiceConfig catches yaml-cpp's exceptions at its boundary
// (YAML::Exception and the reader's own failure): any exception that escapes
// it, or any crash inside yaml-cpp's use, is a real bug here.
//
// Properties: a refusal names the file ("fuzz.yaml:" and, from the reader,
// the line); an accepted file has a valid service name, and its routes build
// into a route table, or are refused naming the file, never a crash.
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "hms/config/config.h"
#include "hms/route/route_table.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;  // route files are small; big ones only slow the search
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto parsed = hms::config::ParseServiceConfig(text, "fuzz.yaml");
  if (!parsed) {
    FUZZ_CHECK(parsed.error().message.starts_with("fuzz.yaml"));
    return 0;
  }
  const hms::config::ServiceConfig& s = parsed.value();
  FUZZ_CHECK(hms::config::IsValidServiceName(s.service));
  std::vector<hms::route::RouteSpec> specs;
  for (size_t i = 0; i < s.routes.size(); ++i) {
    const auto& r = s.routes[i];
    FUZZ_CHECK(hms::route::ValidateTemplate(r.path).ok());
    hms::route::RouteSpec spec;
    spec.host = r.host;
    spec.methods = r.methods;
    spec.path_template = r.path;
    spec.target = static_cast<uint32_t>(i);
    spec.where = "fuzz.yaml:" + std::to_string(r.line);
    specs.push_back(std::move(spec));
  }
  auto table = hms::route::RouteTable::Build(std::move(specs));
  if (!table) FUZZ_CHECK(table.error().message.starts_with("fuzz.yaml:"));
  return 0;
}
