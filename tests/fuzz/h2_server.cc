// Fuzz target: a server ServerSession (src/h2/server_session.cc) fed
// arbitrary client bytes in pieces, as the engine would feed it, with a
// handler that answers the way the engine does: responses with bodies and
// trailers, local answers, resets, consumed and unconsumed bodies.
//
// Input layout: byte 0 picks the limits (bit 0: tight ones, so the flood and
// size limits are reached) and the piece size ((byte >> 1) * 7 + 1 bytes;
// 0 = all at once); the rest is what the client sends (a valid corpus seed
// starts with the connection preface). Properties: no crash, leak or
// overread; once Receive() says the session is over it stays over; every
// head delivered holds the rules of request_head.h (method a token, the
// path canonical, names lowercase tchar, no CR/LF/NUL in values); every
// stream the handler heard of is reported closed by Close(); and once the
// session is gone the pool has every block back.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <set>
#include <string_view>

#include "fuzz_check.h"
#include "hms/core/block_pool.h"
#include "hms/h2/server_session.h"
#include "hms/http/char_class.h"
#include "hms/http/path.h"

namespace {

using hms::h2::ErrorCode;
using hms::h2::ServerSession;

void CheckHead(const hms::http::RequestHead& h) {
  FUZZ_CHECK(hms::http::IsToken(h.method_text));
  if (!h.path.empty()) {
    FUZZ_CHECK(h.path.front() == '/');
    char out[8192];
    hms::http::PathError err;
    if (h.path.size() < sizeof out) {
      const int n = hms::http::NormalizePath(h.path, {}, out, &err);
      FUZZ_CHECK(n == static_cast<int>(h.path.size()));
      FUZZ_CHECK(std::memcmp(out, h.path.data(), h.path.size()) == 0);
    }
  }
  FUZZ_CHECK(!h.host.empty());
  for (int i = 0; i < h.header_count; ++i) {
    for (char c : h.headers[i].name) {
      FUZZ_CHECK(hms::http::IsTokenChar(c) && !(c >= 'A' && c <= 'Z'));
    }
    for (char c : h.headers[i].value) FUZZ_CHECK(c != '\r' && c != '\n' && c != '\0');
  }
}

class Handler : public hms::h2::Handler {
 public:
  std::set<int32_t> known;

  void OnRequest(ServerSession& s, int32_t id, const hms::http::RequestHead& h,
                 bool end) override {
    CheckHead(h);
    known.insert(id);
    s.SetTag(id, static_cast<uint64_t>(id) * 3);
    if (end) Answer(s, id, h.path.size());
  }
  void OnRefused(ServerSession& s, int32_t id, const hms::policy::Answer& a) override {
    FUZZ_CHECK(a.status == 400 || a.status == 431);
    FUZZ_CHECK(!a.reason.empty());
    known.insert(id);
    if (id % 3 != 0) s.Answer(id, a, "00000000000000000000000000000000");
  }
  void OnData(ServerSession& s, int32_t id, uint64_t tag, const char*, size_t n) override {
    FUZZ_CHECK(tag == static_cast<uint64_t>(id) * 3);
    if (id % 5 != 0) s.Consume(id, n);  // every fifth stream is a slow upstream
  }
  void OnRequestEnd(ServerSession& s, int32_t id, uint64_t, const hms::http::Header* t,
                    uint16_t count) override {
    FUZZ_CHECK(count == 0 || t != nullptr);
    Answer(s, id, count);
  }
  void OnSendable(ServerSession&, int32_t id, uint64_t) override { FUZZ_CHECK(known.count(id)); }
  void OnStreamClose(ServerSession&, int32_t id, uint64_t, ErrorCode) override {
    FUZZ_CHECK(known.erase(id) == 1);
  }

 private:
  // The engine's ways to answer, picked by the stream id.
  static void Answer(ServerSession& s, int32_t id, size_t salt) {
    static const char kBody[2000] = {'b'};
    switch ((static_cast<size_t>(id) + salt) % 4) {
      case 0: {
        const hms::http::Header f[] = {{"Content-Type", "text/plain"}, {"Connection", "close"}};
        s.Respond(id, 200, f, 2, false);
        s.SendData(id, kBody, sizeof kBody, true);
        break;
      }
      case 1: {
        s.Respond(id, 200, nullptr, 0, false);
        s.SendData(id, kBody, 100, false);
        const hms::http::Header t[] = {{"grpc-status", "0"}};
        s.SendTrailers(id, t, 1);
        break;
      }
      case 2:
        s.Answer(id, hms::policy::AnswerFor(hms::policy::Fault::kNoRoute), "trace");
        break;
      default:
        s.Reset(id, ErrorCode::kCancel);
        break;
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static hms::h2::MemPool pool;
  static hms::core::BlockPool blocks(16384);
  static hms::h2::Counters counters;
  static const auto configs = [] {
    hms::h2::Limits tight;
    tight.max_concurrent_streams = 4;
    tight.max_header_list_bytes = 1024;
    tight.stream_window_bytes = 1000;
    tight.connection_window_bytes = 65535;
    tight.resets = {5, 1};
    tight.control_frames = {5, 1};
    tight.max_empty_frames = 2;
    tight.max_continuations = 2;
    tight.max_outbound_ack = 4;
    auto a = hms::h2::ServerConfig::Make(hms::h2::Limits{});
    auto b = hms::h2::ServerConfig::Make(tight);
    FUZZ_CHECK(a.ok() && b.ok());
    return std::make_pair(a.value(), b.value());
  }();
  const bool tight = (data[0] & 1) != 0;
  const size_t piece = (data[0] >> 1) == 0 ? size : static_cast<size_t>(data[0] >> 1) * 7 + 1;
  const char* p = reinterpret_cast<const char*>(data + 1);
  size_t n = size - 1;
  {
    Handler handler;
    ServerSession s(tight ? configs.second.get() : configs.first.get(), &handler, &pool, &blocks,
                    &counters);
    FUZZ_CHECK(s.Start());
    hms::core::ByteQueue out;
    hms::core::Instant now = 1'000'000'000;
    bool over = false;
    while (n > 0) {
      const size_t take = std::min(n, piece);
      const bool ok = s.Receive(p, take, now);
      FUZZ_CHECK(!(over && ok));  // over stays over
      over = over || !ok;
      p += take;
      n -= take;
      now += 1'000'000;  // a millisecond between reads
      FUZZ_CHECK(s.Send(&out, 1 << 16) || over);
      out.Clear(&blocks);  // what the server sends goes nowhere
    }
    if (!over) s.Drain();
    s.Send(&out, 1 << 16);
    out.Clear(&blocks);
    s.Close(ErrorCode::kNoError);
    FUZZ_CHECK(s.open_streams() == 0);
    FUZZ_CHECK(handler.known.empty());
    s.Send(&out, 1 << 16);
    out.Clear(&blocks);
  }
  FUZZ_CHECK(pool.blocks_in_use() == 0);
  return 0;
}
