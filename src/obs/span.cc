#include "hms/obs/span.h"

#include <algorithm>

namespace hms::obs {

SpanRing::SpanRing(size_t slots) {
  size_t c = 64;
  while (c < slots) c <<= 1;
  slots_ = std::make_unique<SpanRecord[]>(c);
  mask_ = c - 1;
}

size_t SpanRing::Drain(std::vector<SpanRecord>* out, size_t max) {
  const uint64_t tail = tail_.load(std::memory_order_relaxed);
  const uint64_t head = head_.load(std::memory_order_acquire);
  const size_t n = static_cast<size_t>(std::min<uint64_t>(head - tail, max));
  for (size_t i = 0; i < n; ++i) out->push_back(slots_[(tail + i) & mask_]);
  tail_.store(tail + n, std::memory_order_release);
  return n;
}

uint64_t SampleThreshold(double ratio) noexcept {
  if (!(ratio > 0.0)) return 0;
  if (ratio >= 1.0) return UINT64_MAX;
  // 2^64 as a double; the product is below it, so the conversion is defined.
  return static_cast<uint64_t>(ratio * 18446744073709551616.0);
}

}  // namespace hms::obs
