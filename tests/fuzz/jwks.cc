// Fuzz target: the JWKS reader (src/auth/key_set.cc) and the HS256 secret
// reader, on arbitrary documents.
//
// Properties: a refusal names the document ("origin: ..."); an accepted set
// holds only keys the verifier can use (the sizes the header promises), with
// kids unique and present whenever there are several keys, and Select finds
// each key by its own kid. A verifier built on the set then survives a token.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "hms/auth/jwt.h"
#include "hms/auth/key_set.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  auto set = hms::auth::KeySet::FromJwks(json, "fuzz.jwks");
  if (!set) {
    FUZZ_CHECK(set.error().message.starts_with("fuzz.jwks"));
  } else {
    const hms::auth::KeySet& keys = set.value();
    for (size_t i = 0; i < keys.size(); ++i) {
      const hms::auth::Jwk& k = keys.key(i);
      if (keys.size() > 1) FUZZ_CHECK(!k.kid.empty());
      switch (k.alg) {
        case hms::auth::JwsAlg::kHS256:
          FUZZ_CHECK(k.secret.size() >= hms::auth::KeySet::kMinHs256SecretBytes);
          break;
        case hms::auth::JwsAlg::kRS256:
          FUZZ_CHECK(!k.rsa_n.empty() && k.rsa_n[0] != '\0');
          FUZZ_CHECK(k.rsa_n.size() * 8 >= hms::auth::KeySet::kMinRsaBits);
          FUZZ_CHECK(k.rsa_n.size() * 8 <= hms::auth::KeySet::kMaxRsaBits);
          FUZZ_CHECK(!k.rsa_e.empty() && k.rsa_e[0] != '\0');
          break;
        case hms::auth::JwsAlg::kES256:
          FUZZ_CHECK(k.ec_x.size() == 32 && k.ec_y.size() == 32);
          break;
      }
      if (!k.kid.empty()) FUZZ_CHECK(keys.Select(k.kid, true) == static_cast<int>(i));
    }
    if (keys.size() > 0) {
      hms::auth::JwtVerifier v(&keys, hms::auth::JwtPolicy{}, 0);
      // A token whose signature cannot match any key: it must be refused.
      const auto verdict = v.Verify(
          "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjQxMDI0NDQ4MDB9.c2lnbmF0dXJlLW5vdC12YWxpZA", 0,
          nullptr);
      FUZZ_CHECK(!verdict.ok);
    }
  }
  auto secret = hms::auth::KeySet::FromHs256Secret(json, "fuzz.secret");
  if (secret) {
    FUZZ_CHECK(secret.value().size() == 1);
    FUZZ_CHECK(secret.value().key(0).secret.size() >= hms::auth::KeySet::kMinHs256SecretBytes);
  } else {
    FUZZ_CHECK(secret.error().message.starts_with("fuzz.secret"));
  }
  return 0;
}
