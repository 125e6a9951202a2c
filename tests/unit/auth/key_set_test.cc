#include "hms/auth/key_set.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "hms/auth/base64url.h"

namespace hms::auth {
namespace {

const std::string kFixtures = HMS_AUTH_FIXTURES;

std::string Oct(const std::string& kid, const std::string& extra = "", size_t len = 32) {
  return "{\"kty\":\"oct\"" + (kid.empty() ? "" : ",\"kid\":\"" + kid + "\"") + ",\"k\":\"" +
         EncodeBase64Url(std::string(len, 'k')) + "\"" + extra + "}";
}

// A 2048-bit RSA public key and a P-256 point from the fixture JWKS.
struct FixtureKeys {
  std::string rsa_n, rsa_e, ec_x, ec_y;
};
FixtureKeys Parts() {
  auto ks = KeySet::FromJwksFile(kFixtures + "/jwks.json");
  EXPECT_TRUE(ks.ok());
  FixtureKeys p;
  for (size_t i = 0; i < ks->size(); ++i) {
    if (ks->key(i).alg == JwsAlg::kRS256) {
      p.rsa_n = EncodeBase64Url(ks->key(i).rsa_n);
      p.rsa_e = EncodeBase64Url(ks->key(i).rsa_e);
    } else if (ks->key(i).alg == JwsAlg::kES256) {
      p.ec_x = EncodeBase64Url(ks->key(i).ec_x);
      p.ec_y = EncodeBase64Url(ks->key(i).ec_y);
    }
  }
  return p;
}

Result<KeySet> Jwks(const std::string& keys) {
  return KeySet::FromJwks("{\"keys\":[" + keys + "]}", "t.json");
}

std::string LoadError(const std::string& keys) {
  auto ks = Jwks(keys);
  return ks.ok() ? "(loaded)" : ks.error().message;
}

TEST(KeySet, LoadsTheFixtureJwksAndPinsAlgorithms) {
  auto ks = KeySet::FromJwksFile(kFixtures + "/jwks.json");
  ASSERT_TRUE(ks.ok()) << ks.error().message;
  ASSERT_EQ(ks->size(), 3u);  // the "use":"enc" key is skipped
  EXPECT_EQ(ks->key(0).kid, "rsa-1");
  EXPECT_EQ(ks->key(0).alg, JwsAlg::kRS256);
  EXPECT_EQ(ks->key(0).rsa_n.size(), 256u);
  EXPECT_EQ(ks->key(1).kid, "ec-1");
  EXPECT_EQ(ks->key(1).alg, JwsAlg::kES256);
  EXPECT_EQ(ks->key(2).kid, "hs-1");
  EXPECT_EQ(ks->key(2).alg, JwsAlg::kHS256);
  EXPECT_EQ(ks->Select("ec-1", true), 1);
  EXPECT_EQ(ks->Select("enc-1", true), -1);
  EXPECT_EQ(ks->Select("", false), -1);
}

TEST(KeySet, RefusesAlgThatDisagreesWithKty) {
  const FixtureKeys p = Parts();
  const std::string rsa =
      "{\"kty\":\"RSA\",\"kid\":\"r\",\"n\":\"" + p.rsa_n + "\",\"e\":\"" + p.rsa_e + "\"";
  const std::string ec = "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"e\",\"x\":\"" + p.ec_x +
                         "\",\"y\":\"" + p.ec_y + "\"";
  EXPECT_EQ(LoadError(rsa + "}"), "(loaded)");
  EXPECT_EQ(LoadError(rsa + ",\"alg\":\"RS256\"}"), "(loaded)");
  EXPECT_EQ(LoadError(ec + ",\"alg\":\"ES256\"}"), "(loaded)");
  EXPECT_NE(LoadError(rsa + ",\"alg\":\"HS256\"}").find("RSA keys verify RS256 only"),
            std::string::npos);
  EXPECT_NE(LoadError(rsa + ",\"alg\":\"PS256\"}").find("RS256 only"), std::string::npos);
  EXPECT_NE(LoadError(ec + ",\"alg\":\"RS256\"}").find("ES256 only"), std::string::npos);
  EXPECT_NE(LoadError(ec + ",\"alg\":\"HS256\"}").find("ES256 only"), std::string::npos);
  EXPECT_NE(LoadError(Oct("o", ",\"alg\":\"RS256\"")).find("HS256 only"), std::string::npos);
  EXPECT_NE(LoadError(Oct("o", ",\"alg\":\"none\"")).find("HS256 only"), std::string::npos);
}

TEST(KeySet, RefusesUnusableKeys) {
  const FixtureKeys p = Parts();
  // 1024-bit modulus.
  std::string small(128, '\x9b');
  EXPECT_NE(LoadError("{\"kty\":\"RSA\",\"n\":\"" + EncodeBase64Url(small) + "\",\"e\":\"AQAB\"}")
                .find("1024 bits"),
            std::string::npos);
  EXPECT_NE(LoadError("{\"kty\":\"RSA\",\"n\":\"" + p.rsa_n + "\",\"e\":\"AQ\"}").find("exponent"),
            std::string::npos);
  EXPECT_NE(LoadError("{\"kty\":\"RSA\",\"n\":\"" + p.rsa_n + "\"}").find("needs"),
            std::string::npos);
  EXPECT_NE(
      LoadError("{\"kty\":\"RSA\",\"n\":\"" + p.rsa_n + "=\",\"e\":\"AQAB\"}").find("base64url"),
      std::string::npos);
  // A point that is not on P-256.
  const std::string one = EncodeBase64Url(std::string(31, '\0') + "\x01");
  EXPECT_NE(
      LoadError("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" + one + "\",\"y\":\"" + one + "\"}")
          .find("not a valid P-256"),
      std::string::npos);
  EXPECT_NE(LoadError("{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"" + p.ec_x + "\",\"y\":\"" +
                      p.ec_y + "\"}")
                .find("P-384"),
            std::string::npos);
  EXPECT_NE(LoadError("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" + p.ec_x + "\",\"y\":\"AAAA\"}")
                .find("32 bytes"),
            std::string::npos);
  EXPECT_NE(
      LoadError("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"}").find("unsupported kty"),
      std::string::npos);
  EXPECT_NE(LoadError(Oct("o", "", 31)).find("31 bytes"), std::string::npos);
  EXPECT_NE(LoadError("{\"kty\":\"oct\",\"k\":5}").find("not a string"), std::string::npos);
}

TEST(KeySet, KidRules) {
  EXPECT_NE(LoadError(Oct("a") + "," + Oct("a")).find("duplicate kid"), std::string::npos);
  EXPECT_NE(LoadError(Oct("a") + "," + Oct("")).find("needs a \"kid\""), std::string::npos);
  auto one = Jwks(Oct(""));
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->Select("anything", true), 0);
  EXPECT_EQ(one->Select("", false), 0);
  auto named = Jwks(Oct("a"));
  ASSERT_TRUE(named.ok());
  EXPECT_EQ(named->Select("a", true), 0);
  EXPECT_EQ(named->Select("", false), 0);
  EXPECT_EQ(named->Select("b", true), -1);
  auto two = Jwks(Oct("a") + "," + Oct("b"));
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two->Select("b", true), 1);
  EXPECT_EQ(two->Select("", false), -1);
  EXPECT_EQ(two->Select("", true), -1);
}

