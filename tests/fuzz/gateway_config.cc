// Fuzz target: the gateway-config and mesh-config readers
// (src/config/gateway_config.cc over yaml-cpp). Both loaders read a file and
// catch yaml-cpp's exceptions at their boundary, so the input is written to
// a file of this process's own scratch directory first; any exception that
// escapes, or any crash, is a real bug.
//
// Properties: a refusal names the file; an accepted config passes
// ValidateGatewayConfig (what start-up checks again) and has listeners.
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "fuzz_check.h"
#include "hms/config/config.h"

namespace {

std::string& Path() {
  static std::string* path = [] {
    const char* tmp = getenv("TMPDIR");
    std::string dir = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                      "/hms-fuzz-config-XXXXXX";
    FUZZ_CHECK(mkdtemp(dir.data()) != nullptr);
    return new std::string(dir + "/gateway.yaml");
  }();
  return *path;
}

// The scratch file goes when the process exits normally (a crash leaves it
// for the reproducer's inspection).
struct Cleanup {
  ~Cleanup() {
    if (!Path().empty()) {
      std::remove(Path().c_str());
      rmdir(Path().substr(0, Path().rfind('/')).c_str());
    }
  }
} cleanup;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;
  const std::string& path = Path();
  FILE* f = std::fopen(path.c_str(), "wb");
  FUZZ_CHECK(f != nullptr);
  FUZZ_CHECK(std::fwrite(data, 1, size, f) == size);
  FUZZ_CHECK(std::fclose(f) == 0);

  auto gw = hms::config::LoadGatewayConfig(path);
  if (!gw) {
    FUZZ_CHECK(gw.error().message.starts_with(path));
  } else {
    FUZZ_CHECK(hms::config::ValidateGatewayConfig(gw.value()).ok());
  }
  auto mesh = hms::config::LoadMeshConfig(path);
  if (!mesh) FUZZ_CHECK(mesh.error().message.starts_with(path));
  return 0;
}
