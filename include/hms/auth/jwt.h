// JWT bearer-token verification at the gateway (DESIGN §5, docs/jwt.md).
//
// A JwtVerifier belongs to one core and is touched only by that core's
// thread (it is not thread-safe); the KeySet it reads is shared, immutable
// and outlives it (the config snapshot holds it). Construction and Rebind
// run at start or on a snapshot swap and allocate; Verify does not allocate
// in this code (wolfCrypt's ECC and RSA math may use malloc internally, which
// the verified-token cache avoids for repeated tokens).
//
// Verify checks, in order: size and the three segments; the cache; the
// header (alg, kid, crit); "alg":"none"; the key (kid); the key's pinned
// algorithm against "alg"; the signature; the claims (JSON object, exp
// required, nbf optional, iss and aud against the policy); exp and nbf
// against `now` with the policy's leeway. The first failure decides the
// verdict.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hms/auth/key_set.h"
#include "hms/auth/token_cache.h"

namespace hms::auth {

struct JwtPolicy {
  std::string issuer;      // "iss" must equal it; empty: not checked
  std::string audience;    // "aud" (a string or an array) must hold it; empty: not checked
  uint32_t leeway_s = 30;  // clock skew allowed on exp and nbf
};

enum class JwtReason : uint8_t {
  kOk,
  kMissingToken,  // no Authorization: Bearer credentials (RFC 6750 §3.1: no error code)
  kMalformed,     // segments, base64url, JSON, claim types, crit, size
  kAlgNone,
  kAlgMismatch,  // "alg" differs from the selected key's pinned algorithm
  kUnknownKid,
  kBadSignature,
  kMissingExp,
  kExpired,
  kNotYetValid,
  kWrongIssuer,
  kWrongAudience,
  kInsufficientScope,  // 403: valid token, claims short of the route's require
};

// "ok", "missing_token", "malformed", "alg_none", ... (the x-hms-reason value).
std::string_view ReasonToken(JwtReason reason) noexcept;

struct Verdict {
  bool ok = false;
  uint16_t status = 401;  // 200 when ok, 401 or 403
  JwtReason code = JwtReason::kMalformed;
  std::string_view reason;       // ReasonToken(code); static storage
  std::string_view description;  // error_description; static storage, no '"' or '\'
};

// The claims of the last verified token: views into the verifier's buffers,
// valid until its next Verify.
class Claims {
 public:
  static constexpr size_t kMaxStringClaims = 64;

  std::string_view sub() const noexcept { return sub_; }      // "" when absent
  std::string_view scope() const noexcept { return scope_; }  // "" when absent
  std::string_view iss() const noexcept { return iss_; }      // "" when absent
  int64_t exp() const noexcept { return exp_; }
  std::optional<int64_t> nbf() const noexcept {
    return has_nbf_ ? std::optional<int64_t>(nbf_) : std::nullopt;
  }
  // Any top-level claim whose value is a JSON string (unescaped), by name.
  std::optional<std::string_view> Get(std::string_view name) const noexcept;
  // True when `scope` is one of the space-separated entries of "scope".
  bool HasScope(std::string_view scope) const noexcept;
  size_t string_claim_count() const noexcept { return count_; }

 private:
  friend class JwtVerifier;
  void Clear() noexcept;

  std::array<std::pair<std::string_view, std::string_view>, kMaxStringClaims> strings_;
  size_t count_ = 0;
  std::string_view sub_, scope_, iss_;
  int64_t exp_ = 0;
  int64_t nbf_ = 0;
  bool has_nbf_ = false;
};

class JwtVerifier {
 public:
  // Longer tokens are refused as malformed; it bounds the per-core buffers.
  static constexpr size_t kMaxTokenBytes = 8192;
  static constexpr uint32_t kDefaultCacheCapacity = 4096;

  // `keys` must outlive the verifier (or the next Rebind). A capacity of 0
  // disables the cache.
  JwtVerifier(const KeySet* keys, JwtPolicy policy,
              uint32_t cache_capacity = kDefaultCacheCapacity);
  ~JwtVerifier();
  JwtVerifier(const JwtVerifier&) = delete;
  JwtVerifier& operator=(const JwtVerifier&) = delete;

  // A new snapshot's keys and policy; empties the cache, so a key removed
  // from the set stops admitting its tokens at once.
  void Rebind(const KeySet* keys, JwtPolicy policy);

  // Verifies `token` (the bearer credentials, without "Bearer ") at
  // `now_unix` seconds. On success fills *out when given.
  Verdict Verify(std::string_view token, int64_t now_unix, Claims* out) noexcept;

  struct Stats {
    uint64_t verified = 0;  // signatures checked (cache misses that got that far)
    uint64_t cache_hits = 0;
  };
  const Stats& stats() const noexcept { return stats_; }
  const TokenCache& cache() const noexcept { return cache_; }

 private:
  struct Crypto;  // wolfCrypt key objects and the JSON parser (kept out of this header)

  Verdict ParseHeader(std::string_view header_b64, std::string_view* alg, std::string_view* kid,
                      uint32_t* seen) noexcept;
  Verdict VerifyClaims(std::string_view payload_b64, int64_t now, bool cached, Claims* out,
                       int64_t* valid_until, int64_t* not_before) noexcept;
  Verdict StoreStringClaim(std::string_view key, std::string_view value, uint32_t bit,
                           Claims* claims, bool* iss_ok, bool* aud_ok) noexcept;
  Verdict CheckClaims(uint32_t seen, bool iss_ok, bool aud_ok, int64_t now, bool cached,
                      const Claims& claims, int64_t* valid_until,
                      int64_t* not_before) const noexcept;
  bool CheckSignature(int key_index, std::string_view signing_input,
                      std::string_view sig_b64) noexcept;

  const KeySet* keys_;
  JwtPolicy policy_;
  std::unique_ptr<Crypto> crypto_;
  TokenCache cache_;
  Claims scratch_claims_;  // when the caller passes no Claims
  Stats stats_;
};

// True when `claims` satisfy every (name, value) pair: "scope" matches one of
// the space-separated scopes, any other name a string claim exactly.
bool HasRequired(const Claims& claims,
                 const std::vector<std::pair<std::string, std::string>>& require) noexcept;

// ok, or 403 insufficient_scope when HasRequired is false.
Verdict CheckRequired(const Claims& claims,
                      const std::vector<std::pair<std::string, std::string>>& require) noexcept;

// The credentials of an Authorization header value ("Bearer <token68>",
// scheme case-insensitive, RFC 6750 §2.1), or "" when it is something else.
std::string_view BearerToken(std::string_view authorization) noexcept;

// Writes the WWW-Authenticate value for a refusal (RFC 6750 §3) into `out`:
// `Bearer` for kMissingToken, else `Bearer error="invalid_token" |
// "insufficient_scope", error_description="..."`. Returns its length, or 0
// when `cap` is too small.
size_t FormatWwwAuthenticate(const Verdict& verdict, char* out, size_t cap) noexcept;

}  // namespace hms::auth
