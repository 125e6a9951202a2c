#include "hms/obs/trace.h"

#include <sys/random.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

namespace hms::obs {
namespace {

constexpr char kHex[] = "0123456789abcdef";

// -1 for anything but 0-9 a-f: W3C Trace Context §3.2.2 says HEXDIGLC and
// tells receivers to refuse upper case.
inline int LowerHexValue(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

inline int AnyHexValue(char c) noexcept {
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return LowerHexValue(c);
}

// True when p[0, n) is lower-case hex and not all '0'.
bool LowerHexNonZero(const char* p, size_t n) noexcept {
  bool nonzero = false;
  for (size_t i = 0; i < n; ++i) {
    if (LowerHexValue(p[i]) < 0) return false;
    nonzero |= p[i] != '0';
  }
  return nonzero;
}

void WriteHex(uint64_t v, char* out) noexcept {
  for (int i = 15; i >= 0; --i) {
    out[i] = kHex[v & 0xf];
    v >>= 4;
  }
}

// xoshiro256** 1.0 (Blackman and Vigna): fast, 256-bit state, no bad low bits.
class Xoshiro256 {
 public:
  Xoshiro256() noexcept {
    uint64_t seed[4] = {};
    size_t got = 0;
    while (got < sizeof(seed)) {
      ssize_t r = getrandom(reinterpret_cast<char*>(seed) + got, sizeof(seed) - got, 0);
      if (r <= 0) break;
      got += static_cast<size_t>(r);
    }
    if (got < sizeof(seed)) {
      // getrandom failing (ENOSYS under an old seccomp profile) must not leave
      // every thread with the same ids: mix the clock, tid and an address.
      uint64_t x = static_cast<uint64_t>(
                       std::chrono::steady_clock::now().time_since_epoch().count()) ^
                   (static_cast<uint64_t>(gettid()) << 32) ^
                   reinterpret_cast<uintptr_t>(this);
      for (uint64_t& s : seed) s ^= SplitMix(&x);
    }
    std::memcpy(s_, seed, sizeof(s_));
    if ((s_[0] | s_[1] | s_[2] | s_[3]) == 0) s_[0] = 1;  // all-zero state is a fixed point
  }

  uint64_t Next() noexcept {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

  uint64_t NextNonZero() noexcept {
    uint64_t v;
    do v = Next();
    while (v == 0);
    return v;
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
  static uint64_t SplitMix(uint64_t* x) noexcept {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  uint64_t s_[4];
};

Xoshiro256& Rng() noexcept {
  thread_local Xoshiro256 rng;
  return rng;
}

}  // namespace

bool ParseTraceparent(std::string_view v, TraceContext* out) noexcept {
  // version "-" trace-id "-" parent-id "-" trace-flags: 2+1+32+1+16+1+2 = 55.
  constexpr size_t kLen = 55;
  if (v.size() < kLen) return false;
  const char* p = v.data();
  const int v_hi = LowerHexValue(p[0]);
  const int v_lo = LowerHexValue(p[1]);
  if (v_hi < 0 || v_lo < 0) return false;
  const int version = v_hi * 16 + v_lo;
  if (version == 0xff) return false;  // §3.2.2.1: ff is forbidden
  if (version == 0 && v.size() != kLen) return false;
  // §3.2.4: a future version may append fields, each after a '-'.
  if (version > 0 && v.size() > kLen && p[kLen] != '-') return false;
  if (p[2] != '-' || p[35] != '-' || p[52] != '-') return false;
  if (!LowerHexNonZero(p + 3, 32) || !LowerHexNonZero(p + 36, 16)) return false;
  const int f_hi = LowerHexValue(p[53]);
  const int f_lo = LowerHexValue(p[54]);
  if (f_hi < 0 || f_lo < 0) return false;

  std::memcpy(out->trace_id, p + 3, 32);
  out->trace_id[32] = '\0';
  std::memcpy(out->span_id, p + 36, 16);
  out->span_id[16] = '\0';
  std::memcpy(out->parent_id, p + 36, 16);
  out->parent_id[16] = '\0';
  out->flags = static_cast<uint8_t>(f_hi * 16 + f_lo);
  out->external_id[0] = '\0';
  out->external_len = 0;
  return true;
}

bool ParseB3(std::string_view v, TraceContext* out) noexcept {
  const size_t dash = v.find('-');
  if (dash != 16 && dash != 32) return false;
  const std::string_view trace = v.substr(0, dash);
  std::string_view rest = v.substr(dash + 1);
  if (rest.size() < 16 || !LowerHexNonZero(rest.data(), 16)) return false;
  const std::string_view span = rest.substr(0, 16);
  rest.remove_prefix(16);
  uint8_t flags = 1;
  if (!rest.empty()) {
    // "-<sampling>" and optionally "-<parent span id>" (not needed here).
    if (rest.size() < 2 || rest[0] != '-') return false;
    const char s = rest[1];
    if (s != '0' && s != '1' && s != 'd') return false;
    flags = s == '0' ? 0 : 1;
    rest.remove_prefix(2);
    if (!rest.empty() && (rest.size() != 17 || rest[0] != '-' || !LowerHexNonZero(rest.data() + 1, 16))) {
      return false;
    }
  }
  char id[32];
  std::memset(id, '0', 32 - trace.size());
  for (size_t i = 0; i < trace.size(); ++i) {
    if (LowerHexValue(trace[i]) < 0) return false;
    id[32 - trace.size() + i] = trace[i];
  }
  if (!LowerHexNonZero(id, 32)) return false;
  std::memcpy(out->trace_id, id, 32);
  out->trace_id[32] = '\0';
  std::memcpy(out->span_id, span.data(), 16);
  out->span_id[16] = '\0';
  std::memcpy(out->parent_id, span.data(), 16);
  out->parent_id[16] = '\0';
  out->flags = flags;
  out->external_id[0] = '\0';
  out->external_len = 0;
  return true;
}

bool ParseTraceId(std::string_view v, TraceContext* out) noexcept {
  if (v.empty() || v.size() > 32) return false;
  char id[32];
  const size_t pad = 32 - v.size();
  std::memset(id, '0', pad);
  bool nonzero = false;
  for (size_t i = 0; i < v.size(); ++i) {
    const int h = AnyHexValue(v[i]);
    if (h < 0) return false;
    id[pad + i] = kHex[h];
    nonzero |= h != 0;
  }
  if (!nonzero) return false;

  std::memcpy(out->trace_id, id, 32);
  out->trace_id[32] = '\0';
  out->span_id[0] = '\0';
  out->parent_id[0] = '\0';
  out->flags = 1;
  std::memcpy(out->external_id, v.data(), v.size());
  out->external_id[v.size()] = '\0';
  out->external_len = static_cast<uint8_t>(v.size());
  return true;
}

TraceOrigin AcceptTrace(std::string_view x_trace_id, std::string_view traceparent,
                        std::string_view b3, TraceContext* out) noexcept {
  if (!x_trace_id.empty() && ParseTraceId(x_trace_id, out)) {
    TraceContext tp;
    if (!traceparent.empty() && ParseTraceparent(traceparent, &tp) &&
        std::memcmp(tp.trace_id, out->trace_id, 32) == 0) {
      std::memcpy(out->span_id, tp.span_id, sizeof tp.span_id);
      std::memcpy(out->parent_id, tp.parent_id, sizeof tp.parent_id);
      out->flags = tp.flags;
      return TraceOrigin::kTraceparent;
    }
    return TraceOrigin::kTraceId;
  }
  if (!traceparent.empty() && ParseTraceparent(traceparent, out)) return TraceOrigin::kTraceparent;
  if (!b3.empty() && ParseB3(b3, out)) {
    // "<trace>-<span>" is all ids; anything after it starts with the sampling field.
    const size_t ids = b3.find('-') + 1 + 16;
    return b3.size() > ids ? TraceOrigin::kB3 : TraceOrigin::kB3Deferred;
  }
  NewTrace(out);
  return TraceOrigin::kNew;
}

void NewTrace(TraceContext* out) noexcept {
  Xoshiro256& rng = Rng();
  // Only the pair must be non-zero; each half non-zero is simpler and costs
  // nothing measurable.
  WriteHex(rng.NextNonZero(), out->trace_id);
  WriteHex(rng.NextNonZero(), out->trace_id + 16);
  out->trace_id[32] = '\0';
  WriteHex(rng.NextNonZero(), out->span_id);
  out->span_id[16] = '\0';
  out->parent_id[0] = '\0';
  out->flags = 1;
  out->external_id[0] = '\0';
  out->external_len = 0;
}

void NewSpan(TraceContext* out) noexcept {
  WriteHex(Rng().NextNonZero(), out->span_id);
  out->span_id[16] = '\0';
}

int FormatTraceparent(const TraceContext& t, char* out) noexcept {
  out[0] = '0';
  out[1] = '0';
  out[2] = '-';
  std::memcpy(out + 3, t.trace_id, 32);
  out[35] = '-';
  std::memcpy(out + 36, t.span_id, 16);
  out[52] = '-';
  out[53] = kHex[t.flags >> 4];
  out[54] = kHex[t.flags & 0xf];
  return 55;
}

}  // namespace hms::obs
