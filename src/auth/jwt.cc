#include "hms/auth/jwt.h"

// wolfssl/options.h (the build's defines) goes before every other wolfSSL
// header; include sorting would move simdjson above it.
// clang-format off
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/rsa.h>
#include <wolfssl/wolfcrypt/sha256.h>
#include <simdjson.h>
// clang-format on

#include <cmath>
#include <cstring>

#include "hms/auth/base64url.h"
#include "hms/common/check.h"

namespace hms::auth {
namespace {

namespace od = simdjson::ondemand;

// The decoded header or payload of the longest accepted token, plus the
// padding simdjson reads past the end (FIELD-NOTES "simdjson on-demand").
constexpr size_t kJsonCapacity = Base64UrlDecodedSize(JwtVerifier::kMaxTokenBytes);
// RSA-4096 signatures are the largest accepted.
constexpr size_t kMaxSignatureBytes = KeySet::kMaxRsaBits / 8;

// DER DigestInfo prefix for SHA-256 (RFC 8017 §9.2 note 1): what an RS256
// signature decrypts to, followed by the 32-byte hash.
constexpr uint8_t kSha256DigestInfo[19] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                           0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                           0x01, 0x05, 0x00, 0x04, 0x20};

// Far beyond any real date, and far enough from INT64 limits that adding
// or subtracting a leeway cannot overflow.
constexpr int64_t kDateLimit = int64_t{1} << 52;

Verdict Fail(JwtReason code, std::string_view description) noexcept {
  Verdict v;
  v.ok = false;
  v.status = code == JwtReason::kInsufficientScope ? 403 : 401;
  v.code = code;
  v.reason = ReasonToken(code);
  v.description = description;
  return v;
}

Verdict Ok() noexcept {
  Verdict v;
  v.ok = true;
  v.status = 200;
  v.code = JwtReason::kOk;
  v.reason = ReasonToken(JwtReason::kOk);
  return v;
}

bool ConstantTimeEqual(const uint8_t* a, const uint8_t* b, size_t n) noexcept {
  uint8_t diff = 0;
  for (size_t i = 0; i < n; ++i) diff |= static_cast<uint8_t>(a[i] ^ b[i]);
  return diff == 0;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

// RFC 7519 §2 NumericDate: integer or not; fractions are truncated toward
// minus infinity and values clamped to ±kDateLimit.
bool ReadNumericDate(od::value& v, int64_t* out) noexcept {
  od::json_type type;
  if (v.type().get(type) || type != od::json_type::number) return false;
  int64_t i;
  if (v.get_int64().get(i) == simdjson::SUCCESS) {
    *out = std::clamp(i, -kDateLimit, kDateLimit);
    return true;
  }
  double d;
  if (v.get_double().get(d) || !std::isfinite(d)) return false;
  d = std::floor(d);
  *out = d >= static_cast<double>(kDateLimit)    ? kDateLimit
         : d <= -static_cast<double>(kDateLimit) ? -kDateLimit
                                                 : static_cast<int64_t>(d);
  return true;
}

// simdjson 3.0 has no document::at_end(): past the last token the iterator
// reports OUT_OF_BOUNDS. Anything else after the root object is trailing junk.
bool AtEnd(od::document& doc) noexcept {
  return doc.current_location().error() == simdjson::OUT_OF_BOUNDS;
}

enum Known : uint32_t {
  kIss = 1,
  kSub = 2,
  kAud = 4,
  kExp = 8,
  kNbf = 16,
  kScope = 32,
  kAlg = 64,
  kKid = 128,
};

}  // namespace

struct JwtVerifier::Crypto {
  struct Key {
    JwsAlg alg = JwsAlg::kHS256;
    RsaKey rsa;
    ecc_key ecc;
    bool rsa_ready = false;
    bool ecc_ready = false;
    ~Key() {
      if (rsa_ready) wc_FreeRsaKey(&rsa);
      if (ecc_ready) wc_ecc_free(&ecc);
    }
  };

  od::parser parser;
  alignas(64) uint8_t json[kJsonCapacity + simdjson::SIMDJSON_PADDING];
  uint8_t sig[kMaxSignatureBytes];
  std::vector<std::unique_ptr<Key>> keys;

