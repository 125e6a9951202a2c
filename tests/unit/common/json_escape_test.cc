#include "hms/common/json_escape.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace hms {
namespace {

using namespace std::string_literals;

struct Case {
  std::string in;
  std::string out;  // escaped contents, without quotes
};

TEST(JsonEscape, EscapesPerRfc8259) {
  const Case cases[] = {
      {"", ""},
      {"plain text /a/b?c=d", "plain text /a/b?c=d"},
      {"say \"hi\"", "say \\\"hi\\\""},
      {"a\\b", "a\\\\b"},
      {"\b\f\n\r\t", "\\b\\f\\n\\r\\t"},
      {"\x01\x1f", "\\u0001\\u001f"},
      {"nul\0here"s, "nul\\u0000here"},
      {"\x0b", "\\u000b"},
      {"del\x7f", "del\x7f"},
      {"/ stays /", "/ stays /"},
  };
  for (const Case& c : cases) {
    std::string got;
    AppendJsonEscaped(&got, c.in);
    EXPECT_EQ(got, c.out) << "input: " << c.in;
    EXPECT_EQ(JsonEscapedSize(c.in), c.out.size());
  }
}

TEST(JsonEscape, EscapesEveryControlCharacter) {
  for (int c = 0; c < 0x20; ++c) {
    std::string got;
    AppendJsonEscaped(&got, std::string(1, static_cast<char>(c)));
    ASSERT_GE(got.size(), 2u) << c;
    EXPECT_EQ(got[0], '\\') << c;
    for (char ch : got) EXPECT_GE(static_cast<unsigned char>(ch), 0x20) << c;
  }
}

TEST(JsonEscape, PassesWellFormedUtf8Through) {
  const std::string cases[] = {
      "caf\xc3\xa9",                // U+00E9
      "\xe2\x82\xac",               // U+20AC
      "\xed\x9f\xbf",               // U+D7FF, the last before the surrogates
      "\xee\x80\x80",               // U+E000, the first after them
      "\xf0\x9f\x98\x80",           // U+1F600
      "\xf4\x8f\xbf\xbf",           // U+10FFFF, the last code point
      "\xc2\x80\xdf\xbf",           // U+0080, U+07FF
  };
  for (const std::string& s : cases) {
    std::string got;
    AppendJsonEscaped(&got, s);
    EXPECT_EQ(got, s);
  }
}

TEST(JsonEscape, ReplacesEachByteOfMalformedUtf8) {
  const Case cases[] = {
      {"\x80", "\\ufffd"},                            // a lone continuation byte
      {"\xc3", "\\ufffd"},                            // cut short at the end
      {"\xc3(", "\\ufffd("},                          // cut short by ASCII
      {"\xc0\xaf", "\\ufffd\\ufffd"},                 // overlong '/'
      {"\xe0\x80\xaf", "\\ufffd\\ufffd\\ufffd"},      // overlong, three bytes
      {"\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd"},      // a surrogate (U+D800)
      {"\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd"},  // past U+10FFFF
      {"\xff\xfe", "\\ufffd\\ufffd"},
      {"ok\xe2\x82", "ok\\ufffd\\ufffd"},
  };
  for (const Case& c : cases) {
    std::string got;
    AppendJsonEscaped(&got, c.in);
    EXPECT_EQ(got, c.out);
  }
}

TEST(JsonEscape, WritesAPrefixWhenTheBufferIsShort) {
  const std::string in = "ab\"cd";
  char buf[16];
  EXPECT_EQ(EscapeJson(in, buf, sizeof buf), 6u);
  EXPECT_EQ(std::string_view(buf, 6), "ab\\\"cd");
  char small[4] = {'x', 'x', 'x', 'x'};
  EXPECT_EQ(EscapeJson(in, small, 3), 6u);  // needs 6: the caller sees it did not fit
  EXPECT_EQ(std::string_view(small, 4), "ab\\x");  // nothing past cap is touched
  EXPECT_EQ(EscapeJson(in, nullptr, 0), 6u);
}

TEST(JsonEscape, QuotesWholeStrings) {
  EXPECT_EQ(JsonString("a\"b"), "\"a\\\"b\"");
  std::string o = "x:";
  AppendJsonString(&o, "\n");
  EXPECT_EQ(o, "x:\"\\n\"");
}

}  // namespace
}  // namespace hms
