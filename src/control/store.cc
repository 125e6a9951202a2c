// Store URIs: which implementation a "scheme:rest" string names.
#include "hms/control/store.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <set>
#include <string>

#include "hms/config/config.h"
#include "hms/control/etcd_store.h"

namespace hms::control {

Result<bool> CheckRegistration(const std::vector<StoredService>& services) {
  auto fail = [](std::string m) { return Error{std::move(m), Side::kConfig, false}; };
  std::set<std::string> names;
  for (const StoredService& s : services) {
    if (!config::IsValidServiceName(s.name)) return fail("'" + s.name + "' is not a valid service name");
    if (!names.insert(s.name).second) {
      return fail("service '" + s.name + "' appears twice in one registration");
    }
    if (s.text.empty()) return fail("service '" + s.name + "' has an empty route file");
  }
  if (services.empty()) return fail("nothing to register");
  return true;
}

Result<config::ServiceConfig> LoadStoredService(const StoredService& s) {
  const std::string source = s.source.empty() ? s.name : s.source;
  Result<config::ServiceConfig> parsed = config::ParseServiceConfig(s.text, source);
  if (!parsed.ok() || parsed->service == s.name) return parsed;
  return ConfigError(source + ":" + std::to_string(parsed->line) + ": service: '" +
                     parsed->service + "' is not the name it is stored under ('" + s.name +
                     "'): a store file's service name must match its file name");
}

config::ServiceConfig WithStoredEndpoints(config::ServiceConfig c, const StoredService& s) {
  c.endpoints.insert(c.endpoints.end(), s.endpoints.begin(), s.endpoints.end());
  return c;
}

std::vector<config::ServiceConfig> LoadStoredServices(const std::vector<StoredService>& stored,
                                                      std::vector<std::string>* problems) {
  std::vector<config::ServiceConfig> services;
  for (const StoredService& s : stored) {
    Result<config::ServiceConfig> c = LoadStoredService(s);
    if (c.ok()) {
      services.push_back(WithStoredEndpoints(std::move(c.value()), s));
    } else {
      problems->push_back(s.name + ": " + c.error().message);
    }
  }
  return services;
}

std::string DefaultStoreUri() {
  const char* env = std::getenv("HMS_STORE");
  if (env != nullptr && env[0] != '\0') return env;
  // /var/lib/hms when this user may write there (root, or a packaged install
  // that created it for the service account).
  struct stat st;
  if (stat("/var/lib/hms", &st) == 0 ? access("/var/lib/hms", W_OK) == 0
                                     : access("/var/lib", W_OK) == 0) {
    return "file:/var/lib/hms";
  }
  std::string home;
  const char* h = std::getenv("HOME");
  if (h != nullptr && h[0] != '\0') {
    home = h;
  } else if (const passwd* pw = getpwuid(getuid()); pw != nullptr && pw->pw_dir != nullptr) {
    home = pw->pw_dir;
  } else {
    home = "/tmp";
  }
  return "file:" + home + "/.local/state/hms";
}

Result<std::unique_ptr<Store>> OpenStore(const std::string& uri) {
  const size_t colon = uri.find(':');
  if (colon == std::string::npos || colon == 0) {
    return Error{"store URI '" + uri + "' has no scheme (expected file:DIR or etcd://HOST:PORT)",
                 Side::kConfig, false};
  }
  const std::string scheme = uri.substr(0, colon);
  std::string rest = uri.substr(colon + 1);
  if (scheme == "file") {
    // "file:///var/lib/hms" (URL form) and "file:/var/lib/hms" name the same directory.
    if (rest.starts_with("//")) rest.erase(0, 2);
    return OpenFileStore(rest);
  }
  if (scheme == "etcd") {
    Result<std::unique_ptr<EtcdStore>> etcd = OpenEtcdStore(uri);
    if (!etcd) return etcd.error();
    return std::unique_ptr<Store>(std::move(etcd.value()));
  }
  return Error{"unsupported store scheme '" + scheme +
                   "' (expected file:DIR or etcd://HOST:PORT[,HOST:PORT...])",
               Side::kConfig, false};
}

}  // namespace hms::control
