#include "hms/fleet/resp.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#if HMS_HAVE_HIREDIS
#include <hiredis.h>
#endif

namespace hms::fleet {
namespace {

struct Case {
  const char* name;
  std::string in;
  int result;  // bytes consumed, kPartial or kError
  ReplyType type = ReplyType::kNil;
  int64_t integer = 0;
  std::string text = "";
};

std::vector<Case> Cases() {
  using T = ReplyType;
  return {
      {"simple", "+OK\r\n", 5, T::kSimple, 0, "OK"},
      {"simple_empty", "+\r\n", 3, T::kSimple, 0, ""},
      {"error", "-NOSCRIPT No matching script\r\n", 30, T::kError, 0,
       "NOSCRIPT No matching script"},
      {"integer", ":42\r\n", 5, T::kInteger, 42},
      {"integer_negative", ":-7\r\n", 5, T::kInteger, -7},
      {"integer_min", ":-9223372036854775808\r\n", 23, T::kInteger, INT64_MIN},
      {"bulk", "$5\r\nhello\r\n", 11, T::kBulk, 0, "hello"},
      {"bulk_binary_crlf_inside", std::string("$4\r\n\r\n\0x\r\n", 10), 10, T::kBulk, 0,
       std::string("\r\n\0x", 4)},
      {"bulk_empty", "$0\r\n\r\n", 6, T::kBulk, 0, ""},
      {"bulk_nil", "$-1\r\n", 5, T::kNil},
      {"array_nil", "*-1\r\n", 5, T::kNil},
      {"array_empty", "*0\r\n", 4, T::kArray, 0},
      {"array_gcra", "*3\r\n:1\r\n:0\r\n:2999000\r\n", 22, T::kArray, 3},
      {"array_nested", "*2\r\n*1\r\n:1\r\n$1\r\nx\r\n", 19, T::kArray, 2},
      {"trailing_bytes_left", "+OK\r\n:1\r\n", 5, T::kSimple, 0, "OK"},
      // Prefixes: need more.
      {"empty", "", kPartial},
      {"type_only", "+", kPartial},
      {"no_lf", "+OK\r", kPartial},
      {"bulk_short", "$5\r\nhel", kPartial},
      {"bulk_no_crlf", "$5\r\nhello", kPartial},
      {"bulk_cr_only", "$5\r\nhello\r", kPartial},
      {"array_short", "*2\r\n:1\r\n", kPartial},
      // Not RESP2, or beyond a bound.
      {"unknown_type", "%1\r\n", kError},
      {"resp3_double", ",1.5\r\n", kError},
      {"bare_lf", "+OK\n", kError},
      {"cr_without_lf", "+O\rK\r\n", kError},
      {"integer_empty", ":\r\n", kError},
      {"integer_sign_only", ":-\r\n", kError},
      {"integer_plus", ":+1\r\n", kError},
      {"integer_junk", ":12a\r\n", kError},
      {"integer_overflow", ":9223372036854775808\r\n", kError},
      {"bulk_negative", "$-2\r\n", kError},
      {"bulk_too_large", "$1048577\r\n", kError},
      {"bulk_bad_terminator", "$2\r\nabXY", kError},
      {"bulk_bad_terminator_early", "$2\r\nabX", kError},
      {"array_too_large", "*65537\r\n", kError},
      {"array_bad_element", "*2\r\n:1\r\n?\r\n", kError},
      {"too_deep", "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", kError},
  };
}

TEST(Resp, ParsesEachCase) {
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    Reply r;
    const int n = ParseReply(c.in, &r);
    ASSERT_EQ(n, c.result);
    if (n <= 0) continue;
    EXPECT_EQ(r.top.type, c.type);
    if (c.type == ReplyType::kInteger || c.type == ReplyType::kArray) {
      EXPECT_EQ(r.top.integer, c.integer);
    }
    EXPECT_EQ(r.top.text, c.text);
  }
}

// The client re-parses from the start as bytes arrive: every prefix of a
// complete reply must say kPartial, and every prefix of an erroneous one
// must never claim a complete reply.
TEST(Resp, EveryPrefixIsPartialOrTheSameError) {
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    const size_t whole = c.result > 0 ? static_cast<size_t>(c.result) : c.in.size();
    for (size_t cut = 0; cut < whole; ++cut) {
      Reply r;
      const int n = ParseReply(std::string_view(c.in).substr(0, cut), &r);
      if (c.result > 0 || c.result == kPartial) {
        EXPECT_EQ(n, kPartial) << "cut at " << cut;
      } else {
        EXPECT_TRUE(n == kPartial || n == kError) << "cut at " << cut;
      }
    }
  }
}

