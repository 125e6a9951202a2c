// wolfCrypt primitives the mesh's TLS and JWT paths are made of, to compare
// wolfSSL builds (Debian's package vs tools/bootstrap's source build with
// AES-NI and SP-math assembly; bench/RESULTS.md):
//   BM_AesGcm128_16KiB, BM_AesGcm256_16KiB, BM_ChaCha20Poly1305_16KiB
//     one full TLS record (16 KiB) sealed per iteration; bytes_per_second;
//   BM_Sha256_16KiB         the TLS transcript and HS256 JWT hash;
//   BM_EcdsaP256Sign/Verify the mesh identities' signatures (ES256 JWTs too);
//   BM_EcdheP256            a TLS key share: ephemeral key + shared secret;
//   BM_Rsa2048Verify        RS256 JWTs and RSA certificate chains.
// The context lines say which build ran (version, AES-NI, SP asm).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

// The library itself is what is measured here, so its headers come in directly
// rather than through the auth/tls modules that wrap them (STYLE 8).
#include <wolfssl/options.h>
#include <wolfssl/version.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/chacha20_poly1305.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/rsa.h>
#include <wolfssl/wolfcrypt/sha256.h>

namespace {

constexpr size_t kRecordBytes = 16 * 1024;  // TLS's largest plaintext record (RFC 8446 §5.1)

[[noreturn]] void Die(const char* what, int rc) {
  std::fprintf(stderr, "bench-crypto: %s failed (%d)\n", what, rc);
  std::exit(1);
}

void Check(const char* what, int rc) {
  if (rc != 0) Die(what, rc);
}

std::vector<byte> Bytes(size_t n, byte seed) {
  std::vector<byte> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<byte>(seed + i * 31);
  return v;
}

WC_RNG* Rng() {
  static WC_RNG* rng = [] {
    static WC_RNG r;
    Check("wc_InitRng", wc_InitRng(&r));
    return &r;
  }();
  return rng;
}

void AesGcm(benchmark::State& state, int key_bytes) {
  const std::vector<byte> key = Bytes(static_cast<size_t>(key_bytes), 1);
  const std::vector<byte> iv = Bytes(GCM_NONCE_MID_SZ, 2);
  const std::vector<byte> aad = Bytes(13, 3);  // a TLS 1.2 record's additional data
  const std::vector<byte> in = Bytes(kRecordBytes, 4);
  std::vector<byte> out(kRecordBytes);
  byte tag[AES_BLOCK_SIZE];
  Aes aes;
  Check("wc_AesInit", wc_AesInit(&aes, nullptr, INVALID_DEVID));
  Check("wc_AesGcmSetKey", wc_AesGcmSetKey(&aes, key.data(), static_cast<word32>(key.size())));
  for (auto _ : state) {
    Check("wc_AesGcmEncrypt",
          wc_AesGcmEncrypt(&aes, out.data(), in.data(), static_cast<word32>(in.size()), iv.data(),
                           static_cast<word32>(iv.size()), tag, sizeof(tag), aad.data(),
                           static_cast<word32>(aad.size())));
    benchmark::DoNotOptimize(out.data());
    benchmark::DoNotOptimize(tag);
  }
  wc_AesFree(&aes);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kRecordBytes));
}

void BM_AesGcm128_16KiB(benchmark::State& state) { AesGcm(state, 16); }
void BM_AesGcm256_16KiB(benchmark::State& state) { AesGcm(state, 32); }

void BM_ChaCha20Poly1305_16KiB(benchmark::State& state) {
  const std::vector<byte> key = Bytes(CHACHA20_POLY1305_AEAD_KEYSIZE, 1);
  const std::vector<byte> iv = Bytes(CHACHA20_POLY1305_AEAD_IV_SIZE, 2);
  const std::vector<byte> aad = Bytes(13, 3);
  const std::vector<byte> in = Bytes(kRecordBytes, 4);
  std::vector<byte> out(kRecordBytes);
  byte tag[CHACHA20_POLY1305_AEAD_AUTHTAG_SIZE];
  for (auto _ : state) {
    Check("wc_ChaCha20Poly1305_Encrypt",
          wc_ChaCha20Poly1305_Encrypt(key.data(), iv.data(), aad.data(),
                                      static_cast<word32>(aad.size()), in.data(),
                                      static_cast<word32>(in.size()), out.data(), tag));
    benchmark::DoNotOptimize(out.data());
    benchmark::DoNotOptimize(tag);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kRecordBytes));
}

void BM_Sha256_16KiB(benchmark::State& state) {
  const std::vector<byte> in = Bytes(kRecordBytes, 5);
  byte digest[WC_SHA256_DIGEST_SIZE];
  for (auto _ : state) {
    Check("wc_Sha256Hash", wc_Sha256Hash(in.data(), static_cast<word32>(in.size()), digest));
    benchmark::DoNotOptimize(digest);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kRecordBytes));
}