  // Each verifier imports its own wolfCrypt key objects: RSA and ECC
  // operations keep state inside the key, so cores cannot share them.
  void Load(const KeySet& set) {
    keys.clear();
    for (size_t i = 0; i < set.size(); ++i) {
      const Jwk& jwk = set.key(i);
      auto k = std::make_unique<Key>();
      k->alg = jwk.alg;
      if (jwk.alg == JwsAlg::kRS256) {
        HMS_CHECK(wc_InitRsaKey(&k->rsa, nullptr) == 0);
        k->rsa_ready = true;
        // KeySet already imported this key once, so it cannot fail here.
        HMS_CHECK(wc_RsaPublicKeyDecodeRaw(reinterpret_cast<const byte*>(jwk.rsa_n.data()),
                                           static_cast<word32>(jwk.rsa_n.size()),
                                           reinterpret_cast<const byte*>(jwk.rsa_e.data()),
                                           static_cast<word32>(jwk.rsa_e.size()), &k->rsa) == 0);
      } else if (jwk.alg == JwsAlg::kES256) {
        HMS_CHECK(wc_ecc_init(&k->ecc) == 0);
        k->ecc_ready = true;
        HMS_CHECK(wc_ecc_import_unsigned(&k->ecc, reinterpret_cast<const byte*>(jwk.ec_x.data()),
                                         reinterpret_cast<const byte*>(jwk.ec_y.data()), nullptr,
                                         ECC_SECP256R1) == 0);
      }
      keys.push_back(std::move(k));
    }
  }
};

std::string_view ReasonToken(JwtReason reason) noexcept {
  switch (reason) {
    case JwtReason::kOk:
      return "ok";
    case JwtReason::kMissingToken:
      return "missing_token";
    case JwtReason::kMalformed:
      return "malformed";
    case JwtReason::kAlgNone:
      return "alg_none";
    case JwtReason::kAlgMismatch:
      return "alg_mismatch";
    case JwtReason::kUnknownKid:
      return "unknown_kid";
    case JwtReason::kBadSignature:
      return "bad_signature";
    case JwtReason::kMissingExp:
      return "missing_exp";
    case JwtReason::kExpired:
      return "expired";
    case JwtReason::kNotYetValid:
      return "not_yet_valid";
    case JwtReason::kWrongIssuer:
      return "wrong_issuer";
    case JwtReason::kWrongAudience:
      return "wrong_audience";
    case JwtReason::kInsufficientScope:
      return "insufficient_scope";
  }
  return "unknown";
}

void Claims::Clear() noexcept {
  count_ = 0;
  sub_ = scope_ = iss_ = {};
  exp_ = nbf_ = 0;
  has_nbf_ = false;
}

std::optional<std::string_view> Claims::Get(std::string_view name) const noexcept {
  for (size_t i = 0; i < count_; ++i) {
    if (strings_[i].first == name) return strings_[i].second;
  }
  return std::nullopt;
}

bool Claims::HasScope(std::string_view scope) const noexcept {
  if (scope.empty()) return false;
  std::string_view rest = scope_;
  while (!rest.empty()) {
    const size_t sp = rest.find(' ');
    if (rest.substr(0, sp) == scope) return true;
    if (sp == std::string_view::npos) break;
    rest.remove_prefix(sp + 1);
  }
  return false;
}

JwtVerifier::JwtVerifier(const KeySet* keys, JwtPolicy policy, uint32_t cache_capacity)
    : keys_(keys),
      policy_(std::move(policy)),
      crypto_(std::make_unique<Crypto>()),
      cache_(cache_capacity) {
  HMS_CHECK(keys_ != nullptr);
  // Sized once here so that iterate() never grows it on the verify path.
  HMS_CHECK(crypto_->parser.allocate(kJsonCapacity) == simdjson::SUCCESS);
  crypto_->Load(*keys_);
}

JwtVerifier::~JwtVerifier() = default;

void JwtVerifier::Rebind(const KeySet* keys, JwtPolicy policy) {
  HMS_CHECK(keys != nullptr);
  keys_ = keys;
  policy_ = std::move(policy);
  crypto_->Load(*keys_);
  cache_.Clear();
}

// Header: alg and kid; crit would name extensions this code does not
// implement (RFC 7515 §4.1.11), so it is refused. Key-carrying members
// (jku, jwk, x5u, x5c) are ignored: keys come only from the key set.
// Fills *alg and *kid and marks in *seen (kAlg, kKid) which were present.
Verdict JwtVerifier::ParseHeader(std::string_view header_b64, std::string_view* alg,
                                 std::string_view* kid, uint32_t* seen) noexcept {
  const int64_t hn = DecodeBase64Url(header_b64, crypto_->json, kJsonCapacity);
  if (hn < 0) return Fail(JwtReason::kMalformed, "header is not base64url");
  od::document doc;
  od::object obj;
  if (crypto_->parser.iterate(crypto_->json, static_cast<size_t>(hn), sizeof crypto_->json)
          .get(doc) ||
      doc.get_object().get(obj)) {
    return Fail(JwtReason::kMalformed, "header is not a JSON object");
  }
  for (auto field : obj) {
    std::string_view key;
    if (field.unescaped_key().get(key)) {
      return Fail(JwtReason::kMalformed, "header is not valid JSON");
    }
    uint32_t bit = 0;
    std::string_view* slot = nullptr;
    if (key == "alg") {
      bit = kAlg;
      slot = alg;
    } else if (key == "kid") {
      bit = kKid;
      slot = kid;
    } else if (key == "crit") {
      return Fail(JwtReason::kMalformed, "crit header extensions are not supported");
    } else {
      continue;
    }
    if (*seen & bit) return Fail(JwtReason::kMalformed, "duplicate header member");
    *seen |= bit;
    if (field.value().get_string().get(*slot)) {
      return Fail(JwtReason::kMalformed, "alg and kid must be strings");
    }
  }
  if (!AtEnd(doc)) return Fail(JwtReason::kMalformed, "header is not valid JSON");
  return Ok();
}

Verdict JwtVerifier::Verify(std::string_view token, int64_t now, Claims* out) noexcept {
  Claims* claims = out != nullptr ? out : &scratch_claims_;
  claims->Clear();
  if (token.empty()) return Fail(JwtReason::kMissingToken, "no bearer token");
  if (token.size() > kMaxTokenBytes) {
    return Fail(JwtReason::kMalformed, "token longer than 8192 bytes");
  }
  const size_t d1 = token.find('.');
  const size_t d2 = d1 == std::string_view::npos ? d1 : token.find('.', d1 + 1);
  if (d2 == std::string_view::npos || token.find('.', d2 + 1) != std::string_view::npos) {
    return Fail(JwtReason::kMalformed, "a JWS compact token has three dot-separated segments");
  }
  const std::string_view header_b64 = token.substr(0, d1);
  const std::string_view payload_b64 = token.substr(d1 + 1, d2 - d1 - 1);
  const std::string_view sig_b64 = token.substr(d2 + 1);

  uint64_t h = 0;
  TokenCache::Window window;
  if (cache_.enabled()) {
    h = cache_.Hash(token);
    if (cache_.Find(token, h, &window)) {
      // Signature, claim syntax, iss and aud passed when this entry was made
      // (and the policy has not changed since: Rebind empties the cache);
      // time is checked again, in the same order as below.
      ++stats_.cache_hits;
      if (now >= window.valid_until) return Fail(JwtReason::kExpired, "token expired");
      if (now < window.not_before)
        return Fail(JwtReason::kNotYetValid, "token not valid yet (nbf)");
      if (out == nullptr) return Ok();
      int64_t unused_until, unused_before;
      return VerifyClaims(payload_b64, now, true, claims, &unused_until, &unused_before);
    }
  }

  std::string_view alg, kid;
  uint32_t seen = 0;
  if (Verdict v = ParseHeader(header_b64, &alg, &kid, &seen); !v.ok) return v;
  if (!(seen & kAlg)) return Fail(JwtReason::kMalformed, "header has no alg");
  if (EqualsIgnoreCase(alg, "none")) {
    return Fail(JwtReason::kAlgNone, "unsigned tokens (alg none) are refused");
  }
  const int key_index = keys_->Select(kid, (seen & kKid) != 0);
  if (key_index < 0) {
    return Fail(JwtReason::kUnknownKid, (seen & kKid) ? "kid not in the key set"
                                                      : "token has no kid and several keys exist");
  }
  if (alg != AlgName(keys_->key(static_cast<size_t>(key_index)).alg)) {
    return Fail(JwtReason::kAlgMismatch, "alg differs from the algorithm pinned by the key");
  }
  const std::string_view signing_input = token.substr(0, d2);
  if (!CheckSignature(key_index, signing_input, sig_b64)) {
    return Fail(JwtReason::kBadSignature, "signature does not verify");
  }
  ++stats_.verified;

  Verdict v =
      VerifyClaims(payload_b64, now, false, claims, &window.valid_until, &window.not_before);
  // A token that passed everything but time is cached too: the time checks
  // run on every hit. An expired one never becomes valid again.
  if ((v.ok || v.code == JwtReason::kNotYetValid) && now < window.valid_until) {
    cache_.Insert(token, h, window, now);
  }
  return v;
}

bool JwtVerifier::CheckSignature(int key_index, std::string_view signing_input,
                                 std::string_view sig_b64) noexcept {
  const Jwk& jwk = keys_->key(static_cast<size_t>(key_index));
  Crypto::Key& key = *crypto_->keys[static_cast<size_t>(key_index)];
  const int64_t n = DecodeBase64Url(sig_b64, crypto_->sig, sizeof crypto_->sig);
  if (n <= 0) return false;  // empty, not base64url, or longer than any accepted key's
  const auto* msg = reinterpret_cast<const byte*>(signing_input.data());
  const auto msg_len = static_cast<word32>(signing_input.size());
  switch (key.alg) {
    case JwsAlg::kHS256: {
      if (n != WC_SHA256_DIGEST_SIZE) return false;
      uint8_t mac[WC_SHA256_DIGEST_SIZE];
      Hmac hmac;
      if (wc_HmacInit(&hmac, nullptr, INVALID_DEVID) != 0) return false;
      const bool done =
          wc_HmacSetKey(&hmac, WC_SHA256, reinterpret_cast<const byte*>(jwk.secret.data()),
                        static_cast<word32>(jwk.secret.size())) == 0 &&
          wc_HmacUpdate(&hmac, msg, msg_len) == 0 && wc_HmacFinal(&hmac, mac) == 0;
      wc_HmacFree(&hmac);
      return done && ConstantTimeEqual(mac, crypto_->sig, WC_SHA256_DIGEST_SIZE);
    }
    case JwsAlg::kRS256: {
      if (n != wc_RsaEncryptSize(&key.rsa)) return false;
      uint8_t expected[sizeof kSha256DigestInfo + WC_SHA256_DIGEST_SIZE];
      std::memcpy(expected, kSha256DigestInfo, sizeof kSha256DigestInfo);
      if (wc_Sha256Hash(msg, msg_len, expected + sizeof kSha256DigestInfo) != 0) return false;
      byte* plain = nullptr;
      // Checks the PKCS#1 v1.5 type-1 padding and returns what it wraps.
      const int len =
          wc_RsaSSL_VerifyInline(crypto_->sig, static_cast<word32>(n), &plain, &key.rsa);
      return len == static_cast<int>(sizeof expected) &&
             ConstantTimeEqual(plain, expected, sizeof expected);
    }
    case JwsAlg::kES256: {
      // JWS carries r||s, 32 bytes each (RFC 7518 §3.4), not ASN.1 DER.
      if (n != 64) return false;
      uint8_t hash[WC_SHA256_DIGEST_SIZE];
      if (wc_Sha256Hash(msg, msg_len, hash) != 0) return false;
      uint8_t der[80];
      word32 der_len = sizeof der;
      if (wc_ecc_rs_raw_to_sig(crypto_->sig, 32, crypto_->sig + 32, 32, der, &der_len) != 0) {
        return false;
      }
      int verified = 0;
      return wc_ecc_verify_hash(der, der_len, hash, sizeof hash, &verified, &key.ecc) == 0 &&
             verified == 1;
    }
  }
  return false;
}

Verdict JwtVerifier::VerifyClaims(std::string_view payload_b64, int64_t now, bool cached,
                                  Claims* claims, int64_t* valid_until,
                                  int64_t* not_before) noexcept {
  *valid_until = INT64_MIN;
  *not_before = INT64_MIN;
  const int64_t pn = DecodeBase64Url(payload_b64, crypto_->json, kJsonCapacity);
  if (pn < 0) return Fail(JwtReason::kMalformed, "payload is not base64url");
  od::document doc;
  od::object obj;
  if (crypto_->parser.iterate(crypto_->json, static_cast<size_t>(pn), sizeof crypto_->json)
          .get(doc) ||
      doc.get_object().get(obj)) {
    return Fail(JwtReason::kMalformed, "claims are not a JSON object");
  }
  uint32_t seen = 0;
  bool iss_ok = policy_.issuer.empty();
  bool aud_ok = policy_.audience.empty();
  for (auto field : obj) {
    std::string_view key;
    od::value value;
    od::json_type type;
    if (field.unescaped_key().get(key) || field.value().get(value) || value.type().get(type)) {
      return Fail(JwtReason::kMalformed, "claims are not valid JSON");
    }
    uint32_t bit = 0;
    if (key == "exp")
      bit = kExp;
    else if (key == "nbf")
      bit = kNbf;
    else if (key == "aud")
      bit = kAud;
    else if (key == "iss")
      bit = kIss;
    else if (key == "sub")
      bit = kSub;
    else if (key == "scope")
      bit = kScope;
    if (bit != 0) {
      if (seen & bit) return Fail(JwtReason::kMalformed, "duplicate claim");
      seen |= bit;
    }
    if (bit == kExp || bit == kNbf) {
      int64_t t;
      if (!ReadNumericDate(value, &t)) {
        return Fail(JwtReason::kMalformed, "exp and nbf must be numbers");
      }
      if (bit == kExp) {
        claims->exp_ = t;
      } else {
        claims->nbf_ = t;
        claims->has_nbf_ = true;
      }
      continue;
    }
    if (bit == kAud && type == od::json_type::array) {
      od::array arr;
      if (value.get_array().get(arr))
        return Fail(JwtReason::kMalformed, "claims are not valid JSON");
      for (auto item : arr) {
        std::string_view aud;
        if (item.get_string().get(aud)) {
          return Fail(JwtReason::kMalformed, "aud array holds a non-string");
        }
        if (aud == policy_.audience) aud_ok = true;
      }
      continue;
    }
    if (type != od::json_type::string) {
      if (bit != 0) return Fail(JwtReason::kMalformed, "iss, sub, aud and scope must be strings");
      continue;  // numbers, booleans, arrays, objects: not string claims
    }
    std::string_view s;
    if (value.get_string().get(s)) return Fail(JwtReason::kMalformed, "claims are not valid JSON");
    if (Verdict v = StoreStringClaim(key, s, bit, claims, &iss_ok, &aud_ok); !v.ok) return v;
  }
  if (!AtEnd(doc)) return Fail(JwtReason::kMalformed, "claims are not valid JSON");
  return CheckClaims(seen, iss_ok, aud_ok, now, cached, *claims, valid_until, not_before);
}

// One string claim (unescaped): kept by name in *claims, and the registered
// ones (iss, sub, scope, aud) also in their own fields; *iss_ok and *aud_ok
// turn true when it names the policy's issuer or audience.
Verdict JwtVerifier::StoreStringClaim(std::string_view key, std::string_view s, uint32_t bit,
                                      Claims* claims, bool* iss_ok, bool* aud_ok) noexcept {
  if (bit == 0) {
    for (size_t i = 0; i < claims->count_; ++i) {
      if (claims->strings_[i].first == key) return Fail(JwtReason::kMalformed, "duplicate claim");
    }
  }
  if (claims->count_ == Claims::kMaxStringClaims) {
    return Fail(JwtReason::kMalformed, "more than 64 string claims");
  }
  claims->strings_[claims->count_++] = {key, s};
  switch (bit) {
    case kIss:
      claims->iss_ = s;
      if (!policy_.issuer.empty() && s == policy_.issuer) *iss_ok = true;
      break;
    case kSub:
      claims->sub_ = s;
      break;
    case kScope:
      claims->scope_ = s;
      break;
    case kAud:
      if (!policy_.audience.empty() && s == policy_.audience) *aud_ok = true;
      break;
    default:
      break;
  }
  return Ok();
}

// After the whole payload was read: the required claims (exp; iss and aud
// when the policy names them), then the time window with the leeway, which a
// cache hit checks itself on every use.
Verdict JwtVerifier::CheckClaims(uint32_t seen, bool iss_ok, bool aud_ok, int64_t now, bool cached,
                                 const Claims& claims, int64_t* valid_until,
                                 int64_t* not_before) const noexcept {
  if (!(seen & kExp)) return Fail(JwtReason::kMissingExp, "exp claim is required");
  if (!iss_ok) {
    return Fail(JwtReason::kWrongIssuer,
                (seen & kIss) ? "iss is not the expected issuer" : "iss claim is required");
  }
  if (!aud_ok) {
    return Fail(JwtReason::kWrongAudience,
                (seen & kAud) ? "aud does not name this audience" : "aud claim is required");
  }
  const int64_t leeway = policy_.leeway_s;
  *valid_until = claims.exp_ + leeway;
  *not_before = claims.has_nbf_ ? claims.nbf_ - leeway : INT64_MIN;
  if (!cached) {
    // RFC 7519 §4.1.4: now must be before exp; §4.1.5: at or after nbf.
    if (now >= *valid_until) return Fail(JwtReason::kExpired, "token expired");
    if (now < *not_before) return Fail(JwtReason::kNotYetValid, "token not valid yet (nbf)");
  }
  return Ok();
}

bool HasRequired(const Claims& claims,
                 const std::vector<std::pair<std::string, std::string>>& require) noexcept {
  for (const auto& [name, value] : require) {
    if (name == "scope") {
      // Every scope the route lists must be granted.
      std::string_view rest = value;
      while (!rest.empty()) {
        const size_t sp = rest.find(' ');
        const std::string_view one = rest.substr(0, sp);
        if (!one.empty() && !claims.HasScope(one)) return false;
        if (sp == std::string_view::npos) break;
        rest.remove_prefix(sp + 1);
      }
      continue;
    }
    const std::optional<std::string_view> got = claims.Get(name);
    if (!got || *got != value) return false;
  }
  return true;
}

Verdict CheckRequired(const Claims& claims,
                      const std::vector<std::pair<std::string, std::string>>& require) noexcept {
  if (HasRequired(claims, require)) return Ok();
  return Fail(JwtReason::kInsufficientScope, "token lacks a claim or scope this route requires");
}

std::string_view BearerToken(std::string_view authorization) noexcept {
  constexpr std::string_view kScheme = "bearer";
  if (authorization.size() <= kScheme.size() ||
      !EqualsIgnoreCase(authorization.substr(0, kScheme.size()), kScheme) ||
      authorization[kScheme.size()] != ' ') {
    return {};
  }
  std::string_view token = authorization.substr(kScheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
  // token68 (RFC 7235 §2.1); JWTs use only the base64url alphabet and '.'.
  for (const char c : token) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' ||
                    c == '=';
    if (!ok) return {};
  }
  return token;
}

size_t FormatWwwAuthenticate(const Verdict& verdict, char* out, size_t cap) noexcept {
  std::string_view error;
  if (verdict.code == JwtReason::kMissingToken) {
    // RFC 6750 §3.1: no error code when the request had no credentials.
    if (cap < 6) return 0;
    std::memcpy(out, "Bearer", 6);
    return 6;
  }
  error = verdict.code == JwtReason::kInsufficientScope ? "insufficient_scope" : "invalid_token";
  const std::string_view parts[] = {"Bearer error=\"", error, "\", error_description=\"",
                                    verdict.description, "\""};
  size_t n = 0;
  for (const std::string_view p : parts) n += p.size();
  if (n > cap) return 0;
  size_t o = 0;
  for (const std::string_view p : parts) {
    std::memcpy(out + o, p.data(), p.size());
    o += p.size();
  }
  return o;
}

}  // namespace hms::auth
