// The admission pipeline of an exchange (docs/engine.md "A request's path
// through the engine"): the route (the canonical path, the route table, a
// sidecar's egress service, allow_from), what the request may carry, then
// the stamps in order: JWT → rate limit → breaker → endpoint pick; and the
// upstream head (head_rewrite.h). A step that refuses returns its Fault
// with the answer in refusal_.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "hms/common/check.h"
#include "hms/http/field_names.h"
#include "src/proxy/admission.h"
#include "src/proxy/head_rewrite.h"
#include "src/proxy/wire.h"
#include "src/proxy/worker.h"

namespace hms::proxy {
namespace {

std::string_view Find(const http::Header* h, int n, std::string_view name) {
  return http::FindHeader(h, static_cast<size_t>(n), name);
}

}  // namespace

policy::Fault Worker::Refuse(policy::Fault fault, std::string_view detail) {
  refusal_.answer = policy::AnswerFor(fault, detail);
  refusal_.fault = fault;
  refusal_.close = false;
  refusal_.fields[0] = '\0';
  return fault;
}

void Worker::AnswerRefusal(uint32_t slot) {
  Exchange& ex = clients_[slot].ex;
  answer_fault_ = refusal_.fault;
  LocalResponse(slot, refusal_.answer, refusal_.close || !ex.req_done,
                refusal_.fields[0] != '\0' ? refusal_.fields : nullptr);
  answer_fault_ = policy::Fault::kNone;
  FinishExchange(slot);
}

policy::Fault Worker::ResolveRoute(uint32_t slot, RouteChoice* choice) {
  Client& c = clients_[slot];
  Exchange& ex = c.ex;
  const http::RequestHead& r = req_;
  const config::Snapshot& snap = *ex.hold->snapshot;
  char* msg = refusal_.detail;
  const size_t msg_size = sizeof refusal_.detail;
  constexpr size_t kShortDetail = 160;  // the bound these messages always had
  // One canonical path, checked and served (docs/engine.md "The canonical
  // path"): every listener kind routes on it and sends exactly it upstream,
  // in origin-form, so the route whose stamps were applied is the resource
  // the upstream serves. A target already canonical costs one scan.
  http::CanonicalTarget canon;
  http::PathError path_error = http::PathError::kNone;
  if (!http::CanonicalizeTarget(r, path_options_, path_scratch_.get(), path_scratch_size_, &canon,
                                &path_error)) {
    const std::string_view rule = http::PathErrorRule(path_error);
    const std::string_view why = http::PathErrorText(path_error);
    std::snprintf(msg, msg_size, "bad path (%.*s): %.*s", static_cast<int>(rule.size()),
                  rule.data(), static_cast<int>(why.size()), why.data());
    return Refuse(policy::Fault::kBadPath, msg);
  }
  req_.path = canon.path;  // r aliases req_: routing, logs and spans see the canonical path
  // Which route: the edge's table, a sidecar's inbound route, or the egress
  // route of the service the local caller names.
  uint32_t target = 0;
  choice->origin = canon.origin;  // the request-target sent upstream
  ListenerKind kind = listener_kind_[c.listener];
  route::Match m;
  if (kind == ListenerKind::kInbound) {
    target = snap.inbound_route;
  } else if (kind == ListenerKind::kEgress) {
    if (!SelectEgress(snap, r, canon, &target, &choice->origin, &choice->egress_to)) {
      std::snprintf(msg, kShortDetail,
                    "no service named by Host '%.*s' or by the path's first segment",
                    static_cast<int>(std::min<size_t>(r.host.size(), 64)), r.host.data());
      return Refuse(policy::Fault::kNoService, msg);
    }
  } else {
    m = snap.table.Find(r.host, r.method_text, r.path);
    target = m.target;
  }
  if (kind == ListenerKind::kEdge && m.kind != route::MatchKind::kFound) {
    if (m.kind == route::MatchKind::kNotFound) {
      std::snprintf(msg, kShortDetail, "no route for %.*s %.*s",
                    static_cast<int>(r.method_text.size()),
                    r.method_text.data(), static_cast<int>(std::min<size_t>(r.path.size(), 100)),
                    r.path.data());
      return Refuse(policy::Fault::kNoRoute, msg);
    }
    std::snprintf(msg, kShortDetail, "method %.*s not allowed here",
                  static_cast<int>(r.method_text.size()), r.method_text.data());
    Refuse(policy::Fault::kMethodNotAllowed, msg);
    std::snprintf(refusal_.fields, sizeof refusal_.fields, "allow: %.*s\r\n",
                  static_cast<int>(m.allow.size()), m.allow.data());
    return policy::Fault::kMethodNotAllowed;
  }
  choice->target = target;
  const config::Route& route = snap.routes[target];
  const config::Cluster& cluster = snap.clusters[route.cluster];
  ex.route = &route;
  ex.cluster = &cluster;
  ex.route_key = route.key;
  // A caller's identity is its certificate's one URI SAN, checked once per
  // request against allow_from (a reload may change the list).
  const Client& conn = ConnOf(c);
  choice->peer_id = conn.tls != nullptr ? conn.tls->peer_identity() : std::string_view();
  if (kind == ListenerKind::kInbound && conn.tls != nullptr && conn.tls->handshake_done() &&
      !PeerAllowed(cluster, choice->peer_id)) {
    metrics_.identity_refused.Add();
    const std::string_view peer_id = choice->peer_id;
    std::snprintf(msg, msg_size, "identity '%.*s' is not in this service's allow_from",
                  static_cast<int>(std::min<size_t>(peer_id.size(), 120)), peer_id.data());
    if (peer_id.empty()) {
      std::snprintf(msg, msg_size, "the client certificate carries no single URI identity");
    }
    return Refuse(policy::Fault::kIdentityNotAllowed, msg);
  }
  return policy::Fault::kNone;
}

// The admission pipeline, in order: what the request may carry (body size,
// Connection options, field names), then the stamps: JWT → rate limit →
// breaker → endpoint pick. The first that refuses ends it.
policy::Fault Worker::Admit(uint32_t slot, const RouteChoice& choice, const HopByHop& hop_by_hop) {
  Client& c = clients_[slot];
  Exchange& ex = c.ex;
  const http::RequestHead& r = req_;
  const config::Snapshot& snap = *ex.hold->snapshot;
  const config::Route& route = *ex.route;
  const config::Cluster& cluster = *ex.cluster;
  if (r.body == http::BodyKind::kContentLength && r.content_length > config_.max_body_bytes) {
    Refuse(policy::Fault::kBodyTooLarge);
    refusal_.close = true;  // the body is not read
    return policy::Fault::kBodyTooLarge;
  }
  if (hop_by_hop.too_many_options()) {
    std::snprintf(refusal_.detail, sizeof refusal_.detail,
                  "the Connection fields name more than %d options", HopByHop::kMaxOptions);
    return Refuse(policy::Fault::kTooManyConnectionOptions, refusal_.detail);
  }
  policy::Fault fault = JudgeFieldNames(slot);
  if (fault == policy::Fault::kNone) fault = JudgeWebSocket(slot);  // tunnel.cc
  if (fault != policy::Fault::kNone) return fault;
  // The stamps (RunStamps, admission.h): JWT → rate limit → breaker →
  // endpoint pick.
  StampRequest in;
  in.route = &route;
  in.cluster = &cluster;
  in.now = now_;
  in.now_unix = now_unix_;
  if (route.auth_mode != config::AuthMode::kNone) {
    in.authorization = Find(r.headers, r.header_count, "authorization");
  }
  if (route.limiter != nullptr && route.rate_key == config::RateKey::kHeader) {
    in.rate_header_value = Find(r.headers, r.header_count, route.rate_header);
  }
  in.client_ip = std::string_view(c.peer, c.peer_len);
  StampTools tools;
  tools.verifier = snap.jwt_keys != nullptr ? verifier_.get() : nullptr;
  tools.claims = &claims_;
  tools.limiter = route.limiter != nullptr ? &limiters_[choice.target] : nullptr;
  tools.rr_cursor = &rr_[route.cluster];
  tools.busy = &busy_;
  tools.rng = &rng_;
  if (route.fleet) FleetTools(slot, choice.target, &tools);
  Stamps st = RunStamps(in, tools);
  if (st.fleet_wait) {
    if (fleet_.Park(slot, choice.target)) {
      fleet_.Ask(choice.target);
      admit_parked_ = true;
      return policy::Fault::kNone;
    }
    // The core's wait queue is full: the fallback decides this one.
    --fleet_.lease(choice.target).waiting;
    tools.fleet_mode = fleet_.FallbackModeNow();
    metrics_.fleet_fallbacks.Add();
    st = RunStamps(in, tools);
  } else if (route.fleet && tools.fleet_mode == FleetMode::kRedis) {
    fleet_.Ask(choice.target);  // refills the stock ahead of need
  }
  ex.breaker = st.breaker;
  ex.probe = st.probe;
  if (st.rate_checked) {
    ex.rate = st.rate;
    ex.rate_limited_route = true;
    metrics_.policy.Count(route.key, st.rate.admitted ? obs::kPolicyAdmitted : obs::kPolicyLimited);
  }
  switch (st.fault) {
    case policy::Fault::kNone:
      break;
    case policy::Fault::kJwtRejected:
      return RefuseToken(snap, route, st.jwt);
    case policy::Fault::kRateLimited:
      return RefuseRate(st.rate);
    default:
      return Refuse(st.fault);  // kCircuitOpen, kNoEndpoints
  }
  ex.endpoint_index = st.endpoint_index;
  ex.retryable = http::IsIdempotent(r.method) ||
                 !Find(r.headers, r.header_count, "idempotency-key").empty();
  // This core's view of the service's retry budget is made where it is used
  // (a pointer and an index): an exchange may outlive the snapshot it began in.
  if (cluster.retry_budget != nullptr) {
    policy::CoreRetryBudget(cluster.retry_budget.get(), index_).OnRequest(now_);
  }
  return policy::Fault::kNone;
}

// How a fleet-scope request is decided: by Redis's answer when it was
// parked, else by the lease while Redis answers, else by the fallback.
void Worker::FleetTools(uint32_t slot, uint32_t target, StampTools* tools) {
  Client& c = clients_[slot];
  tools->lease = &fleet_.lease(target);
  tools->lease_params = fleet_.LeaseParamsFor(current_->snapshot->routes[target]);
  switch (c.fleet_pass) {
    case FleetPass::kGranted:
      tools->fleet_mode = FleetMode::kGranted;
      break;
    case FleetPass::kDenied:
      tools->fleet_mode = FleetMode::kDenied;
      tools->fleet_retry_s = c.fleet_retry_s;
      break;
    case FleetPass::kFallback:
      tools->fleet_mode = fleet_.FallbackModeNow();
      break;
    case FleetPass::kNone:
      tools->fleet_mode = fleet_.ModeNow();
      break;
  }
  c.fleet_pass = FleetPass::kNone;
  if (tools->fleet_mode != FleetMode::kRedis && tools->fleet_mode != FleetMode::kGranted &&
      tools->fleet_mode != FleetMode::kDenied) {
    metrics_.fleet_fallbacks.Add();
  }
}

// The fleet link's side of the exchanges (ParkedRequests, redis_link.h).
// An HTTP/1.1 head stays in its connection's input while it waits; an h2
// stream's is in none, so the stream keeps a copy (h2_down.cc).
bool Worker::FleetExchanges::Park(uint32_t slot, uint32_t* gen) noexcept {
  Client& c = worker.clients_[slot];
  if (c.parent != kNone && !worker.KeepStreamHead(slot)) return false;
  c.fleet_parked = true;
  *gen = c.gen;
  return true;
}

// Still waiting: the same client, between requests, its exchange not begun.
bool Worker::FleetExchanges::Waiting(uint32_t slot, uint32_t gen) const noexcept {
  const Client& c = worker.clients_[slot];
  return c.gen == gen && c.state == Client::State::kHead && !c.ex.active();
}

// The head is parsed again this pass (PumpClient), its stamps decided by
// the answer it carries (FleetTools).
void Worker::FleetExchanges::Answer(uint32_t slot, FleetPass pass, uint32_t retry_s) noexcept {
  Client& c = worker.clients_[slot];
  c.fleet_parked = false;
  c.fleet_pass = pass;
  if (pass == FleetPass::kDenied) c.fleet_retry_s = retry_s;
  worker.repump_.push_back(slot);
}

// The JWT stamp refused: 401 or 403 with WWW-Authenticate, by the
// verifier's verdict, which refines the row (its status, which check).
policy::Fault Worker::RefuseToken(const config::Snapshot& snap, const config::Route& route,
                                  const auth::Verdict& v) {
  if (v.code == auth::JwtReason::kUnknownKid && snap.jwt_unknown_kid != nullptr) {
    snap.jwt_unknown_kid->store(true, std::memory_order_relaxed);
  }
  static_assert(static_cast<uint16_t>(auth::JwtReason::kInsufficientScope) < obs::kJwtReasonSlots);
  metrics_.policy.Count(
      route.key, static_cast<uint16_t>(obs::kPolicyJwtRejected + static_cast<uint16_t>(v.code)));
  std::snprintf(refusal_.detail, sizeof refusal_.detail, "%.*s",
                static_cast<int>(std::min<size_t>(v.description.size(), 159)),
                v.description.data());
  Refuse(policy::Fault::kJwtRejected, refusal_.detail);
  char* fields = refusal_.fields;
  size_t n = std::snprintf(fields, sizeof refusal_.fields, "www-authenticate: ");
  size_t w = auth::FormatWwwAuthenticate(v, fields + n, sizeof refusal_.fields - n - 3);
  std::memcpy(fields + n + w, "\r\n", 3);
  std::snprintf(refusal_.reason, sizeof refusal_.reason, "jwt_%.*s",
                static_cast<int>(v.reason.size()), v.reason.data());
  refusal_.answer.status = static_cast<uint16_t>(v.status);
  refusal_.answer.reason = refusal_.reason;
  return policy::Fault::kJwtRejected;
}

// The rate-limit stamp refused: 429 with Retry-After and RateLimit-*.
policy::Fault Worker::RefuseRate(const policy::RateDecision& d) {
  Refuse(policy::Fault::kRateLimited);
  Writer f(refusal_.fields, sizeof refusal_.fields - 1);
  f.S("retry-after: ").U(d.retry_after_s).S("\r\n");
  WriteRateFields(f, d);
  HMS_CHECK(!f.overflow());  // four numbers of at most 20 digits and their names: < 160
  refusal_.fields[f.size()] = '\0';
  return policy::Fault::kRateLimited;
}

policy::Fault Worker::JudgeFieldNames(uint32_t slot) {
  Exchange& ex = clients_[slot].ex;
  const http::RequestHead& r = req_;
  for (int i = 0; i < r.header_count; ++i) {
    std::string_view name = r.headers[i].name;
    http::FieldVerdict v = http::JudgeFieldName(name, config_.underscores_in_headers);
    if (v == http::FieldVerdict::kForward) continue;
    if (ex.dropped_headers++ == 0) {
      ex.dropped_name_len = static_cast<uint8_t>(std::min(name.size(), sizeof ex.dropped_name));
      std::memcpy(ex.dropped_name, name.data(), ex.dropped_name_len);
    }
    if (v == http::FieldVerdict::kReject) {
      std::snprintf(refusal_.detail, sizeof refusal_.detail,
                    "header field '%.*s' has '_' in its name (underscores_in_headers: reject)",
                    static_cast<int>(std::min<size_t>(name.size(), 64)), name.data());
      return Refuse(policy::Fault::kUnderscoreInHeader, refusal_.detail);
    }
  }
  if (ex.dropped_headers > 0) metrics_.headers_dropped_underscore.Add(ex.dropped_headers);
  return policy::Fault::kNone;
}

// The upstream head (RewriteRequestHead, head_rewrite.h), kept in its own
// block for every attempt. Also sets the exchange's deadline (the caller's
// x-hms-timeout-ms is read here). False when the head does not fit its block.
bool Worker::WriteUpstreamHead(uint32_t slot, const RouteChoice& choice,
                               const HopByHop& hop_by_hop) {
  Client& c = clients_[slot];
  Exchange& ex = c.ex;
  RequestHeadFields f;
  f.origin = choice.origin;
  f.egress_to = choice.egress_to;
  f.peer_id = choice.peer_id;
  // An h2 request's :authority is its Host (RFC 9113 §8.3.1); an HTTP/1.0
  // request without one gets the endpoint's.
  f.default_host = c.parent != kNone && !req_.host.empty()
                       ? req_.host
                       : std::string_view(ex.cluster->endpoints[ex.endpoint_index].authority());
  f.client_ip = std::string_view(c.peer, c.peer_len);
  f.tls = ConnOf(c).tls != nullptr;
  f.websocket = ex.websocket;
  f.grpc = ex.grpc;
  f.underscores = config_.underscores_in_headers;
  f.trace = &ex.trace;
  ex.head = blocks_.Get();
  const RequestHeadOut out =
      RewriteRequestHead(req_, hop_by_hop, f, ex.head->data(), blocks_.block_size());
  SetDeadline(ex, ex.route->timeout_ms, out.caller_ms, out.caller_grpc_timeout);
  if (out.size == 0) return false;
  ex.timeout_field = static_cast<uint32_t>(out.timeout_field);
  ex.grpc_timeout_field = static_cast<uint32_t>(out.grpc_timeout_field);
  ex.head->end = static_cast<uint32_t>(out.size);
  return true;
}

// The deadline: the route's timeout, or what the caller says it has left
// (a gateway's x-hms-timeout-ms reaching a sidecar, a gRPC caller's
// grpc-timeout), whichever is shortest.
void Worker::SetDeadline(Exchange& ex, uint64_t timeout_ms, std::string_view caller_ms,
                         std::string_view caller_grpc) {
  core::Instant grpc_ns = 0;
  if (!caller_grpc.empty() && h2::ParseGrpcTimeout(caller_grpc, &grpc_ns) &&
      grpc_ns < core::Millis(timeout_ms)) {
    // Whole ms, at least one: the wheel's resolution and x-hms-timeout-ms's.
    timeout_ms = std::max<uint64_t>(1, grpc_ns / 1'000'000);
    ex.caller_deadline = true;
  }
  if (!caller_ms.empty() && caller_ms.size() <= 9) {
    uint64_t v = 0;
    for (char ch : caller_ms) {
      if (ch < '0' || ch > '9') {
        v = 0;  // not a number: ignored
        break;
      }
      v = v * 10 + static_cast<uint64_t>(ch - '0');
    }
    if (v > 0 && v < timeout_ms) {
      timeout_ms = v;
      ex.caller_deadline = true;  // its running out is the caller's choice, not a failure
    }
  }
  ex.deadline = now_ + core::Millis(timeout_ms);
}

bool Worker::PeerAllowed(const config::Cluster& local, std::string_view identity) {
  if (identity.empty()) return false;
  if (local.allowed_peers.empty()) return true;
  for (const std::string& p : local.allowed_peers)
    if (p == identity) return true;
  return false;
}

// Egress (docs/sidecar.md): `Host: NAME` names the service; else the
// canonical path's first segment does (`/NAME/rest` goes out as `/rest`), so
// `/x/../NAME/rest` selects NAME too. Upstream the target is always
// origin-form (absolute-form, "GET http://NAME/x", a proxy-style call,
// included) and the Host is the service's name.
bool Worker::SelectEgress(const config::Snapshot& snap, const http::RequestHead& r,
                          const http::CanonicalTarget& canon, uint32_t* target,
                          std::string_view* origin, std::string_view* service) {
  std::string_view host = r.host;
  if (!host.empty() && host.front() != '[') host = host.substr(0, host.find(':'));
  if (const config::Route* route = snap.EgressRoute(host)) {
    *target = static_cast<uint32_t>(route - snap.routes.data());
    *origin = canon.origin;
    *service = snap.clusters[route->cluster].name;
    return true;
  }
  if (canon.path.size() < 2 || canon.path.front() != '/') return false;
  std::string_view segment = canon.path.substr(1, canon.path.find('/', 1) - 1);
  const config::Route* route = snap.EgressRoute(segment);
  if (route == nullptr) return false;
  *target = static_cast<uint32_t>(route - snap.routes.data());
  *origin = canon.origin.substr(1 + segment.size());  // "", "/rest...", "?query"
  *service = snap.clusters[route->cluster].name;
  return true;
}

void FleetStamp(const StampRequest& req, const StampTools& tools, Stamps& st) noexcept {
  const config::Route& route = *req.route;
  st.rate_checked = true;
  st.rate.limit = route.rate_limit->burst;
  st.rate.admitted = true;
  auto refuse = [&st](uint32_t retry_s) {
    st.rate.admitted = false;
    st.rate.retry_after_s = std::max<uint32_t>(retry_s, 1);
    st.fault = policy::Fault::kRateLimited;
  };
  switch (tools.fleet_mode) {
    case FleetMode::kGranted:
    case FleetMode::kOpen:
      return;
    case FleetMode::kDenied:
      return refuse(tools.fleet_retry_s);
    case FleetMode::kClosed:
      st.rate_checked = false;
      st.fault = policy::Fault::kFleetUnavailable;
      return;
    case FleetMode::kLocal:
      // This gateway's share of the limit, exact across its cores (the
      // limiter was bound with policy::LocalShare).
      st.rate = tools.limiter->TryTake(req.now);
      if (!st.rate.admitted) st.fault = policy::Fault::kRateLimited;
      return;
    case FleetMode::kRedis:
      break;
  }
  policy::CoreLease& lease = *tools.lease;
  switch (policy::TakeToken(lease, req.now, tools.lease_params)) {
    case policy::LeaseStep::kAdmit:
      st.rate.remaining = lease.tokens;
      return;
    case policy::LeaseStep::kRefuse: {
      const uint64_t wait_ns = lease.empty_until > req.now ? lease.empty_until - req.now : 0;
      return refuse(static_cast<uint32_t>((wait_ns + 999'999'999) / 1'000'000'000));
    }
    case policy::LeaseStep::kWait:
      st.rate_checked = false;  // decided when Redis answers
      st.fleet_wait = true;
      return;
  }
}

uint32_t PickEndpoint(const config::Cluster& cluster, uint32_t* rr_cursor,
                      const std::vector<uint32_t>& busy, uint64_t* rng) noexcept {
  size_t n = cluster.endpoints.size();
  if (!cluster.least_request || n < 2) return static_cast<uint32_t>((*rr_cursor)++ % n);
  // Power of two choices: two distinct random endpoints, the less busy wins.
  uint32_t a = static_cast<uint32_t>(NextRandom(rng) % n);
  uint32_t b = static_cast<uint32_t>(NextRandom(rng) % (n - 1));
  if (b >= a) ++b;
  uint32_t ia = cluster.endpoints[a].id, ib = cluster.endpoints[b].id;
  uint32_t busy_a = ia < busy.size() ? busy[ia] : 0;
  uint32_t busy_b = ib < busy.size() ? busy[ib] : 0;
  return busy_a <= busy_b ? a : b;
}

Stamps RunStamps(const StampRequest& req, const StampTools& tools) noexcept {
  Stamps st;
  const config::Route& route = *req.route;
  const config::Cluster& cluster = *req.cluster;
  bool claims_valid = false;
  if (tools.verifier != nullptr && route.auth_mode != config::AuthMode::kNone) {
    const std::string_view token = auth::BearerToken(req.authorization);
    if (!token.empty() || route.auth_mode != config::AuthMode::kOptional) {
      st.jwt_checked = true;
      st.jwt = tools.verifier->Verify(token, req.now_unix, tools.claims);
      if (st.jwt.ok) st.jwt = auth::CheckRequired(*tools.claims, route.require);
      if (!st.jwt.ok) {
        st.fault = policy::Fault::kJwtRejected;
        return st;
      }
      claims_valid = true;
    }
  }
  if (route.fleet) {
    FleetStamp(req, tools, st);
    if (st.fault != policy::Fault::kNone || st.fleet_wait) return st;
  } else if (tools.limiter != nullptr) {
    // One shared word per bucket: the process admits what a single global
    // bucket would, whichever core this is (docs/resilience.md).
    policy::CoreRateLimiter& limiter = *tools.limiter;
    st.rate_checked = true;
    switch (route.rate_key) {
      case config::RateKey::kRoute:
        st.rate = limiter.TryTake(req.now);
        break;
      case config::RateKey::kHeader:
        st.rate = limiter.TryTake(req.now, req.rate_header_value);
        break;
      case config::RateKey::kJwtSub:
        if (claims_valid && !tools.claims->sub().empty()) {
          st.rate = limiter.TryTake(req.now, tools.claims->sub());
          break;
        }
        // jwt_sub without a verified subject (auth optional, no token): the
        // caller's address stands in.
        [[fallthrough]];
      case config::RateKey::kClientIp:
        st.rate = limiter.TryTake(req.now, req.client_ip);
        break;
    }
    if (!st.rate.admitted) {
      st.fault = policy::Fault::kRateLimited;
      return st;
    }
  }
  if (cluster.breaker_state != nullptr) {
    const policy::BreakerAdmission a = cluster.breaker_state->Admit(req.now);
    if (!a.allowed) {
      st.fault = policy::Fault::kCircuitOpen;
      return st;
    }
    st.breaker = cluster.breaker_state.get();
    st.probe = a.is_probe;
  }
  if (cluster.endpoints.empty()) {
    st.fault = policy::Fault::kNoEndpoints;
    return st;
  }
  st.endpoint_index = PickEndpoint(cluster, tools.rr_cursor, *tools.busy, tools.rng);
  return st;
}

}  // namespace hms::proxy
