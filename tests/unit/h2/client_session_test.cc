// The client session driven against the gateway's own ServerSession and
// against a raw nghttp2 server (for what a hostile or shutting-down upstream
// does), bytes in memory: GET, POST under flow control, many streams under
// the upstream's max concurrent streams, trailers both ways, GOAWAY, resets,
// oversized and malformed heads, floods, liveness, and warm streams without
// a heap allocation.
#include "hms/h2/client_session.h"

#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "peer.h"

namespace hms::h2 {
namespace {

using testing::Core;
using testing::Fields;
using testing::Frame;
using testing::Recorder;

// --- the engine's stand-in on the client side ---------------------------------

struct Got {
  int status = 0;
  Fields fields;
  std::string body;
  Fields trailers;
  bool ended = false;
  bool closed = false;
  StreamEnd end;
  int sendable = 0;
  std::string Field(const std::string& name) const {
    for (const auto& [n, v] : fields) {
      if (n == name) return v;
    }
    return "";
  }
};

class ClientRecorder : public ClientHandler {
 public:
  bool consume = true;
  std::function<void(ClientSession&, int32_t)> on_close;
  std::map<int32_t, Got> got;

  void OnResponse(ClientSession&, int32_t id, uint64_t, uint16_t status, const http::Header* f,
                  uint16_t count, bool) override {
    got[id].status = status;
    for (uint16_t i = 0; i < count; ++i) {
      got[id].fields.emplace_back(std::string(f[i].name), std::string(f[i].value));
    }
  }
  void OnData(ClientSession& s, int32_t id, uint64_t, const char* p, size_t n) override {
    got[id].body.append(p, n);
    if (consume) s.Consume(id, n);
  }
  void OnResponseEnd(ClientSession&, int32_t id, uint64_t, const http::Header* t,
                     uint16_t count) override {
    got[id].ended = true;
    for (uint16_t i = 0; i < count; ++i) {
      got[id].trailers.emplace_back(std::string(t[i].name), std::string(t[i].value));
    }
  }
  void OnSendable(ClientSession&, int32_t id, uint64_t) override { ++got[id].sendable; }
  void OnStreamClose(ClientSession& s, int32_t id, uint64_t, const StreamEnd& end) override {
    got[id].closed = true;
    got[id].end = end;
    if (on_close) on_close(s, id);
  }
};

// --- upstreams ------------------------------------------------------------------

class Upstream {
 public:
  virtual ~Upstream() = default;
  virtual void Feed(const std::string& bytes) = 0;
  virtual std::string Drain() = 0;
};

// The gateway's own server session, answering as `handler` says.
class GatewayUpstream : public Upstream {
 public:
  GatewayUpstream(Core* core, const Limits& limits) : core_(core) {
    config_ = ServerConfig::Make(limits).value();
    server = std::make_unique<ServerSession>(config_.get(), &handler, &core->pool, &core->blocks,
                                             &counters);
    EXPECT_TRUE(server->Start());
  }
  ~GatewayUpstream() override {
    server->Close(ErrorCode::kNoError);
    server.reset();
    out_.Clear(&core_->blocks);
  }
  void Feed(const std::string& b) override { server->Receive(b.data(), b.size(), 1); }
  std::string Drain() override {
    EXPECT_TRUE(server->Send(&out_, 1 << 20));
    std::string s;
    iovec iov[64];
    const int n = out_.Gather(iov, 64);
    for (int i = 0; i < n; ++i) s.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
    out_.Consume(&core_->blocks, s.size());
    return s;
  }
  Recorder handler;
  Counters counters;
  std::unique_ptr<ServerSession> server;

