#include "hms/auth/mint.h"

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/rsa.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include <cstring>
#include <vector>

#include "hms/auth/base64url.h"
#include "hms/common/json_escape.h"

namespace hms::auth {
namespace {

constexpr uint8_t kSha256DigestInfo[19] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                           0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                           0x01, 0x05, 0x00, 0x04, 0x20};

std::string SigningInput(JwsAlg alg, std::string_view kid, std::string_view claims_json) {
  std::string header = "{\"alg\":\"" + std::string(AlgName(alg)) + "\",\"typ\":\"JWT\"";
  if (!kid.empty()) {
    header += ",\"kid\":";
    AppendJsonString(&header, kid);
  }
  header += '}';
  return EncodeBase64Url(header) + "." + EncodeBase64Url(claims_json);
}

std::string BytesOf(const uint8_t* p, size_t n) {
  return std::string(reinterpret_cast<const char*>(p), n);
}

Error MintError(std::string what, int rc) {
  return Error{what + " failed (" + std::to_string(rc) + ")", Side::kInternal, false};
}

}  // namespace

struct JwsSigner::Keys {
  JwsAlg alg = JwsAlg::kES256;
  WC_RNG rng;
  RsaKey rsa;
  ecc_key ecc;
  bool rng_ready = false, rsa_ready = false, ecc_ready = false;
  ~Keys() {
    if (rsa_ready) wc_FreeRsaKey(&rsa);
    if (ecc_ready) wc_ecc_free(&ecc);
    if (rng_ready) wc_FreeRng(&rng);
  }
};

Result<std::string> MintHs256(std::string_view secret, std::string_view claims_json,
                              std::string_view kid) {
  std::string si = SigningInput(JwsAlg::kHS256, kid, claims_json);
  uint8_t mac[WC_SHA256_DIGEST_SIZE];
  Hmac hmac;
  int rc = wc_HmacInit(&hmac, nullptr, INVALID_DEVID);
  if (rc != 0) return MintError("HMAC init", rc);
  rc = wc_HmacSetKey(&hmac, WC_SHA256, reinterpret_cast<const byte*>(secret.data()),
                     static_cast<word32>(secret.size()));
  if (rc == 0)
    rc = wc_HmacUpdate(&hmac, reinterpret_cast<const byte*>(si.data()),
                       static_cast<word32>(si.size()));
  if (rc == 0) rc = wc_HmacFinal(&hmac, mac);
  wc_HmacFree(&hmac);
  if (rc != 0) return MintError("HMAC-SHA256", rc);
  return si + "." + EncodeBase64Url(BytesOf(mac, sizeof mac));
}

JwsSigner::JwsSigner(std::string kid, std::unique_ptr<Keys> keys) noexcept
    : kid_(std::move(kid)), keys_(std::move(keys)) {}
JwsSigner::JwsSigner(JwsSigner&&) noexcept = default;
JwsSigner& JwsSigner::operator=(JwsSigner&&) noexcept = default;
JwsSigner::~JwsSigner() = default;

JwsAlg JwsSigner::alg() const noexcept { return keys_->alg; }

Result<JwsSigner> JwsSigner::GenerateEs256(std::string kid) {
  auto k = std::make_unique<Keys>();
  k->alg = JwsAlg::kES256;
  int rc = wc_InitRng(&k->rng);
  if (rc != 0) return MintError("RNG init", rc);
  k->rng_ready = true;
  rc = wc_ecc_init(&k->ecc);
  if (rc != 0) return MintError("ECC init", rc);
  k->ecc_ready = true;
  rc = wc_ecc_make_key_ex(&k->rng, 32, &k->ecc, ECC_SECP256R1);
  if (rc != 0) return MintError("P-256 key generation", rc);
  return JwsSigner(std::move(kid), std::move(k));
}

