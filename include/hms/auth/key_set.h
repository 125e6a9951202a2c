// Verification keys for JWTs, loaded at config time by the control thread and
// shared read-only by every core through the config snapshot. Each key pins
// the one JWS algorithm it may verify (RFC 8725 §3.1): RSA keys RS256, EC
// P-256 keys ES256, symmetric secrets HS256. A token's "alg" header never
// chooses the algorithm; it can only agree with the key or be refused.
// See docs/jwt.md for the accepted JWKS members and the kid rules.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "hms/common/result.h"

namespace hms::auth {

enum class JwsAlg : uint8_t { kHS256, kRS256, kES256 };

// "HS256", "RS256" or "ES256".
std::string_view AlgName(JwsAlg alg) noexcept;

// One key's public material (the secret, for HS256), already validated.
struct Jwk {
  std::string kid;  // empty only when the set holds this one key
  JwsAlg alg = JwsAlg::kHS256;
  std::string secret;        // HS256: raw bytes, at least kMinHs256SecretBytes
  std::string rsa_n, rsa_e;  // RS256: unsigned big-endian, no leading zero bytes
  std::string ec_x, ec_y;    // ES256: 32 bytes each, a point on P-256
};

class KeySet {
 public:
  // RFC 7518 §3.2: an HS256 key at least as long as the hash output.
  static constexpr size_t kMinHs256SecretBytes = 32;
  // Smaller RSA moduli are refused at load (NIST SP 800-131A).
  static constexpr size_t kMinRsaBits = 2048;
  static constexpr size_t kMaxRsaBits = 4096;

  // A JWKS document ({"keys": [...]}) with RSA, EC P-256 and "oct" keys.
  // A key not meant for signatures is skipped, and skipped() says which and
  // why: "use" present and not "sig", or "key_ops" present without "verify"
  // (a key with neither is used). A set left with no key is a load error
  // that lists the skipped ones. Any other key the verifier could not use,
  // an "alg" that disagrees with "kty"/"crv", a malformed "key_ops", a
  // duplicate or (with several keys) missing "kid" is a load error naming
  // the key.
  static Result<KeySet> FromJwksFile(const std::string& path);
  static Result<KeySet> FromJwks(std::string_view json, std::string_view origin);

  // A file holding the raw HS256 secret; one trailing "\n" or "\r\n" is
  // trimmed. The set holds one key without kid.
  static Result<KeySet> FromHs256SecretFile(const std::string& path);
  static Result<KeySet> FromHs256Secret(std::string_view secret, std::string_view origin);

  size_t size() const noexcept { return keys_.size(); }
  // One line per key the load skipped: "FILE: key N (kid "K"): skipped: why".
  const std::vector<std::string>& skipped() const noexcept { return skipped_; }
  const Jwk& key(size_t i) const noexcept { return keys_[i]; }

  // The key a token's header selects: by kid when the token has one; a set
  // of one key without kid takes any token; a token without kid needs a set
  // of exactly one key. Returns the key's index, or -1.
  [[nodiscard]] int Select(std::string_view kid, bool token_has_kid) const noexcept;

 private:
  std::vector<Jwk> keys_;
  std::vector<std::string> skipped_;
};

}  // namespace hms::auth
