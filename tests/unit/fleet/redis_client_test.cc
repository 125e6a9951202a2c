#include "hms/fleet/redis_client.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <new>
#include <string>
#include <vector>

#include "hms/fleet/gcra_script.h"

// Counts this thread's heap allocations while `g_counting` is set, to check
// that the client's steady state allocates nothing (STYLE §4).
namespace {
thread_local bool g_counting = false;
thread_local size_t g_allocations = 0;
}  // namespace
void* operator new(size_t n) {
  if (g_counting) ++g_allocations;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace hms::fleet {
namespace {

using Command = std::vector<std::string>;
constexpr core::Instant kT0 = core::Millis(1000);
const std::string kSha(40, 'a');

// Takes everything the client wants to send and splits it into commands.
std::vector<Command> Drain(RedisClient& c) {
  std::vector<Command> out;
  std::string_view bytes(c.Output().data(), c.Output().size());
  size_t at = 0;
  while (at < bytes.size()) {
    Reply r;
    const int n = ParseReply(bytes.substr(at), &r);
    EXPECT_GT(n, 0);
    if (n <= 0) break;
    EXPECT_EQ(r.top.type, ReplyType::kArray);
    Command cmd;
    for (uint32_t i = 0; i < r.stored; ++i) cmd.emplace_back(r.elements[i].text);
    out.push_back(cmd);
    at += static_cast<size_t>(n);
  }
  c.Sent(bytes.size());
  return out;
}

std::vector<Completion> Completions(RedisClient& c) {
  std::vector<Completion> out;
  Completion done;
  while (c.PopCompletion(&done)) out.push_back(done);
  return out;
}

ClientOptions Options(std::string password = "", uint32_t db = 0) {
  ClientOptions o;
  o.password = std::move(password);
  o.db = db;
  o.timeout_ns = core::Millis(100);
  o.max_in_flight = 8;
  o.buffer_bytes = 4096;
  return o;
}

const int64_t kArgs[] = {3'000'000, 20, 1};

// A client past its handshake, with the script's SHA1 known.
void Ready(RedisClient& c) {
  c.Connected(kT0);
  ASSERT_EQ(Drain(c), (std::vector<Command>{{"SCRIPT", "LOAD", std::string(kGcraScript)}}));
  c.Received("$40\r\n" + kSha + "\r\n", kT0);
  ASSERT_EQ(c.state(), RedisClient::State::kReady);
  ASSERT_TRUE(c.script_loaded());
}

TEST(RedisClient, HandshakeIsPipelinedAheadOfTheFirstCalls) {
  RedisClient c(Options("s3cret", 2), kGcraScript);
  c.Connected(kT0);
  EXPECT_EQ(c.state(), RedisClient::State::kHandshake);
  ASSERT_TRUE(c.Call(7, "rl:a", kArgs, kT0));
  const auto sent = Drain(c);
  ASSERT_EQ(sent.size(), 4u);
  EXPECT_EQ(sent[0], (Command{"AUTH", "s3cret"}));
  EXPECT_EQ(sent[1], (Command{"SELECT", "2"}));
  EXPECT_EQ(sent[2][0], "SCRIPT");
  // Before SCRIPT LOAD answers, a call goes as EVAL with the script's text.
  EXPECT_EQ(sent[3],
            (Command{"EVAL", std::string(kGcraScript), "1", "rl:a", "3000000", "20", "1"}));
  c.Received("+OK\r\n+OK\r\n$40\r\n" + kSha + "\r\n*3\r\n:1\r\n:0\r\n:3000000\r\n", kT0);
  EXPECT_EQ(c.state(), RedisClient::State::kReady);
  const auto done = Completions(c);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].tag, 7u);
  EXPECT_EQ(done[0].status, CallStatus::kOk);
  ASSERT_EQ(done[0].count, 3u);
  EXPECT_EQ(done[0].values[0], 1);
  EXPECT_EQ(done[0].values[2], 3'000'000);
  // Once the SHA1 is known, calls go as EVALSHA.
  ASSERT_TRUE(c.Call(8, "rl:a", kArgs, kT0));
  EXPECT_EQ(Drain(c), (std::vector<Command>{{"EVALSHA", kSha, "1", "rl:a", "3000000", "20", "1"}}));
}

TEST(RedisClient, AuthWithUsernameSendsBoth) {
  ClientOptions o = Options("pw");
  o.username = "gateway";
  RedisClient c(o, kGcraScript);
  c.Connected(kT0);
  EXPECT_EQ(Drain(c)[0], (Command{"AUTH", "gateway", "pw"}));
}

TEST(RedisClient, AuthFailureFailsTheConnectionAndItsCalls) {
  RedisClient c(Options("wrong"), kGcraScript);
  c.Connected(kT0);
  ASSERT_TRUE(c.Call(1, "rl:a", kArgs, kT0));
  ASSERT_TRUE(c.Call(2, "rl:a", kArgs, kT0));
  Drain(c);
  c.Received("-WRONGPASS invalid username-password pair or user is disabled.\r\n", kT0);
  EXPECT_EQ(c.state(), RedisClient::State::kFailed);
  EXPECT_EQ(c.failure(), CallStatus::kAuthFailed);
  const auto done = Completions(c);
  ASSERT_EQ(done.size(), 2u);
  for (const Completion& d : done) {
    EXPECT_EQ(d.status, CallStatus::kAuthFailed);
    EXPECT_TRUE(d.error_text().starts_with("WRONGPASS"));
  }
  EXPECT_FALSE(c.Call(3, "rl:a", kArgs, kT0));
  EXPECT_TRUE(c.Output().empty());
}

TEST(RedisClient, SelectFailureIsAHandshakeFailure) {
  RedisClient c(Options("", 99), kGcraScript);
  c.Connected(kT0);
  Drain(c);
  c.Received("-ERR DB index is out of range\r\n", kT0);
  EXPECT_EQ(c.failure(), CallStatus::kHandshakeFailed);
}

TEST(RedisClient, NoscriptResendsTheCallAsEval) {
  RedisClient c(Options(), kGcraScript);
  Ready(c);
  ASSERT_TRUE(c.Call(5, "rl:b", kArgs, kT0));
  ASSERT_TRUE(c.Call(6, "rl:b", kArgs, kT0));
  EXPECT_EQ(Drain(c).size(), 2u);
  // The cache was flushed: both EVALSHAs are refused; each goes again as EVAL.
  c.Received("-NOSCRIPT No matching script. Please use EVAL.\r\n", kT0);
  c.Received("-NOSCRIPT No matching script. Please use EVAL.\r\n", kT0);
  EXPECT_TRUE(Completions(c).empty());
  const auto again = Drain(c);
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[0][0], "EVAL");
  EXPECT_EQ(again[0][3], "rl:b");
  c.Received("*3\r\n:1\r\n:0\r\n:1\r\n*3\r\n:0\r\n:2000\r\n:1\r\n", kT0);
  const auto done = Completions(c);
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[0].tag, 5u);
  EXPECT_EQ(done[0].values[0], 1);
  EXPECT_EQ(done[1].tag, 6u);
  EXPECT_EQ(done[1].values[1], 2000);
}

