#include "hms/fleet/redis_client.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "hms/common/check.h"
#include "hms/common/file_check.h"

namespace hms::fleet {

std::string_view CallStatusName(CallStatus s) noexcept {
  switch (s) {
    case CallStatus::kOk:
      return "ok";
    case CallStatus::kRedisError:
      return "redis_error";
    case CallStatus::kTimeout:
      return "timeout";
    case CallStatus::kAuthFailed:
      return "auth_failed";
    case CallStatus::kHandshakeFailed:
      return "handshake_failed";
    case CallStatus::kConnectionLost:
      return "connection_lost";
    case CallStatus::kProtocolError:
      return "protocol_error";
    case CallStatus::kRefused:
      return "refused";
  }
  return "unknown";
}

Result<std::string> ReadPasswordFile(const std::string& path) {
  auto read = ReadSmallFile(path, 4096);
  if (!read.ok()) return read.error();
  std::string text = std::move(*read);
  // Files written by editors and `echo` end with a newline the password lacks.
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (text.empty()) return ConfigError(path + ": the Redis password file is empty");
  return text;
}

RedisClient::RedisClient(ClientOptions options, std::string_view script)
    : options_(std::move(options)), script_(script) {
  HMS_CHECK(options_.max_in_flight > 0);
  // The handshake is queued whole at connect: the output buffer must hold it.
  HMS_CHECK(options_.buffer_bytes >=
            script_.size() + options_.username.size() + options_.password.size() + 256);
  out_.resize(options_.buffer_bytes);
  in_.resize(options_.buffer_bytes);
  pending_.resize(options_.max_in_flight + 3);  // + the handshake's three
  done_.resize(options_.max_in_flight + 3);
}

void RedisClient::Connected(core::Instant now) noexcept {
  Disconnected();
  state_ = State::kHandshake;
  failure_ = CallStatus::kOk;
  sha_len_ = 0;
  handshake_left_ = 0;
  Pending p;
  p.deadline = now + options_.timeout_ns;
  if (!options_.password.empty()) {
    p.kind = Kind::kAuth;
    const Arg with_user[] = {"AUTH", options_.username, options_.password};
    const Arg plain[] = {"AUTH", options_.password};
    HMS_CHECK(options_.username.empty() ? Push(p, plain) : Push(p, with_user));
    ++handshake_left_;
  }
  if (options_.db != 0) {
    p.kind = Kind::kSelect;
    const Arg select[] = {"SELECT", Arg::Int(options_.db)};
    HMS_CHECK(Push(p, select));
    ++handshake_left_;
  }
  // Not part of the handshake proper: calls may go as EVAL until it answers.
  p.kind = Kind::kScriptLoad;
  const Arg load[] = {"SCRIPT", "LOAD", script_};
  HMS_CHECK(Push(p, load));
  if (handshake_left_ == 0) state_ = State::kReady;
}

void RedisClient::Disconnected() noexcept {
  if (state_ != State::kFailed) Fail(CallStatus::kConnectionLost, {});
  state_ = State::kIdle;
  failure_ = CallStatus::kOk;
  in_len_ = 0;
}

bool RedisClient::Push(const Pending& p, std::span<const Arg> command) noexcept {
  if (pending_count_ == pending_.size()) return false;
  const size_t n = WriteCommand(command, std::span<char>(out_).subspan(out_len_));
  if (n == 0) return false;
  out_len_ += n;
  pending_[(pending_head_ + pending_count_) % pending_.size()] = p;
  ++pending_count_;
  return true;
}

bool RedisClient::SendCall(Pending p) noexcept {
  // EVALSHA sha 1 key args... / EVAL script 1 key args...
  Arg cmd[4 + kMaxCallArgs] = {"EVAL", script_, "1", std::string_view(p.key, p.key_len)};
  if (p.kind == Kind::kEvalSha) {
    cmd[0] = "EVALSHA";
    cmd[1] = std::string_view(sha_, sha_len_);
  }
  for (uint32_t i = 0; i < p.nargs; ++i) cmd[4 + i] = Arg::Int(p.args[i]);
  return Push(p, std::span<const Arg>(cmd, 4 + p.nargs));
}

bool RedisClient::Call(uint64_t tag, std::string_view key, std::span<const int64_t> args,
                       core::Instant now) noexcept {
  if (state_ != State::kHandshake && state_ != State::kReady) return false;
  if (key.size() > kMaxKeyBytes || args.size() > kMaxCallArgs) return false;
  // Every pending call completes once: keeping calls plus unread completions
  // under the limit means the completion ring never overflows.
  if (pending_count_ + done_count_ >= options_.max_in_flight) return false;
  Pending p;
  p.kind = script_loaded() ? Kind::kEvalSha : Kind::kEval;
  p.tag = tag;
  p.deadline = now + options_.timeout_ns;
  p.key_len = static_cast<uint32_t>(key.size());
  if (!key.empty()) std::memcpy(p.key, key.data(), key.size());
  p.nargs = static_cast<uint32_t>(args.size());
  std::copy(args.begin(), args.end(), p.args);
  return SendCall(p);
}

void RedisClient::Sent(size_t n) noexcept {
  HMS_CHECK(n <= out_len_);
  std::memmove(out_.data(), out_.data() + n, out_len_ - n);
  out_len_ -= n;
}

void RedisClient::Received(std::string_view bytes, core::Instant now) noexcept {
  (void)now;  // replies carry no time; deadlines are applied by Tick
  while (!bytes.empty() && (state_ == State::kHandshake || state_ == State::kReady)) {
    const size_t room = in_.size() - in_len_;
    if (room == 0) {
      // A single reply larger than the whole buffer: not one the gateway asked for.
      Fail(CallStatus::kProtocolError, "reply larger than the client's buffer");
      return;
    }
    const size_t take = std::min(room, bytes.size());
    std::memcpy(in_.data() + in_len_, bytes.data(), take);
    in_len_ += take;
    bytes.remove_prefix(take);
    ParseInput();
  }
}

void RedisClient::ParseInput() noexcept {
  size_t at = 0;
  while (state_ == State::kHandshake || state_ == State::kReady) {
    Reply reply;
    const int n = ParseReply(std::string_view(in_.data() + at, in_len_ - at), &reply);
    if (n == kPartial) break;
    if (n == kError || pending_count_ == 0) {
      // Bytes that are not RESP, or a reply nobody asked for: the FIFO is lost.
      Fail(CallStatus::kProtocolError, n == kError ? "not RESP2" : "unsolicited reply");
      return;
    }
    OnReply(reply);
    at += static_cast<size_t>(n);
  }
  if (state_ == State::kFailed) return;
  std::memmove(in_.data(), in_.data() + at, in_len_ - at);
  in_len_ -= at;
}

void RedisClient::OnReply(const Reply& reply) noexcept {
  const Pending p = pending_[pending_head_];
  pending_head_ = (pending_head_ + 1) % pending_.size();
  --pending_count_;
  const bool error = reply.top.type == ReplyType::kError;
  switch (p.kind) {
    case Kind::kAuth:
    case Kind::kSelect:
      if (error) {
        Fail(p.kind == Kind::kAuth ? CallStatus::kAuthFailed : CallStatus::kHandshakeFailed,
             reply.top.text);
        return;
      }
      if (--handshake_left_ == 0) state_ = State::kReady;
      return;
    case Kind::kScriptLoad:
      // A refusal only means calls keep going as EVAL.
      if (reply.top.type == ReplyType::kBulk && reply.top.text.size() == 40) {
        std::memcpy(sha_, reply.top.text.data(), 40);
        sha_len_ = 40;
      }
      return;
    case Kind::kEvalSha:
    case Kind::kEval:
      OnCallReply(p, reply);
      return;
  }
}

void RedisClient::OnCallReply(const Pending& p, const Reply& reply) noexcept {
  if (p.abandoned) return;
  const bool error = reply.top.type == ReplyType::kError;
  if (error && p.kind == Kind::kEvalSha && reply.top.text.starts_with("NOSCRIPT")) {
    Pending again = p;
    again.kind = Kind::kEval;
    if (!SendCall(again)) Complete(p, CallStatus::kRedisError, reply.top.text);
    return;
  }
  if (error) return Complete(p, CallStatus::kRedisError, reply.top.text);
  Complete(p, CallStatus::kOk, {});
  Completion& c = done_[(done_head_ + done_count_ - 1) % done_.size()];
  if (reply.top.type == ReplyType::kInteger) {
    c.values[0] = reply.top.integer;
    c.count = 1;
  } else if (reply.top.type == ReplyType::kArray) {
    c.count = std::min<uint32_t>(reply.stored, kMaxCallArgs);
    for (uint32_t i = 0; i < c.count; ++i) {
      const Element& e = reply.elements[i];
      c.values[i] = e.type == ReplyType::kInteger ? e.integer : 0;
    }
  }
}

void RedisClient::Complete(const Pending& p, CallStatus status, std::string_view error) noexcept {
  HMS_CHECK(done_count_ < done_.size());
  Completion& c = done_[(done_head_ + done_count_) % done_.size()];
  ++done_count_;
  c = Completion();
  c.tag = p.tag;
  c.status = status;
  c.error_len = static_cast<uint32_t>(std::min(error.size(), sizeof(c.error)));
  // An empty view may have a null data(), which memcpy must not be given.
  if (c.error_len > 0) std::memcpy(c.error, error.data(), c.error_len);
}

void RedisClient::Fail(CallStatus why, std::string_view error) noexcept {
  for (; pending_count_ > 0; --pending_count_) {
    const Pending& p = pending_[pending_head_];
    pending_head_ = (pending_head_ + 1) % pending_.size();
    const bool call = p.kind == Kind::kEval || p.kind == Kind::kEvalSha;
    if (call && !p.abandoned) Complete(p, why, error);
  }
  pending_head_ = 0;
  out_len_ = 0;
  in_len_ = 0;
  state_ = State::kFailed;
  failure_ = why;
}

void RedisClient::Tick(core::Instant now) noexcept {
  if (state_ != State::kHandshake && state_ != State::kReady) return;
  for (size_t i = 0; i < pending_count_; ++i) {
    Pending& p = pending_[(pending_head_ + i) % pending_.size()];
    if (p.abandoned || p.deadline > now) continue;
    if (p.kind == Kind::kAuth || p.kind == Kind::kSelect) return Fail(CallStatus::kTimeout, {});
    if (p.kind == Kind::kScriptLoad) continue;  // judged by the rule below
    Complete(p, CallStatus::kTimeout, {});
    p.abandoned = true;
  }
  // The reply owed first is a whole timeout late: the connection is stuck.
  if (pending_count_ > 0 && pending_[pending_head_].deadline + options_.timeout_ns <= now) {
    Fail(CallStatus::kTimeout, {});
  }
}

core::Instant RedisClient::NextDeadline() const noexcept {
  core::Instant next = 0;
  for (size_t i = 0; i < pending_count_; ++i) {
    const Pending& p = pending_[(pending_head_ + i) % pending_.size()];
    const core::Instant d = p.abandoned ? p.deadline + options_.timeout_ns : p.deadline;
    if (next == 0 || d < next) next = d;
  }
  return next;
}

bool RedisClient::PopCompletion(Completion* out) noexcept {
  if (done_count_ == 0) return false;
  *out = done_[done_head_];
  done_head_ = (done_head_ + 1) % done_.size();
  --done_count_;
  return true;
}

}  // namespace hms::fleet
