// Unit tests of ChunkedDecoder: whole-buffer, byte-at-a-time and random
// splits must all yield the same data; every framing rule has a named case.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "hms/http/parser.h"

namespace hms::http {
namespace {

struct Decoded {
  bool ok = true;
  bool done = false;
  ParseError error = ParseError::kNone;
  std::string data;
  size_t consumed = 0;  // bytes of input the decoder took in all
  size_t steps = 0;
};

// Feeds `body` in segments ending at `cuts` (ascending, last one may be
// body.size()), the way a connection sees bytes arrive: the unconsumed rest
// of the previous segment stays in front of the next one.
Decoded Decode(std::string_view body, const std::vector<size_t>& cuts) {
  Decoded d;
  ChunkedDecoder dec;
  size_t avail_end = 0;
  size_t pos = 0;
  size_t next_cut = 0;
  for (;;) {
    ChunkedDecoder::Step step;
    if (!dec.Next(body.data() + pos, avail_end - pos, &step)) {
      d.ok = false;
      d.error = dec.error();
      EXPECT_EQ(step.consumed, 0u);
      break;
    }
    ++d.steps;
    EXPECT_LE(step.consumed, avail_end - pos);
    if (step.data_len > 0) {
      EXPECT_LE(step.data_offset + step.data_len, step.consumed);
      d.data.append(body.data() + pos + step.data_offset, step.data_len);
    }
    pos += step.consumed;
    if (dec.done()) break;
    if (step.consumed == 0) {
      if (next_cut == cuts.size()) break;  // input exhausted before the end
      avail_end = cuts[next_cut++];
    }
  }
  d.done = dec.done();
  d.consumed = pos;
  EXPECT_EQ(dec.data_bytes(), d.data.size());
  return d;
}

Decoded DecodeWhole(std::string_view body) { return Decode(body, {body.size()}); }

Decoded DecodeByteByByte(std::string_view body) {
  std::vector<size_t> cuts;
  for (size_t i = 1; i <= body.size(); ++i) cuts.push_back(i);
  return Decode(body, cuts);
}

Decoded DecodeRandomSplits(std::string_view body, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<size_t> cuts;
  size_t at = 0;
  while (at < body.size()) {
    at += 1 + rng() % 9;
    if (at > body.size()) at = body.size();
    cuts.push_back(at);
  }
  return Decode(body, cuts);
}

// Builds a chunked encoding of `payload` with chunks of the given sizes.
std::string Encode(std::string_view payload, const std::vector<size_t>& sizes,
                   std::string_view ext = "", std::string_view trailers = "") {
  std::string out;
  size_t at = 0;
  size_t i = 0;
  char hex[32];
  while (at < payload.size()) {
    const size_t n = std::min(sizes[i++ % sizes.size()], payload.size() - at);
    std::snprintf(hex, sizeof(hex), "%zx", n);
    out += hex;
    out += ext;
    out += "\r\n";
    out.append(payload.substr(at, n));
    out += "\r\n";
    at += n;
  }
  out += "0";
  out += ext;
  out += "\r\n";
  out += trailers;
  out += "\r\n";
  return out;
}

std::string Payload(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + 7) & 0xff);  // includes CR/LF
  return s;
}

TEST(ChunkedDecoder, DecodesWholeBuffer) {
  const std::string body = "5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n";
  Decoded d = DecodeWhole(body);
  ASSERT_TRUE(d.ok) << ParseErrorReason(d.error);
  EXPECT_TRUE(d.done);
  EXPECT_EQ(d.data, "hello, world");
  EXPECT_EQ(d.consumed, body.size());
}

