#include "hms/auth/jwt.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <new>
#include <sstream>
#include <string>

#include "hms/auth/base64url.h"
#include "hms/auth/mint.h"

// Counts operator new on this thread while armed, to hold Verify to STYLE §4.
namespace {
thread_local bool g_count_allocs = false;
thread_local size_t g_allocs = 0;

void* CountedMalloc(size_t n) {
  if (g_count_allocs) ++g_allocs;
  return std::malloc(n == 0 ? 1 : n);
}
}  // namespace

// GCC pairs an inlined replacement operator delete's free() with new-expressions.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(size_t n) {
  if (void* p = CountedMalloc(n)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) {
  if (void* p = CountedMalloc(n)) return p;
  throw std::bad_alloc();
}
void* operator new(size_t n, const std::nothrow_t&) noexcept { return CountedMalloc(n); }
void* operator new[](size_t n, const std::nothrow_t&) noexcept { return CountedMalloc(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace hms::auth {
namespace {

constexpr int64_t kNow = 1'700'000'000;  // the fixtures' "now"
constexpr int64_t kExp2100 = 4'102'444'800;
const char* const kIssuer = "https://id.hms.local";
const char* const kAudience = "hms-api";

std::string Fixture(const std::string& name) {
  std::ifstream f(std::string(HMS_AUTH_FIXTURES) + "/" + name, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

const std::map<std::string, std::string>& Tokens() {
  static const std::map<std::string, std::string> tokens = [] {
    std::map<std::string, std::string> t;
    std::istringstream in(Fixture("tokens.txt"));
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      const size_t sp = line.find(' ');
      t[line.substr(0, sp)] = line.substr(sp + 1);
    }
    return t;
  }();
  return tokens;
}

std::string Tok(const std::string& name) {
  auto it = Tokens().find(name);
  EXPECT_NE(it, Tokens().end()) << name;
  return it == Tokens().end() ? std::string() : it->second;
}

JwtPolicy Policy(uint32_t leeway = 30) { return JwtPolicy{kIssuer, kAudience, leeway}; }

std::string Secret() {
  std::string s = Fixture("hs256.secret");
  s.pop_back();  // the newline the loader trims
  return s;
}

class JwtTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto jwks = KeySet::FromJwksFile(std::string(HMS_AUTH_FIXTURES) + "/jwks.json");
    ASSERT_TRUE(jwks.ok()) << jwks.error().message;
    jwks_ = new KeySet(std::move(*jwks));
    auto secret = KeySet::FromHs256SecretFile(std::string(HMS_AUTH_FIXTURES) + "/hs256.secret");
    ASSERT_TRUE(secret.ok()) << secret.error().message;
    secret_ = new KeySet(std::move(*secret));
  }
  static void TearDownTestSuite() {
    delete jwks_;
    delete secret_;
  }

  // Uncached verdicts, so every call runs the full path. Claims stay valid
  // until the next call (they are views into the fixture's verifier).
  Verdict Jwks(const std::string& name, hms::auth::Claims* c = nullptr) {
    return jwks_verifier_.Verify(Tok(name), kNow, c);
  }
  Verdict Hs(const std::string& token, int64_t now = kNow, uint32_t leeway = 30) {
    JwtVerifier v(secret_, Policy(leeway), 0);
    return v.Verify(token, now, nullptr);
  }

  static KeySet* jwks_;
  static KeySet* secret_;
  JwtVerifier jwks_verifier_{jwks_, Policy(), 0};
};
KeySet* JwtTest::jwks_ = nullptr;
KeySet* JwtTest::secret_ = nullptr;

// Claims for kIssuer and kAudience with `exp` written as given.
std::string ClaimsLit(const std::string& exp, const std::string& extra = "") {
  return std::string("{\"iss\":\"") + kIssuer + "\",\"aud\":\"" + kAudience +
         "\",\"sub\":\"u\",\"exp\":" + exp + extra + "}";
}
std::string ClaimsJson(int64_t exp, const std::string& extra = "") {
  return ClaimsLit(std::to_string(exp), extra);
}

TEST_F(JwtTest, AcceptsGoodTokensOfEveryAlgorithm) {
  for (const char* name : {"rs256_good", "es256_good", "hs256_jwks_good", "rs256_manual",
                           "es256_manual", "rs256_aud_array"}) {
    hms::auth::Claims c;
    const Verdict v = Jwks(name, &c);
    EXPECT_TRUE(v.ok) << name << ": " << v.reason << " " << v.description;
    EXPECT_EQ(v.status, 200);
    EXPECT_EQ(c.exp(), kExp2100) << name;
  }
  EXPECT_TRUE(Hs(Tok("hs256_secret_good")).ok);
  EXPECT_TRUE(Hs(Tok("hs256_no_nbf")).ok);
}

TEST_F(JwtTest, ExposesClaims) {
  hms::auth::Claims c;
  ASSERT_TRUE(Jwks("rs256_good", &c).ok);
  EXPECT_EQ(c.sub(), "alice");
  EXPECT_EQ(c.iss(), kIssuer);
  EXPECT_EQ(c.scope(), "calc:read calc:write");
  ASSERT_TRUE(c.nbf().has_value());
  EXPECT_EQ(*c.nbf(), kNow - 3600);
  EXPECT_EQ(c.Get("tenant"), std::optional<std::string_view>("acme"));
  EXPECT_EQ(c.Get("aud"), std::optional<std::string_view>("hms-api"));
  EXPECT_FALSE(c.Get("admin").has_value());   // a boolean, not a string claim
  EXPECT_FALSE(c.Get("groups").has_value());  // an array
  EXPECT_FALSE(c.Get("nope").has_value());
  EXPECT_TRUE(c.HasScope("calc:write"));
  EXPECT_FALSE(c.HasScope("calc"));
  EXPECT_EQ(Jwks("rs256_manual", &c).ok, true);
  EXPECT_EQ(c.sub(), "bob");
  ASSERT_TRUE(Hs(Tok("hs256_escaped")).ok);
  JwtVerifier v(secret_, Policy(), 0);
  ASSERT_TRUE(v.Verify(Tok("hs256_escaped"), kNow, &c).ok);
  EXPECT_EQ(c.sub(), "al\"ice\xc3\xa9");
  EXPECT_EQ(c.Get("tenant"), std::optional<std::string_view>("a\\b"));
}

TEST_F(JwtTest, RefusesAlgNone) {
  for (const char* name : {"alg_none", "alg_none_kid", "alg_none_caps"}) {
    const Verdict v = Jwks(name);
    EXPECT_FALSE(v.ok);
    EXPECT_EQ(v.status, 401);
    EXPECT_EQ(v.reason, "alg_none") << name;
  }
  EXPECT_EQ(Hs(Tok("alg_none")).reason, "alg_none");
}

TEST_F(JwtTest, AlgorithmIsPinnedByTheKey) {
  // HS256 keyed with the RSA public key (PEM, or n), under the RSA key's kid.
  EXPECT_EQ(Jwks("hs256_with_rsa_pub").reason, "alg_mismatch");
  EXPECT_EQ(Jwks("hs256_with_rsa_n").reason, "alg_mismatch");
  EXPECT_EQ(Jwks("rs256_header_says_es256").reason, "alg_mismatch");
  EXPECT_EQ(Jwks("es256_header_says_rs256").reason, "alg_mismatch");
  EXPECT_EQ(Jwks("ps256_rsa_kid").reason, "alg_mismatch");
  EXPECT_EQ(Jwks("rs384_rsa_kid").reason, "alg_mismatch");
  // An RS256 token against an HS256 secret.
  EXPECT_EQ(Hs(Tok("rs256_no_kid")).reason, "alg_mismatch");
}

TEST_F(JwtTest, SelectsKeysByKid) {
  EXPECT_EQ(Jwks("rs256_unknown_kid").reason, "unknown_kid");
  EXPECT_EQ(Jwks("rs256_no_kid").reason, "unknown_kid");  // several keys, no kid
  // A one-key JWKS takes tokens without kid, and refuses other kids.
  const std::string secret(40, 's');
  auto one = KeySet::FromJwks(
      "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"k1\",\"k\":\"" + EncodeBase64Url(secret) + "\"}]}",
      "one");
  ASSERT_TRUE(one.ok()) << one.error().message;
  JwtVerifier v(&*one, Policy(), 0);
  EXPECT_TRUE(v.Verify(*MintHs256(secret, ClaimsJson(kExp2100), "k1"), kNow, nullptr).ok);
  EXPECT_TRUE(v.Verify(*MintHs256(secret, ClaimsJson(kExp2100)), kNow, nullptr).ok);
  EXPECT_EQ(v.Verify(*MintHs256(secret, ClaimsJson(kExp2100), "k2"), kNow, nullptr).reason,
            "unknown_kid");
  // A secret file's key has no kid: it takes any token's kid.
  EXPECT_TRUE(Hs(*MintHs256(Secret(), ClaimsJson(kExp2100), "whatever")).ok);
}

TEST_F(JwtTest, RefusesBadSignatures) {
  EXPECT_EQ(Jwks("rs256_wrong_key").reason, "bad_signature");
  EXPECT_EQ(Jwks("es256_wrong_key").reason, "bad_signature");
  EXPECT_EQ(Jwks("es256_der_sig").reason, "bad_signature");
  EXPECT_EQ(Hs(Tok("hs256_wrong_secret")).reason, "bad_signature");
  for (const char* name : {"rs256_good", "es256_good", "hs256_jwks_good"}) {
    std::string t = Tok(name);
    // Flip one payload character: the signature no longer covers it.
    const size_t p = t.find('.') + 5;
    t[p] = t[p] == 'A' ? 'B' : 'A';
    EXPECT_EQ(JwtVerifier(jwks_, Policy(), 0).Verify(t, kNow, nullptr).reason, "bad_signature")
        << name;
    // Drop the signature, or truncate it.
    std::string u = Tok(name);
    EXPECT_EQ(
        JwtVerifier(jwks_, Policy(), 0).Verify(u.substr(0, u.rfind('.') + 1), kNow, nullptr).reason,
        "bad_signature");
    EXPECT_EQ(
        JwtVerifier(jwks_, Policy(), 0).Verify(u.substr(0, u.size() - 4), kNow, nullptr).reason,
        "bad_signature");
  }
}

TEST_F(JwtTest, ChecksTime) {
  EXPECT_EQ(Hs(Tok("hs256_expired")).reason, "expired");
  EXPECT_EQ(Jwks("es256_expired").reason, "expired");
  EXPECT_EQ(Hs(Tok("hs256_nbf_future")).reason, "not_yet_valid");
  EXPECT_EQ(Hs(Tok("hs256_no_exp")).reason, "missing_exp");
  EXPECT_TRUE(Hs(Tok("hs256_float_exp")).ok);
  EXPECT_EQ(Hs(Tok("hs256_exp_string")).reason, "malformed");
  // The fixtures' good tokens expire at the start of 2100.
  EXPECT_TRUE(Hs(Tok("hs256_secret_good"), kExp2100 - 31).ok);
  EXPECT_EQ(Hs(Tok("hs256_secret_good"), kExp2100 + 30).reason, "expired");
}

TEST_F(JwtTest, LeewayEdges) {
  const std::string s = Secret();
  auto mint = [&](const std::string& claims) { return *MintHs256(s, claims); };
  // exp: valid while now < exp + leeway.
  EXPECT_EQ(Hs(mint(ClaimsJson(kNow - 30)), kNow, 30).reason, "expired");
  EXPECT_TRUE(Hs(mint(ClaimsJson(kNow - 29)), kNow, 30).ok);
  EXPECT_EQ(Hs(mint(ClaimsJson(kNow)), kNow, 0).reason, "expired");
  EXPECT_TRUE(Hs(mint(ClaimsJson(kNow + 1)), kNow, 0).ok);
  // nbf: valid once now >= nbf - leeway.
  EXPECT_TRUE(Hs(mint(ClaimsJson(kExp2100, ",\"nbf\":" + std::to_string(kNow + 30))), kNow, 30).ok);
  EXPECT_EQ(
      Hs(mint(ClaimsJson(kExp2100, ",\"nbf\":" + std::to_string(kNow + 31))), kNow, 30).reason,
      "not_yet_valid");
  EXPECT_TRUE(Hs(mint(ClaimsJson(kExp2100, ",\"nbf\":" + std::to_string(kNow))), kNow, 0).ok);
  EXPECT_EQ(Hs(mint(ClaimsJson(kExp2100, ",\"nbf\":" + std::to_string(kNow + 1))), kNow, 0).reason,
            "not_yet_valid");
  // Absurd dates neither overflow nor wrap.
  EXPECT_TRUE(Hs(mint(ClaimsLit("1e300")), kNow, 3600).ok);
  EXPECT_EQ(Hs(mint(ClaimsLit("-1e300")), kNow, 3600).reason, "expired");
  EXPECT_TRUE(Hs(mint(ClaimsLit("99999999999999999999")), kNow, 0).ok);
  EXPECT_EQ(Hs(mint(ClaimsLit("-9223372036854775808")), kNow, 3600).reason, "expired");
  EXPECT_EQ(Hs(mint(ClaimsLit("4102444800", ",\"nbf\":9223372036854775807")), kNow, 3600).reason,
            "not_yet_valid");
}

TEST_F(JwtTest, ChecksIssuerAndAudience) {
  EXPECT_EQ(Hs(Tok("hs256_wrong_iss")).reason, "wrong_issuer");
  EXPECT_EQ(Hs(Tok("hs256_no_iss")).reason, "wrong_issuer");
  EXPECT_EQ(Hs(Tok("hs256_wrong_aud")).reason, "wrong_audience");
  EXPECT_EQ(Jwks("rs256_aud_array_wrong").reason, "wrong_audience");
  EXPECT_TRUE(Jwks("rs256_aud_array").ok);
  const std::string s = Secret();
  EXPECT_EQ(Hs(*MintHs256(s, "{\"iss\":\"https://id.hms.local\",\"exp\":4102444800}")).reason,
            "wrong_audience");
  EXPECT_EQ(
      Hs(*MintHs256(s, "{\"iss\":\"https://id.hms.local\",\"aud\":[],\"exp\":4102444800}")).reason,
      "wrong_audience");
  EXPECT_EQ(Hs(*MintHs256(s,
                          "{\"iss\":\"https://id.hms.local\",\"aud\":[\"hms-api\",1],"
                          "\"exp\":4102444800}"))
                .reason,
            "malformed");
  // Case matters: iss and aud compare exactly.
  EXPECT_EQ(Hs(*MintHs256(s, ClaimsJson(kExp2100).replace(8, 5, "HTTPS"))).reason, "wrong_issuer");
  // An empty policy field is not checked.
  JwtVerifier open(secret_, JwtPolicy{"", "", 30}, 0);
  EXPECT_TRUE(open.Verify(Tok("hs256_wrong_iss"), kNow, nullptr).ok);
  EXPECT_TRUE(open.Verify(Tok("hs256_wrong_aud"), kNow, nullptr).ok);
}

TEST_F(JwtTest, RefusesMalformedTokens) {
  const std::string good = Tok("hs256_secret_good");
  const size_t d1 = good.find('.'), d2 = good.rfind('.');
  const std::string h = good.substr(0, d1), p = good.substr(d1 + 1, d2 - d1 - 1),
                    s = good.substr(d2 + 1);
  const std::string cases[] = {
      "abc",
      "a.b",
      h + "." + p,
      good + ".x",
      h + "." + p + "." + s + ".",
      h + "=." + p + "." + s,  // padding
      h + "." + p + "=." + s,
      " " + good,  // whitespace
      h + ".\n" + p + "." + s,
      h + "." + p + "." + s + "=",
      h + "+." + p + "." + s,  // standard base64 alphabet
      "..",
      "." + p + "." + s,  // empty header
      h + ".." + s,       // empty payload (after a good signature check it fails as JSON)
      std::string(JwtVerifier::kMaxTokenBytes + 1, 'a'),
  };
  for (const std::string& t : cases) {
    const Verdict v = Hs(t);
    EXPECT_FALSE(v.ok) << t;
    EXPECT_TRUE(v.reason == "malformed" || v.reason == "bad_signature") << t << " " << v.reason;
    EXPECT_EQ(v.status, 401);
  }
  EXPECT_EQ(Hs("abc").reason, "malformed");
  EXPECT_EQ(Hs(h + "=." + p + "." + s).reason, "malformed");
  EXPECT_EQ(Hs(" " + good).reason, "malformed");
  EXPECT_EQ(Hs(good + ".x").reason, "malformed");
  EXPECT_EQ(Hs(Tok("hs256_payload_not_json")).reason, "malformed");
  EXPECT_EQ(Hs(Tok("hs256_payload_array")).reason, "malformed");
  EXPECT_EQ(Hs(Tok("hs256_crit")).reason, "malformed");
  EXPECT_EQ(Hs(Tok("hs256_dup_exp")).reason, "malformed");
  EXPECT_EQ(Hs("").reason, "missing_token");
  // Headers that are not objects, lack alg, or carry a non-string alg.
  for (const std::string hdr : {"not json", "[\"alg\"]", "{\"typ\":\"JWT\"}", "{\"alg\":256}",
                                "{\"alg\":\"HS256\",\"alg\":\"HS256\"}", "{\"alg\":\"HS256\""}) {
    EXPECT_EQ(Hs(EncodeBase64Url(hdr) + "." + p + "." + s).reason, "malformed") << hdr;
  }
  // Claims JSON that is cut short or followed by garbage, under a valid signature.
  const std::string sec = Secret();
  for (const std::string c : {"{\"exp\":4102444800", "{\"exp\":4102444800} x",
                              "{\"exp\":4102444800,\"sub\":1}", "{\"exp\":true}"}) {
    EXPECT_EQ(Hs(*MintHs256(sec, c)).reason, "malformed") << c;
  }
}

TEST_F(JwtTest, CacheHitsGiveTheSameVerdict) {
  JwtVerifier v(jwks_, Policy(), 64);
  for (const char* name : {"rs256_good", "es256_good", "hs256_jwks_good"}) {
    hms::auth::Claims first, second;
    const Verdict a = v.Verify(Tok(name), kNow, &first);
    const uint64_t hits = v.stats().cache_hits;
    const Verdict b = v.Verify(Tok(name), kNow, &second);
    EXPECT_EQ(v.stats().cache_hits, hits + 1) << name;
    EXPECT_TRUE(a.ok && b.ok) << name;
    EXPECT_EQ(first.sub(), second.sub());
    EXPECT_EQ(second.sub(), "alice");
    EXPECT_EQ(second.Get("tenant"), std::optional<std::string_view>("acme"));
    EXPECT_EQ(first.exp(), second.exp());
  }
  EXPECT_EQ(v.stats().verified, 3u);
  // Refused tokens are never cached.
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(v.Verify(Tok("rs256_wrong_key"), kNow, nullptr).reason, "bad_signature");
    EXPECT_EQ(v.Verify(Tok("rs256_aud_array_wrong"), kNow, nullptr).reason, "wrong_audience");
  }
  EXPECT_EQ(v.stats().cache_hits, 3u);
  // A token differing in one byte from a cached one is not a hit.
  std::string t = Tok("rs256_good");
  t.back() = t.back() == 'A' ? 'Q' : 'A';
  EXPECT_EQ(v.Verify(t, kNow, nullptr).reason, "bad_signature");
  EXPECT_EQ(v.stats().cache_hits, 3u);
}

TEST_F(JwtTest, CacheRechecksTime) {
  JwtVerifier v(secret_, Policy(10), 64);
  const std::string s = Secret();
  const std::string soon = *MintHs256(s, ClaimsJson(kNow + 100));
  EXPECT_TRUE(v.Verify(soon, kNow, nullptr).ok);
  EXPECT_TRUE(v.Verify(soon, kNow + 109, nullptr).ok);
  EXPECT_EQ(v.Verify(soon, kNow + 110, nullptr).reason, "expired");
  EXPECT_EQ(v.stats().cache_hits, 2u);
  const std::string later =
      *MintHs256(s, ClaimsJson(kExp2100, ",\"nbf\":" + std::to_string(kNow + 100)));
  EXPECT_EQ(v.Verify(later, kNow, nullptr).reason, "not_yet_valid");
  EXPECT_EQ(v.Verify(later, kNow + 89, nullptr).reason, "not_yet_valid");
  hms::auth::Claims c;
  EXPECT_TRUE(v.Verify(later, kNow + 90, &c).ok);
  EXPECT_EQ(c.nbf(), std::optional<int64_t>(kNow + 100));
  EXPECT_EQ(v.stats().cache_hits, 4u);
  EXPECT_EQ(v.stats().verified, 2u);
}

TEST_F(JwtTest, SmallCacheStaysCorrect) {
  JwtVerifier v(secret_, Policy(), 8);
  EXPECT_EQ(v.cache().capacity(), 8u);
  const std::string s = Secret();
  std::vector<std::string> tokens;
  for (int i = 0; i < 100; ++i) {
    tokens.push_back(
        *MintHs256(s, ClaimsJson(kExp2100 - i, ",\"n\":\"" + std::to_string(i) + "\"")));
  }
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 100; ++i) {
      hms::auth::Claims c;
      ASSERT_TRUE(v.Verify(tokens[i], kNow, &c).ok);
      EXPECT_EQ(c.Get("n"), std::optional<std::string_view>(std::to_string(i)));
      EXPECT_EQ(c.exp(), kExp2100 - i);
    }
  }
  EXPECT_GT(v.cache().evictions(), 0u);
  EXPECT_EQ(v.stats().verified + v.stats().cache_hits, 200u);
}

