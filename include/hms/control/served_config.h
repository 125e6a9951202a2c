// What the gateway serves, as the admin API reports it: the current
// snapshot, and why it may not be what the store holds (the store could not
// be read, or something in it did not load and the last good version
// serves). The control thread replaces it; the admin API's thread reads it.
// Both may call every method: a mutex guards it (control/ may lock).
#pragma once

#include <mutex>
#include <string>

#include "hms/config/snapshot.h"

namespace hms::control {

// One attempt at a new snapshot, as the gateway's compile step reports it.
struct Compiled {
  // Null: nothing to publish, the last good snapshot keeps serving.
  config::Snapshot* snapshot = nullptr;
  // The store could not be read ("" when it was); the other fields are then
  // not meaningful and what /healthz says of the config stays as it was.
  std::string store_error;
  // Why what serves is not what the store holds ("" when it is): the
  // compile's error when `snapshot` is null, else the stored services that
  // did not load and serve their last good version.
  std::string stale;
};

class ServedConfig {
 public:
  ServedConfig() = default;
  ServedConfig(const ServedConfig&) = delete;
  ServedConfig& operator=(const ServedConfig&) = delete;
  ~ServedConfig() { SetCurrent(nullptr); }

  // Takes the caller's reference to `s` and drops the previous snapshot's.
  void SetCurrent(config::Snapshot* s) {
    std::lock_guard<std::mutex> lock(mu_);
    if (current_ != nullptr) current_->Release();
    current_ = s;
  }
  // Runs f(snapshot) with the current snapshot held; nothing without one.
  template <typename F>
  void With(F&& f) {
    std::lock_guard<std::mutex> lock(mu_);
    if (current_ != nullptr) f(*current_);
  }
  std::string ConfigJson() {
    std::lock_guard<std::mutex> lock(mu_);
    return current_ != nullptr ? current_->ToJson() : "{}";
  }
  // Records what `c` says of the store and the config (not its snapshot);
  // true when it carries a snapshot to publish.
  bool Note(const Compiled& c) {
    std::lock_guard<std::mutex> lock(mu_);
    store_error_ = c.store_error;
    if (c.store_error.empty()) stale_ = c.stale;
    return c.store_error.empty() && c.snapshot != nullptr;
  }
  std::string store_error() {
    std::lock_guard<std::mutex> lock(mu_);
    return store_error_;
  }
  std::string stale() {
    std::lock_guard<std::mutex> lock(mu_);
    return stale_;
  }

 private:
  std::mutex mu_;
  config::Snapshot* current_ = nullptr;
  std::string store_error_;
  std::string stale_;
};

}  // namespace hms::control