TEST(ChunkedDecoder, EachStepIsFramingOrData) {
  const std::string body = "5\r\nhello\r\n0\r\n\r\n";
  ChunkedDecoder dec;
  ChunkedDecoder::Step s;
  ASSERT_TRUE(dec.Next(body.data(), body.size(), &s));
  EXPECT_EQ(s.consumed, 3u);  // "5\r\n"
  EXPECT_EQ(s.data_len, 0u);
  ASSERT_TRUE(dec.Next(body.data() + 3, body.size() - 3, &s));
  EXPECT_EQ(s.consumed, 5u);
  EXPECT_EQ(s.data_offset, 0u);
  EXPECT_EQ(s.data_len, 5u);
  ASSERT_TRUE(dec.Next(body.data() + 8, body.size() - 8, &s));
  EXPECT_EQ(s.consumed, body.size() - 8);  // "\r\n0\r\n\r\n"
  EXPECT_EQ(s.data_len, 0u);
  EXPECT_TRUE(dec.done());
  EXPECT_EQ(dec.data_bytes(), 5u);
  // Done: nothing more is taken, and an empty input is "need more", not an error.
  ASSERT_TRUE(dec.Next("x", 1, &s));
  EXPECT_EQ(s.consumed, 0u);
  ChunkedDecoder fresh;
  ASSERT_TRUE(fresh.Next(nullptr, 0, &s));
  EXPECT_EQ(s.consumed, 0u);
  EXPECT_FALSE(fresh.done());
}

