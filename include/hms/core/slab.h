// Slab<T>: a core's pool of objects addressed by a 32-bit slot, with stable
// addresses (the kernel may hold pointers into an object, e.g. its iovecs,
// while an operation is in flight). Grows in chunks at warm-up, recycles
// slots forever after. One core's thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace hms::core {

template <typename T, uint32_t kChunk = 256>
class Slab {
 public:
  T& operator[](uint32_t slot) noexcept { return chunks_[slot / kChunk][slot % kChunk]; }
  const T& operator[](uint32_t slot) const noexcept { return chunks_[slot / kChunk][slot % kChunk]; }

  uint32_t Alloc() {
    if (free_.empty()) {
      uint32_t base = static_cast<uint32_t>(chunks_.size()) * kChunk;
      chunks_.push_back(std::make_unique<T[]>(kChunk));
      free_.reserve(chunks_.size() * kChunk);
      for (uint32_t i = kChunk; i > 0; --i) free_.push_back(base + i - 1);
    }
    uint32_t slot = free_.back();
    free_.pop_back();
    ++live_;
    return slot;
  }
  void Free(uint32_t slot) noexcept {
    free_.push_back(slot);  // capacity reserved in Alloc: never reallocates
    --live_;
  }
  uint32_t live() const noexcept { return live_; }
  uint32_t capacity() const noexcept { return static_cast<uint32_t>(chunks_.size()) * kChunk; }

 private:
  std::vector<std::unique_ptr<T[]>> chunks_;
  std::vector<uint32_t> free_;
  uint32_t live_ = 0;
};

}  // namespace hms::core