 private:
  Core* core_;
  std::shared_ptr<const ServerConfig> config_;
  core::ByteQueue out_;
};

// A raw nghttp2 server: the test answers, resets and sends GOAWAY by hand.
class RawUpstream : public Upstream {
 public:
  RawUpstream() {
    nghttp2_session_callbacks* cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, OnFrame);
    nghttp2_session_server_new(&s, cb, this);
    nghttp2_session_callbacks_del(cb);
    nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, nullptr, 0);
  }
  ~RawUpstream() override { nghttp2_session_del(s); }
  void Feed(const std::string& b) override {
    nghttp2_session_mem_recv(s, reinterpret_cast<const uint8_t*>(b.data()), b.size());
  }
  std::string Drain() override {
    std::string out;
    for (;;) {
      const uint8_t* d = nullptr;
      const ssize_t n = nghttp2_session_mem_send(s, &d);
      if (n <= 0) break;
      out.append(reinterpret_cast<const char*>(d), static_cast<size_t>(n));
    }
    return out + extra;
  }
  void Respond(int32_t id, const Fields& f) {
    std::vector<nghttp2_nv> nv;
    for (const auto& [n, v] : f) {
      nv.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(n.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(),
                    NGHTTP2_NV_FLAG_NONE});
    }
    nghttp2_submit_response(s, id, nv.data(), nv.size(), nullptr);
  }
  nghttp2_session* s = nullptr;
  std::vector<int32_t> requests;  // ids whose request head arrived
  std::string extra;              // raw bytes appended once to the next Drain()

 private:
  static int OnFrame(nghttp2_session*, const nghttp2_frame* f, void* self) {
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
      static_cast<RawUpstream*>(self)->requests.push_back(f->hd.stream_id);
    }
    return 0;
  }
};

// --- the pair -------------------------------------------------------------------

class Link {
 public:
  Link(Core* core, Upstream* up, const Limits& limits = Limits{}) : core_(core), up_(up) {
    config = ClientConfig::Make(limits).value();
    client = std::make_unique<ClientSession>(config.get(), &handler, &core->pool, &core->blocks,
                                             &counters);
    EXPECT_TRUE(client->Start());
  }
  ~Link() {
    client->Close(ErrorCode::kNoError);
    client.reset();
    out_.Clear(&core_->blocks);
  }
  // Moves bytes both ways until both sides are quiet.
  void Pump() {
    for (int round = 0; round < 10000; ++round) {
      EXPECT_TRUE(client->Send(&out_, 1 << 20));
      std::string up;
      iovec iov[64];
      const int n = out_.Gather(iov, 64);
      for (int i = 0; i < n; ++i) {
        up.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
      }
      out_.Consume(&core_->blocks, up.size());
      if (!up.empty()) up_->Feed(up);
      std::string down = up_->Drain();
      if (auto* raw = dynamic_cast<RawUpstream*>(up_)) raw->extra.clear();
      if (!down.empty())
        received_ok = client->Receive(down.data(), down.size(), now) && received_ok;
      if (up.empty() && down.empty()) return;
    }
    ADD_FAILURE() << "the link did not settle";
  }
  int32_t Get(const std::string& path) {
    const http::Header f[] = {{"Host", "svc.internal"}, {"Accept", "*/*"}};
    return client->Submit(RequestLine{"GET", "http", "svc.internal", path}, f, 2, 7, true);
  }

  ClientRecorder handler;
  Counters counters;
  std::shared_ptr<const ClientConfig> config;
  std::unique_ptr<ClientSession> client;
  core::Instant now = core::Millis(1000);
  bool received_ok = true;

 private:
  Core* core_;
  Upstream* up_;
  core::ByteQueue out_;
};

// The gateway's server answers every complete request 200 "ok:<path>".
void AnswerAll(GatewayUpstream& up) {
  up.handler.on_request = [](ServerSession& s, int32_t id, const http::RequestHead& h, bool end) {
    if (!end) return;
    const http::Header f[] = {{"content-type", "text/plain"}};
    s.Respond(id, 200, f, 1, false);
    const std::string body = "ok:" + std::string(h.path);
    s.SendData(id, body.data(), body.size(), true);
  };
}

