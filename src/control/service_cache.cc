#include "hms/control/service_cache.h"

#include <utility>

namespace hms::control {

ServiceCache::Loaded ServiceCache::Load(const std::vector<StoredService>& stored) {
  std::map<std::string, Entry> entries;
  std::vector<const StoredService*> changed;
  for (const StoredService& s : stored) {
    auto it = entries_.find(s.name);
    Entry& e = entries[s.name];
    if (it != entries_.end()) e = std::move(it->second);
    if (it == entries_.end() || !Current(e, s)) changed.push_back(&s);
  }
  std::vector<Result<config::ServiceConfig>> parsed = LoadStoredServicesEach(changed);
  parsed_total_ += changed.size();
  for (size_t i = 0; i < changed.size(); ++i) {
    Entry& e = entries[changed[i]->name];
    e.stamp = changed[i]->stamp;
    e.source = changed[i]->source;
    if (parsed[i].ok()) {
      e.good = std::move(parsed[i].value());
      e.error.clear();
    } else {
      e.error = parsed[i].error().message;
    }
  }
  entries_ = std::move(entries);  // deregistered services are forgotten

  Loaded out;
  out.services.reserve(stored.size());
  for (const StoredService& s : stored) {
    const Entry& e = entries_[s.name];
    if (!e.error.empty()) {
      out.problems.push_back("service " + s.name + ": " + e.error +
                             (e.good ? "; serving its last good version" : "; not served"));
    }
    if (e.good) out.services.push_back(config::ServiceInput{&*e.good, &s.endpoints});
  }
  return out;
}

}  // namespace hms::control