TEST(RedisClient, ErrorReplyCompletesOnlyItsCall) {
  RedisClient c(Options(), kGcraScript);
  Ready(c);
  ASSERT_TRUE(c.Call(1, "rl:c", kArgs, kT0));
  ASSERT_TRUE(c.Call(2, "rl:c", kArgs, kT0));
  Drain(c);
  c.Received("-ERR gcra: want interval_us >= 1, burst >= 1, want >= 0\r\n:5\r\n", kT0);
  const auto done = Completions(c);
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[0].status, CallStatus::kRedisError);
  EXPECT_TRUE(done[0].error_text().starts_with("ERR gcra"));
  EXPECT_EQ(done[1].status, CallStatus::kOk);
  EXPECT_EQ(done[1].values[0], 5);
  EXPECT_EQ(c.state(), RedisClient::State::kReady);
}

// Replies to pipelined calls come in order, in any pieces: each split point of
// the whole stream gives the same completions.
TEST(RedisClient, PipelinedRepliesMatchInOrderWhateverTheSplit) {
  const std::string replies =
      "*3\r\n:4\r\n:0\r\n:12000000\r\n-ERR busy\r\n:9\r\n*3\r\n:0\r\n:3000000\r\n:60000000\r\n";
  for (size_t cut = 0; cut <= replies.size(); ++cut) {
    SCOPED_TRACE(cut);
    RedisClient c(Options(), kGcraScript);
    Ready(c);
    for (uint64_t tag = 10; tag < 14; ++tag) ASSERT_TRUE(c.Call(tag, "rl:d", kArgs, kT0));
    ASSERT_EQ(Drain(c).size(), 4u);
    c.Received(std::string_view(replies).substr(0, cut), kT0);
    c.Received(std::string_view(replies).substr(cut), kT0);
    const auto done = Completions(c);
    ASSERT_EQ(done.size(), 4u);
    EXPECT_EQ(done[0].tag, 10u);
    EXPECT_EQ(done[0].values[0], 4);
    EXPECT_EQ(done[1].tag, 11u);
    EXPECT_EQ(done[1].status, CallStatus::kRedisError);
    EXPECT_EQ(done[2].values[0], 9);
    EXPECT_EQ(done[3].tag, 13u);
    EXPECT_EQ(done[3].values[2], 60'000'000);
  }
}