TEST_F(JwtTest, RebindEmptiesTheCache) {
  JwtVerifier v(jwks_, Policy(), 64);
  ASSERT_TRUE(v.Verify(Tok("rs256_good"), kNow, nullptr).ok);
  ASSERT_TRUE(v.Verify(Tok("rs256_good"), kNow, nullptr).ok);
  EXPECT_EQ(v.stats().cache_hits, 1u);
  v.Rebind(secret_, Policy());
  EXPECT_EQ(v.Verify(Tok("rs256_good"), kNow, nullptr).reason, "alg_mismatch");
  v.Rebind(jwks_, JwtPolicy{kIssuer, "another-audience", 30});
  EXPECT_EQ(v.Verify(Tok("rs256_good"), kNow, nullptr).reason, "wrong_audience");
  EXPECT_EQ(v.stats().cache_hits, 1u);
}

TEST_F(JwtTest, DisabledCacheNeverHits) {
  JwtVerifier v(jwks_, Policy(), 0);
  EXPECT_FALSE(v.cache().enabled());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(v.Verify(Tok("es256_good"), kNow, nullptr).ok);
  EXPECT_EQ(v.stats().cache_hits, 0u);
  EXPECT_EQ(v.stats().verified, 3u);
}

// What makes a cached token cheap is that its signature is not checked again:
// asserted through the verifier's counters, not a wall-clock ratio (which a
// loaded machine turns into a coin toss).
TEST_F(JwtTest, CachedRs256AndEs256SkipTheSignatureCheck) {
  for (const char* name : {"rs256_good", "es256_good"}) {
    JwtVerifier v(jwks_, Policy(), 64);
    const std::string t = Tok(name);
    ASSERT_TRUE(v.Verify(t, kNow, nullptr).ok);
    EXPECT_EQ(v.stats().verified, uint64_t{1}) << name;
    EXPECT_EQ(v.stats().cache_hits, uint64_t{0}) << name;
    constexpr int kRounds = 200;
    hms::auth::Claims c;
    for (int i = 0; i < kRounds; ++i) ASSERT_TRUE(v.Verify(t, kNow, &c).ok);
    EXPECT_EQ(v.stats().cache_hits, uint64_t{kRounds}) << name;
    EXPECT_EQ(v.stats().verified, uint64_t{1}) << name;  // no second signature check
    // Without a cache every call checks the signature.
    JwtVerifier u(jwks_, Policy(), 0);
    for (int i = 0; i < kRounds; ++i) ASSERT_TRUE(u.Verify(t, kNow, &c).ok);
    EXPECT_EQ(u.stats().cache_hits, uint64_t{0}) << name;
    EXPECT_EQ(u.stats().verified, uint64_t{kRounds}) << name;
  }
}