TEST(KeySet, SkipsEncryptionKeysButNeedsOneSigningKey) {
  auto ks = Jwks(Oct("enc", ",\"use\":\"enc\"") + "," + Oct("sig", ",\"use\":\"sig\""));
  ASSERT_TRUE(ks.ok());
  ASSERT_EQ(ks->size(), 1u);
  EXPECT_EQ(ks->key(0).kid, "sig");
  EXPECT_NE(LoadError(Oct("enc", ",\"use\":\"enc\"")).find("no signing keys"), std::string::npos);
  EXPECT_NE(LoadError("").find("no signing keys"), std::string::npos);
}

// RFC 7517 §4.2/§4.3: a key whose "use" is not "sig", or whose "key_ops"
// lack "verify", is not for verifying signatures. Each case: the key under
// test beside a plain signing key "ok"; whether it is loaded, and the reason
// logged when it is skipped.
TEST(KeySet, UsesOnlyKeysMeantForVerifying) {
  struct Case {
    const char* members;
    bool used;
    const char* skipped_because;
  };
  const Case cases[] = {
      {"", true, nullptr},
      {",\"use\":\"sig\"", true, nullptr},
      {",\"key_ops\":[\"verify\"]", true, nullptr},
      {",\"key_ops\":[\"sign\",\"verify\"]", true, nullptr},
      {",\"use\":\"sig\",\"key_ops\":[\"verify\"]", true, nullptr},
      {",\"use\":\"enc\"", false, "\"use\" is \"enc\", not \"sig\""},
      {",\"use\":\"SIG\"", false, "\"use\" is \"SIG\", not \"sig\""},
      {",\"key_ops\":[\"encrypt\"]", false, "\"key_ops\" [\"encrypt\"] lacks \"verify\""},
      {",\"key_ops\":[\"sign\"]", false, "\"key_ops\" [\"sign\"] lacks \"verify\""},
      {",\"key_ops\":[]", false, "\"key_ops\" [] lacks \"verify\""},
      {",\"use\":\"sig\",\"key_ops\":[\"encrypt\",\"wrapKey\"]", false,
       "\"key_ops\" [\"encrypt\", \"wrapKey\"] lacks \"verify\""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.members);
    auto ks = Jwks(Oct("k", c.members) + "," + Oct("ok"));
    ASSERT_TRUE(ks.ok()) << ks.error().message;
    EXPECT_EQ(ks->Select("k", true) >= 0, c.used);
    EXPECT_GE(ks->Select("ok", true), 0);
    if (c.used) {
      EXPECT_TRUE(ks->skipped().empty());
    } else {
      ASSERT_EQ(ks->skipped().size(), 1u);
      EXPECT_EQ(ks->skipped()[0],
                std::string("t.json: key 0 (kid \"k\"): skipped: ") + c.skipped_because);
    }
  }
}

