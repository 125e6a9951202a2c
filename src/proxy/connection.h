// What every connection of a core has, whichever side it faces: the socket
// and its generation, the operations in flight, received input, the queue
// toward the peer, receive arming and the TLS session with its ciphertext.
// `Client` (downstream) and `Upstream` (worker.h) add their own state
// machine on top; the worker's templates (ArmRecv, PauseOrResume, QueueSend,
// TlsReceive, TlsSeal) work on these members only. Received input is kept,
// fed to its consumer and released by the core's InputStore, below.
//
// Owned by one core's slabs, touched by that core's thread only.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "hms/core/block_pool.h"
#include "hms/core/ring.h"
#include "hms/tls/session.h"

namespace hms::proxy {

// "No slot": an index into a core's slabs, buffer ids and pools that names
// nothing.
inline constexpr uint32_t kNone = 0xffffffffu;
// Bytes queued toward one peer before we stop reading from the other side:
// bounds a connection's memory whatever the peers' speeds.
inline constexpr size_t kMaxQueued = 256 * 1024;

// Received bytes not yet consumed: first a contiguous block (partial heads and
// leftovers), then provided buffers kept out of the kernel's ring while the
// connection cannot take them (back-pressure; the recv is cancelled meanwhile).
struct Input {
  core::Block* block = nullptr;
  uint32_t held_head = kNone;  // buffer ids, linked through InputStore
  uint32_t held_tail = kNone;
  uint32_t held_off = 0;       // bytes of the head buffer already consumed
  bool empty() const noexcept {
    return held_head == kNone && (block == nullptr || block->begin == block->end);
  }
};

struct Connection {
  uint32_t gen = 0;  // bumped when the slot is freed: late completions are ignored
  int fd = -1;
  Input in;
  core::ByteQueue out;
  uint8_t ops = 0;   // operations in flight: the slot is freed at zero
  bool recv_armed = false;
  bool send_inflight = false;
  bool dirty = false;   // listed for this pass's flush
  bool paused = false;  // input full: recv cancelled until consumed
  int32_t zc_res = 0;   // a SEND_ZC's result, kept until its notification
  msghdr msg{};
  iovec iov[8];
  // TLS (docs/tls.md): the session, else null. `in` and `out` then carry
  // plaintext; received ciphertext waits in `cipher_in` until the session
  // decrypts it into `in`, and `out` is sealed into `cipher_out` when the
  // connection is flushed.
  std::unique_ptr<tls::Session> tls;
  Input cipher_in;
  core::ByteQueue cipher_out;
  // What goes to the socket next, and everything queued toward the peer.
  core::ByteQueue& wire() { return tls ? cipher_out : out; }
  size_t queued() const { return out.size() + cipher_out.size(); }
};

// Consumers of input (InputStore::Drive) return bytes consumed, or kBlocked
// when the connection cannot take input now (a response pending, or the
// peer's queue full); 0 means "need more bytes".
inline constexpr int64_t kBlocked = -1;

// Where a core's received bytes wait until their connection consumes them:
// the provided buffers held out of the kernel's ring (linked per connection,
// by buffer id) and the blocks that gather partial heads. One per core,
// beside the buffer ring and block pool it draws on.
class InputStore {
 public:
  InputStore(core::BufferRing& buffers, core::BlockPool& blocks) noexcept
      : buffers_(buffers), blocks_(blocks) {}

  // Sized once the buffer ring exists (boot, not the data path).
  void Init(uint32_t buffer_count);
  // Keeps buffer `bid` (`len` bytes received, the first `off` consumed) at
  // the end of `in`'s held list.
  void Hold(Input& in, uint16_t bid, uint32_t off, uint32_t len) noexcept;
  // Appends p[0, n) to `in`'s block (taking one if it has none, compacting
  // it when that makes room). False when the block cannot take n more bytes.
  bool Stash(Input& in, const char* p, size_t n) noexcept;
  // Gives back everything `in` holds.
  void Clear(Input& in) noexcept;
  // The unconsumed bytes of `in`'s first held buffer (empty when none).
  std::string_view Front(const Input& in) noexcept {
    if (in.held_head == kNone) return {};
    return {buffers_.Buffer(static_cast<uint16_t>(in.held_head)) + in.held_off,
            held_len_[in.held_head] - in.held_off};
  }
  // Marks n bytes of the first held buffer consumed; a buffer consumed
  // whole goes back to the kernel's ring.
  void Consume(Input& in, uint32_t n) noexcept;

  // Feeds `in` to `consume` until it blocks or needs bytes that have not
  // arrived. A partial head is gathered into the block so the parser always
  // sees it contiguous.
  template <typename F>
  void Drive(Input& in, F&& consume);

 private:
  core::BufferRing& buffers_;
  core::BlockPool& blocks_;
  std::vector<uint32_t> held_next_;  // [buffer id] → next held buffer
  std::vector<uint32_t> held_len_;   // [buffer id] → bytes received into it
};

// Gives back what a connection of either kind holds (input, output queues,
// TLS session) and closes its socket: the end of a connection whose last
// operation has completed, or of every connection after a core's loop.
void Release(Connection& c, InputStore& inputs, core::BlockPool& blocks) noexcept;

template <typename F>
inline void InputStore::Drive(Input& in, F&& consume) {
  for (;;) {
    core::Block* b = in.block;
    if (b != nullptr && b->begin != b->end) {
      int64_t n = consume(b->data() + b->begin, b->end - b->begin);
      if (n == kBlocked) return;
      if (in.block == nullptr) return;  // the consumer closed the connection
      b->begin += static_cast<uint32_t>(n);
      if (b->begin == b->end) {
        blocks_.Put(b);
        in.block = nullptr;
        continue;
      }
      if (n > 0) continue;
      // Needs more bytes after these: append the next held buffer, if any.
      const std::string_view next = Front(in);
      if (next.empty()) return;
      uint32_t room = blocks_.block_size() - (b->end - b->begin);
      uint32_t take = std::min(static_cast<uint32_t>(next.size()), room);
      if (take == 0) return;  // a head larger than the block: the parser has refused it already
      Stash(in, next.data(), take);
      Consume(in, take);
      continue;
    }
    if (in.held_head == kNone) return;
    const uint32_t bid = in.held_head;
    const std::string_view held = Front(in);
    int64_t n = consume(held.data(), held.size());
    if (n == kBlocked) return;
    if (in.held_head != bid) return;  // the consumer closed the connection
    if (n == 0) {
      Stash(in, held.data(), held.size());  // the block is empty and at least a buffer large
      n = static_cast<int64_t>(held.size());
    }
    Consume(in, static_cast<uint32_t>(n));
  }
}

}  // namespace hms::proxy