TEST_F(JwtTest, VerifyDoesNotAllocate) {
  JwtVerifier v(jwks_, Policy(), 64);
  hms::auth::Claims c;
  std::vector<std::string> tokens;
  for (const char* name : {"rs256_good", "es256_good", "hs256_jwks_good", "rs256_wrong_key",
                           "alg_none", "rs256_unknown_kid", "hs256_with_rsa_pub"}) {
    tokens.push_back(Tok(name));
  }
  for (const auto& t : tokens) (void)v.Verify(t, kNow, &c);  // warm-up
  g_allocs = 0;
  g_count_allocs = true;
  for (int i = 0; i < 100; ++i) {
    for (const auto& t : tokens) (void)v.Verify(t, kNow, &c);
  }
  g_count_allocs = false;
  EXPECT_EQ(g_allocs, 0u);
}

TEST_F(JwtTest, RequiredClaims) {
  hms::auth::Claims c;
  ASSERT_TRUE(Jwks("rs256_good", &c).ok);
  using Req = std::vector<std::pair<std::string, std::string>>;
  EXPECT_TRUE(HasRequired(c, Req{}));
  EXPECT_TRUE(HasRequired(c, Req{{"scope", "calc:read"}}));
  EXPECT_TRUE(HasRequired(c, Req{{"scope", "calc:write calc:read"}}));
  EXPECT_TRUE(HasRequired(c, Req{{"scope", "calc:read"}, {"tenant", "acme"}, {"sub", "alice"}}));
  EXPECT_FALSE(HasRequired(c, Req{{"scope", "calc:admin"}}));
  EXPECT_FALSE(HasRequired(c, Req{{"scope", "calc:read calc:admin"}}));
  EXPECT_FALSE(HasRequired(c, Req{{"scope", "calc"}}));
  EXPECT_FALSE(HasRequired(c, Req{{"tenant", "acm"}}));
  EXPECT_FALSE(HasRequired(c, Req{{"role", "admin"}}));
  EXPECT_FALSE(HasRequired(c, Req{{"admin", "true"}}));  // not a string claim
  const Verdict v = CheckRequired(c, Req{{"scope", "calc:admin"}});
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.status, 403);
  EXPECT_EQ(v.reason, "insufficient_scope");
  EXPECT_TRUE(CheckRequired(c, Req{{"scope", "calc:read"}}).ok);
}