TEST(H2ClientSession, GetMapsTheHeadAndReadsTheAnswer) {
  Core core;
  GatewayUpstream up(&core, Limits{});
  AnswerAll(up);
  Link link(&core, &up);
  // An HTTP/1.1-style head, as the engine rewrote it.
  const http::Header f[] = {{"Host", "svc.internal:7002"}, {"Connection", "keep-alive"},
                            {"Keep-Alive", "timeout=5"},   {"TE", "trailers"},
                            {"Upgrade", "websocket"},      {"X-Trace-Id", "abc"}};
  const int32_t id = link.client->Submit(
      RequestLine{"GET", "http", "svc.internal:7002", "/sum/2/3?x=1"}, f, 6, 42, true);
  ASSERT_GT(id, 0);
  link.Pump();
  const testing::Seen& seen = up.handler.seen[id];
  EXPECT_EQ(seen.method, http::Method::kGet);
  EXPECT_EQ(seen.path, "/sum/2/3");
  EXPECT_EQ(seen.query, "x=1");
  EXPECT_EQ(seen.host, "svc.internal:7002");
  // Only te: trailers and the end-to-end field made it (lowercase).
  EXPECT_EQ(seen.fields, (Fields{{"te", "trailers"}, {"x-trace-id", "abc"}}));
  const Got& g = link.handler.got[id];
  EXPECT_EQ(g.status, 200);
  EXPECT_EQ(g.Field("content-type"), "text/plain");
  EXPECT_EQ(g.body, "ok:/sum/2/3");
  EXPECT_TRUE(g.ended);
  EXPECT_TRUE(g.closed);
  EXPECT_TRUE(g.end.complete);
  EXPECT_EQ(FaultOf(g.end), policy::Fault::kNone);
  EXPECT_EQ(link.client->open_streams(), 0u);
}

TEST(H2ClientSession, WhatAnHttp11HeadLeavesOut) {
  struct Case {
    std::string_view name, value;
    bool dropped;
  };
  const Case cases[] = {
      {"Connection", "close", true},
      {"keep-alive", "5", true},
      {"Proxy-Connection", "x", true},
      {"Transfer-Encoding", "chunked", true},
      {"Upgrade", "h2c", true},
      {"Host", "a", true},
      {"te", "trailers", false},
      {"TE", "Trailers", false},
      {"te", "gzip", true},
      {"content-type", "application/grpc", false},
      {"content-length", "3", false},
      {"x-forwarded-for", "1.2.3.4", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(DroppedFromRequest(c.name, c.value), c.dropped);
  }
  http::RequestHead h;
  h.method_text = "POST";
  h.target = "/a/b?c";
  h.host = "svc:1";
  const RequestLine line = LineOf(h, "https");
  EXPECT_EQ(line.method, "POST");
  EXPECT_EQ(line.scheme, "https");
  EXPECT_EQ(line.authority, "svc:1");
  EXPECT_EQ(line.path, "/a/b?c");
}

TEST(H2ClientSession, PostBodyWaitsForTheUpstreamsWindow) {
  Core core;
  Limits small;
  small.stream_window_bytes = 16384;
  GatewayUpstream up(&core, small);
  up.handler.consume = false;  // a slow upstream: nothing passed on yet
  up.handler.on_end = [](ServerSession& s, int32_t id) { s.Respond(id, 201, nullptr, 0, true); };
  Link link(&core, &up);
  link.Pump();  // the upstream's SETTINGS: before them, RFC 9113's 65535 applies
  const std::string body(100000, 'b');
  const http::Header f[] = {{"content-length", "100000"}};
  const int32_t id =
      link.client->Submit(RequestLine{"POST", "http", "svc", "/upload"}, f, 1, 1, false);
  ASSERT_GT(id, 0);
  ASSERT_TRUE(link.client->SendData(id, body.data(), body.size(), true));
  link.Pump();
  EXPECT_EQ(up.handler.seen[id].body.size(), 16384u);  // the stream's window, no more
  EXPECT_EQ(link.client->Queued(id), body.size() - 16384);
  EXPECT_FALSE(link.handler.got[id].closed);
  // The upstream passes the bytes on: its windows reopen, the rest flows.
  for (int i = 0; i < 20 && !up.handler.seen[id].ended; ++i) {
    up.server->Consume(id, up.handler.seen[id].body.size());
    link.Pump();
  }
  EXPECT_EQ(up.handler.seen[id].body, body);
  EXPECT_EQ(link.handler.got[id].status, 201);
  EXPECT_TRUE(link.handler.got[id].end.complete);
  EXPECT_EQ(link.client->Queued(id), 0u);
}

TEST(H2ClientSession, StreamedUploadHearsWhenToSendMore) {
  Core core;
  GatewayUpstream up(&core, Limits{});
  up.handler.on_end = [](ServerSession& s, int32_t id) { s.Respond(id, 200, nullptr, 0, true); };
  Link link(&core, &up);
  const int32_t id =
      link.client->Submit(RequestLine{"POST", "http", "svc", "/stream"}, nullptr, 0, 1, false);
  ASSERT_GT(id, 0);
  link.Pump();  // nothing to send yet: the stream waits for data
  for (int chunk = 0; chunk < 5; ++chunk) {
    ASSERT_TRUE(link.client->SendData(id, "0123456789", 10, chunk == 4));
    link.Pump();
  }
  EXPECT_EQ(up.handler.seen[id].body.size(), 50u);
  EXPECT_GE(link.handler.got[id].sendable, 4);  // each chunk taken, but the last
  EXPECT_TRUE(link.handler.got[id].end.complete);
}

TEST(H2ClientSession, ResponseBodyWaitsForTheEngineToConsume) {
  Core core;
  GatewayUpstream up(&core, Limits{});
  const std::string big(200000, 'r');
  up.handler.on_request = [&big](ServerSession& s, int32_t id, const http::RequestHead&, bool) {
    s.Respond(id, 200, nullptr, 0, false);
    s.SendData(id, big.data(), big.size(), true);
  };
  Limits small;
  small.stream_window_bytes = 16384;
  Link link(&core, &up, small);
  link.handler.consume = false;
  const int32_t id = link.Get("/big");
  link.Pump();
  EXPECT_EQ(link.handler.got[id].body.size(), 16384u);
  for (int i = 0; i < 40 && !link.handler.got[id].ended; ++i) {
    link.client->Consume(id, 16384);
    link.Pump();
  }
  EXPECT_EQ(link.handler.got[id].body, big);
}

TEST(H2ClientSession, HundredStreamsShareOneConnection) {
  Core core;
  GatewayUpstream up(&core, Limits{});  // max_concurrent_streams 100
  AnswerAll(up);
  Link link(&core, &up);
  link.Pump();  // the upstream's SETTINGS
  EXPECT_EQ(link.client->peer_max_concurrent_streams(), 100u);
  std::vector<int32_t> ids;
  for (int i = 0; i < 100; ++i) ids.push_back(link.Get("/s/" + std::to_string(i)));
  EXPECT_TRUE(std::all_of(ids.begin(), ids.end(), [](int32_t id) { return id > 0; }));
  EXPECT_EQ(link.client->open_streams(), 100u);
  EXPECT_FALSE(link.client->CanOpen());
  EXPECT_EQ(link.Get("/one-more"), ClientSession::kNoCapacity);
  link.Pump();
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(link.handler.got[ids[i]].body, "ok:/s/" + std::to_string(i));
  }
  EXPECT_EQ(up.counters.streams_refused.Get(), 0u);
  EXPECT_EQ(link.client->open_streams(), 0u);
  EXPECT_TRUE(link.client->CanOpen());
}