Result<JwsSigner> JwsSigner::GenerateRs256(std::string kid, int bits) {
  if (bits < 2048 || bits > 4096) return MintError("RSA key size check", bits);
  auto k = std::make_unique<Keys>();
  k->alg = JwsAlg::kRS256;
  int rc = wc_InitRng(&k->rng);
  if (rc != 0) return MintError("RNG init", rc);
  k->rng_ready = true;
  rc = wc_InitRsaKey(&k->rsa, nullptr);
  if (rc != 0) return MintError("RSA init", rc);
  k->rsa_ready = true;
  rc = wc_MakeRsaKey(&k->rsa, bits, WC_RSA_EXPONENT, &k->rng);
  if (rc != 0) return MintError("RSA key generation", rc);
  rc = wc_RsaSetRNG(&k->rsa, &k->rng);  // blinding for the private operation
  if (rc != 0) return MintError("RSA RNG", rc);
  return JwsSigner(std::move(kid), std::move(k));
}

std::string JwsSigner::PublicJwk() const {
  std::string jwk = "{\"kid\":\"" + kid_ + "\",\"alg\":\"" + std::string(AlgName(keys_->alg)) +
                    "\",\"use\":\"sig\",";
  if (keys_->alg == JwsAlg::kES256) {
    uint8_t x[32], y[32];
    word32 xl = sizeof x, yl = sizeof y;
    if (wc_ecc_export_public_raw(&keys_->ecc, x, &xl, y, &yl) != 0) return {};
    jwk += "\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" + EncodeBase64Url(BytesOf(x, xl)) +
           "\",\"y\":\"" + EncodeBase64Url(BytesOf(y, yl)) + "\"}";
  } else {
    std::vector<uint8_t> n(512), e(8);
    word32 nl = static_cast<word32>(n.size()), el = static_cast<word32>(e.size());
    if (wc_RsaFlattenPublicKey(&keys_->rsa, e.data(), &el, n.data(), &nl) != 0) return {};
    jwk += "\"kty\":\"RSA\",\"n\":\"" + EncodeBase64Url(BytesOf(n.data(), nl)) + "\",\"e\":\"" +
           EncodeBase64Url(BytesOf(e.data(), el)) + "\"}";
  }
  return jwk;
}

Result<std::string> JwsSigner::Mint(std::string_view claims_json) {
  const std::string si = SigningInput(keys_->alg, kid_, claims_json);
  uint8_t hash[WC_SHA256_DIGEST_SIZE];
  int rc =
      wc_Sha256Hash(reinterpret_cast<const byte*>(si.data()), static_cast<word32>(si.size()), hash);
  if (rc != 0) return MintError("SHA-256", rc);
  if (keys_->alg == JwsAlg::kES256) {
    uint8_t der[80];
    word32 der_len = sizeof der;
    rc = wc_ecc_sign_hash(hash, sizeof hash, der, &der_len, &keys_->rng, &keys_->ecc);
    if (rc != 0) return MintError("ECDSA sign", rc);
    // JWS wants r||s, each left-padded to 32 bytes (RFC 7518 §3.4).
    uint8_t r[32], s[32], rs[64] = {};
    word32 rl = sizeof r, sl = sizeof s;
    rc = wc_ecc_sig_to_rs(der, der_len, r, &rl, s, &sl);
    if (rc != 0) return MintError("ECDSA signature decode", rc);
    std::memcpy(rs + 32 - rl, r, rl);
    std::memcpy(rs + 64 - sl, s, sl);
    return si + "." + EncodeBase64Url(BytesOf(rs, sizeof rs));
  }
  uint8_t info[sizeof kSha256DigestInfo + sizeof hash];
  std::memcpy(info, kSha256DigestInfo, sizeof kSha256DigestInfo);
  std::memcpy(info + sizeof kSha256DigestInfo, hash, sizeof hash);
  std::vector<uint8_t> sig(static_cast<size_t>(wc_RsaEncryptSize(&keys_->rsa)));
  rc = wc_RsaSSL_Sign(info, sizeof info, sig.data(), static_cast<word32>(sig.size()), &keys_->rsa,
                      &keys_->rng);
  if (rc < 0) return MintError("RSA sign", rc);
  return si + "." + EncodeBase64Url(BytesOf(sig.data(), static_cast<size_t>(rc)));
}

}  // namespace hms::auth
