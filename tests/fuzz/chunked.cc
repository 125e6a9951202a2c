// Fuzz target: the chunked decoder (include/hms/http/parser.h's
// ChunkedDecoder), fed the same bytes twice: all at once, and in pieces whose
// sizes the input chooses (as recv hands them over).
//
// Both feeds must agree on everything: where the body ends, whether it is an
// error and which, and how many data bytes it held. Each step keeps its
// contract: it consumes something while input remains and the body is not
// done, data lies inside what it consumed, and data steps carry only data.
#include <algorithm>
#include <cstdint>

#include "fuzz_check.h"
#include "hms/http/parser.h"

namespace {

struct Outcome {
  bool failed = false;
  bool done = false;
  hms::http::ParseError error = hms::http::ParseError::kNone;
  uint64_t data_bytes = 0;
  size_t consumed = 0;  // total, up to the end of the body or the error
};

// Feeds p[0, n) in pieces of the sizes `sizes` cycles through (1..256).
Outcome Feed(const char* p, size_t n, const uint8_t* sizes, size_t sizes_n) {
  hms::http::ChunkedDecoder d;
  Outcome o;
  size_t pos = 0;     // bytes the decoder has consumed
  size_t avail = 0;   // bytes "received" so far
  size_t which = 0;
  while (!d.done()) {
    if (pos == avail) {
      if (avail == n) break;
      const size_t piece = sizes_n == 0 ? n : 1 + sizes[which++ % sizes_n];
      avail = std::min(n, avail + piece);
    }
    hms::http::ChunkedDecoder::Step s;
    if (!d.Next(p + pos, avail - pos, &s)) {
      o.failed = true;
      o.error = d.error();
      FUZZ_CHECK(o.error != hms::http::ParseError::kNone);
      break;
    }
    FUZZ_CHECK(s.consumed <= avail - pos);
    if (s.data_len > 0) {
      FUZZ_CHECK(s.data_offset == 0 && s.data_len == s.consumed);
    }
    pos += s.consumed;
    if (s.consumed == 0) {
      // The decoder needs more than what is lent: receive the next piece.
      if (avail == n) break;
      const size_t piece = sizes_n == 0 ? n : 1 + sizes[which++ % sizes_n];
      avail = std::min(n, avail + piece);
    }
  }
  o.done = d.done();
  o.data_bytes = d.data_bytes();
  o.consumed = pos;
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Layout: one byte N, then N piece sizes, then the body.
  size_t n_sizes = 0;
  const uint8_t* sizes = nullptr;
  if (size > 0) {
    n_sizes = std::min<size_t>(data[0] & 15, size - 1);
    sizes = data + 1;
    data += 1 + n_sizes;
    size -= 1 + n_sizes;
  }
  const char* p = reinterpret_cast<const char*>(data);
  const Outcome all = Feed(p, size, nullptr, 0);
  const Outcome pieces = Feed(p, size, sizes, n_sizes);
  const Outcome bytes = Feed(p, size, reinterpret_cast<const uint8_t*>("\0"), 1);
  for (const Outcome* o : {&pieces, &bytes}) {
    FUZZ_CHECK(o->failed == all.failed);
    FUZZ_CHECK(o->done == all.done);
    FUZZ_CHECK(o->error == all.error);
    FUZZ_CHECK(o->data_bytes == all.data_bytes);
    if (all.done) FUZZ_CHECK(o->consumed == all.consumed);
  }
  if (all.done) FUZZ_CHECK(all.consumed <= size);
  return 0;
}