TEST(H2ClientSession, ThePeersConcurrencyLimitIsRespected) {
  Core core;
  Limits ten;
  ten.max_concurrent_streams = 10;
  GatewayUpstream up(&core, ten);
  std::vector<int32_t> held;  // the upstream answers only when the test says
  up.handler.on_request = [&held](ServerSession&, int32_t id, const http::RequestHead&, bool) {
    held.push_back(id);
  };
  Link link(&core, &up);
  link.Pump();
  EXPECT_EQ(link.client->peer_max_concurrent_streams(), 10u);
  int done = 0, submitted = 0;
  size_t most_held = 0;
  for (int round = 0; round < 50 && done < 100; ++round) {
    // The engine's queue: open what the upstream allows.
    while (submitted < 100) {
      const int32_t id = link.Get("/q");
      if (id == ClientSession::kNoCapacity) break;
      ASSERT_GT(id, 0);
      ++submitted;
    }
    link.Pump();
    most_held = std::max(most_held, held.size());
    for (int32_t id : held) up.server->Respond(id, 204, nullptr, 0, true);
    done += static_cast<int>(held.size());
    held.clear();
    link.Pump();
  }
  EXPECT_EQ(done, 100);
  EXPECT_EQ(most_held, 10u);
  EXPECT_EQ(up.counters.streams_refused.Get(), 0u);  // never more than the upstream allows
}

