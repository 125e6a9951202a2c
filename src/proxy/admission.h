// The stamps of the admission pipeline, in order: JWT → rate limit →
// breaker → endpoint pick, each ok or a Fault (docs/engine.md "Stamps on the
// request path"). A function of its inputs and of the per-core objects it is
// handed — the verifier's cache, the core's view of the rate-limit bucket,
// the breaker, the round-robin cursor and random state — which change only
// as each stamp must change them: a token spent, a probe taken, the cursor
// moved. No allocation, no socket; the core's thread only.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "hms/auth/jwt.h"
#include "hms/config/snapshot.h"
#include "hms/core/clock.h"
#include "hms/policy/breaker.h"
#include "hms/policy/fault.h"
#include "hms/policy/lease.h"
#include "hms/policy/rate_limit.h"
#include "src/proxy/core_context.h"  // NextRandom
#include "src/proxy/redis_link.h"

namespace hms::proxy {

// The endpoint for a new exchange, as an index into cluster.endpoints: round
// robin (`rr_cursor` is the cluster's cursor on this core), or with
// least_request the less busy of two distinct random endpoints (`busy` by
// endpoint id: this core's connections connecting or in use).
uint32_t PickEndpoint(const config::Cluster& cluster, uint32_t* rr_cursor,
                      const std::vector<uint32_t>& busy, uint64_t* rng) noexcept;

// What the stamps read of the request and the moment.
struct StampRequest {
  const config::Route* route = nullptr;
  const config::Cluster* cluster = nullptr;
  core::Instant now = 0;
  int64_t now_unix = 0;                // wall-clock seconds (token expiry)
  std::string_view authorization;      // the Authorization field's value
  std::string_view rate_header_value;  // the value of the route's rate_header field
  std::string_view client_ip;
};

// The per-core objects the stamps use.
struct StampTools {
  auth::JwtVerifier* verifier = nullptr;  // null when the snapshot has no keys
  auth::Claims* claims = nullptr;         // scratch: the verified token's claims
  policy::CoreRateLimiter* limiter = nullptr;  // the route's, when it has a rate limit
  uint32_t* rr_cursor = nullptr;          // the cluster's round-robin cursor
  const std::vector<uint32_t>* busy = nullptr;  // [endpoint id] connections in use
  uint64_t* rng = nullptr;
  // Fleet scope (route.fleet, docs/resilience.md "Fleet scope"): how the
  // request is decided, the core's lease of the route (kRedis) and its
  // sizing, and the retry-after Redis gave a parked request it denied.
  FleetMode fleet_mode = FleetMode::kRedis;
  policy::CoreLease* lease = nullptr;
  policy::LeaseParams lease_params{};
  uint32_t fleet_retry_s = 0;
};

// What the stamps decided. On a refusal `fault` names the stamp; what it
// found (the JWT verdict, the rate decision) says how to answer it.
struct Stamps {
  policy::Fault fault = policy::Fault::kNone;
  bool jwt_checked = false;    // the JWT stamp ran (a verdict in `jwt`)
  auth::Verdict jwt{};
  bool rate_checked = false;   // the route is rate limited (a decision in `rate`)
  policy::RateDecision rate{};
  bool fleet_wait = false;             // fleet scope: no leased token; park until Redis answers
  policy::Breaker* breaker = nullptr;  // the service's, when it admitted the request
  bool probe = false;                  // the request is the half-open probe
  uint32_t endpoint_index = 0;
};

// The fleet-scope rate stamp: by the core's lease (admit, refuse while Redis
// said the bucket is empty, or wait), by Redis's answer to a parked request,
// or by the fallback. `st.fault` is set when it refuses.
void FleetStamp(const StampRequest& req, const StampTools& tools, Stamps& st) noexcept;

// Runs the stamps in order; the first that refuses ends them. A route whose
// auth is `optional` admits a request without a token; its rate limit by
// `jwt_sub` then keys on the client's address.
Stamps RunStamps(const StampRequest& req, const StampTools& tools) noexcept;

}  // namespace hms::proxy
