// JWT verification micro-benchmarks: BM_JwtVerify_{HS256,RS256,ES256} with
// the verified-token cache off (every call checks the signature) and on
// (the same token again: hash, SHA-256 compare, claims walk).
// Keys are generated at start with wolfCrypt; tokens carry typical claims.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "hms/auth/jwt.h"
#include "hms/auth/mint.h"

namespace {

using hms::auth::JwsSigner;
using hms::auth::JwtPolicy;
using hms::auth::JwtVerifier;
using hms::auth::KeySet;

constexpr int64_t kNow = 1'700'000'000;
const char kClaims[] =
    "{\"iss\":\"https://id.hms.local\",\"aud\":\"hms-api\",\"sub\":\"user-1234\","
    "\"scope\":\"calc:read calc:write\",\"iat\":1699990000,\"nbf\":1699990000,"
    "\"exp\":4102444800,\"tenant\":\"acme\"}";

struct Setup {
  std::unique_ptr<KeySet> keys;
  std::string token;
};

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "bench-jwt: %s\n", what.c_str());
  std::exit(1);
}

Setup Make(hms::auth::JwsAlg alg) {
  Setup s;
  if (alg == hms::auth::JwsAlg::kHS256) {
    const std::string secret(32, 's');
    auto ks = KeySet::FromHs256Secret(secret, "bench");
    auto t = hms::auth::MintHs256(secret, kClaims);
    if (!ks || !t) Die("HS256 setup");
    s.keys = std::make_unique<KeySet>(std::move(*ks));
    s.token = std::move(*t);
    return s;
  }
  auto signer = alg == hms::auth::JwsAlg::kRS256 ? JwsSigner::GenerateRs256("bench-rsa")
                                                 : JwsSigner::GenerateEs256("bench-ec");
  if (!signer) Die(signer.error().message);
  auto ks = KeySet::FromJwks("{\"keys\":[" + signer->PublicJwk() + "]}", "bench");
  auto t = signer->Mint(kClaims);
  if (!ks || !t) Die("JWKS setup");
  s.keys = std::make_unique<KeySet>(std::move(*ks));
  s.token = std::move(*t);
  return s;
}

void Run(benchmark::State& state, hms::auth::JwsAlg alg, bool cached) {
  static Setup setups[3] = {Make(hms::auth::JwsAlg::kHS256), Make(hms::auth::JwsAlg::kRS256),
                            Make(hms::auth::JwsAlg::kES256)};
  const Setup& s = setups[static_cast<int>(alg)];
  JwtVerifier verifier(s.keys.get(), JwtPolicy{"https://id.hms.local", "hms-api", 30},
                       cached ? JwtVerifier::kDefaultCacheCapacity : 0);
  hms::auth::Claims claims;
  if (!verifier.Verify(s.token, kNow, &claims).ok) Die("token does not verify");
  for (auto _ : state) {
    const hms::auth::Verdict v = verifier.Verify(s.token, kNow, &claims);
    benchmark::DoNotOptimize(v);
    benchmark::DoNotOptimize(claims.sub().data());
  }
  if (cached && verifier.stats().cache_hits == 0) Die("cache never hit");
  state.counters["token_bytes"] = static_cast<double>(s.token.size());
}

void BM_JwtVerify_HS256(benchmark::State& st) { Run(st, hms::auth::JwsAlg::kHS256, false); }
void BM_JwtVerify_RS256(benchmark::State& st) { Run(st, hms::auth::JwsAlg::kRS256, false); }
void BM_JwtVerify_ES256(benchmark::State& st) { Run(st, hms::auth::JwsAlg::kES256, false); }
void BM_JwtVerify_HS256_Cached(benchmark::State& st) { Run(st, hms::auth::JwsAlg::kHS256, true); }
void BM_JwtVerify_RS256_Cached(benchmark::State& st) { Run(st, hms::auth::JwsAlg::kRS256, true); }
void BM_JwtVerify_ES256_Cached(benchmark::State& st) { Run(st, hms::auth::JwsAlg::kES256, true); }

BENCHMARK(BM_JwtVerify_HS256)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_JwtVerify_RS256)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_JwtVerify_ES256)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_JwtVerify_HS256_Cached)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_JwtVerify_RS256_Cached)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_JwtVerify_ES256_Cached)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
