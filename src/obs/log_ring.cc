#include "hms/obs/log_ring.h"

#include <algorithm>
#include <cstring>

namespace hms::obs {

LogRing::LogRing(size_t capacity) {
  size_t c = 4096;
  while (c < capacity) c <<= 1;
  data_ = std::make_unique<char[]>(c);
  mask_ = c - 1;
}

bool LogRing::TryWrite(const char* p, size_t n) noexcept {
  const uint64_t head = head_.load(std::memory_order_relaxed);
  if (head + n - cached_tail_ > capacity()) {
    cached_tail_ = tail_.load(std::memory_order_acquire);
    if (head + n - cached_tail_ > capacity()) return false;
  }
  const size_t at = static_cast<size_t>(head & mask_);
  const size_t first = std::min(n, capacity() - at);
  std::memcpy(data_.get() + at, p, first);
  std::memcpy(data_.get(), p + first, n - first);
  head_.store(head + n, std::memory_order_release);
  return true;
}

size_t LogRing::Drain(std::string* out) {
  const uint64_t tail = tail_.load(std::memory_order_relaxed);
  const uint64_t head = head_.load(std::memory_order_acquire);
  const size_t n = static_cast<size_t>(head - tail);
  if (n == 0) return 0;
  const size_t at = static_cast<size_t>(tail & mask_);
  const size_t first = std::min(n, capacity() - at);
  out->append(data_.get() + at, first);
  out->append(data_.get(), n - first);
  tail_.store(head, std::memory_order_release);
  return n;
}

}  // namespace hms::obs
