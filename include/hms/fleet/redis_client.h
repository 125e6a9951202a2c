// A Redis client as a state machine without I/O (docs/resilience.md, "Fleet
// scope"): it takes the bytes received and the time, and produces the bytes
// to send and the completions of calls. The engine will drive one per core
// over that core's io_uring (with wolfSSL's buffer pump for TLS); tests drive
// it over a plain socket or by hand. It never reads a clock, blocks or
// allocates after construction; one thread (the owning core's) calls it.
//
// What it does on a connection: AUTH (when a password is set), SELECT (when
// the database is not 0) and SCRIPT LOAD of its one script, pipelined ahead of
// any call; then calls of that script, many in flight, replies matched in
// FIFO order (RESP has no request ids; Redis answers in order). A call goes
// as EVALSHA once the script's SHA1 is known, as EVAL before; a NOSCRIPT
// answer (the script cache was flushed, or a failover reached a server that
// never saw it) re-sends that call as EVAL, which caches the script again.
// Each call carries a deadline; one that passes completes the call with
// kTimeout and its late reply is dropped when it comes. When the oldest
// reply is a whole timeout later still, the connection is declared failed
// (the engine closes it and reconnects).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "hms/common/result.h"
#include "hms/core/clock.h"
#include "hms/fleet/resp.h"

namespace hms::fleet {

enum class CallStatus : uint8_t {
  kOk,               // the reply is in `values`
  kRedisError,       // Redis answered an error (text in `error`)
  kTimeout,          // the deadline passed first
  kAuthFailed,       // AUTH was refused: nothing on this connection will work
  kHandshakeFailed,  // SELECT was refused
  kConnectionLost,   // the engine reset the client (connection closed)
  kProtocolError,    // the peer sent bytes that are not RESP2, or too many
  kRefused,          // not sent: not connected, failed, or too many in flight
};
std::string_view CallStatusName(CallStatus s) noexcept;

inline constexpr uint32_t kMaxCallArgs = 4;
inline constexpr size_t kMaxKeyBytes = 128;

struct Completion {
  uint64_t tag = 0;
  CallStatus status = CallStatus::kOk;
  // kOk: an integer reply as one value, an array's integer elements in order
  // (a non-integer element reads as 0).
  int64_t values[kMaxCallArgs] = {};
  uint32_t count = 0;
  char error[64] = {};  // kRedisError, kAuthFailed, kHandshakeFailed: first bytes
  uint32_t error_len = 0;
  std::string_view error_text() const noexcept { return {error, error_len}; }
};

struct ClientOptions {
  std::string username;  // empty: AUTH with the password alone (requirepass)
  std::string password;  // empty: no AUTH
  uint32_t db = 0;       // not 0: SELECT db
  uint64_t timeout_ns = core::Millis(200);
  size_t buffer_bytes = 64 * 1024;  // each way; at least the handshake (script + 256)
  uint32_t max_in_flight = 64;
};

// The password file's content without its trailing newline (boot or control
// thread). An empty or unreadable file is an error naming it.
Result<std::string> ReadPasswordFile(const std::string& path);

class RedisClient {
 public:
  enum class State : uint8_t { kIdle, kHandshake, kReady, kFailed };

  // Allocates the buffers and queues here (boot or control thread).
  RedisClient(ClientOptions options, std::string_view script);

  // A connection is up: queues the handshake. Any earlier state is dropped
  // (pending calls complete with kConnectionLost).
  void Connected(core::Instant now) noexcept;
  // The connection is gone: pending calls complete with kConnectionLost.
  void Disconnected() noexcept;

  // Queues one call of the script with one key and up to kMaxCallArgs integer
  // arguments. False (and nothing queued) when it cannot be sent: not
  // connected, failed, key too long, the queue or the output buffer full.
  [[nodiscard]] bool Call(uint64_t tag, std::string_view key, std::span<const int64_t> args,
                          core::Instant now) noexcept;

  // Bytes to send, and how many of them went out.
  std::span<const char> Output() const noexcept { return {out_.data(), out_len_}; }
  void Sent(size_t n) noexcept;

  // Bytes that arrived. Complete replies are matched at once.
  void Received(std::string_view bytes, core::Instant now) noexcept;

  // Applies deadlines. Call when NextDeadline() has passed (or every pass).
  void Tick(core::Instant now) noexcept;
  // The earliest deadline of a pending reply; 0 when none.
  core::Instant NextDeadline() const noexcept;

  // The next finished call, oldest first; false when none.
  bool PopCompletion(Completion* out) noexcept;

  State state() const noexcept { return state_; }
  // Why the client is kFailed (kOk otherwise).
  CallStatus failure() const noexcept { return failure_; }
  size_t in_flight() const noexcept { return pending_count_; }
  bool script_loaded() const noexcept { return sha_len_ == 40; }

 private:
  enum class Kind : uint8_t { kAuth, kSelect, kScriptLoad, kEvalSha, kEval };
  struct Pending {
    Kind kind = Kind::kEval;
    bool abandoned = false;  // completed by its deadline; the reply is dropped
    uint64_t tag = 0;
    core::Instant deadline = 0;
    uint32_t key_len = 0;
    uint32_t nargs = 0;
    char key[kMaxKeyBytes] = {};
    int64_t args[kMaxCallArgs] = {};
  };

  bool Push(const Pending& p, std::span<const Arg> command) noexcept;
  bool SendCall(Pending p) noexcept;
  void OnReply(const Reply& reply) noexcept;
  void OnCallReply(const Pending& p, const Reply& reply) noexcept;
  void Complete(const Pending& p, CallStatus status, std::string_view error) noexcept;
  void Fail(CallStatus why, std::string_view error) noexcept;
  void ParseInput() noexcept;

  ClientOptions options_;
  std::string script_;
  State state_ = State::kIdle;
  CallStatus failure_ = CallStatus::kOk;
  char sha_[40] = {};
  uint32_t sha_len_ = 0;
  uint32_t handshake_left_ = 0;

  std::vector<char> out_;
  size_t out_len_ = 0;
  std::vector<char> in_;
  size_t in_len_ = 0;

  std::vector<Pending> pending_;  // ring, FIFO of replies owed
  size_t pending_head_ = 0;
  size_t pending_count_ = 0;
  std::vector<Completion> done_;  // ring of finished calls
  size_t done_head_ = 0;
  size_t done_count_ = 0;
};

}  // namespace hms::fleet
