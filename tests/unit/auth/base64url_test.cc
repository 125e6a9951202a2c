#include "hms/auth/base64url.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <string>

namespace hms::auth {
namespace {

std::string Decode(std::string_view in, int64_t* rc) {
  std::string out(Base64UrlDecodedSize(in.size()) + 4, '\0');
  *rc = DecodeBase64Url(in, reinterpret_cast<uint8_t*>(out.data()), out.size());
  if (*rc >= 0) out.resize(static_cast<size_t>(*rc));
  return out;
}

TEST(Base64Url, RoundTripsEveryLength) {
  std::string bytes;
  for (int len = 0; len < 70; ++len) {
    const std::string enc = EncodeBase64Url(bytes);
    EXPECT_EQ(enc.size(), Base64UrlEncodedSize(bytes.size()));
    int64_t rc;
    EXPECT_EQ(Decode(enc, &rc), bytes) << len;
    EXPECT_EQ(rc, len);
    bytes.push_back(static_cast<char>(len * 37 + 200));
  }
}

TEST(Base64Url, Rfc4648Vectors) {
  EXPECT_EQ(EncodeBase64Url("f"), "Zg");
  EXPECT_EQ(EncodeBase64Url("fo"), "Zm8");
  EXPECT_EQ(EncodeBase64Url("foo"), "Zm9v");
  EXPECT_EQ(EncodeBase64Url("foob"), "Zm9vYg");
  EXPECT_EQ(EncodeBase64Url("\xfb\xff"), "-_8");
}

TEST(Base64Url, RejectsWhatJwsForbids) {
  const char* bad[] = {
      "Zg==",    // padding
      "Zm8=",    // padding
      "Zm 9v",   // whitespace
      "Zm9v\n",  // newline
      "Zm+v",    // standard alphabet
      "Zm/v",    // standard alphabet
      "Z",       // 1 mod 4
      "Zm9vY",   // 1 mod 4
      "Zh",      // non-zero unused bits ("f" is "Zg")
      "Zm9",     // non-zero unused bits ("fo" is "Zm8")
      "Zm9v\x80", "Zm.v",
  };
  for (const char* in : bad) {
    int64_t rc;
    Decode(in, &rc);
    EXPECT_EQ(rc, -EINVAL) << in;
  }
}

TEST(Base64Url, ReportsShortOutput) {
  uint8_t out[2];
  EXPECT_EQ(DecodeBase64Url("Zm9v", out, sizeof out), -ENOSPC);
  EXPECT_EQ(DecodeBase64Url("Zm8", out, sizeof out), 2);
}

}  // namespace
}  // namespace hms::auth
