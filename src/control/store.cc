// Store URIs: which implementation a "scheme:rest" string names.
#include "hms/control/store.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>

#include "hms/common/hash.h"
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

std::string StoredSource(const StoredService& s) { return s.source.empty() ? s.name : s.source; }

Result<config::ServiceConfig> CheckStoredName(const StoredService& s,
                                              Result<config::ServiceConfig> parsed) {
  if (!parsed.ok() || parsed->service == s.name) return parsed;
  return ConfigError(StoredSource(s) + ":" + std::to_string(parsed->line) + ": service: '" +
                     parsed->service + "' is not the name it is stored under ('" + s.name +
                     "'): a store file's service name must match its file name");
}

Result<config::ServiceConfig> LoadStoredService(const StoredService& s) {
  return CheckStoredName(s, config::ParseServiceConfig(s.text, StoredSource(s)));
}

std::vector<Result<config::ServiceConfig>> LoadStoredServicesEach(
    const std::vector<const StoredService*>& stored) {
  std::vector<std::string> sources;
  sources.reserve(stored.size());
  for (const StoredService* s : stored) sources.push_back(StoredSource(*s));
  std::vector<config::RouteFileText> files;
  files.reserve(stored.size());
  for (size_t i = 0; i < stored.size(); ++i) files.push_back({&stored[i]->text, &sources[i]});
  std::vector<Result<config::ServiceConfig>> parsed = config::ParseServiceConfigs(files);
  std::vector<Result<config::ServiceConfig>> out;
  out.reserve(stored.size());
  for (size_t i = 0; i < stored.size(); ++i) {
    out.push_back(CheckStoredName(*stored[i], std::move(parsed[i])));
  }
  return out;
}

config::ServiceConfig WithStoredEndpoints(config::ServiceConfig c, const StoredService& s) {
  c.endpoints.insert(c.endpoints.end(), s.endpoints.begin(), s.endpoints.end());
  return c;
}

std::vector<config::ServiceConfig> LoadStoredServices(const std::vector<StoredService>& stored,
                                                      std::vector<std::string>* problems) {
  std::vector<const StoredService*> each;
  for (const StoredService& s : stored) each.push_back(&s);
  std::vector<Result<config::ServiceConfig>> loaded = LoadStoredServicesEach(each);
  std::vector<config::ServiceConfig> services;
  for (size_t i = 0; i < stored.size(); ++i) {
    if (loaded[i].ok()) {
      services.push_back(WithStoredEndpoints(std::move(loaded[i].value()), stored[i]));
    } else {
      problems->push_back(stored[i].name + ": " + loaded[i].error().message);
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

Result<int64_t> Store::PutMember(const std::string&, const std::string&, int64_t) {
  return Error{Uri() + ": this store keeps no fleet records", Side::kInternal, false};
}

Result<std::vector<std::string>> Store::ListMembers() {
  return Error{Uri() + ": this store keeps no fleet records", Side::kInternal, false};
}

std::string StoreFingerprint(const std::vector<StoredService>& services) {
  // Each field followed by a byte no text field holds (0xff is no UTF-8).
  uint64_t h = kFnvOffset;
  auto add = [&h](std::string_view v) { h = Fnv1a64("\xff", Fnv1a64(v, h)); };
  for (const StoredService& s : services) {
    add(s.name);
    add(s.text);
    for (const std::string& e : s.endpoints) add(e);
  }
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
  return out;
}

}  // namespace hms::control
