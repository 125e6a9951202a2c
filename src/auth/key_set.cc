// Key sets are parsed on the control thread (config load or reload): they may
// allocate and read files. Every key is imported into wolfCrypt once here so
// that a key the verifiers could not use fails the load, not a request.
#include "hms/auth/key_set.h"

// wolfssl/options.h (the build's defines) goes before every other wolfSSL
// header; include sorting would move simdjson above it.
// clang-format off
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/rsa.h>
#include <simdjson.h>
// clang-format on

#include <cstdio>

#include "hms/auth/base64url.h"
#include "hms/common/file_check.h"

namespace hms::auth {
namespace {

// simdjson 3.0 has no document::at_end(): past the last token the iterator
// reports OUT_OF_BOUNDS.
bool AtEnd(simdjson::ondemand::document& doc) {
  return doc.current_location().error() == simdjson::OUT_OF_BOUNDS;
}

bool DecodeMember(std::string_view b64, std::string* out) {
  out->assign(Base64UrlDecodedSize(b64.size()), '\0');
  const int64_t n = DecodeBase64Url(b64, reinterpret_cast<uint8_t*>(out->data()), out->size());
  if (n < 0) return false;
  out->resize(static_cast<size_t>(n));
  return true;
}

void StripLeadingZeros(std::string* s) {
  size_t i = 0;
  while (i + 1 < s->size() && (*s)[i] == '\0') ++i;
  s->erase(0, i);
}

size_t BitLength(const std::string& be) {
  if (be.empty()) return 0;
  return (be.size() - 1) * 8 +
         (32 - static_cast<size_t>(__builtin_clz(static_cast<uint8_t>(be[0]))));
}

// The members of one JWKS entry this loader reads; others (x5c, private
// parts...) are ignored, as RFC 7517 §4 asks of unknown members.
struct RawJwk {
  std::string_view kty, kid, use, alg, n, e, crv, x, y, k;
  std::string key_ops;  // the "key_ops" entries, comma-separated, for messages
  bool has_kid = false, has_use = false, has_alg = false;
  bool has_key_ops = false, key_ops_verify = false;
};

// Why a key is not for verifying signatures (RFC 7517 §4.2 "use", §4.3
// "key_ops"), or empty when it may verify. A key with neither member is
// used, as most issuers publish their keys that way.
std::string NotForSignatures(const RawJwk& raw) {
  if (raw.has_use && raw.use != "sig") {
    return "\"use\" is \"" + std::string(raw.use) + "\", not \"sig\"";
  }
  if (raw.has_key_ops && !raw.key_ops_verify) {
    return "\"key_ops\" [" + raw.key_ops + "] lacks \"verify\"";
  }
  return {};
}

std::string Where(std::string_view origin, size_t index, const RawJwk& raw) {
  std::string w = std::string(origin) + ": key " + std::to_string(index);
  if (raw.has_kid) w += " (kid \"" + std::string(raw.kid) + "\")";
  return w + ": ";
}

Result<Jwk> ConvertRsa(const RawJwk& raw, const std::string& where) {
  Jwk key;
  key.alg = JwsAlg::kRS256;
  if (raw.has_alg && raw.alg != "RS256") {
    return ConfigError(where + "alg \"" + std::string(raw.alg) +
                       "\" on an RSA key: RSA keys verify RS256 only");
  }
  if (raw.n.empty() || raw.e.empty()) return ConfigError(where + "RSA key needs \"n\" and \"e\"");
  if (!DecodeMember(raw.n, &key.rsa_n) || !DecodeMember(raw.e, &key.rsa_e)) {
    return ConfigError(where + "\"n\" or \"e\" is not base64url");
  }
  StripLeadingZeros(&key.rsa_n);
  StripLeadingZeros(&key.rsa_e);
  const size_t bits = BitLength(key.rsa_n);
  if (bits < KeySet::kMinRsaBits || bits > KeySet::kMaxRsaBits) {
    return ConfigError(where + "RSA modulus of " + std::to_string(bits) +
                       " bits (2048 to 4096 accepted)");
  }
  const auto last = static_cast<uint8_t>(key.rsa_e.back());
  if (key.rsa_e.size() > 8 || (last & 1) == 0 || (key.rsa_e.size() == 1 && last < 3)) {
    return ConfigError(where + "RSA exponent \"e\" is not an odd number >= 3 of at most 64 bits");
  }
  RsaKey rsa;
  if (wc_InitRsaKey(&rsa, nullptr) != 0) return ConfigError(where + "wolfCrypt RSA init failed");
  const int rc = wc_RsaPublicKeyDecodeRaw(
      reinterpret_cast<const byte*>(key.rsa_n.data()), static_cast<word32>(key.rsa_n.size()),
      reinterpret_cast<const byte*>(key.rsa_e.data()), static_cast<word32>(key.rsa_e.size()), &rsa);
  wc_FreeRsaKey(&rsa);
  if (rc != 0)
    return ConfigError(where + "wolfCrypt refused the RSA key (" + std::to_string(rc) + ")");
  return key;
}

Result<Jwk> ConvertEc(const RawJwk& raw, const std::string& where) {
  Jwk key;
  key.alg = JwsAlg::kES256;
  if (raw.crv != "P-256") {
    return ConfigError(where + "EC curve \"" + std::string(raw.crv) + "\" (only P-256, for ES256)");
  }
  if (raw.has_alg && raw.alg != "ES256") {
    return ConfigError(where + "alg \"" + std::string(raw.alg) +
                       "\" on a P-256 key: P-256 keys verify ES256 only");
  }
  if (!DecodeMember(raw.x, &key.ec_x) || !DecodeMember(raw.y, &key.ec_y) || key.ec_x.size() != 32 ||
      key.ec_y.size() != 32) {
    return ConfigError(where + "\"x\" and \"y\" must be 32 bytes of base64url each");
  }
  ecc_key ecc;
  if (wc_ecc_init(&ecc) != 0) return ConfigError(where + "wolfCrypt ECC init failed");
  int rc = wc_ecc_import_unsigned(&ecc, reinterpret_cast<const byte*>(key.ec_x.data()),
                                  reinterpret_cast<const byte*>(key.ec_y.data()), nullptr,
                                  ECC_SECP256R1);
  if (rc == 0) rc = wc_ecc_check_key(&ecc);  // on the curve, right order
  wc_ecc_free(&ecc);
  if (rc != 0)
    return ConfigError(where + "not a valid P-256 public key (" + std::to_string(rc) + ")");
  return key;
}

Result<Jwk> ConvertOct(const RawJwk& raw, const std::string& where) {
  Jwk key;
  key.alg = JwsAlg::kHS256;
  if (raw.has_alg && raw.alg != "HS256") {
    return ConfigError(where + "alg \"" + std::string(raw.alg) +
                       "\" on an oct key: symmetric keys verify HS256 only");
  }
  if (!DecodeMember(raw.k, &key.secret)) return ConfigError(where + "\"k\" is not base64url");
  if (key.secret.size() < KeySet::kMinHs256SecretBytes) {
    return ConfigError(where + "HS256 key of " + std::to_string(key.secret.size()) +
                       " bytes (at least 32)");
  }
  return key;
}

// The members of key `index` of a JWKS that this code reads, as views into
// the parser's buffers (valid until its next document).
Result<RawJwk> ReadRawJwk(simdjson::ondemand::object& obj, const std::string& o, size_t index) {
  namespace od = simdjson::ondemand;
  RawJwk raw;
  for (auto member : obj) {
    std::string_view key;
    if (member.unescaped_key().get(key)) return ConfigError(o + ": invalid JSON");
    std::string_view* slot = nullptr;
    if (key == "kty")
      slot = &raw.kty;
    else if (key == "kid")
      slot = &raw.kid, raw.has_kid = true;
    else if (key == "use")
      slot = &raw.use, raw.has_use = true;
    else if (key == "alg")
      slot = &raw.alg, raw.has_alg = true;
    else if (key == "n")
      slot = &raw.n;
    else if (key == "e")
      slot = &raw.e;
    else if (key == "crv")
      slot = &raw.crv;
    else if (key == "x")
      slot = &raw.x;
    else if (key == "y")
      slot = &raw.y;
    else if (key == "k")
      slot = &raw.k;
    if (key == "key_ops") {
      od::array ops;
      if (member.value().get_array().get(ops)) {
        return ConfigError(o + ": key " + std::to_string(index) +
                           ": \"key_ops\" is not an array of strings");
      }
      raw.has_key_ops = true;
      for (auto op_value : ops) {
        std::string_view op;
        if (op_value.get_string().get(op)) {
          return ConfigError(o + ": key " + std::to_string(index) +
                             ": \"key_ops\" is not an array of strings");
        }
        if (op == "verify") raw.key_ops_verify = true;
        raw.key_ops += (raw.key_ops.empty() ? "\"" : ", \"") + std::string(op) + "\"";
      }
      continue;
    }
    if (slot == nullptr) continue;
    if (member.value().get_string().get(*slot)) {
      return ConfigError(o + ": key " + std::to_string(index) + ": \"" + std::string(key) +
                         "\" is not a string");
    }
  }
  return raw;
}

Result<Jwk> ConvertJwk(const RawJwk& raw, const std::string& where) {
  if (raw.kty == "RSA") return ConvertRsa(raw, where);
  if (raw.kty == "EC") return ConvertEc(raw, where);
  if (raw.kty == "oct") return ConvertOct(raw, where);
  return ConfigError(where + "unsupported kty \"" + std::string(raw.kty) +
                     "\" (RSA, EC P-256 and oct are)");
}

// The error when a JWKS holds no key that may verify, with why each skipped
// key was (every note starts with "<origin>: ", dropped here).
std::string NoSigningKeys(const std::string& o, const std::vector<std::string>& skipped) {
  std::string e = o + ": no signing keys";
  if (!skipped.empty()) {
    e += " (" + std::to_string(skipped.size()) + " skipped: ";
    for (size_t i = 0; i < skipped.size(); ++i) {
      // Each note starts with the origin; "key N (kid ...): ..." is enough here.
      e += (i ? "; " : "") + skipped[i].substr(o.size() + 2);
    }
    e += ")";
  }
  return e;
}

}  // namespace

std::string_view AlgName(JwsAlg alg) noexcept {
  switch (alg) {
    case JwsAlg::kHS256:
      return "HS256";
    case JwsAlg::kRS256:
      return "RS256";
    case JwsAlg::kES256:
      return "ES256";
  }
  return "?";
}

Result<KeySet> KeySet::FromJwksFile(const std::string& path) {
  auto data = ReadSmallFile(path);
  if (!data) return data.error();
  return FromJwks(*data, path);
}

Result<KeySet> KeySet::FromJwks(std::string_view json, std::string_view origin) {
  namespace od = simdjson::ondemand;
  const std::string o(origin);
  simdjson::padded_string padded(json);
  od::parser parser;
  od::document doc;
  od::object top;
  if (parser.iterate(padded).get(doc) || doc.get_object().get(top)) {
    return ConfigError(o + ": not a JSON object");
  }
  KeySet set;
  bool saw_keys = false;
  for (auto top_field : top) {
    std::string_view name;
    if (top_field.unescaped_key().get(name)) return ConfigError(o + ": invalid JSON");
    if (name != "keys") continue;
    if (saw_keys) return ConfigError(o + ": \"keys\" appears twice");
    saw_keys = true;
    od::array keys;
    if (top_field.value().get_array().get(keys))
      return ConfigError(o + ": \"keys\" is not an array");
    size_t index = 0;
    for (auto entry : keys) {
      od::object obj;
      if (entry.get_object().get(obj)) {
        return ConfigError(o + ": key " + std::to_string(index) + ": not a JSON object");
      }
      Result<RawJwk> raw_or = ReadRawJwk(obj, o, index);
      if (!raw_or) return raw_or.error();
      const RawJwk& raw = *raw_or;
      const std::string where = Where(origin, index, raw);
      ++index;
      // Keys published for encryption (or for anything but verifying) never
      // verify a JWS: skipped, and said why, before they are even parsed.
      if (std::string why = NotForSignatures(raw); !why.empty()) {
        set.skipped_.push_back(where + "skipped: " + why);
        continue;
      }
      Result<Jwk> key = ConvertJwk(raw, where);
      if (!key) return key.error();
      key->kid = std::string(raw.kid);
      for (const Jwk& other : set.keys_) {
        if (other.kid == key->kid) return ConfigError(where + "duplicate kid");
      }
      set.keys_.push_back(std::move(*key));
    }
  }
  if (!AtEnd(doc)) return ConfigError(o + ": invalid JSON after the top-level object");
  if (!saw_keys) return ConfigError(o + ": no \"keys\" array");
  if (set.keys_.empty()) return ConfigError(NoSigningKeys(o, set.skipped_));
  if (set.keys_.size() > 1) {
    for (const Jwk& k : set.keys_) {
      if (k.kid.empty())
        return ConfigError(o + ": every key needs a \"kid\" when there are several");
    }
  }
  return set;
}

Result<KeySet> KeySet::FromHs256SecretFile(const std::string& path) {
  auto data = ReadSmallFile(path);
  if (!data) return data.error();
  return FromHs256Secret(*data, path);
}

Result<KeySet> KeySet::FromHs256Secret(std::string_view secret, std::string_view origin) {
  if (secret.ends_with("\r\n")) {
    secret.remove_suffix(2);
  } else if (secret.ends_with('\n')) {
    secret.remove_suffix(1);
  }
  if (secret.size() < kMinHs256SecretBytes) {
    return ConfigError(std::string(origin) + ": HS256 secret of " + std::to_string(secret.size()) +
                       " bytes (at least 32)");
  }
  KeySet set;
  Jwk key;
  key.alg = JwsAlg::kHS256;
  key.secret = std::string(secret);
  set.keys_.push_back(std::move(key));
  return set;
}

int KeySet::Select(std::string_view kid, bool token_has_kid) const noexcept {
  if (token_has_kid) {
    for (size_t i = 0; i < keys_.size(); ++i) {
      if (keys_[i].kid == kid) return static_cast<int>(i);
    }
  }
  if (keys_.size() == 1 && (!token_has_kid || keys_[0].kid.empty())) return 0;
  return -1;
}

}  // namespace hms::auth
