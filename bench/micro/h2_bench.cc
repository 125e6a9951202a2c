// The HTTP/2 server session's own cost per request (src/h2): client bytes
// recorded once from a real nghttp2 client (GETs, HPACK-indexed as a browser's
// or h2load's repeat requests are), fed to a server session a read at a time;
// the handler answers each stream with a small body at once; what the
// session sends is dropped. No sockets: this is the user-space share of an
// h2 request, the part the engine adds to the kernel's.
//
// BM_H2Server_Get/8 is 8 streams per read (h2load -m 8), /1 one per read.
//
// BM_H2Client_Get is the other side: a ClientSession (the gateway toward an
// h2c upstream) submits `per_read` GETs from an HTTP/1.1-style head, sends
// them, and reads the upstream's answers, recorded once from a real nghttp2
// server (one read per batch, each answer a head and a 13-byte body).
#include <benchmark/benchmark.h>
#include <nghttp2/nghttp2.h>

#include <cstring>
#include <string>
#include <vector>

#include "hms/core/block_pool.h"
#include "hms/h2/client_session.h"
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

// --- the client side ------------------------------------------------------------

class Reader : public hms::h2::ClientHandler {
 public:
  void OnResponse(hms::h2::ClientSession&, int32_t, uint64_t, uint16_t, const hms::http::Header*,
                  uint16_t, bool) override {}
  void OnData(hms::h2::ClientSession& s, int32_t id, uint64_t, const char*, size_t n) override {
    s.Consume(id, n);
  }
  void OnResponseEnd(hms::h2::ClientSession&, int32_t, uint64_t, const hms::http::Header*,
                     uint16_t) override {
    ++done;
  }
  void OnSendable(hms::h2::ClientSession&, int32_t, uint64_t) override {}
  void OnStreamClose(hms::h2::ClientSession&, int32_t, uint64_t,
                     const hms::h2::StreamEnd&) override {}
  uint64_t done = 0;
};

ssize_t Body(nghttp2_session*, int32_t, uint8_t* buf, size_t, uint32_t* flags,
             nghttp2_data_source*, void*) {
  std::memcpy(buf, "hello, world\n", 13);
  *flags |= NGHTTP2_DATA_FLAG_EOF;
  return 13;
}

int AnswerRequest(nghttp2_session* s, const nghttp2_frame* f, void*) {
  if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  const auto nv = [](const char* n, const char* v) {
    return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(n)),
                      reinterpret_cast<uint8_t*>(const_cast<char*>(v)), strlen(n), strlen(v),
                      NGHTTP2_NV_FLAG_NONE};
  };
  const nghttp2_nv head[] = {nv(":status", "200"), nv("content-type", "text/plain"),
                             nv("content-length", "13")};
  nghttp2_data_provider body;
  body.read_callback = Body;
  nghttp2_submit_response(s, f->hd.stream_id, head, 3, &body);
  return 0;
}

const hms::http::Header kHead[] = {{"Host", "calc-svc:7002"},
                                   {"User-Agent", "curl/7.88.1"},
                                   {"Accept", "*/*"},
                                   {"Connection", "keep-alive"},
                                   {"x-trace-id", "0af7651916cd43dd8448eb211c80319c"}};

hms::h2::Limits WideOpen() {
  hms::h2::Limits l;  // the recorded answers never wait on a window
  l.stream_window_bytes = 0x7fffffff;
  l.connection_window_bytes = 0x7fffffff;
  return l;
}

void Submit(hms::h2::ClientSession& c, int per_read) {
  for (int i = 0; i < per_read; ++i) {
    c.Submit(hms::h2::RequestLine{"GET", "http", "calc-svc:7002", "/sum/2/3"}, kHead, 5, 1, true);
  }
}

// The upstream's bytes: [0] its preface, then one read per batch.
std::vector<std::string> RecordUpstream(const hms::h2::ClientConfig* config, int per_read,
                                        int reads) {
  hms::h2::MemPool pool;
  hms::core::BlockPool blocks(16384);
  hms::h2::Counters counters;
  Reader reader;
  hms::h2::ClientSession c(config, &reader, &pool, &blocks, &counters);
  c.Start();
  nghttp2_session_callbacks* cb;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, AnswerRequest);
  nghttp2_session* up;
  nghttp2_session_server_new(&up, cb, nullptr);
  nghttp2_session_callbacks_del(cb);
  nghttp2_submit_settings(up, NGHTTP2_FLAG_NONE, nullptr, 0);
  hms::core::ByteQueue out;
  const auto exchange = [&] {
    c.Send(&out, 1 << 20);
    iovec iov[64];
    const int n = out.Gather(iov, 64);
    for (int i = 0; i < n; ++i) {
      nghttp2_session_mem_recv(up, static_cast<const uint8_t*>(iov[i].iov_base), iov[i].iov_len);
    }
    out.Clear(&blocks);
    std::string down;
    const uint8_t* d;
    for (ssize_t k; (k = nghttp2_session_mem_send(up, &d)) > 0;) {
      down.append(reinterpret_cast<const char*>(d), static_cast<size_t>(k));
    }
    c.Receive(down.data(), down.size(), 1);
    return down;
  };
  std::vector<std::string> recorded = {exchange()};
  for (int r = 0; r < reads; ++r) {
    Submit(c, per_read);
    recorded.push_back(exchange());
  }
  c.Close(hms::h2::ErrorCode::kNoError);
  c.Send(&out, 1 << 20);
  out.Clear(&blocks);
  nghttp2_session_del(up);
  return recorded;
}

void BM_H2Client_Get(benchmark::State& state) {
  const int per_read = static_cast<int>(state.range(0));
  const auto config = hms::h2::ClientConfig::Make(WideOpen()).value();
  const std::vector<std::string> bytes = RecordUpstream(config.get(), per_read, 4096);
  hms::h2::MemPool pool;
  hms::core::BlockPool blocks(16384);
  hms::h2::Counters counters;
  Reader reader;
  hms::core::ByteQueue out;
  size_t next = bytes.size();
  std::unique_ptr<hms::h2::ClientSession> c;
  for (auto _ : state) {
    if (next == bytes.size()) {
      state.PauseTiming();
      if (c) c->Close(hms::h2::ErrorCode::kNoError);
      c = std::make_unique<hms::h2::ClientSession>(config.get(), &reader, &pool, &blocks,
                                                   &counters);
      c->Start();
      c->Send(&out, 1 << 20);
      out.Clear(&blocks);
      c->Receive(bytes[0].data(), bytes[0].size(), 1);
      next = 1;
      state.ResumeTiming();
    }
    Submit(*c, per_read);
    c->Send(&out, 1 << 20);
    out.Clear(&blocks);
    c->Receive(bytes[next].data(), bytes[next].size(), 1);
    ++next;
  }
  state.SetItemsProcessed(state.iterations() * per_read);
  // Every stream's answer arrived whole (a recording out of step would
  // measure nothing).
  state.counters["answered"] =
      benchmark::Counter(static_cast<double>(reader.done), benchmark::Counter::kAvgIterations);
  state.counters["heap_allocs"] = static_cast<double>(pool.heap_allocations());
  if (c) c->Close(hms::h2::ErrorCode::kNoError);
}
BENCHMARK(BM_H2Client_Get)->Arg(1)->Arg(8);

}  // namespace

BENCHMARK_MAIN();