TEST(KeySet, ASetLeftWithoutAUsableKeyFailsTheLoad) {
  const std::string e =
      LoadError(Oct("a", ",\"use\":\"enc\"") + "," + Oct("b", ",\"key_ops\":[\"encrypt\"]"));
  EXPECT_NE(e.find("t.json: no signing keys (2 skipped: key 0 (kid \"a\"): skipped: \"use\" is "
                   "\"enc\", not \"sig\"; key 1 (kid \"b\"): skipped: \"key_ops\" "
                   "[\"encrypt\"] lacks \"verify\")"),
            std::string::npos)
      << e;
  // A skipped key is not parsed: an encryption key of a kind the verifier
  // lacks does not fail the set.
  auto ks = Jwks("{\"kty\":\"OKP\",\"kid\":\"x\",\"key_ops\":[\"deriveKey\"]}," + Oct("ok"));
  ASSERT_TRUE(ks.ok()) << ks.error().message;
  EXPECT_EQ(ks->size(), 1u);
}

TEST(KeySet, RefusesMalformedKeyOps) {
  EXPECT_NE(LoadError(Oct("k", ",\"key_ops\":\"verify\"")).find("\"key_ops\" is not an array"),
            std::string::npos);
  EXPECT_NE(LoadError(Oct("k", ",\"key_ops\":[\"verify\",1]")).find("\"key_ops\" is not an array"),
            std::string::npos);
}

TEST(KeySet, RefusesBrokenDocuments) {
  for (const char* doc : {"", "[]", "{}", "{\"keys\":{}}", "{\"keys\":[1]}", "{\"keys\":[",
                          "{\"keys\":[]} trailing", "not json"}) {
    auto ks = KeySet::FromJwks(doc, "t.json");
    EXPECT_FALSE(ks.ok()) << doc;
    if (!ks.ok()) {
      EXPECT_EQ(ks.error().message.rfind("t.json", 0), 0u) << ks.error().message;
      EXPECT_EQ(ks.error().side, Side::kConfig);
    }
  }
  EXPECT_FALSE(KeySet::FromJwksFile(kFixtures + "/no-such-file.json").ok());
}

TEST(KeySet, Hs256SecretFile) {
  auto ks = KeySet::FromHs256SecretFile(kFixtures + "/hs256.secret");
  ASSERT_TRUE(ks.ok()) << ks.error().message;
  ASSERT_EQ(ks->size(), 1u);
  EXPECT_EQ(ks->key(0).alg, JwsAlg::kHS256);
  EXPECT_EQ(ks->key(0).kid, "");
  EXPECT_EQ(ks->key(0).secret.back(), 'f');  // the newline is trimmed
  EXPECT_EQ(KeySet::FromHs256Secret(std::string(32, 'a') + "\r\n", "s")->key(0).secret,
            std::string(32, 'a'));
  EXPECT_EQ(KeySet::FromHs256Secret(std::string(32, 'a') + "\n\n", "s")->key(0).secret,
            std::string(32, 'a') + "\n");
  auto short_secret = KeySet::FromHs256Secret(std::string(31, 'a') + "\n", "dev-secret");
  ASSERT_FALSE(short_secret.ok());
  EXPECT_EQ(short_secret.error().message, "dev-secret: HS256 secret of 31 bytes (at least 32)");
  EXPECT_FALSE(KeySet::FromHs256SecretFile(kFixtures + "/missing.secret").ok());
}

}  // namespace
}  // namespace hms::auth
