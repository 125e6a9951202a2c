// What every connection of a core has, whichever side it faces: the socket
// and its generation, the operations in flight, received input, the queue
// toward the peer, receive arming and the TLS session with its ciphertext.
// `Client` (downstream) and `Upstream` (worker.h) add their own state
// machine on top; the worker's templates (ArmRecv, PauseOrResume, QueueSend,
// TlsReceive, TlsSeal) work on these members only.
//
// Owned by one core's slabs, touched by that core's thread only.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "hms/core/block_pool.h"
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
  uint32_t held_head = kNone;  // buffer ids, linked through Worker::held_next_
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

}  // namespace hms::proxy