TEST(H2ClientSession, TrailersBothWays) {
  Core core;
  GatewayUpstream up(&core, Limits{});
  up.handler.on_end = [](ServerSession& s, int32_t id) {
    const http::Header head[] = {{"content-type", "application/grpc"}};
    s.Respond(id, 200, head, 1, false);
    s.SendData(id, "\0\0\0\0\0", 5, false);
    const http::Header t[] = {{"grpc-status", "0"}, {"grpc-message", "fine"}};
    s.SendTrailers(id, t, 2);
  };
  Link link(&core, &up);
  const http::Header f[] = {{"content-type", "application/grpc"}, {"te", "trailers"}};
  const int32_t id =
      link.client->Submit(RequestLine{"POST", "http", "calc", "/calc.Calc/Sum"}, f, 2, 1, false);
  ASSERT_TRUE(link.client->SendData(id, "\0\0\0\0\0", 5, false));
  const http::Header t[] = {{"x-checksum", "42"}, {"Connection", "close"}};
  ASSERT_TRUE(link.client->SendTrailers(id, t, 2));
  link.Pump();
  EXPECT_EQ(up.handler.seen[id].trailers, (Fields{{"x-checksum", "42"}}));
  const Got& g = link.handler.got[id];
  EXPECT_EQ(g.body.size(), 5u);
  EXPECT_EQ(g.trailers, (Fields{{"grpc-status", "0"}, {"grpc-message", "fine"}}));
  EXPECT_TRUE(g.end.complete);
}

TEST(H2ClientSession, GoawayMarksStreamsAboveTheLastAsNeverProcessed) {
  Core core;
  RawUpstream up;
  Link link(&core, &up);
  const int32_t a = link.Get("/a"), b = link.Get("/b"), c = link.Get("/c");
  link.Pump();
  ASSERT_EQ(up.requests.size(), 3u);
  up.Respond(a, {{":status", "200"}});
  nghttp2_submit_goaway(up.s, NGHTTP2_FLAG_NONE, a, NGHTTP2_NO_ERROR, nullptr, 0);
  link.Pump();
  EXPECT_TRUE(link.client->goaway_received());
  EXPECT_EQ(link.client->goaway_last_stream(), a);
  EXPECT_TRUE(link.handler.got[a].end.complete);
  EXPECT_FALSE(link.handler.got[a].end.never_processed);
  for (int32_t id : {b, c}) {
    EXPECT_TRUE(link.handler.got[id].closed);
    EXPECT_TRUE(link.handler.got[id].end.never_processed) << id;  // safe to retry elsewhere
  }
  EXPECT_EQ(link.counters.streams_unprocessed.Get(), 2u);
  EXPECT_FALSE(link.client->CanOpen());
  EXPECT_EQ(link.Get("/d"), ClientSession::kGoingAway);
  EXPECT_TRUE(link.client->Done());
}

TEST(H2ClientSession, RequestsNotYetSentWhenGoawayCameAreNeverProcessed) {
  Core core;
  RawUpstream up;
  Link link(&core, &up);
  link.Pump();
  const int32_t a = link.Get("/a");
  ASSERT_GT(a, 0);
  // The GOAWAY arrives before the request leaves.
  nghttp2_submit_goaway(up.s, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, nullptr, 0);
  const std::string down = up.Drain();
  EXPECT_TRUE(link.client->Receive(down.data(), down.size(), 1));
  link.Pump();
  EXPECT_TRUE(link.handler.got[a].closed);
  EXPECT_TRUE(link.handler.got[a].end.never_processed);
  EXPECT_TRUE(up.requests.empty());
  EXPECT_EQ(link.client->open_streams(), 0u);
}

