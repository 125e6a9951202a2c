#include "hms/control/fleet.h"

#include <simdjson.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <utility>

#include "hms/common/json_escape.h"

namespace hms::control {
namespace {

// Between failed writes (the store away).
constexpr auto kRetry = std::chrono::seconds(1);

}  // namespace

std::string MemberRecord(const FleetMember& m) {
  return "{\"id\":" + JsonString(m.id) + ",\"role\":" + JsonString(m.role) +
         ",\"service\":" + JsonString(m.service) + ",\"version\":" + JsonString(m.version) +
         ",\"admin\":" + JsonString(m.admin) + ",\"state\":" + JsonString(m.state) +
         ",\"fingerprint\":" + JsonString(m.fingerprint) +
         ",\"started\":" + std::to_string(m.started_s) +
         ",\"snapshot\":" + std::to_string(m.snapshot) + ",\"pid\":" + std::to_string(m.pid) + "}";
}

Result<FleetMember> ParseMemberRecord(std::string_view text) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(text.data(), text.size()).get(doc) != simdjson::SUCCESS || !doc.is_object()) {
    return Error{"a member record that is no JSON object", Side::kInternal, false};
  }
  FleetMember m;
  auto str = [&doc](const char* key, std::string* out) {
    std::string_view v;
    if (doc[key].get(v) == simdjson::SUCCESS) *out = std::string(v);
  };
  auto num = [&doc](const char* key, int64_t* out) {
    int64_t v = 0;
    if (doc[key].get(v) == simdjson::SUCCESS) *out = v;
  };
  str("id", &m.id);
  str("role", &m.role);
  str("service", &m.service);
  str("version", &m.version);
  str("admin", &m.admin);
  str("state", &m.state);
  str("fingerprint", &m.fingerprint);
  num("started", &m.started_s);
  num("snapshot", &m.snapshot);
  num("pid", &m.pid);
  if (m.id.empty()) return Error{"a member record without an id", Side::kInternal, false};
  return m;
}

std::string LocalMemberId() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0')
    std::snprintf(host, sizeof host, "host");
  return std::string(host) + "-" + std::to_string(getpid());
}

Membership::Membership(Store* store, int64_t ttl_s, LogFn log)
    : store_(store), ttl_s_(ttl_s), log_(std::move(log)) {}

int64_t Membership::Tick(Clock::time_point now, const FleetMember& record) {
  const bool changed = lease_ != 0 && !(record == written_);
  // A change is written at once, unless the last write failed (then at the
  // retry's time, as everything else).
  if (now >= due_ || (changed && last_error_.empty())) {
    // Renew three times per TTL: one lost renewal never expires the lease.
    const auto renew_every = std::chrono::milliseconds(std::max<int64_t>(ttl_s_ * 1000 / 3, 100));
    if (lease_ != 0 && !changed) {
      if (store_->KeepAlive(lease_).ok()) {
        due_ = now + renew_every;
      } else {
        lease_ = 0;  // lost: written again below
      }
    }
    if (lease_ == 0 || changed) {
      // A changed record goes under a new lease; the old one expires on its
      // own (the record's key is the new lease's now).
      Result<int64_t> lease = store_->PutMember(record.id, MemberRecord(record), ttl_s_);
      if (lease.ok()) {
        if (lease_ == 0) log_("fleet: member " + record.id + " recorded in the store");
        lease_ = *lease;
        written_ = record;
        due_ = now + renew_every;
        last_error_.clear();
      } else {
        if (lease.error().message != last_error_) {
          last_error_ = lease.error().message;
          log_("fleet: cannot record member " + record.id +
               " yet, retrying every second: " + last_error_);
        }
        due_ = now + kRetry;
      }
    }
  }
  return std::max<int64_t>(
      0, std::chrono::duration_cast<std::chrono::milliseconds>(due_ - now).count());
}

void Membership::Withdraw() {
  if (lease_ == 0) return;
  (void)store_->RevokeLease(lease_);  // else the record expires with its lease
  lease_ = 0;
}

}  // namespace hms::control
