// The last few requests a core answered itself (429 rate_limited, 503
// circuit_open, 404 no_route, ...), for the admin page /ui (docs/observability.md
// "The live page").
//
// One RefusalRing per core, inside its CoreMetrics: the core is the only
// writer, the admin thread reads while it runs. Fixed slots, overwritten
// oldest first; nothing allocates, nothing locks, the writer never waits.
// Each slot is a seqlock (Boehm, "Can seqlocks get along with programming
// language memory models?", 2012): the writer makes the slot's sequence odd,
// stores the record's words, then makes it even; a reader keeps a record only
// when it saw the same even sequence before and after reading the words, so
// it never shows half of one record and half of the next. The words are
// relaxed atomics, so a read that races a write is a retry, not a data race.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace hms::obs {

// One local answer, as the admin thread reads it back. Texts are cut to
// their field's size; each is NUL-terminated.
struct Refusal {
  int64_t unix_ms = 0;      // when it was answered (the core's wall clock)
  uint32_t route_key = 0;   // kNoRoute (metrics_page.h) when no route matched
  uint16_t status = 0;
  char reason[32] = {};     // the x-hms-reason token
  char method[16] = {};
  char trace_id[33] = {};   // the trace id the answer carried (x-trace-id)
};

class RefusalRing {
 public:
  // Slots per core: the page shows the last few refusals, not a log (the
  // access log and hms_requests_total keep the rest).
  static constexpr uint32_t kSlots = 16;

  RefusalRing() = default;
  RefusalRing(const RefusalRing&) = delete;
  RefusalRing& operator=(const RefusalRing&) = delete;

  // The owning core: records one local answer. About a dozen plain stores.
  void Record(int64_t unix_ms, uint32_t route_key, uint16_t status, std::string_view reason,
              std::string_view method, std::string_view trace_id) noexcept;

  // Any thread: copies up to `max` of the latest records into `out`, newest
  // first, and returns how many. A slot the writer is rewriting meanwhile is
  // left out.
  size_t Latest(Refusal* out, size_t max) const noexcept;

  // Records ever written. Any thread.
  uint64_t written() const noexcept { return written_.load(std::memory_order_acquire); }

 private:
  // [0] unix_ms, [1] route_key | status << 32, [2] the three lengths,
  // [3..6] reason, [7..8] method, [9..12] trace id.
  static constexpr size_t kWords = 13;
  struct Slot {
    std::atomic<uint64_t> seq{0};  // 2n+1 while record n is written, 2n+2 once it is
    std::atomic<uint64_t> words[kWords] = {};
  };
  Slot slots_[kSlots];
  std::atomic<uint64_t> written_{0};
};

}  // namespace hms::obs
