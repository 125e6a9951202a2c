// SHA-256 compression with the x86 SHA extensions, after the public-domain
// sha256-x86.c of Jeffrey Walton / Intel's "Intel SHA Extensions" paper:
// two rounds per sha256rnds2, the message schedule by sha256msg1/msg2.
#include "hms/auth/sha256.h"

// wolfssl/options.h (the build's defines) goes before every other wolfSSL header.
// clang-format off
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/sha256.h>
// clang-format on

#include <cpuid.h>
#include <immintrin.h>

#include <cstring>

#include "hms/common/check.h"

namespace hms::auth {
namespace {

alignas(16) constexpr uint32_t kK[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

constexpr uint32_t kInit[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

__attribute__((target("sha,sse4.1,ssse3"))) void CompressNi(uint32_t state[8], const uint8_t* data,
                                                            size_t blocks) noexcept {
  const __m128i kByteSwap = _mm_set_epi64x(0x0c0d0e0f08090a0bll, 0x0405060700010203ll);
  // state a..h -> the ABEF / CDGH register layout sha256rnds2 works on.
  __m128i tmp = _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(state)), 0xb1);
  __m128i s1 =
      _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(state + 4)), 0x1b);
  __m128i s0 = _mm_alignr_epi8(tmp, s1, 8);
  s1 = _mm_blend_epi16(s1, tmp, 0xf0);
  for (; blocks > 0; --blocks, data += 64) {
    const __m128i abef = s0, cdgh = s1;
    __m128i w[4];
    for (int i = 0; i < 4; ++i) {
      w[i] = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(data + 16 * i)),
                              kByteSwap);
    }
    // 16 groups of 4 rounds; w[g & 3] holds W[4g..4g+3]. After group g uses
    // it, it becomes W[4g+16..4g+19] = sigma1(W[t-2]) + W[t-7] + sigma0(W[t-15]) + W[t-16].
    // Unrolled so that w[] lives in registers.
#pragma GCC unroll 16
    for (int g = 0; g < 16; ++g) {
      __m128i wk =
          _mm_add_epi32(w[g & 3], _mm_load_si128(reinterpret_cast<const __m128i*>(kK + 4 * g)));
      s1 = _mm_sha256rnds2_epu32(s1, s0, wk);
      wk = _mm_shuffle_epi32(wk, 0x0e);
      s0 = _mm_sha256rnds2_epu32(s0, s1, wk);
      if (g < 12) {
        __m128i next = _mm_sha256msg1_epu32(w[g & 3], w[(g + 1) & 3]);
        next = _mm_add_epi32(next, _mm_alignr_epi8(w[(g + 3) & 3], w[(g + 2) & 3], 4));
        w[g & 3] = _mm_sha256msg2_epu32(next, w[(g + 3) & 3]);
      }
    }
    s0 = _mm_add_epi32(s0, abef);
    s1 = _mm_add_epi32(s1, cdgh);
  }
  tmp = _mm_shuffle_epi32(s0, 0x1b);
  s1 = _mm_shuffle_epi32(s1, 0xb1);
  s0 = _mm_blend_epi16(tmp, s1, 0xf0);
  s1 = _mm_alignr_epi8(s1, tmp, 8);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(state), s0);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(state + 4), s1);
}

bool ProbeCpu() noexcept {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  const bool sse41 = (c & bit_SSE4_1) != 0, ssse3 = (c & bit_SSSE3) != 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  return sse41 && ssse3 && (b & bit_SHA) != 0;
}

}  // namespace

bool Sha256CpuSupported() noexcept {
  static const bool supported = ProbeCpu();
  return supported;
}

void Sha256Cpu(std::string_view data, Sha256Digest* out) noexcept {
  uint32_t state[8];
  std::memcpy(state, kInit, sizeof state);
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  const size_t full = data.size() / 64;
  CompressNi(state, p, full);
  // The tail, 0x80, zeros and the bit length (big-endian): one or two blocks.
  uint8_t last[128] = {};
  const size_t rest = data.size() - full * 64;
  std::memcpy(last, p + full * 64, rest);
  last[rest] = 0x80;
  const size_t tail_blocks = rest + 1 + 8 <= 64 ? 1 : 2;
  const uint64_t bits = static_cast<uint64_t>(data.size()) * 8;
  for (int i = 0; i < 8; ++i)
    last[tail_blocks * 64 - 1 - i] = static_cast<uint8_t>(bits >> (8 * i));
  CompressNi(state, last, tail_blocks);
  for (int i = 0; i < 8; ++i) {
    (*out)[4 * i] = static_cast<uint8_t>(state[i] >> 24);
    (*out)[4 * i + 1] = static_cast<uint8_t>(state[i] >> 16);
    (*out)[4 * i + 2] = static_cast<uint8_t>(state[i] >> 8);
    (*out)[4 * i + 3] = static_cast<uint8_t>(state[i]);
  }
}

void Sha256Portable(std::string_view data, Sha256Digest* out) noexcept {
  // Cannot fail for in-memory input with the software SHA-256.
  HMS_CHECK(wc_Sha256Hash(reinterpret_cast<const byte*>(data.data()),
                          static_cast<word32>(data.size()), out->data()) == 0);
}

void Sha256(std::string_view data, Sha256Digest* out) noexcept {
  if (Sha256CpuSupported()) {
    Sha256Cpu(data, out);
  } else {
    Sha256Portable(data, out);
  }
}

}  // namespace hms::auth