TEST(JwtHeaders, BearerToken) {
  EXPECT_EQ(BearerToken("Bearer abc.def.ghi"), "abc.def.ghi");
  EXPECT_EQ(BearerToken("bearer   abc.def.ghi "), "abc.def.ghi");
  EXPECT_EQ(BearerToken("BEARER a-b_c.d.e"), "a-b_c.d.e");
  EXPECT_EQ(BearerToken("Basic dXNlcjpwYXNz"), "");
  EXPECT_EQ(BearerToken("Bearer"), "");
  EXPECT_EQ(BearerToken("Bearer "), "");
  EXPECT_EQ(BearerToken("Bearerabc"), "");
  EXPECT_EQ(BearerToken("Bearer a b"), "");
  EXPECT_EQ(BearerToken("Bearer a\"b"), "");
}

TEST(JwtHeaders, WwwAuthenticate) {
  auto ks = KeySet::FromHs256Secret(std::string(40, 'k'), "test");
  ASSERT_TRUE(ks.ok());
  JwtVerifier v(&*ks, JwtPolicy{"", "", 0}, 0);
  char buf[256];
  Verdict missing = v.Verify("", 0, nullptr);
  EXPECT_EQ(std::string_view(buf, FormatWwwAuthenticate(missing, buf, sizeof buf)), "Bearer");
  const Verdict bad = v.Verify("x.y.z", 0, nullptr);
  EXPECT_EQ(
      std::string_view(buf, FormatWwwAuthenticate(bad, buf, sizeof buf)),
      "Bearer error=\"invalid_token\", error_description=\"" + std::string(bad.description) + "\"");
  hms::auth::Claims c;
  const Verdict scope = CheckRequired(c, {{"scope", "x"}});
  EXPECT_EQ(std::string_view(buf, FormatWwwAuthenticate(scope, buf, sizeof buf)),
            "Bearer error=\"insufficient_scope\", error_description=\"" +
                std::string(scope.description) + "\"");
  EXPECT_EQ(FormatWwwAuthenticate(scope, buf, 10), 0u);
}

