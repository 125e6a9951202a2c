#include "src/proxy/chunked_tail.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "src/proxy/head_rewrite.h"

namespace hms::proxy {
namespace {

// The framing after a chunked body's last data, fed as the decoder would.
ChunkedTail TailOf(std::string_view framing) {
  ChunkedTail t;
  t.Data();
  t.Framing(framing.data(), framing.size());
  return t;
}

bool KeepAll(std::string_view) { return true; }

TEST(ChunkedTail, FieldsInOrderWithTheirValuesTrimmed) {
  const ChunkedTail t = TailOf("\r\n0\r\nx-a:  1 \r\ngrpc-status: 0\r\n\r\n");
  http::Header fields[16];
  ASSERT_EQ(t.Trailers(fields, 16, KeepAll), 2);
  EXPECT_EQ(fields[0].name, "x-a");
  EXPECT_EQ(fields[0].value, "1");
  EXPECT_EQ(fields[1].name, "grpc-status");
  EXPECT_EQ(fields[1].value, "0");
}

// The cap counts the fields that go on: sixteen forbidden ones first do not
// push grpc-status out.
TEST(ChunkedTail, TheCapCountsKeptFieldsOnly) {
  std::string framing = "\r\n0\r\n";
  for (int i = 0; i < 16; ++i) framing += "set-cookie: a\r\n";
  framing += "grpc-status: 13\r\n\r\n";
  const ChunkedTail t = TailOf(framing);
  http::Header fields[16];
  ASSERT_EQ(t.Trailers(fields, 16, KeptInResponseTrailers), 1);
  EXPECT_EQ(fields[0].name, "grpc-status");
  EXPECT_EQ(fields[0].value, "13");
  EXPECT_EQ(t.Trailers(fields, 16, KeepAll), 16);  // past the cap: left out
}

TEST(ChunkedTail, ATailLongerThanItsBytesCarriesNoTrailers) {
  const ChunkedTail t =
      TailOf("\r\n0\r\nx-big: " + std::string(ChunkedTail::kBytes, 'a') + "\r\n\r\n");
  http::Header fields[16];
  EXPECT_EQ(t.Trailers(fields, 16, KeepAll), 0);
}

}  // namespace
}  // namespace hms::proxy