#if HMS_HAVE_HIREDIS
// Debian's hiredis as the reference: what this reader completes, hiredis
// reads the same way; what it calls a prefix, hiredis waits on too. (Errors
// are not compared: this reader is stricter by design, refusing oversized
// lengths, '+' signs and bare LFs that hiredis lets through.)
TEST(Resp, AgreesWithHiredisOnEveryCaseItReads) {
  for (const Case& c : Cases()) {
    if (c.result == kError) continue;
    SCOPED_TRACE(c.name);
    redisReader* reader = redisReaderCreate();
    ASSERT_EQ(redisReaderFeed(reader, c.in.data(), c.in.size()), REDIS_OK);
    void* raw = nullptr;
    ASSERT_EQ(redisReaderGetReply(reader, &raw), REDIS_OK);
    auto* ref = static_cast<redisReply*>(raw);
    if (c.result == kPartial) {
      EXPECT_EQ(ref, nullptr);
    } else {
      ASSERT_NE(ref, nullptr);
      const int want = c.type == ReplyType::kSimple    ? REDIS_REPLY_STATUS
                       : c.type == ReplyType::kError   ? REDIS_REPLY_ERROR
                       : c.type == ReplyType::kInteger ? REDIS_REPLY_INTEGER
                       : c.type == ReplyType::kBulk    ? REDIS_REPLY_STRING
                       : c.type == ReplyType::kNil     ? REDIS_REPLY_NIL
                                                       : REDIS_REPLY_ARRAY;
      EXPECT_EQ(ref->type, want);
      if (c.type == ReplyType::kInteger) {
        EXPECT_EQ(ref->integer, c.integer);
      }
      if (c.type == ReplyType::kArray) {
        EXPECT_EQ(static_cast<int64_t>(ref->elements), c.integer);
      }
      if (ref->type == REDIS_REPLY_STRING || ref->type == REDIS_REPLY_STATUS ||
          ref->type == REDIS_REPLY_ERROR) {
        EXPECT_EQ(std::string(ref->str, ref->len), c.text);
      }
    }
    if (ref != nullptr) freeReplyObject(ref);
    redisReaderFree(reader);
  }
}
#endif

TEST(Resp, ArrayElementsAreStoredUpToTheLimit) {
  std::string in = "*10\r\n";
  for (int i = 0; i < 10; ++i) in += ":" + std::to_string(i * 100) + "\r\n";
  Reply r;
  ASSERT_EQ(ParseReply(in, &r), static_cast<int>(in.size()));
  EXPECT_EQ(r.top.integer, 10);
  ASSERT_EQ(r.stored, kMaxElements);
  for (uint32_t i = 0; i < kMaxElements; ++i) {
    EXPECT_EQ(r.elements[i].type, ReplyType::kInteger);
    EXPECT_EQ(r.elements[i].integer, i * 100);
  }
}

TEST(Resp, NestedArrayKeepsItsCount) {
  Reply r;
  ASSERT_EQ(ParseReply("*2\r\n*3\r\n:1\r\n:2\r\n:3\r\n+x\r\n", &r), 24);
  ASSERT_EQ(r.stored, 2u);
  EXPECT_EQ(r.elements[0].type, ReplyType::kArray);
  EXPECT_EQ(r.elements[0].integer, 3);
  EXPECT_EQ(r.elements[1].text, "x");
}

TEST(Resp, WritesCommandsAsArraysOfBulkStrings) {
  char buf[128];
  const Arg args[] = {"EVALSHA", "abc", "1", "rl:route", Arg::Int(-3000000)};
  const size_t n = WriteCommand(args, buf);
  EXPECT_EQ(std::string(buf, n),
            "*5\r\n$7\r\nEVALSHA\r\n$3\r\nabc\r\n$1\r\n1\r\n$8\r\nrl:route\r\n$8\r\n-3000000\r\n");
  // It reads back as the same arguments.
  Reply r;
  ASSERT_EQ(ParseReply(std::string_view(buf, n), &r), static_cast<int>(n));
  ASSERT_EQ(r.stored, 5u);
  EXPECT_EQ(r.elements[3].text, "rl:route");
  EXPECT_EQ(r.elements[4].text, "-3000000");
}

TEST(Resp, WriteIntoTooSmallABufferWritesNothing) {
  const Arg args[] = {"SET", std::string_view("k\0y", 3), Arg::Int(5)};
  char big[64];
  const size_t need = WriteCommand(args, big);
  ASSERT_EQ(std::string(big, need),
            std::string("*3\r\n$3\r\nSET\r\n$3\r\nk\0y\r\n$1\r\n5\r\n", 29));
  for (size_t size = 0; size < need; ++size) {
    std::vector<char> small(size);
    EXPECT_EQ(WriteCommand(args, small), 0u) << "size " << size;
  }
}

}  // namespace
}  // namespace hms::fleet