TEST(JwtHeaders, EveryReasonHasAToken) {
  for (int r = 0; r <= static_cast<int>(JwtReason::kInsufficientScope); ++r) {
    EXPECT_NE(ReasonToken(static_cast<JwtReason>(r)), "unknown");
  }
}

TEST(JwtMint, SignersRoundTripThroughTheVerifier) {
  for (int alg = 0; alg < 2; ++alg) {
    auto signer = alg == 0 ? JwsSigner::GenerateEs256("gen-1") : JwsSigner::GenerateRs256("gen-1");
    ASSERT_TRUE(signer.ok()) << signer.error().message;
    auto ks = KeySet::FromJwks("{\"keys\":[" + signer->PublicJwk() + "]}", "generated");
    ASSERT_TRUE(ks.ok()) << ks.error().message;
    EXPECT_EQ(ks->key(0).alg, signer->alg());
    auto token = signer->Mint(ClaimsJson(kExp2100));
    ASSERT_TRUE(token.ok());
    JwtVerifier v(&*ks, Policy(), 16);
    hms::auth::Claims c;
    const Verdict ok = v.Verify(*token, kNow, &c);
    EXPECT_TRUE(ok.ok) << ok.reason;
    EXPECT_EQ(c.sub(), "u");
    // Another key pair under the same kid does not verify.
    auto other = alg == 0 ? JwsSigner::GenerateEs256("gen-1") : JwsSigner::GenerateRs256("gen-1");
    ASSERT_TRUE(other.ok());
    EXPECT_EQ(v.Verify(*other->Mint(ClaimsJson(kExp2100)), kNow, nullptr).reason, "bad_signature");
  }
}

