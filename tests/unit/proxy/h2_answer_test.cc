// Unit tests of an HTTP/2 answer's head read as an http::ResponseHead
// (src/proxy/h2_answer.h): the framing the exchange relays by, the fields
// kept and dropped, and heads that cannot be read.
#include "src/proxy/h2_answer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace hms::proxy {
namespace {

struct Converted {
  H2HeadResult result;
  http::ResponseHead head;
  std::string buf;
};

// `buf` is kept beside the head: its views point into it.
void Convert(uint16_t status, const std::vector<http::Header>& fields, bool end_stream,
             http::Method method, Converted* out, size_t room = 4096) {
  out->buf.assign(room, '\0');
  out->result = H2ResponseHead(status, fields.data(), static_cast<uint16_t>(fields.size()),
                               end_stream, method, out->buf.data(), room, &out->head);
}

std::string Names(const http::ResponseHead& r) {
  std::string s;
  for (int i = 0; i < r.header_count; ++i) {
    s.append(r.headers[i].name).append("=").append(r.headers[i].value).append(";");
  }
  return s;
}

TEST(H2ResponseHead, TableOfFramings) {
  using http::BodyKind;
  using http::Method;
  const std::vector<http::Header> with_length = {{"content-type", "text/plain"},
                                                 {"content-length", "12"}};
  const std::vector<http::Header> without = {{"content-type", "text/plain"}};
  struct Case {
    const char* name;
    uint16_t status;
    const std::vector<http::Header>* fields;
    bool end_stream;
    Method method;
    BodyKind body;
    uint64_t length;
    const char* kept;
  } cases[] = {
      {"length: raw DATA", 200, &with_length, false, Method::kGet, BodyKind::kContentLength, 12,
       "content-type=text/plain;"},
      {"no length: chunked", 200, &without, false, Method::kGet, BodyKind::kChunked, 0,
       "content-type=text/plain;"},
      {"HEADERS end the stream: empty", 200, &without, true, Method::kGet,
       BodyKind::kContentLength, 0, "content-type=text/plain;"},
      {"HEAD keeps the GET's length", 200, &with_length, true, Method::kHead, BodyKind::kNone, 0,
       "content-type=text/plain;content-length=12;"},
      {"HEAD without END_STREAM: still no body", 200, &with_length, false, Method::kHead,
       BodyKind::kNone, 0, "content-type=text/plain;content-length=12;"},
      {"304 keeps its length", 304, &with_length, true, Method::kGet, BodyKind::kNone, 0,
       "content-type=text/plain;content-length=12;"},
      {"204: no body, no framing field", 204, &with_length, true, Method::kGet, BodyKind::kNone,
       0, "content-type=text/plain;"},
  };
  for (const Case& c : cases) {
    Converted out;
    Convert(c.status, *c.fields, c.end_stream, c.method, &out);
    ASSERT_EQ(out.result, H2HeadResult::kOk) << c.name;
    EXPECT_EQ(out.head.status, c.status) << c.name;
    EXPECT_EQ(out.head.body, c.body) << c.name;
    EXPECT_EQ(out.head.content_length, c.length) << c.name;
    EXPECT_TRUE(out.head.keep_alive) << c.name;
    EXPECT_EQ(out.head.version_minor, 1) << c.name;
    EXPECT_EQ(Names(out.head), c.kept) << c.name;
  }
}

TEST(H2ResponseHead, FieldsAreCopiedIntoTheRoomGiven) {
  std::string name = "x-answer";
  std::string value = "42";
  std::vector<http::Header> fields = {{name, value}};
  Converted out;
  Convert(200, fields, false, http::Method::kGet, &out);
  ASSERT_EQ(out.result, H2HeadResult::kOk);
  name.assign("xxxxxxxx");  // the session's buffers die after its callback
  value.assign("00");
  EXPECT_EQ(out.head.headers[0].name, "x-answer");
  EXPECT_EQ(out.head.headers[0].value, "42");
  EXPECT_GE(out.head.headers[0].name.data(), out.buf.data());
  EXPECT_LT(out.head.headers[0].value.data(), out.buf.data() + out.buf.size());
}

TEST(H2ResponseHead, TransferEncodingNeverPasses) {
  Converted out;
  Convert(200, {{"transfer-encoding", "chunked"}, {"a", "b"}}, false, http::Method::kGet, &out);
  ASSERT_EQ(out.result, H2HeadResult::kOk);
  EXPECT_EQ(Names(out.head), "a=b;");
  EXPECT_EQ(out.head.body, http::BodyKind::kChunked);
}

TEST(H2ResponseHead, RepeatedEqualLengthsFold) {
  Converted out;
  Convert(200, {{"content-length", "5"}, {"content-length", "5"}}, false, http::Method::kGet,
          &out);
  ASSERT_EQ(out.result, H2HeadResult::kOk);
  EXPECT_EQ(out.head.body, http::BodyKind::kContentLength);
  EXPECT_EQ(out.head.content_length, 5u);
  EXPECT_EQ(out.head.header_count, 0);
}

TEST(H2ResponseHead, RefusesWhatCannotBeRead) {
  Converted out;
  Convert(200, {{"content-length", "5"}, {"content-length", "6"}}, false, http::Method::kGet,
          &out);
  EXPECT_EQ(out.result, H2HeadResult::kBadLength);
  Convert(200, {{"content-length", "5x"}}, false, http::Method::kGet, &out);
  EXPECT_EQ(out.result, H2HeadResult::kBadLength);
  Convert(200, {{"content-length", ""}}, false, http::Method::kGet, &out);
  EXPECT_EQ(out.result, H2HeadResult::kBadLength);
  Convert(200, {{"x-big", std::string(100, 'v')}}, false, http::Method::kGet, &out, 50);
  EXPECT_EQ(out.result, H2HeadResult::kTooLarge);
  std::vector<http::Header> many(http::kMaxHeaders + 1, http::Header{"a", "b"});
  Convert(200, many, false, http::Method::kGet, &out);
  EXPECT_EQ(out.result, H2HeadResult::kTooManyFields);
  // A final status outside an HTTP/1.1 status line's range (nghttp2 checks
  // only its three digits), or an interim one.
  for (uint16_t status : {0, 99, 100, 199, 600, 999}) {
    Convert(status, {}, true, http::Method::kGet, &out);
    EXPECT_EQ(out.result, H2HeadResult::kBadStatus) << status;
  }
  for (uint16_t status : {200, 599}) {
    Convert(status, {}, true, http::Method::kGet, &out);
    EXPECT_EQ(out.result, H2HeadResult::kOk) << status;
  }
  std::vector<http::Header> most(http::kMaxHeaders, http::Header{"a", "b"});
  Convert(200, most, false, http::Method::kGet, &out);
  EXPECT_EQ(out.result, H2HeadResult::kOk);
  EXPECT_EQ(out.head.header_count, http::kMaxHeaders);
}

}  // namespace
}  // namespace hms::proxy
