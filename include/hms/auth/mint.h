// Minting JWTs: for `hms-api token` (development tokens), tests and
// benchmarks. Control-plane code: allocates, not for the data path. A signer
// is used by one thread at a time (it owns a random number generator).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "hms/auth/key_set.h"
#include "hms/common/result.h"

namespace hms::auth {

// header {"alg":"HS256","typ":"JWT"} (plus "kid" when given) . claims_json,
// signed with HMAC-SHA256. `claims_json` is used byte for byte.
Result<std::string> MintHs256(std::string_view secret, std::string_view claims_json,
                              std::string_view kid = {});

class JwsSigner {
 public:
  // A fresh P-256 key pair / RSA key pair (bits 2048..4096), for tests.
  static Result<JwsSigner> GenerateEs256(std::string kid);
  static Result<JwsSigner> GenerateRs256(std::string kid, int bits = 2048);

  JwsSigner(JwsSigner&&) noexcept;
  JwsSigner& operator=(JwsSigner&&) noexcept;
  ~JwsSigner();

  JwsAlg alg() const noexcept;
  const std::string& kid() const noexcept { return kid_; }

  // The public key as one JWKS entry: {"kty":...,"kid":...,"alg":...,...}.
  std::string PublicJwk() const;

  // header {"alg":...,"typ":"JWT","kid":...} . claims_json, signed.
  Result<std::string> Mint(std::string_view claims_json);

 private:
  struct Keys;
  JwsSigner(std::string kid, std::unique_ptr<Keys> keys) noexcept;

  std::string kid_;
  std::unique_ptr<Keys> keys_;
};

}  // namespace hms::auth
