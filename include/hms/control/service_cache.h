// The services a gateway serves, kept parsed from one reload to the next
// (docs/config.md "Incremental reload"): each stored service by its name and
// stamp (StoredService::stamp), re-parsed only when its stamp moves, so a
// reload after one registration among 10,000 services parses one file. The
// snapshot is still compiled whole from what the cache holds.
//
// A service whose current text does not load keeps its last good version
// (DESIGN §6: one bad entry must not take the others down, nor its own
// routes); a deregistered one is forgotten. Control thread only (it is the
// gateway's Compile step's); allocates.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "hms/config/snapshot.h"
#include "hms/control/store.h"

namespace hms::control {

class ServiceCache {
 public:
  struct Loaded {
    // What to compile, in the store's order. The configs point into the
    // cache (valid until the next Load), the endpoints into `stored`.
    std::vector<config::ServiceInput> services;
    // One line per stored service that does not load: "service NAME: why;
    // serving its last good version" (or "; not served").
    std::vector<std::string> problems;
  };

  // `stored`: the store's List(). Parses what is new or changed (on several
  // threads when there is much of it) and forgets what is gone.
  Loaded Load(const std::vector<StoredService>& stored);

  // Services parsed by Load since the cache was made: a reload that parses
  // only what changed adds the changed ones.
  uint64_t parsed_total() const { return parsed_total_; }

 private:
  struct Entry {
    std::string stamp, source;  // of the text last parsed
    std::string error;          // why that text does not load; "" when it does
    std::optional<config::ServiceConfig> good;  // the last version that loaded
  };
  // Whether `e` was parsed from what `s` holds now.
  static bool Current(const Entry& e, const StoredService& s) {
    return !s.stamp.empty() && e.stamp == s.stamp && e.source == s.source;
  }

  std::map<std::string, Entry> entries_;  // by stored name; a map never moves its values
  uint64_t parsed_total_ = 0;
};

}  // namespace hms::control