TEST(JwtMint, Hs256MatchesAnIndependentSigner) {
  // The fixture hs256_secret_good was signed by PyJWT; re-signing its exact
  // header and payload with MintHs256's HMAC must give the same signature.
  std::ifstream f(std::string(HMS_AUTH_FIXTURES) + "/tokens.txt");
  std::string line, token;
  while (std::getline(f, line)) {
    if (line.rfind("hs256_secret_good ", 0) == 0) token = line.substr(line.find(' ') + 1);
  }
  ASSERT_FALSE(token.empty());
  const size_t d1 = token.find('.');
  const size_t d2 = token.rfind('.');
  std::string payload(Base64UrlDecodedSize(d2 - d1 - 1), '\0');
  ASSERT_GE(DecodeBase64Url(token.substr(d1 + 1, d2 - d1 - 1),
                            reinterpret_cast<uint8_t*>(payload.data()), payload.size()),
            0);
  std::ifstream sf(std::string(HMS_AUTH_FIXTURES) + "/hs256.secret", std::ios::binary);
  std::string secret((std::istreambuf_iterator<char>(sf)), std::istreambuf_iterator<char>());
  secret.pop_back();
  const std::string mine = *MintHs256(secret, payload);
  // Same payload segment; MintHs256's header is {"alg":"HS256","typ":"JWT"} like PyJWT's.
  EXPECT_EQ(mine, token);
}



