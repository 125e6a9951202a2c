// Spans (DESIGN §5 "tracing"; docs/observability.md "Spans"): what a hop
// records about one sampled exchange, and the ring that carries records from
// a core to the exporter.
//
// A core (the one producer) claims a slot of its own SpanRing at the end of an
// exchange, fills the fixed-size SpanRecord in place and publishes it: no
// allocation, no lock, no wait. When the ring is full the span is dropped and
// counted by the core. The exporter thread (the one consumer) copies out
// whatever is published with Drain. Capacity is a power of two, fixed at
// construction.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

namespace hms::obs {

// Which listener took the request: the spans of a sidecar's inbound and
// egress sides are told apart by it.
enum class SpanListener : uint8_t { kEdge = 0, kInbound = 1, kEgress = 2 };

// One hop's server span. Plain data with fixed text fields (truncated when
// longer), so it can be written into a ring slot without allocating and read
// by another thread after the snapshot it came from is gone.
struct SpanRecord {
  char trace_id[32];   // lower-case hex
  char span_id[16];    // this hop's span
  char parent_id[16];  // the caller's span; parent_id[0] == '\0' for a root span
  int64_t start_unix_ns;
  int64_t end_unix_ns;
  uint16_t status;  // the answer's status code (499: the client left first)
  uint8_t retries;  // policy retries made (http.request.resend_count)
  SpanListener listener;
  uint8_t version_minor;  // HTTP/1.x
  uint8_t method_len, route_len, service_len, host_len, upstream_len, reason_len, peer_len,
      peer_identity_len;
  char method[12];    // as sent
  char route[120];    // route template ("" when nothing matched)
  char service[64];   // the service the request went to
  char host[64];      // the request's Host (server.address[:port])
  char upstream[64];  // the endpoint of the last attempt ("" when none was made)
  char reason[32];    // x-hms-reason of a local answer ("" when the upstream answered)
  char peer[46];      // the downstream peer's IP address
  // The caller's mTLS identity (spiffe://...), once listeners verify client
  // certificates; empty until then.
  char peer_identity[96];

  // Copies `s` (truncated to the field) into a text field and its length.
  template <size_t N>
  static void Set(char (&field)[N], uint8_t* len, std::string_view s) noexcept {
    static_assert(N < 256);
    const size_t n = s.size() < N ? s.size() : N;
    if (n > 0) std::memcpy(field, s.data(), n);  // an empty view may hold nullptr
    *len = static_cast<uint8_t>(n);
  }
};
// A slot is a few cache lines; a 4096-slot ring is about 2.5 MiB per core.
static_assert(sizeof(SpanRecord) <= 640);

class SpanRing {
 public:
  // `slots` is rounded up to a power of two (at least 64).
  explicit SpanRing(size_t slots);
  SpanRing(const SpanRing&) = delete;
  SpanRing& operator=(const SpanRing&) = delete;

  size_t capacity() const noexcept { return mask_ + 1; }

  // Producer: the next free slot, or null when the ring is full. The slot's
  // old contents are garbage: fill every field used, then Publish().
  SpanRecord* Claim() noexcept {
    const uint64_t head = head_.load(std::memory_order_relaxed);
    if (head - cached_tail_ >= capacity()) {
      cached_tail_ = tail_.load(std::memory_order_acquire);
      if (head - cached_tail_ >= capacity()) return nullptr;
    }
    return &slots_[head & mask_];
  }
  // Producer: makes the slot returned by the last Claim visible to Drain.
  void Publish() noexcept {
    head_.store(head_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }

  // Consumer: appends up to `max` published records to *out and frees their
  // slots. Returns how many.
  size_t Drain(std::vector<SpanRecord>* out, size_t max);

 private:
  std::unique_ptr<SpanRecord[]> slots_;
  size_t mask_;
  alignas(64) std::atomic<uint64_t> head_{0};  // written by the producer: records ever published
  alignas(64) std::atomic<uint64_t> tail_{0};  // written by the consumer: records ever taken
  uint64_t cached_tail_ = 0;                   // the producer's last view of tail_
};

// Head sampling (docs/observability.md): a hop that starts a trace, or is
// handed one without a sampling decision, samples it when SampleHit(a uniform
// 64-bit random number, SampleThreshold(ratio)). Ratio 1.0 is every trace, 0 none.
uint64_t SampleThreshold(double ratio) noexcept;
inline bool SampleHit(uint64_t random, uint64_t threshold) noexcept {
  return threshold == UINT64_MAX || random < threshold;
}

}  // namespace hms::obs