TEST(ChunkedDecoder, StopsAtEndOfBodyBeforePipelinedBytes) {
  const std::string body = "3\r\nabc\r\n0\r\n\r\n";
  Decoded d = DecodeWhole(body + "GET / HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(d.ok);
  EXPECT_TRUE(d.done);
  EXPECT_EQ(d.consumed, body.size());
  EXPECT_EQ(d.data, "abc");
}

TEST(ChunkedDecoder, SplitAtEveryByteAndRandomly) {
  const std::string payload = Payload(3000);
  const std::vector<std::vector<size_t>> chunkings = {{1}, {7, 1, 300}, {1000}, {4096}, {17, 255}};
  const struct {
    const char* ext;
    const char* trailers;
  } shapes[] = {
      {"", ""},
      {";name=value", ""},
      {" ; a = \"q\\\"x;y\" ;b", "X-Checksum: abc\r\nX-Other:\t v v \r\n"},
      // What may follow a value: ';' at once or after BWS, then CR.
      {";a=b;c=\"d\";e=f\t ;g=\"h\"\t;i", ""},
  };
  for (const auto& sizes : chunkings) {
    for (const auto& shape : shapes) {
      const std::string body = Encode(payload, sizes, shape.ext, shape.trailers);
      SCOPED_TRACE(body.substr(0, 40));
      Decoded whole = DecodeWhole(body);
      ASSERT_TRUE(whole.ok) << ParseErrorReason(whole.error);
      EXPECT_TRUE(whole.done);
      EXPECT_EQ(whole.data, payload);
      EXPECT_EQ(whole.consumed, body.size());

      Decoded bytes = DecodeByteByByte(body);
      ASSERT_TRUE(bytes.ok) << ParseErrorReason(bytes.error);
      EXPECT_TRUE(bytes.done);
      EXPECT_EQ(bytes.data, payload);
      EXPECT_EQ(bytes.consumed, body.size());

      for (uint32_t seed = 1; seed <= 20; ++seed) {
        Decoded r = DecodeRandomSplits(body, seed);
        ASSERT_TRUE(r.ok) << "seed " << seed << ": " << ParseErrorReason(r.error);
        EXPECT_TRUE(r.done);
        EXPECT_EQ(r.data, payload) << "seed " << seed;
        EXPECT_EQ(r.consumed, body.size());
      }
    }
  }
}

TEST(ChunkedDecoder, IncompleteBodyIsNotDone) {
  const std::string body = "5\r\nhello\r\n0\r\n\r\n";
  for (size_t i = 0; i < body.size(); ++i) {
    Decoded d = DecodeWhole(std::string_view(body).substr(0, i));
    EXPECT_TRUE(d.ok) << i;
    EXPECT_FALSE(d.done) << i;
  }
}

TEST(ChunkedDecoder, AcceptsLeadingZerosUpperHexAndMaxSize) {
  Decoded d = DecodeWhole("000A\r\n0123456789\r\n00\r\n\r\n");
  ASSERT_TRUE(d.ok) << ParseErrorReason(d.error);
  EXPECT_EQ(d.data, "0123456789");
  // 2^63 itself is the largest size accepted: the decoder enters the data state.
  ChunkedDecoder dec;
  ChunkedDecoder::Step s;
  const std::string line = "8000000000000000\r\n";
  ASSERT_TRUE(dec.Next(line.data(), line.size(), &s));
  EXPECT_EQ(s.consumed, line.size());
  ASSERT_TRUE(dec.Next("abc", 3, &s));
  EXPECT_EQ(s.data_len, 3u);
}

struct BadCase {
  const char* name;
  std::string body;
  ParseError error;
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

class ChunkedRejectTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(ChunkedRejectTest, Refuses) {
  const BadCase& c = GetParam();
  for (int mode = 0; mode < 2; ++mode) {
    Decoded d = mode == 0 ? DecodeWhole(c.body) : DecodeByteByByte(c.body);
    EXPECT_FALSE(d.ok) << c.name << " mode " << mode;
    EXPECT_EQ(d.error, c.error) << c.name << " mode " << mode << ": "
                                << ParseErrorReason(d.error);
  }
}

const std::vector<BadCase>& BadCases() {
  static const std::vector<BadCase> cases = {
      // Sizes.
      {"NotHex", "x\r\n\r\n", ParseError::kBadChunkSize},
      {"EmptySize", "\r\nabc\r\n", ParseError::kBadChunkSize},
      {"NegativeSize", "-5\r\nhello\r\n", ParseError::kBadChunkSize},
      {"HexPrefix", "0x5\r\nhello\r\n", ParseError::kBadChunkSize},
      {"SignPrefix", "+5\r\nhello\r\n", ParseError::kBadChunkSize},
      {"LeadingSpace", " 5\r\nhello\r\n", ParseError::kBadChunkSize},
      {"Overflow64Bits", "10000000000000000\r\n", ParseError::kBadChunkSize},
      {"OverflowHuge", "ffffffffffffffffffff\r\n", ParseError::kBadChunkSize},
      {"Over2To63", "8000000000000001\r\n", ParseError::kBadChunkSize},
      {"SizeLineTooLong", std::string(5000, '0') + "1\r\nx\r\n0\r\n\r\n",
       ParseError::kBadChunkFraming},
      // CRLF discipline.
      {"BareLfAfterSize", "5\nhello\r\n0\r\n\r\n", ParseError::kBadChunkFraming},
      {"BareCrAfterSize", "5\rhello\r\n0\r\n\r\n", ParseError::kBadChunkFraming},
      {"DataTooLong", "5\r\nhelloX\r\n0\r\n\r\n", ParseError::kBadChunkFraming},
      {"BareLfAfterData", "5\r\nhello\n0\r\n\r\n", ParseError::kBadChunkFraming},
      {"BareCrAfterData", "5\r\nhello\r0\r\n\r\n", ParseError::kBadChunkFraming},
      {"JunkInPlaceOfCrAfterData", "5\r\nhelloX\n0\r\n\r\n", ParseError::kBadChunkFraming},
      {"JunkInPlaceOfLfAfterData", "5\r\nhello\rX0\r\n\r\n", ParseError::kBadChunkFraming},
      {"JunkInPlaceOfLfAfterSize", "5\rXhello\r\n0\r\n\r\n", ParseError::kBadChunkFraming},
      {"BareLfAfterLastChunk", "0\n\r\n", ParseError::kBadChunkFraming},
      {"BareLfEndsBody", "0\r\n\n", ParseError::kBadChunkFraming},
      {"BareCrEndsBody", "0\r\n\rX", ParseError::kBadChunkFraming},
      // Extensions.
      {"SpaceWithoutExtension", "5 \r\nhello\r\n0\r\n\r\n", ParseError::kBadChunkFraming},
      {"EmptyExtensionName", "5;\r\nhello\r\n0\r\n\r\n", ParseError::kBadChunkFraming},
      {"ExtensionNameBadChar", "5;a@b\r\nhello\r\n0\r\n\r\n", ParseError::kBadChunkFraming},
      {"ExtensionSpaceInName", "5;a b\r\nhello\r\n0\r\n\r\n", ParseError::kBadChunkFraming},
      {"ExtensionEmptyValue", "5;a=\r\nhello\r\n0\r\n\r\n", ParseError::kBadChunkFraming},
      {"ExtensionUnterminatedQuote", "5;a=\"x\r\nhello\r\n0\r\n\r\n",
       ParseError::kBadChunkFraming},
      {"ExtensionControlInQuote", "5;a=\"x\x01\"\r\nhello\r\n0\r\n\r\n",
       ParseError::kBadChunkFraming},
      {"ExtensionJunkAfterQuote", "5;a=\"x\"y\r\nhello\r\n0\r\n\r\n", ParseError::kBadChunkFraming},
      {"ExtensionBareLf", "5;a=b\nhello\r\n0\r\n\r\n", ParseError::kBadChunkFraming},
      {"ExtensionTrailingSpace", "5;a=b \r\nhello\r\n0\r\n\r\n", ParseError::kBadChunkFraming},
      {"ExtensionJunkAfterTokenSpace", "5;a=b c\r\nhello\r\n0\r\n\r\n",
       ParseError::kBadChunkFraming},
      {"ExtensionEqualsAfterQuote", "5;a=\"x\"=y\r\nhello\r\n0\r\n\r\n",
       ParseError::kBadChunkFraming},
      // Trailers.
      {"TrailerWithoutColon", "0\r\nX-A\r\n\r\n", ParseError::kBadChunkFraming},
      {"TrailerEmptyName", "0\r\n: v\r\n\r\n", ParseError::kBadChunkFraming},
      {"TrailerSpaceBeforeColon", "0\r\nX-A : v\r\n\r\n", ParseError::kBadChunkFraming},
      {"TrailerObsFold", "0\r\nX-A: v\r\n w\r\n\r\n", ParseError::kBadChunkFraming},
      {"TrailerBareLf", "0\r\nX-A: v\n\r\n", ParseError::kBadChunkFraming},
      {"TrailerControlInValue", "0\r\nX-A: v\x01\r\n\r\n", ParseError::kBadChunkFraming},
      {"TrailerTooLong", "0\r\nX-A: " + std::string(5000, 'v') + "\r\n\r\n",
       ParseError::kBadChunkFraming},
      {"TrailerSectionTooLong", [] {
         std::string s = "0\r\n";
         for (int i = 0; i < 20; ++i) s += "X-" + std::to_string(i) + ": " + std::string(1000, 'v') + "\r\n";
         return s + "\r\n";
       }(),
       ParseError::kBadChunkFraming},
  };
  return cases;
}

INSTANTIATE_TEST_SUITE_P(ChunkedDecoder, ChunkedRejectTest, ::testing::ValuesIn(BadCases()),
                         [](const ::testing::TestParamInfo<BadCase>& info) {
                           return std::string(info.param.name);
                         });

TEST(ChunkedDecoder, ErrorIsSticky) {
  ChunkedDecoder dec;
  ChunkedDecoder::Step s;
  EXPECT_FALSE(dec.Next("z", 1, &s));
  EXPECT_EQ(dec.error(), ParseError::kBadChunkSize);
  EXPECT_FALSE(dec.Next("5\r\n", 3, &s));
  EXPECT_EQ(s.consumed, 0u);
  dec.Reset();
  EXPECT_EQ(dec.error(), ParseError::kNone);
  EXPECT_TRUE(dec.Next("5\r\n", 3, &s));
  EXPECT_EQ(s.consumed, 3u);
}

}  // namespace
}  // namespace hms::http
