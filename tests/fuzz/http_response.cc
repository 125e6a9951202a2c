// Fuzz target: the response head parser (include/hms/http/parser.h), for
// every request method that changes the body rules (HEAD, CONNECT, GET).
//
// Beyond "no crash, no overread": views lie inside the input, a complete head
// fits in it, the status is three digits, and a prefix never disagrees with
// the whole (the engine re-parses an upstream's head as it grows).
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"
#include "hms/http/parser.h"

namespace {

bool Inside(std::string_view v, const char* buf, size_t len) {
  if (v.empty()) return true;
  return v.data() >= buf && v.data() + v.size() <= buf + len;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using hms::http::Method;
  Method method = Method::kGet;
  size_t max = 8192;
  if (size > 0) {
    // Low two bits: the request's method; the rest: the head limit.
    static constexpr Method kMethods[4] = {Method::kGet, Method::kHead, Method::kConnect,
                                           Method::kPost};
    method = kMethods[data[0] & 3];
    max = 64 + static_cast<size_t>(data[0] >> 2) * 256;
    ++data;
    --size;
  }
  const char* buf = reinterpret_cast<const char*>(data);
  static auto* head = new hms::http::ResponseHead();
  static auto* part = new hms::http::ResponseHead();

  const int whole = hms::http::ParseResponse(buf, size, max, method, head);
  FUZZ_CHECK(whole == hms::http::kPartial || whole == hms::http::kError || whole > 0);
  FUZZ_CHECK(whole <= static_cast<int>(size));
  if (whole == hms::http::kError) FUZZ_CHECK(head->error != hms::http::ParseError::kNone);
  if (whole > 0) {
    FUZZ_CHECK(head->status >= 100 && head->status <= 999);
    FUZZ_CHECK(head->header_count <= hms::http::kMaxHeaders);
    FUZZ_CHECK(Inside(head->reason, buf, whole));
    for (int i = 0; i < head->header_count; ++i) {
      FUZZ_CHECK(Inside(head->headers[i].name, buf, whole));
      FUZZ_CHECK(Inside(head->headers[i].value, buf, whole));
      FUZZ_CHECK(!head->headers[i].name.empty());
    }
    // RFC 9112 §6.3: these never carry a body, whatever the fields say.
    if (method == Method::kHead || head->status < 200 || head->status == 204 ||
        head->status == 304) {
      FUZZ_CHECK(head->body == hms::http::BodyKind::kNone);
    }
    if (head->body == hms::http::BodyKind::kUntilClose) FUZZ_CHECK(!head->keep_alive);
  }

  const size_t step = size / 16 + 1;
  for (size_t cut = 0; cut < size; cut += step) {
    const int rc = hms::http::ParseResponse(buf, cut, max, method, part);
    if (rc == hms::http::kError) {
      FUZZ_CHECK(whole == hms::http::kError);
      FUZZ_CHECK(part->error == head->error);
    } else if (rc > 0) {
      FUZZ_CHECK(rc == whole);
    }
  }
  if (whole > 0) FUZZ_CHECK(hms::http::ParseResponse(buf, whole, max, method, part) == whole);
  return 0;
}