// One P-256 key for the process: made once, as a service's identity is.
ecc_key* P256Key() {
  static ecc_key* key = [] {
    static ecc_key k;
    Check("wc_ecc_init", wc_ecc_init(&k));
    Check("wc_ecc_make_key_ex", wc_ecc_make_key_ex(Rng(), 32, &k, ECC_SECP256R1));
    return &k;
  }();
  return key;
}

void BM_EcdsaP256Sign(benchmark::State& state) {
  const std::vector<byte> hash = Bytes(WC_SHA256_DIGEST_SIZE, 6);
  byte sig[ECC_MAX_SIG_SIZE];
  for (auto _ : state) {
    word32 sig_len = sizeof(sig);
    Check("wc_ecc_sign_hash", wc_ecc_sign_hash(hash.data(), static_cast<word32>(hash.size()), sig,
                                               &sig_len, Rng(), P256Key()));
    benchmark::DoNotOptimize(sig);
  }
}

void BM_EcdsaP256Verify(benchmark::State& state) {
  const std::vector<byte> hash = Bytes(WC_SHA256_DIGEST_SIZE, 6);
  byte sig[ECC_MAX_SIG_SIZE];
  word32 sig_len = sizeof(sig);
  Check("wc_ecc_sign_hash", wc_ecc_sign_hash(hash.data(), static_cast<word32>(hash.size()), sig,
                                             &sig_len, Rng(), P256Key()));
  for (auto _ : state) {
    int verified = 0;
    Check("wc_ecc_verify_hash", wc_ecc_verify_hash(sig, sig_len, hash.data(),
                                                   static_cast<word32>(hash.size()), &verified,
                                                   P256Key()));
    if (verified != 1) Die("signature check", verified);
  }
}

// What each side of a TLS 1.3 handshake with a P-256 key share computes:
// a fresh ephemeral key, then the shared secret with the peer's public key.
void BM_EcdheP256(benchmark::State& state) {
  byte secret[32];
  for (auto _ : state) {
    ecc_key eph;
    Check("wc_ecc_init", wc_ecc_init(&eph));
    Check("wc_ecc_make_key_ex", wc_ecc_make_key_ex(Rng(), 32, &eph, ECC_SECP256R1));
    // ECC_TIMING_RESISTANT builds blind the scalar multiplication with the RNG.
    Check("wc_ecc_set_rng", wc_ecc_set_rng(&eph, Rng()));
    word32 secret_len = sizeof(secret);
    Check("wc_ecc_shared_secret", wc_ecc_shared_secret(&eph, P256Key(), secret, &secret_len));
    benchmark::DoNotOptimize(secret);
    wc_ecc_free(&eph);
  }
}

void BM_Rsa2048Verify(benchmark::State& state) {
  static RsaKey key;
  static bool made = false;
  if (!made) {
    Check("wc_InitRsaKey", wc_InitRsaKey(&key, nullptr));
    Check("wc_MakeRsaKey", wc_MakeRsaKey(&key, 2048, WC_RSA_EXPONENT, Rng()));
    made = true;
  }
  const std::vector<byte> digest_info = Bytes(51, 7);  // DER DigestInfo of a SHA-256 hash
  byte sig[256];
  const int sig_len = wc_RsaSSL_Sign(digest_info.data(), static_cast<word32>(digest_info.size()),
                                     sig, sizeof(sig), &key, Rng());
  if (sig_len <= 0) Die("wc_RsaSSL_Sign", sig_len);
  byte out[256];
  for (auto _ : state) {
    const int n = wc_RsaSSL_Verify(sig, static_cast<word32>(sig_len), out, sizeof(out), &key);
    if (n != static_cast<int>(digest_info.size())) Die("wc_RsaSSL_Verify", n);
    benchmark::DoNotOptimize(out);
  }
}

BENCHMARK(BM_AesGcm128_16KiB);
BENCHMARK(BM_AesGcm256_16KiB);
BENCHMARK(BM_ChaCha20Poly1305_16KiB);
BENCHMARK(BM_Sha256_16KiB);
BENCHMARK(BM_EcdsaP256Sign)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_EcdsaP256Verify)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_EcdheP256)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Rsa2048Verify)->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  Check("wolfCrypt_Init", wolfCrypt_Init());
  benchmark::AddCustomContext("wolfssl", LIBWOLFSSL_VERSION_STRING);
#ifdef WOLFSSL_AESNI
  benchmark::AddCustomContext("wolfssl_aesni", "yes");
#else
  benchmark::AddCustomContext("wolfssl_aesni", "no");
#endif
#ifdef WOLFSSL_SP_X86_64_ASM
  benchmark::AddCustomContext("wolfssl_sp_asm", "yes");
#else
  benchmark::AddCustomContext("wolfssl_sp_asm", "no");
#endif
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  wolfCrypt_Cleanup();
  return 0;
}
