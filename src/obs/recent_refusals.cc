#include "hms/obs/recent_refusals.h"

#include <algorithm>
#include <cstring>

namespace hms::obs {

namespace {

constexpr size_t kReasonWord = 3, kReasonBytes = 32;
constexpr size_t kMethodWord = 7, kMethodBytes = 16;
constexpr size_t kTraceWord = 9, kTraceBytes = 32;

// Copies `text` (cut to `room` bytes) into the words from `first`; returns its length.
size_t Pack(uint64_t* words, size_t first, size_t room, std::string_view text) noexcept {
  const size_t n = std::min(text.size(), room);
  std::memcpy(reinterpret_cast<char*>(words + first), text.data(), n);
  return n;
}

void Unpack(const uint64_t* words, size_t first, size_t len, char* out) noexcept {
  std::memcpy(out, reinterpret_cast<const char*>(words + first), len);
  out[len] = '\0';
}

}  // namespace

void RefusalRing::Record(int64_t unix_ms, uint32_t route_key, uint16_t status,
                         std::string_view reason, std::string_view method,
                         std::string_view trace_id) noexcept {
  uint64_t w[kWords] = {};
  w[0] = static_cast<uint64_t>(unix_ms);
  w[1] = route_key | static_cast<uint64_t>(status) << 32;
  w[2] = Pack(w, kReasonWord, kReasonBytes - 1, reason) |
         Pack(w, kMethodWord, kMethodBytes - 1, method) << 8 |
         Pack(w, kTraceWord, kTraceBytes, trace_id) << 16;
  // The only writer: its own count needs no ordering to read.
  const uint64_t n = written_.load(std::memory_order_relaxed);
  Slot& s = slots_[n % kSlots];
  s.seq.store(2 * n + 1, std::memory_order_relaxed);
  // The odd sequence is visible before any word changes.
  std::atomic_thread_fence(std::memory_order_release);
  for (size_t i = 0; i < kWords; ++i) s.words[i].store(w[i], std::memory_order_relaxed);
  s.seq.store(2 * n + 2, std::memory_order_release);
  written_.store(n + 1, std::memory_order_release);
}

size_t RefusalRing::Latest(Refusal* out, size_t max) const noexcept {
  const uint64_t n = written_.load(std::memory_order_acquire);
  size_t got = 0;
  // Newest first; record i lives in slot i % kSlots until record i + kSlots.
  for (uint64_t i = n; i > 0 && n - i < kSlots && got < max; --i) {
    const Slot& s = slots_[(i - 1) % kSlots];
    const uint64_t seq = s.seq.load(std::memory_order_acquire);
    if (seq != 2 * (i - 1) + 2) continue;  // being written, or already a newer record
    uint64_t w[kWords];
    for (size_t k = 0; k < kWords; ++k) w[k] = s.words[k].load(std::memory_order_relaxed);
    // The words are read before the sequence is read again.
    std::atomic_thread_fence(std::memory_order_acquire);
    if (s.seq.load(std::memory_order_relaxed) != seq) continue;  // rewritten while read
    Refusal& r = out[got++];
    r.unix_ms = static_cast<int64_t>(w[0]);
    r.route_key = static_cast<uint32_t>(w[1]);
    r.status = static_cast<uint16_t>(w[1] >> 32);
    Unpack(w, kReasonWord, w[2] & 0xff, r.reason);
    Unpack(w, kMethodWord, (w[2] >> 8) & 0xff, r.method);
    Unpack(w, kTraceWord, (w[2] >> 16) & 0xff, r.trace_id);
  }
  return got;
}

}  // namespace hms::obs