TEST(H2ClientSession, RequestsNotYetSentWhenTheSessionClosesAreNeverProcessed) {
  // The connection ends under its streams (the upstream closed it, a PING
  // timed out): a POST whose HEADERS are still in the session never reached
  // the upstream and may go elsewhere; one whose HEADERS left may not.
  Core core;
  RawUpstream up;
  Link link(&core, &up);
  const http::Header f[] = {{"Host", "svc.internal"}, {"Content-Length", "5"}};
  const RequestLine post{"POST", "http", "svc.internal", "/post"};
  const int32_t a = link.client->Submit(post, f, 2, 7, false);
  ASSERT_GT(a, 0);
  link.Pump();
  ASSERT_EQ(up.requests.size(), 1u);
  const int32_t b = link.client->Submit(post, f, 2, 8, false);
  ASSERT_GT(b, 0);
  ASSERT_TRUE(link.client->SendData(b, "hello", 5, true));
  link.client->Close(ErrorCode::kNoError);
  ASSERT_TRUE(link.handler.got[a].closed);
  ASSERT_TRUE(link.handler.got[b].closed);
  EXPECT_FALSE(link.handler.got[a].end.never_processed);
  EXPECT_TRUE(link.handler.got[b].end.never_processed);
  EXPECT_EQ(FaultOf(link.handler.got[b].end), policy::Fault::kUpstreamReset);
  EXPECT_EQ(link.counters.streams_unprocessed.Get(), 1u);
}

TEST(H2ClientSession, ResetsFromTheUpstream) {
  Core core;
  RawUpstream up;
  Link link(&core, &up);
  const int32_t a = link.Get("/a"), b = link.Get("/b");
  link.Pump();
  nghttp2_submit_rst_stream(up.s, NGHTTP2_FLAG_NONE, a, NGHTTP2_INTERNAL_ERROR);
  nghttp2_submit_rst_stream(up.s, NGHTTP2_FLAG_NONE, b, NGHTTP2_REFUSED_STREAM);
  link.Pump();
  EXPECT_EQ(link.handler.got[a].end.code, ErrorCode::kInternalError);
  EXPECT_FALSE(link.handler.got[a].end.never_processed);
  EXPECT_EQ(FaultOf(link.handler.got[a].end), policy::Fault::kUpstreamReset);
  EXPECT_TRUE(link.handler.got[b].end.never_processed);  // RFC 9113 §8.7
  EXPECT_EQ(link.counters.resets_received.Get(), 2u);
  EXPECT_TRUE(link.client->CanOpen());  // the connection itself is fine
}

TEST(H2ClientSession, TheEnginesResetIsNotTheUpstreamsFault) {
  Core core;
  RawUpstream up;
  Link link(&core, &up);
  const int32_t a = link.Get("/a");
  link.Pump();
  ASSERT_TRUE(link.client->Reset(a, ErrorCode::kCancel));
  link.Pump();
  EXPECT_TRUE(link.handler.got[a].end.by_engine);
  EXPECT_EQ(FaultOf(link.handler.got[a].end), policy::Fault::kNone);
  EXPECT_EQ(link.counters.resets_sent.Get(), 1u);
}

TEST(H2ClientSession, AStreamTheEngineResetBeforeItsHeadersLeftIsNotNeverProcessed) {
  // The client went away before the flush: the engine's own reset, not the
  // upstream's refusal. Nothing goes again, and nothing is counted.
  Core core;
  RawUpstream up;
  Link link(&core, &up);
  link.Pump();
  const int32_t a = link.Get("/a");
  ASSERT_GT(a, 0);
  ASSERT_TRUE(link.client->Reset(a, ErrorCode::kCancel));
  link.Pump();
  ASSERT_TRUE(link.handler.got[a].closed);
  EXPECT_TRUE(link.handler.got[a].end.by_engine);
  EXPECT_FALSE(link.handler.got[a].end.never_processed);
  EXPECT_EQ(link.counters.streams_unprocessed.Get(), 0u);
}

TEST(H2ClientSession, AnOversizedHeadResetsOnlyItsStream) {
  Core core;
  RawUpstream up;
  Link link(&core, &up);  // max_header_list_bytes 16384
  const int32_t a = link.Get("/a"), b = link.Get("/b");
  link.Pump();
  Fields bomb = {{":status", "200"}};  // 20 fields, 20 KB: over the size, not the count
  for (int i = 0; i < 20; ++i) bomb.emplace_back("x-f" + std::to_string(i), std::string(1000, 'v'));
  up.Respond(a, bomb);
  up.Respond(b, {{":status", "200"}, {"x-ok", "1"}});
  link.Pump();
  EXPECT_TRUE(link.handler.got[a].end.head_too_large);
  EXPECT_EQ(link.handler.got[a].status, 0);  // never delivered
  EXPECT_EQ(FaultOf(link.handler.got[a].end), policy::Fault::kUpstreamHeaderTooLarge);
  EXPECT_EQ(link.counters.response_heads_too_large.Get(), 1u);
  EXPECT_EQ(link.handler.got[b].Field("x-ok"), "1");
  EXPECT_TRUE(link.handler.got[b].end.complete);
  EXPECT_TRUE(link.received_ok);
}

