// The HTTP/2 server session's own cost per request (src/h2): client bytes
// recorded once from a real nghttp2 client (GETs, HPACK-indexed as a browser's
// or h2load's repeat requests are), fed to a server session a read at a time;
// the handler answers each stream with a small body at once; what the
// session sends is dropped. No sockets: this is the user-space share of an
// h2 request, the part the engine adds to the kernel's.
//
// BM_H2Server_Get/8 is 8 streams per read (h2load -m 8), /1 one per read.
#include <benchmark/benchmark.h>
#include <nghttp2/nghttp2.h>

#include <string>
#include <vector>

#include "hms/core/block_pool.h"
#include "hms/h2/server_session.h"

namespace {

using hms::h2::ServerSession;

class Answer : public hms::h2::Handler {
 public:
  void OnRequest(ServerSession& s, int32_t id, const hms::http::RequestHead&, bool) override {
    const hms::http::Header f[] = {{"content-type", "text/plain"}, {"x-trace-id", "0af7651916cd43dd"}};
    s.Respond(id, 200, f, 2, false);
    s.SendData(id, "hello, world\n", 13, true);
  }
  void OnRefused(ServerSession&, int32_t, const hms::policy::Answer&) override {}
  void OnData(ServerSession&, int32_t, uint64_t, const char*, size_t) override {}
  void OnRequestEnd(ServerSession&, int32_t, uint64_t, const hms::http::Header*,
                    uint16_t) override {}
  void OnSendable(ServerSession&, int32_t, uint64_t) override {}
  void OnStreamClose(ServerSession&, int32_t, uint64_t, hms::h2::ErrorCode) override {}
};

// The client's bytes: [0] the preface, then one read per batch of `per_read` GETs.
std::vector<std::string> Record(int per_read, int reads) {
  nghttp2_session_callbacks* cb;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session* c;
  nghttp2_session_client_new(&c, cb, nullptr);
  nghttp2_session_callbacks_del(cb);
  // This client never reads (its WINDOW_UPDATEs would never come): windows
  // as large as the protocol allows, so the answers never wait on them.
  const nghttp2_settings_entry window = {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 0x7fffffff};
  nghttp2_submit_settings(c, NGHTTP2_FLAG_NONE, &window, 1);
  nghttp2_session_set_local_window_size(c, NGHTTP2_FLAG_NONE, 0, 0x7fffffff);
  const auto take = [&] {
    std::string out;
    const uint8_t* d;
    for (ssize_t n; (n = nghttp2_session_mem_send(c, &d)) > 0;) {
      out.append(reinterpret_cast<const char*>(d), static_cast<size_t>(n));
    }
    return out;
  };
  std::vector<std::string> reads_out = {take()};
  const auto nv = [](const char* n, const char* v) {
    return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(n)),
                      reinterpret_cast<uint8_t*>(const_cast<char*>(v)), strlen(n), strlen(v),
                      NGHTTP2_NV_FLAG_NONE};
  };
  const nghttp2_nv get[] = {nv(":method", "GET"), nv(":scheme", "https"),
                            nv(":authority", "api.example.com"), nv(":path", "/v1/items/42"),
                            nv("user-agent", "h2load nghttp2/1.52.0"), nv("accept", "*/*")};
  for (int r = 0; r < reads; ++r) {
    for (int i = 0; i < per_read; ++i) nghttp2_submit_request(c, nullptr, get, 6, nullptr, nullptr);
    reads_out.push_back(take());
    // The server's answers never reach this client: forget its streams.
    for (int32_t id = nghttp2_session_get_next_stream_id(c) - 2 * per_read;
         id < static_cast<int32_t>(nghttp2_session_get_next_stream_id(c)); id += 2) {
      nghttp2_submit_rst_stream(c, NGHTTP2_FLAG_NONE, id, NGHTTP2_NO_ERROR);
    }
    take();
  }
  nghttp2_session_del(c);
  return reads_out;
}

void BM_H2Server_Get(benchmark::State& state) {
  const int per_read = static_cast<int>(state.range(0));
  const int reads = 4096;
  const std::vector<std::string> bytes = Record(per_read, reads);
  hms::h2::MemPool pool;
  hms::core::BlockPool blocks(16384);
  hms::h2::Counters counters;
  hms::h2::Limits limits;
  const auto config = hms::h2::ServerConfig::Make(limits).value();
  Answer handler;
  hms::core::ByteQueue out;
  size_t next = bytes.size();
  std::unique_ptr<ServerSession> s;
  for (auto _ : state) {
    if (next == bytes.size()) {
      state.PauseTiming();
      if (s) s->Close(hms::h2::ErrorCode::kNoError);
      s = std::make_unique<ServerSession>(config.get(), &handler, &pool, &blocks, &counters);
      s->Start();
      s->Receive(bytes[0].data(), bytes[0].size(), 1);
      s->Send(&out, 1 << 20);
      out.Clear(&blocks);
      next = 1;
      state.ResumeTiming();
    }
    s->Receive(bytes[next].data(), bytes[next].size(), 1);
    s->Send(&out, 1 << 20);
    out.Clear(&blocks);
    ++next;
  }
  state.SetItemsProcessed(state.iterations() * per_read);
  // Every stream arrived and was answered (a recording the session refused
  // would measure nothing).
  state.counters["streams"] = benchmark::Counter(static_cast<double>(counters.streams.Get()),
                                                 benchmark::Counter::kAvgIterations);
  state.counters["heap_allocs"] = static_cast<double>(pool.heap_allocations());
  if (s) s->Close(hms::h2::ErrorCode::kNoError);
}
BENCHMARK(BM_H2Server_Get)->Arg(1)->Arg(8);

}  // namespace

BENCHMARK_MAIN();