TEST(RedisClient, TimeoutCompletesTheCallAndDropsItsLateReply) {
  RedisClient c(Options(), kGcraScript);
  Ready(c);
  ASSERT_TRUE(c.Call(1, "rl:e", kArgs, kT0));
  ASSERT_TRUE(c.Call(2, "rl:e", kArgs, kT0 + core::Millis(50)));
  Drain(c);
  EXPECT_EQ(c.NextDeadline(), kT0 + core::Millis(100));
  c.Tick(kT0 + core::Millis(99));
  EXPECT_TRUE(Completions(c).empty());
  c.Tick(kT0 + core::Millis(100));
  auto done = Completions(c);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].tag, 1u);
  EXPECT_EQ(done[0].status, CallStatus::kTimeout);
  // The late reply of call 1 is dropped; call 2's is still matched to it.
  c.Received(":1\r\n:2\r\n", kT0 + core::Millis(120));
  done = Completions(c);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].tag, 2u);
  EXPECT_EQ(done[0].values[0], 2);
  EXPECT_EQ(c.state(), RedisClient::State::kReady);
}

TEST(RedisClient, AReplyAWholeTimeoutLateFailsTheConnection) {
  RedisClient c(Options(), kGcraScript);
  Ready(c);
  ASSERT_TRUE(c.Call(1, "rl:f", kArgs, kT0));
  Drain(c);
  c.Tick(kT0 + core::Millis(100));
  EXPECT_EQ(Completions(c).size(), 1u);
  EXPECT_EQ(c.NextDeadline(), kT0 + core::Millis(200));
  c.Tick(kT0 + core::Millis(199));
  EXPECT_EQ(c.state(), RedisClient::State::kReady);
  c.Tick(kT0 + core::Millis(200));
  EXPECT_EQ(c.state(), RedisClient::State::kFailed);
  EXPECT_EQ(c.failure(), CallStatus::kTimeout);
  EXPECT_TRUE(Completions(c).empty());  // call 1 was answered once already
}

TEST(RedisClient, AuthTimeoutFailsTheConnection) {
  RedisClient c(Options("pw"), kGcraScript);
  c.Connected(kT0);
  ASSERT_TRUE(c.Call(1, "rl:g", kArgs, kT0));
  Drain(c);
  c.Tick(kT0 + core::Millis(100));
  EXPECT_EQ(c.failure(), CallStatus::kTimeout);
  const auto done = Completions(c);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].status, CallStatus::kTimeout);
}

TEST(RedisClient, BytesThatAreNotRespFailTheConnection) {
  RedisClient c(Options(), kGcraScript);
  c.Connected(kT0);
  Drain(c);
  ASSERT_TRUE(c.Call(1, "rl:h", kArgs, kT0));
  c.Received("HTTP/1.1 400 Bad Request\r\n", kT0);
  EXPECT_EQ(c.failure(), CallStatus::kProtocolError);
  const auto done = Completions(c);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].status, CallStatus::kProtocolError);
}

