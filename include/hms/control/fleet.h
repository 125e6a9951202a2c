// A fleet view (docs/config.md, "The fleet"): every running gateway and
// sidecar keeps a record of itself in the store under a lease, so
// `hms-api fleet` lists the members with their state and the config they
// serve, and `hms-api status --all` reaches each one's admin API.
//
// A Membership runs on the gateway's control thread, which owns the Store;
// Tick() makes at most one blocking store call. The record functions are
// pure and any thread may call them.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "hms/common/result.h"
#include "hms/control/store.h"

namespace hms::control {

// One member's record, as stored (one JSON object).
struct FleetMember {
  std::string id;           // "HOST-PID": unique while the process runs
  std::string role;         // gateway | sidecar
  std::string service;      // a sidecar's service ("" for a gateway)
  std::string version;      // the binary's version
  std::string admin;        // "HOST:PORT" of its admin API ("" when off)
  std::string state;        // "serving", "stale: WHY", "draining"
  std::string fingerprint;  // StoreFingerprint of the store contents it compiled
  int64_t started_s = 0;    // Unix seconds
  int64_t snapshot = 0;     // its own snapshot version
  int64_t pid = 0;
  bool operator==(const FleetMember&) const = default;
};

std::string MemberRecord(const FleetMember& m);
// An error when the text is no member record (a newer or foreign writer).
Result<FleetMember> ParseMemberRecord(std::string_view text);

// The id this process goes by: the host name and the pid.
std::string LocalMemberId();

// Keeps this process's record in the store: written at the first Tick and
// whenever it changes, renewed every ttl_s / 3, written again when the lease
// is lost (the store was away longer than the TTL), revoked by Withdraw.
class Membership {
 public:
  using Clock = std::chrono::steady_clock;
  using LogFn = std::function<void(const std::string&)>;

  Membership(Store* store, int64_t ttl_s, LogFn log);
  // Does what is due at `now` for `record`; the milliseconds until the next
  // thing is due.
  int64_t Tick(Clock::time_point now, const FleetMember& record);
  void Withdraw();

 private:
  Store* store_;
  int64_t ttl_s_;
  LogFn log_;
  int64_t lease_ = 0;
  FleetMember written_;
  Clock::time_point due_{};
  std::string last_error_;
};

}  // namespace hms::control
