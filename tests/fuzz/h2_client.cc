// Fuzz target: a ClientSession (src/h2/client_session.cc) fed arbitrary
// upstream bytes in pieces, after the engine opened four streams on it: 1 a
// GET, 3 a POST with a body, 5 a GET, 7 a gRPC-like POST with a body and
// trailers. The handler acts as the engine would: consumes most bodies,
// resets some streams, opens another stream when a close frees a slot.
//
// Input layout: byte 0 picks the limits (bit 0: tight ones, so the flood and
// size limits are reached) and the piece size ((byte >> 1) * 7 + 1 bytes;
// 0 = all at once); the rest is what the upstream sends (a valid corpus seed
// starts with the server's SETTINGS and answers those streams).
// Properties: no crash, leak or overread; once Receive() says the session is
// over it stays over and opens nothing; a response head has a final status
// (200..999) and no pseudo-header among its fields, and comes once per
// stream, before its data and its end; every stream opened is reported
// closed exactly once by the end; once the session is gone the pool has
// every block back.
#include <algorithm>
#include <cstdint>
#include <map>

#include "fuzz_check.h"
#include "hms/core/block_pool.h"
#include "hms/h2/client_session.h"

namespace {

using hms::h2::ClientSession;
using hms::h2::ErrorCode;

struct StreamSeen {
  uint64_t tag = 0;  // the one given to Submit
  bool head = false;
  bool ended = false;
};

class Handler : public hms::h2::ClientHandler {
 public:
  std::map<int32_t, StreamSeen> open;
  bool reopen = true;
  // An upstream that refuses every stream at once would have a client that
  // always opens another spin for ever: an engine retries a bounded number
  // of times, and so does this one.
  int reopens_left = 64;

  void OnResponse(ClientSession& s, int32_t id, uint64_t tag, uint16_t status,
                  const hms::http::Header* f, uint16_t count, bool) override {
    FUZZ_CHECK(status >= 200 && status <= 999);
    FUZZ_CHECK(count == 0 || f != nullptr);
    for (uint16_t i = 0; i < count; ++i) FUZZ_CHECK(f[i].name.empty() || f[i].name[0] != ':');
    StreamSeen& st = Seen(id);
    FUZZ_CHECK(st.tag == tag);
    FUZZ_CHECK(!st.head);
    st.head = true;
    if (id % 5 == 0) s.Reset(id, ErrorCode::kCancel);  // a client that left
  }
  void OnData(ClientSession& s, int32_t id, uint64_t, const char*, size_t n) override {
    StreamSeen& st = Seen(id);
    FUZZ_CHECK(st.head && !st.ended);
    if (id % 7 != 0) s.Consume(id, n);  // stream 7's client reads slowly
  }
  void OnResponseEnd(ClientSession&, int32_t id, uint64_t, const hms::http::Header* t,
                     uint16_t count) override {
    FUZZ_CHECK(count == 0 || t != nullptr);
    StreamSeen& st = Seen(id);
    FUZZ_CHECK(st.head && !st.ended);
    st.ended = true;
  }
  void OnSendable(ClientSession&, int32_t id, uint64_t) override { Seen(id); }
  void OnStreamClose(ClientSession& s, int32_t id, uint64_t,
                     const hms::h2::StreamEnd& end) override {
    FUZZ_CHECK(open.erase(id) == 1);
    FUZZ_CHECK(!(end.complete && end.never_processed));
    if (reopen && reopens_left > 0 && s.CanOpen()) {
      --reopens_left;
      Open(s, "/again", false);
    }
  }

  void Open(ClientSession& s, std::string_view path, bool body) {
    const hms::http::Header f[] = {{"Host", "svc"},
                                   {"content-type", "application/grpc"},
                                   {"TE", "trailers"},
                                   {"Connection", "keep-alive"}};
    const uint64_t tag = ++serial_;
    const int32_t id = s.Submit(hms::h2::RequestLine{body ? "POST" : "GET", "http", "svc", path}, f,
                                4, tag, !body);
    if (id > 0) open[id] = StreamSeen{tag};
  }

 private:
  StreamSeen& Seen(int32_t id) {
    auto it = open.find(id);
    FUZZ_CHECK(it != open.end());
    return it->second;
  }
  uint64_t serial_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static hms::h2::MemPool pool;
  static hms::core::BlockPool blocks(16384);
  static hms::h2::Counters counters;
  static const auto configs = [] {
    hms::h2::Limits tight;
    tight.max_header_list_bytes = 1024;
    tight.stream_window_bytes = 1000;
    tight.connection_window_bytes = 65535;
    tight.resets = {5, 1};
    tight.control_frames = {5, 1};
    tight.max_empty_frames = 2;
    tight.max_continuations = 2;
    tight.max_outbound_ack = 4;
    auto a = hms::h2::ClientConfig::Make(hms::h2::Limits{});
    auto b = hms::h2::ClientConfig::Make(tight);
    FUZZ_CHECK(a.ok() && b.ok());
    return std::make_pair(a.value(), b.value());
  }();
  const bool tight = (data[0] & 1) != 0;
  const size_t piece = (data[0] >> 1) == 0 ? size : static_cast<size_t>(data[0] >> 1) * 7 + 1;
  const char* p = reinterpret_cast<const char*>(data + 1);
  size_t n = size - 1;
  {
    Handler handler;
    ClientSession s(tight ? configs.second.get() : configs.first.get(), &handler, &pool, &blocks,
                    &counters);
    FUZZ_CHECK(s.Start());
    static const char kBody[3000] = {'q'};
    handler.Open(s, "/1", false);
    handler.Open(s, "/3", true);
    handler.Open(s, "/5", false);
    handler.Open(s, "/calc.Calc/Sum", true);
    s.SendData(3, kBody, sizeof kBody, true);
    s.SendData(7, kBody, 5, false);
    const hms::http::Header t[] = {{"x-sum", "5"}};
    s.SendTrailers(7, t, 1);
    hms::core::ByteQueue out;
    FUZZ_CHECK(s.Send(&out, 1 << 16));
    out.Clear(&blocks);
    hms::core::Instant now = 1'000'000'000;
    bool over = false;
    while (n > 0) {
      const size_t take = std::min(n, piece);
      const bool ok = s.Receive(p, take, now);
      FUZZ_CHECK(!(over && ok));  // over stays over
      over = over || !ok;
      if (over) FUZZ_CHECK(!s.CanOpen());
      p += take;
      n -= take;
      now += 1'000'000;
      if (!over && (n % 3) == 0) s.Ping(now);
      FUZZ_CHECK(s.Send(&out, 1 << 16) || over);
      out.Clear(&blocks);  // what the client sends goes nowhere
    }
    handler.reopen = false;
    s.Close(ErrorCode::kNoError);
    FUZZ_CHECK(s.open_streams() == 0);
    FUZZ_CHECK(handler.open.empty());
    s.Send(&out, 1 << 16);
    out.Clear(&blocks);
  }
  FUZZ_CHECK(pool.blocks_in_use() == 0);
  return 0;
}