TEST(RedisClient, AReplyNobodyAskedForFailsTheConnection) {
  RedisClient c(Options(), kGcraScript);
  c.Connected(kT0);  // owes one reply: SCRIPT LOAD's
  Drain(c);
  c.Received("$40\r\n" + kSha + "\r\n:1\r\n", kT0);
  EXPECT_EQ(c.failure(), CallStatus::kProtocolError);
}

TEST(RedisClient, DisconnectLosesPendingCallsAndReconnectStartsOver) {
  RedisClient c(Options(), kGcraScript);
  Ready(c);
  ASSERT_TRUE(c.Call(1, "rl:i", kArgs, kT0));
  c.Received("*3\r\n:1", kT0);  // half a reply, then the connection drops
  c.Disconnected();
  const auto done = Completions(c);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].status, CallStatus::kConnectionLost);
  EXPECT_EQ(c.state(), RedisClient::State::kIdle);
  EXPECT_FALSE(c.Call(2, "rl:i", kArgs, kT0));
  Ready(c);  // nothing of the old connection is left in either buffer
}

TEST(RedisClient, RefusesWhatItCannotSend) {
  RedisClient c(Options(), kGcraScript);
  EXPECT_FALSE(c.Call(1, "rl:j", kArgs, kT0));  // not connected
  Ready(c);
  EXPECT_FALSE(c.Call(1, std::string(kMaxKeyBytes + 1, 'k'), kArgs, kT0));
  for (uint64_t i = 0; i < 8; ++i) ASSERT_TRUE(c.Call(i, "rl:j", kArgs, kT0));
  EXPECT_FALSE(c.Call(9, "rl:j", kArgs, kT0));  // max_in_flight
  Drain(c);
  std::string replies;
  for (int i = 0; i < 8; ++i) replies += ":1\r\n";
  c.Received(replies, kT0);
  // Unread completions count too, so the completion ring cannot overflow.
  EXPECT_FALSE(c.Call(9, "rl:j", kArgs, kT0));
  EXPECT_EQ(Completions(c).size(), 8u);
  EXPECT_TRUE(c.Call(9, "rl:j", kArgs, kT0));
}

TEST(RedisClient, PasswordFileLosesItsNewlineAndMustNotBeEmpty) {
  char dir[] = "/tmp/hms-fleet-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string good = std::string(dir) + "/good", empty = std::string(dir) + "/empty";
  std::ofstream(good) << "pa ss\r\n";
  std::ofstream(empty) << "\n";
  auto read = ReadPasswordFile(good);
  ASSERT_TRUE(read.ok()) << read.error().message;
  EXPECT_EQ(*read, "pa ss");
  auto none = ReadPasswordFile(empty);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().message, empty + ": the Redis password file is empty");
  EXPECT_EQ(none.error().side, Side::kConfig);
  auto dir_itself = ReadPasswordFile(dir);
  ASSERT_FALSE(dir_itself.ok());
  EXPECT_EQ(dir_itself.error().message, std::string(dir) + ": is a directory");
  std::filesystem::remove_all(dir);
}

TEST(RedisClient, SteadyStateAllocatesNothing) {
  RedisClient c(Options(), kGcraScript);
  Ready(c);
  const std::string reply = "*3\r\n:1\r\n:0\r\n:3000000\r\n";
  Completion done;
  g_allocations = 0;
  g_counting = true;
  for (uint64_t i = 0; i < 1000; ++i) {
    const bool ok = c.Call(i, "rl:k", kArgs, kT0);
    c.Sent(c.Output().size());
    c.Received(reply, kT0);
    c.Tick(kT0);
    const bool popped = c.PopCompletion(&done);
    if (!ok || !popped) break;
  }
  g_counting = false;
  EXPECT_EQ(g_allocations, 0u);
  EXPECT_EQ(done.tag, 999u);
}

}  // namespace
}  // namespace hms::fleet
