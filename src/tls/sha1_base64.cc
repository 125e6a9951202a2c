// base64(SHA-1(a ‖ b)) with wolfCrypt (sha1_base64.h).
#include "hms/tls/sha1_base64.h"

// wolfssl/options.h (the build's defines) goes before every other wolfSSL header.
// clang-format off
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/sha.h>
// clang-format on

#include "hms/common/check.h"

namespace hms::tls {

void Sha1Base64(std::string_view a, std::string_view b, char* out) noexcept {
  wc_Sha sha;
  byte digest[WC_SHA_DIGEST_SIZE];
  HMS_CHECK(wc_InitSha(&sha) == 0);
  HMS_CHECK(wc_ShaUpdate(&sha, reinterpret_cast<const byte*>(a.data()),
                         static_cast<word32>(a.size())) == 0);
  HMS_CHECK(wc_ShaUpdate(&sha, reinterpret_cast<const byte*>(b.data()),
                         static_cast<word32>(b.size())) == 0);
  HMS_CHECK(wc_ShaFinal(&sha, digest) == 0);
  wc_ShaFree(&sha);
  // Base64_Encode_NoNl writes no line break and wants room for a NUL too.
  byte text[kSha1Base64Size + 4];
  word32 len = sizeof text;
  HMS_CHECK(Base64_Encode_NoNl(digest, sizeof digest, text, &len) == 0);
  HMS_CHECK(len >= kSha1Base64Size);
  for (size_t i = 0; i < kSha1Base64Size; ++i) out[i] = static_cast<char>(text[i]);
}

}  // namespace hms::tls
