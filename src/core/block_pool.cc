#include "hms/core/block_pool.h"

#include <cstdlib>

#include "hms/common/check.h"

namespace hms::core {

BlockPool::~BlockPool() {
  while (free_ != nullptr) {
    Block* b = free_;
    free_ = b->next;
    std::free(b);
  }
}

Block* BlockPool::Get() noexcept {
  Block* b = free_;
  if (b != nullptr) {
    free_ = b->next;
    --free_count_;
  } else {
    // Warm-up only: the pool grows to the core's peak and then recycles.
    b = static_cast<Block*>(std::malloc(sizeof(Block) + size_));
    HMS_CHECK(b != nullptr);
    ++allocated_;
  }
  b->next = nullptr;
  b->begin = b->end = 0;
  return b;
}

void BlockPool::Put(Block* b) noexcept {
  b->next = free_;
  free_ = b;
  ++free_count_;
}

void ByteQueue::Append(BlockPool* pool, const char* p, size_t n) noexcept {
  while (n > 0) {
    char* dst = Reserve(pool, 1);
    size_t room = pool->block_size() - tail_->end;
    size_t take = n < room ? n : room;
    std::memcpy(dst, p, take);
    Commit(take);
    p += take;
    n -= take;
  }
}

char* ByteQueue::Reserve(BlockPool* pool, size_t n) noexcept {
  HMS_CHECK(n <= pool->block_size());
  block_size_ = pool->block_size();
  if (tail_ == nullptr || block_size_ - tail_->end < n) {
    Block* b = pool->Get();
    if (tail_ == nullptr) {
      head_ = tail_ = b;
    } else {
      tail_->next = b;
      tail_ = b;
    }
  }
  return tail_->data() + tail_->end;
}

void ByteQueue::Commit(size_t n) noexcept {
  tail_->end += static_cast<uint32_t>(n);
  size_ += n;
}

int ByteQueue::Gather(iovec* iov, int max) const noexcept {
  int k = 0;
  for (Block* b = head_; b != nullptr && k < max; b = b->next) {
    if (b->end == b->begin) continue;
    iov[k].iov_base = b->data() + b->begin;
    iov[k].iov_len = b->end - b->begin;
    ++k;
  }
  return k;
}

void ByteQueue::Consume(BlockPool* pool, size_t n) noexcept {
  HMS_CHECK(n <= size_);
  size_ -= n;
  while (n > 0 || (head_ != nullptr && head_->begin == head_->end && head_ != tail_)) {
    size_t avail = head_->end - head_->begin;
    size_t take = n < avail ? n : avail;
    head_->begin += static_cast<uint32_t>(take);
    n -= take;
    if (head_->begin == head_->end) {
      Block* b = head_;
      head_ = b->next;
      if (head_ == nullptr) tail_ = nullptr;
      pool->Put(b);
    }
  }
}

void ByteQueue::Clear(BlockPool* pool) noexcept {
  while (head_ != nullptr) {
    Block* b = head_;
    head_ = b->next;
    pool->Put(b);
  }
  tail_ = nullptr;
  size_ = 0;
}

}  // namespace hms::core