// RFC 7515 Appendix A: the header and payload of A.1 and A.3 (JSON with CRLF
// line breaks, exactly as the RFC encodes them), the keys and signatures.
constexpr const char* kRfcPayload =
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
constexpr int64_t kRfcExp = 1300819380;

Verdict VerifyRfc(const std::string& jwks, const std::string& token, int64_t now) {
  Result<KeySet> keys = KeySet::FromJwks(jwks, "rfc7515");
  EXPECT_TRUE(keys) << keys.error().message;
  if (!keys) return Verdict{};
  JwtVerifier v(&*keys, JwtPolicy{"joe", "", 0}, 0);
  return v.Verify(token, now, nullptr);
}

TEST(JwtRfc7515, A1Hs256) {
  const std::string jwks =
      R"({"keys":[{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}]})";
  const std::string token = std::string("eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.") + kRfcPayload +
                            ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
  Verdict v = VerifyRfc(jwks, token, kRfcExp - 60);
  EXPECT_TRUE(v.ok) << v.reason << " " << v.description;
  // The same token after its exp, and with one signature character changed.
  EXPECT_EQ(VerifyRfc(jwks, token, kRfcExp + 1).reason, "expired");
  std::string bad = token;
  bad[bad.size() - 2] = bad[bad.size() - 2] == 'X' ? 'Y' : 'X';
  EXPECT_EQ(VerifyRfc(jwks, bad, kRfcExp - 60).reason, "bad_signature");
}

TEST(JwtRfc7515, A3Es256) {
  const std::string jwks =
      R"({"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]})";
  const std::string token =
      std::string("eyJhbGciOiJFUzI1NiJ9.") + kRfcPayload +
      ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
  Verdict v = VerifyRfc(jwks, token, kRfcExp - 60);
  EXPECT_TRUE(v.ok) << v.reason << " " << v.description;
  // The A.1 HMAC key cannot stand in for the EC key: the algorithm is the key's.
  const std::string oct =
      R"({"keys":[{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}]})";
  EXPECT_FALSE(VerifyRfc(oct, token, kRfcExp - 60).ok);
}

}  // namespace
}  // namespace hms::auth
