// The JSON body of an answer the gateway writes itself (fault.h's AnswerFor):
// {"error": message, "reason": token, "trace_id": id}, one line. The same
// bytes whichever protocol carries the answer (HTTP/2 streams use this; the
// HTTP/1.1 writer in the engine builds the same text).
//
// Pure; writes into the caller's buffer; any thread.
#pragma once

#include <cstddef>
#include <string_view>

#include "hms/common/check.h"
#include "hms/common/json_escape.h"
#include "hms/policy/fault.h"

namespace hms::policy {

// Room every answer body fits in (a message that escapes past it is replaced,
// see below).
inline constexpr size_t kAnswerBodyBytes = 512;

// Writes the body into out[0, cap) (cap >= kAnswerBodyBytes) and returns its
// length. A message that would not fit (a certificate's identity full of
// control characters) becomes "(message too long)": the answer keeps its
// reason, never half a JSON text.
inline size_t FormatAnswerBody(const Answer& a, std::string_view trace_id, char* out,
                               size_t cap) noexcept {
  HMS_CHECK(cap >= kAnswerBodyBytes);
  const auto write = [&](std::string_view message) {
    size_t n = 0;
    const auto raw = [&](std::string_view s) {
      if (n + s.size() <= cap) s.copy(out + n, s.size());
      n += s.size();
    };
    const auto esc = [&](std::string_view s) {
      n += EscapeJson(s, n < cap ? out + n : nullptr, n < cap ? cap - n : 0);
    };
    raw("{\"error\":\"");
    esc(message);
    raw("\",\"reason\":\"");
    esc(a.reason);
    raw("\",\"trace_id\":\"");
    esc(trace_id);
    raw("\"}\n");
    return n;
  };
  const size_t n = write(a.message);
  if (n <= cap) return n;
  const size_t m = write("(message too long)");
  HMS_CHECK(m <= cap);  // a reason token and a trace id: < 300 bytes
  return m;
}

}  // namespace hms::policy
