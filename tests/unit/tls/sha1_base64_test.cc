// Unit tests of base64(SHA-1(a ‖ b)) (include/hms/tls/sha1_base64.h), against
// FIPS 180's "abc" vector and the empty string, however the input is split.
#include "hms/tls/sha1_base64.h"

#include <gtest/gtest.h>

#include <string_view>

namespace hms::tls {
namespace {

std::string_view Of(std::string_view a, std::string_view b, char* out) {
  Sha1Base64(a, b, out);
  return {out, kSha1Base64Size};
}

TEST(Sha1Base64, KnownDigests) {
  char out[kSha1Base64Size];
  EXPECT_EQ(Of("abc", "", out), "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");
  EXPECT_EQ(Of("a", "bc", out), "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");
  EXPECT_EQ(Of("", "abc", out), "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");
  EXPECT_EQ(Of("", "", out), "2jmj7l5rSw0yVb/vlWAYkK/YBwk=");
}

}  // namespace
}  // namespace hms::tls
