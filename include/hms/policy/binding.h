// Policy binding: gives a freshly compiled snapshot its process-wide
// resilience objects from the PolicyRegistry (registry.h), by stable name,
// so a route or service that survives a reload keeps its bucket, breaker,
// retry budget and endpoint health records (a changed limit applies at
// once), and the state of names that disappeared is freed.
//
// Control thread only, between compiling a snapshot and publishing it.
// Built apart from the policy library: it needs config's Snapshot, and
// config needs policy.
#pragma once

#include <cstdint>

#include "hms/config/snapshot.h"
#include "hms/core/clock.h"
#include "hms/policy/registry.h"

namespace hms::policy {

// Keyed limits (per: client_ip, header:NAME) hold at most this many keys per
// route, least recently used evicted.
inline constexpr uint32_t kKeyedLimitCapacity = 4096;

// Fills in every non-local cluster's breaker (when it has a threshold),
// endpoint health records and retry budget (when it retries, shared by
// `cores` cores), and every rate-limited route's limiter, named by
// `route_keys`; then sweeps the registry of the names not asked for.
void BindPolicies(PolicyRegistry& registry, const config::Interner& route_keys, uint32_t cores,
                  core::Instant now, config::Snapshot* s);

}  // namespace hms::policy
