#include "hms/http/char_class.h"

#include <gtest/gtest.h>

#include <string>

namespace hms::http {
namespace {

// RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" /
// "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA.
TEST(CharClass, TokenCharsAreExactlyRfc9110s) {
  const std::string punct = "!#$%&'*+-.^_`|~";
  for (int c = 0; c < 256; ++c) {
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    const bool digit = c >= '0' && c <= '9';
    const bool want = alpha || digit || (c != 0 && punct.find(static_cast<char>(c)) != std::string::npos);
    EXPECT_EQ(IsTokenChar(static_cast<char>(c)), want) << c;
  }
}

TEST(CharClass, TokensAreNonEmptyRunsOfTokenChars) {
  EXPECT_TRUE(IsToken("GET"));
  EXPECT_TRUE(IsToken("x-custom_1"));
  EXPECT_FALSE(IsToken(""));
  EXPECT_FALSE(IsToken("GE T"));
  EXPECT_FALSE(IsToken("a:b"));
  EXPECT_FALSE(IsToken("caf\xc3\xa9"));
}

}  // namespace
}  // namespace hms::http
