// Fuzz target: the JWT verifier (src/auth/jwt.cc), token and claims.
//
// The first byte picks how the rest is used:
//   even: the rest is the bearer token, verbatim (segments, base64url, the
//         header JSON, kid and alg rules, signatures);
//   odd:  the rest is a claims JSON document, minted into a token signed
//         with the set's HS256 key, so the claims checks see arbitrary JSON
//         behind a good signature.
// Properties: a verdict is self-consistent (ok ⇔ kOk ⇔ 200, the reason is
// the code's token, the description is safe inside a quoted header value);
// the verified-token cache never changes a verdict (the same token twice, and
// through a verifier without cache, answer alike); the WWW-Authenticate value
// is one line of printable ASCII.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "hms/auth/base64url.h"
#include "hms/auth/jwt.h"
#include "hms/auth/key_set.h"
#include "hms/auth/mint.h"

namespace {

// tests/unit/auth/fixtures/jwks.json's verifying keys (RS256, ES256, HS256).
constexpr std::string_view kJwks = R"({"keys": [
 {"kty": "RSA", "kid": "rsa-1", "alg": "RS256", "use": "sig", "e": "AQAB",
  "n": "oGtweB2CxtlHmIxiJOXZut9YEJY9PpKUNSnkUIe_f4OEwcfqPon6NpGb8YmASrqrEy2Rs8T1fguAJEw0rWG22oubUi2kXRZq53LIYBeLrLmInzLNijfjNbUSPw-YJfJQxcLeDj45DrUJnUjzX39UBOnwPh6ZUIv6gbGxHA_wKjowYFEpVrmL_UsevxRrmDVh6MbNZXyqKw4uhWSMitMtGBs_OOaFi134CVuzzRbjqIO_W3SZd4WU9262a8Ec-A76-R9FP_l1onFupThNbSwMLvnjf79xqlUdYzQ48h3UT-tMgPFpT6kOOxOsup45gCl7zPlGE2XKiyG7xkBR35YDRQ"},
 {"kty": "EC", "crv": "P-256", "kid": "ec-1", "alg": "ES256",
  "x": "BqWZ7fUvf1QcopNjj7De4hwq60tViqTRbG7s6CcknH8",
  "y": "Q1p7zZQWGMKphNRKKsnAro_Yp4goxbUiPl64gxuHr6k"},
 {"kty": "oct", "kid": "hs-1", "alg": "HS256", "k": "UaLn6E_csXWrqRjcomd3wUPtHzY-aTwCkwl-vt9sYL0"}
]})";
constexpr int64_t kNow = 1'700'000'000;  // the fixtures' "now"

struct State {
  hms::auth::KeySet keys;
  std::string hs_secret;
  hms::auth::JwtVerifier* cached = nullptr;
  hms::auth::JwtVerifier* uncached = nullptr;
};

State& Get() {
  static State* s = [] {
    auto* st = new State();
    auto keys = hms::auth::KeySet::FromJwks(kJwks, "fuzz-jwks");
    FUZZ_CHECK(keys.ok());
    st->keys = std::move(keys).value();
    for (size_t i = 0; i < st->keys.size(); ++i) {
      if (st->keys.key(i).alg == hms::auth::JwsAlg::kHS256) st->hs_secret = st->keys.key(i).secret;
    }
    FUZZ_CHECK(!st->hs_secret.empty());
    const hms::auth::JwtPolicy policy{"https://id.hms.local", "hms-api", 30};
    st->cached = new hms::auth::JwtVerifier(&st->keys, policy, 64);
    st->uncached = new hms::auth::JwtVerifier(&st->keys, policy, 0);
    return st;
  }();
  return *s;
}

bool SafeText(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

void CheckVerdict(const hms::auth::Verdict& v) {
  FUZZ_CHECK(v.ok == (v.code == hms::auth::JwtReason::kOk));
  FUZZ_CHECK(v.ok == (v.status == 200));
  FUZZ_CHECK(v.ok || v.status == 401 || v.status == 403);
  FUZZ_CHECK(v.reason == hms::auth::ReasonToken(v.code));
  FUZZ_CHECK(v.description.find('"') == std::string_view::npos);
  FUZZ_CHECK(v.description.find('\\') == std::string_view::npos);
  FUZZ_CHECK(SafeText(v.description));
  if (!v.ok) {
    char buf[512];
    const size_t n = hms::auth::FormatWwwAuthenticate(v, buf, sizeof buf);
    FUZZ_CHECK(n > 0 && n <= sizeof buf);
    FUZZ_CHECK(SafeText(std::string_view(buf, n)));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  State& st = Get();
  if (size == 0) return 0;
  const bool mint = (data[0] & 1) != 0;
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string token;
  if (mint) {
    auto t = hms::auth::MintHs256(st.hs_secret, rest, "hs-1");
    if (!t) return 0;
    token = std::move(t).value();
  } else {
    token.assign(rest);
  }
  (void)hms::auth::BearerToken(rest);

  hms::auth::Claims claims;
  const hms::auth::Verdict first = st.cached->Verify(token, kNow, &claims);
  CheckVerdict(first);
  if (first.ok) {
    FUZZ_CHECK(claims.string_claim_count() <= hms::auth::Claims::kMaxStringClaims);
    (void)claims.HasScope("calc:read");
    (void)claims.Get("sub");
    (void)hms::auth::CheckRequired(claims, {{"scope", "calc:read"}, {"sub", "alice"}});
  }
  const hms::auth::Verdict again = st.cached->Verify(token, kNow, nullptr);
  CheckVerdict(again);
  FUZZ_CHECK(again.code == first.code);
  const hms::auth::Verdict fresh = st.uncached->Verify(token, kNow, nullptr);
  CheckVerdict(fresh);
  FUZZ_CHECK(fresh.code == first.code);
  return 0;
}