TEST(H2ClientSession, AHeadWithMoreFieldsThanTheGatewayHoldsIsRefused) {
  Core core;
  RawUpstream up;
  Link link(&core, &up);
  const int32_t a = link.Get("/a");
  link.Pump();
  Fields many = {{":status", "200"}};
  for (size_t i = 0; i <= http::kMaxHeaders; ++i) many.emplace_back("x-" + std::to_string(i), "v");
  up.Respond(a, many);
  link.Pump();
  EXPECT_TRUE(link.handler.got[a].end.head_too_large);
  EXPECT_EQ(link.handler.got[a].status, 0);
}

TEST(H2ClientSession, AMalformedHeadIsTheUpstreamsBadResponse) {
  Core core;
  RawUpstream up;
  Link link(&core, &up);
  const int32_t a = link.Get("/a");
  link.Pump();
  up.Respond(a, {{"x-no-status", "1"}});
  link.Pump();
  EXPECT_EQ(link.handler.got[a].end.code, ErrorCode::kProtocolError);
  EXPECT_EQ(FaultOf(link.handler.got[a].end), policy::Fault::kUpstreamBadResponse);
}

TEST(H2ClientSession, APingFloodEndsTheSession) {
  Core core;
  RawUpstream up;
  Link link(&core, &up);
  link.Pump();
  const int32_t a = link.Get("/a");
  for (int i = 0; i < 400; ++i) up.extra += Frame(NGHTTP2_PING, 0, 0, std::string(8, 'p'));
  link.Pump();
  EXPECT_TRUE(link.client->failed());
  EXPECT_EQ(link.counters.flood_control_frames.Get(), 1u);
  EXPECT_TRUE(link.handler.got[a].closed);
  EXPECT_EQ(link.handler.got[a].end.code, ErrorCode::kEnhanceYourCalm);
  EXPECT_EQ(link.Get("/b"), ClientSession::kFailed);
}

TEST(H2ClientSession, PingIsAnswered) {
  Core core;
  GatewayUpstream up(&core, Limits{});
  Link link(&core, &up);
  ASSERT_TRUE(link.client->Ping(core::Millis(5)));
  EXPECT_EQ(link.client->ping_outstanding_since(), core::Millis(5));
  EXPECT_FALSE(link.client->Ping(core::Millis(6)));  // one at a time
  link.Pump();
  EXPECT_EQ(link.client->ping_outstanding_since(), 0u);
}

TEST(H2ClientSession, ShutdownLetsOpenStreamsFinish) {
  Core core;
  RawUpstream up;
  Link link(&core, &up);
  const int32_t a = link.Get("/a");
  link.Pump();
  link.client->Shutdown();
  EXPECT_EQ(link.Get("/b"), ClientSession::kGoingAway);
  up.Respond(a, {{":status", "200"}});
  link.Pump();
  EXPECT_TRUE(link.handler.got[a].end.complete);
  EXPECT_EQ(link.counters.goaways_sent.Get(), 1u);
}

TEST(H2ClientSession, WarmStreamsTakeNothingFromTheHeap) {
  Core core;
  GatewayUpstream up(&core, Limits{});
  AnswerAll(up);
  Link link(&core, &up);
  for (int warmup = 0; warmup < 2; ++warmup) {  // the second round still grows a table once
    for (int i = 0; i < 20; ++i) link.Get("/warm");
    link.Pump();
  }
  const uint64_t warm = core.pool.heap_allocations();
  for (int round = 0; round < 10; ++round) {
    for (int i = 0; i < 20; ++i) link.Get("/warm");
    link.Pump();
  }
  EXPECT_EQ(core.pool.heap_allocations(), warm);
  EXPECT_EQ(link.client->open_streams(), 0u);
}

}  // namespace
}  // namespace hms::h2
