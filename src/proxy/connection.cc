// The InputStore of a core, and the release of a connection (connection.h).
#include "src/proxy/connection.h"

#include <unistd.h>

#include <cstring>

namespace hms::proxy {

void InputStore::Init(uint32_t buffer_count) {
  held_next_.assign(buffer_count, kNone);
  held_len_.assign(buffer_count, 0);
}

void InputStore::Hold(Input& in, uint16_t bid, uint32_t off, uint32_t len) noexcept {
  held_next_[bid] = kNone;
  held_len_[bid] = len;
  if (in.held_tail == kNone) {
    in.held_head = in.held_tail = bid;
    in.held_off = off;
  } else {
    held_next_[in.held_tail] = bid;
    in.held_tail = bid;
  }
}

bool InputStore::Stash(Input& in, const char* p, size_t n) noexcept {
  if (n == 0) return true;
  if (in.block == nullptr) in.block = blocks_.Get();
  core::Block* b = in.block;
  size_t cap = blocks_.block_size();
  if (b->begin > 0 && cap - b->end < n) {
    // Compact: move the unconsumed bytes to the front.
    std::memmove(b->data(), b->data() + b->begin, b->end - b->begin);
    b->end -= b->begin;
    b->begin = 0;
  }
  if (cap - b->end < n) return false;
  std::memcpy(b->data() + b->end, p, n);
  b->end += static_cast<uint32_t>(n);
  return true;
}

void InputStore::Consume(Input& in, uint32_t n) noexcept {
  const uint32_t bid = in.held_head;
  in.held_off += n;
  if (in.held_off < held_len_[bid]) return;
  in.held_head = held_next_[bid];
  if (in.held_head == kNone) in.held_tail = kNone;
  in.held_off = 0;
  buffers_.Recycle(static_cast<uint16_t>(bid));
}

void InputStore::Clear(Input& in) noexcept {
  if (in.block != nullptr) {
    blocks_.Put(in.block);
    in.block = nullptr;
  }
  while (in.held_head != kNone) {
    uint32_t bid = in.held_head;
    in.held_head = held_next_[bid];
    buffers_.Recycle(static_cast<uint16_t>(bid));
  }
  in.held_tail = kNone;
  in.held_off = 0;
}

void Release(Connection& c, InputStore& inputs, core::BlockPool& blocks) noexcept {
  inputs.Clear(c.in);
  inputs.Clear(c.cipher_in);
  c.out.Clear(&blocks);
  c.cipher_out.Clear(&blocks);
  c.tls.reset();
  if (c.fd >= 0) close(c.fd);
  c.fd = -1;
}

}  // namespace hms::proxy
