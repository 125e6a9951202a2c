// Test peers for the HTTP/2 server session: a real nghttp2 client session in
// this process (bytes between the two in memory), a recording Handler, a
// raw-frame writer for what no well-behaved client sends, and the pump that
// moves bytes until both sides are quiet. Tests only.
#pragma once

#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "hms/core/block_pool.h"
#include "hms/core/clock.h"
#include "hms/h2/server_session.h"

namespace hms::h2::testing {

using Fields = std::vector<std::pair<std::string, std::string>>;

// Set while the server session runs (Receive, Send, the calls below),
// cleared inside the handler: the allocation test counts operator new only
// in the session's own code (server_session_test.cc replaces operator new).
inline thread_local bool t_in_session = false;

struct Zone {
  explicit Zone(bool in) : saved(t_in_session) { t_in_session = in; }
  ~Zone() { t_in_session = saved; }
  bool saved;
};

// --- the client ----------------------------------------------------------

struct Response {
  int status = 0;
  std::vector<int> statuses;  // interim ones (1xx) first
  Fields fields;
  Fields trailers;
  std::string body;
  bool closed = false;
  uint32_t code = 0;
  bool head_done = false;
  std::string Field(const std::string& name) const {
    for (const auto& [n, v] : fields) {
      if (n == name) return v;
    }
    return "";
  }
};

struct ClientOptions {
  // The client acknowledges received DATA only when the test says so
  // (nghttp2_session_consume): a reader that stopped reading.
  bool manual_window = false;
};

class Client {
 public:
  explicit Client(ClientOptions o = {}) {
    nghttp2_session_callbacks* cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, OnHeader);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, OnData);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, OnClose);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, OnFrame);
    nghttp2_option* opt;
    nghttp2_option_new(&opt);
    // Responses are judged by the tests, not by the client library.
    nghttp2_option_set_no_http_messaging(opt, 1);
    // Sends every request at once, before the server's SETTINGS arrive
    // (nghttp2 holds back all but 100 otherwise).
    nghttp2_option_set_peer_max_concurrent_streams(opt, 1000);
    if (o.manual_window) nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_session_client_new2(&s, cb, this, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, nullptr, 0);
  }
  ~Client() { nghttp2_session_del(s); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // A request; `body` (when not null) is sent as DATA, then `trailers`.
  int32_t Request(const Fields& nva, const std::string* body = nullptr,
                  const Fields& trailers = {}) {
    std::vector<nghttp2_nv> nv = Nv(nva);
    nghttp2_data_provider prd;
    Upload* up = nullptr;
    if (body != nullptr) {
      uploads_.push_back(std::make_unique<Upload>(Upload{this, *body, 0, trailers}));
      up = uploads_.back().get();
      prd.source.ptr = up;
      prd.read_callback = ReadUpload;
    }
    const int32_t id = nghttp2_submit_request(s, nullptr, nv.data(), nv.size(),
                                              body != nullptr ? &prd : nullptr, nullptr);
    if (up != nullptr) up->id = id;
    return id;
  }
  int32_t Get(const std::string& path, const std::string& authority = "example.com") {
    return Request(
        {{":method", "GET"}, {":scheme", "https"}, {":authority", authority}, {":path", path}});
  }

  nghttp2_session* s = nullptr;
  std::map<int32_t, Response> responses;
  int goaways = 0;
  uint32_t goaway_code = 0;
  int32_t goaway_last = -1;
  int pings = 0;

 private:
  struct Upload {
    Client* client;
    std::string data;
    size_t sent;
    Fields trailers;
    int32_t id = 0;
  };

  static std::vector<nghttp2_nv> Nv(const Fields& f) {
    std::vector<nghttp2_nv> nv;
    for (const auto& [n, v] : f) {
      nv.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(n.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(),
                    NGHTTP2_NV_FLAG_NONE});
    }
    return nv;
  }
  static ssize_t ReadUpload(nghttp2_session* s, int32_t id, uint8_t* buf, size_t len,
                            uint32_t* flags, nghttp2_data_source* src, void*) {
    auto* up = static_cast<Upload*>(src->ptr);
    const size_t n = std::min(len, up->data.size() - up->sent);
    std::memcpy(buf, up->data.data() + up->sent, n);
    up->sent += n;
    if (up->sent == up->data.size()) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (!up->trailers.empty()) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        std::vector<nghttp2_nv> nv = Nv(up->trailers);
        nghttp2_submit_trailer(s, id, nv.data(), nv.size());
      }
    }
    return static_cast<ssize_t>(n);
  }
  static int OnHeader(nghttp2_session*, const nghttp2_frame* f, const uint8_t* name, size_t nlen,
                      const uint8_t* value, size_t vlen, uint8_t, void* self) {
    Response& r = static_cast<Client*>(self)->responses[f->hd.stream_id];
    std::string n(reinterpret_cast<const char*>(name), nlen);
    std::string v(reinterpret_cast<const char*>(value), vlen);
    if (n == ":status") {
      r.status = std::stoi(v);
      r.statuses.push_back(r.status);
    } else if (r.head_done) {
      r.trailers.emplace_back(n, v);
    } else {
      r.fields.emplace_back(n, v);
    }
    return 0;
  }
  static int OnData(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len,
                    void* self) {
    static_cast<Client*>(self)->responses[id].body.append(reinterpret_cast<const char*>(data), len);
    return 0;
  }
  static int OnClose(nghttp2_session*, int32_t id, uint32_t code, void* self) {
    Response& r = static_cast<Client*>(self)->responses[id];
    r.closed = true;
    r.code = code;
    return 0;
  }
  static int OnFrame(nghttp2_session*, const nghttp2_frame* f, void* self) {
    auto* c = static_cast<Client*>(self);
    if (f->hd.type == NGHTTP2_HEADERS) {
      Response& r = c->responses[f->hd.stream_id];
      r.head_done = r.head_done || r.status >= 200;  // after a 1xx the final head follows
    }
    if (f->hd.type == NGHTTP2_GOAWAY) {
      ++c->goaways;
      c->goaway_code = f->goaway.error_code;
      c->goaway_last = f->goaway.last_stream_id;
    }
    if (f->hd.type == NGHTTP2_PING && (f->hd.flags & NGHTTP2_FLAG_ACK) == 0) ++c->pings;
    return 0;
  }

  std::vector<std::unique_ptr<Upload>> uploads_;
};

// --- the engine's stand-in ---------------------------------------------------

struct Seen {
  http::Method method = http::Method::kOther;
  std::string method_text, target, path, query, host;
  Fields fields;
  bool end_stream = false;
  http::BodyKind body_kind = http::BodyKind::kNone;
  uint64_t content_length = 0;
  std::string body;
  bool ended = false;
  Fields trailers;
};

struct Refusal {
  uint16_t status;
  std::string reason, message;
};

class Recorder : public Handler {
 public:
  // What the engine does with a head (default: nothing yet).
  std::function<void(ServerSession&, int32_t, const http::RequestHead&, bool)> on_request;
  std::function<void(ServerSession&, int32_t)> on_end;
  bool consume = true;          // Consume() each body chunk at once
  bool answer_refusals = true;  // Answer() each refusal

  std::map<int32_t, Seen> seen;
  std::map<int32_t, Refusal> refused;
  std::map<int32_t, ErrorCode> closed;
  std::map<int32_t, int> sendable;

  void OnRequest(ServerSession& s, int32_t id, const http::RequestHead& h, bool end) override {
    Zone z(false);
    Seen& x = seen[id];
    x.method = h.method;
    x.method_text = std::string(h.method_text);
    x.target = std::string(h.target);
    x.path = std::string(h.path);
    x.query = std::string(h.query);
    x.host = std::string(h.host);
    for (int i = 0; i < h.header_count; ++i) {
      x.fields.emplace_back(std::string(h.headers[i].name), std::string(h.headers[i].value));
    }
    x.end_stream = end;
    x.body_kind = h.body;
    x.content_length = h.content_length;
    if (on_request) on_request(s, id, h, end);
  }
  void OnRefused(ServerSession& s, int32_t id, const policy::Answer& a) override {
    Zone z(false);
    refused[id] = Refusal{a.status, std::string(a.reason), std::string(a.message)};
    if (answer_refusals) s.Answer(id, a, "0123456789abcdef0123456789abcdef");
  }
  void OnData(ServerSession& s, int32_t id, uint64_t, const char* p, size_t n) override {
    Zone z(false);
    seen[id].body.append(p, n);
    if (consume) s.Consume(id, n);
  }
  void OnRequestEnd(ServerSession& s, int32_t id, uint64_t, const http::Header* t,
                    uint16_t count) override {
    Zone z(false);
    seen[id].ended = true;
    for (uint16_t i = 0; i < count; ++i) {
      seen[id].trailers.emplace_back(std::string(t[i].name), std::string(t[i].value));
    }
    if (on_end) on_end(s, id);
  }
  void OnSendable(ServerSession&, int32_t id, uint64_t) override {
    Zone z(false);
    ++sendable[id];
  }
  void OnStreamClose(ServerSession&, int32_t id, uint64_t, ErrorCode code) override {
    Zone z(false);
    closed[id] = code;
  }
};

// --- raw frames (RFC 9113 §4.1) -----------------------------------------------

inline std::string Frame(uint8_t type, uint8_t flags, int32_t stream, const std::string& payload) {
  std::string f(9, '\0');
  const size_t n = payload.size();
  f[0] = static_cast<char>(n >> 16);
  f[1] = static_cast<char>(n >> 8);
  f[2] = static_cast<char>(n);
  f[3] = static_cast<char>(type);
  f[4] = static_cast<char>(flags);
  f[5] = static_cast<char>((stream >> 24) & 0x7f);
  f[6] = static_cast<char>(stream >> 16);
  f[7] = static_cast<char>(stream >> 8);
  f[8] = static_cast<char>(stream);
  return f + payload;
}

inline std::string Preface() {
  return std::string(NGHTTP2_CLIENT_MAGIC) + Frame(NGHTTP2_SETTINGS, 0, 0, "");
}

// A header block, HPACK-encoded by nghttp2's own deflater: `d` is a
// connection's (its dynamic table carries over), or a fresh one.
inline std::string Hpack(const Fields& fields, nghttp2_hd_deflater* d = nullptr) {
  const bool fresh = d == nullptr;
  if (fresh) nghttp2_hd_deflate_new(&d, 4096);
  std::vector<nghttp2_nv> nv;
  for (const auto& [n, v] : fields) {
    nv.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(n.data())),
                  reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(),
                  NGHTTP2_NV_FLAG_NONE});
  }
  std::string out(nghttp2_hd_deflate_bound(d, nv.data(), nv.size()), '\0');
  const ssize_t n = nghttp2_hd_deflate_hd(d, reinterpret_cast<uint8_t*>(out.data()), out.size(),
                                          nv.data(), nv.size());
  if (fresh) nghttp2_hd_deflate_del(d);
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

// A client that writes its frames by hand (what no library client sends),
// with one HPACK encoder for the connection.
class RawClient {
 public:
  RawClient() { nghttp2_hd_deflate_new(&d_, 4096); }
  ~RawClient() { nghttp2_hd_deflate_del(d_); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;
  std::string Headers(int32_t stream, uint8_t flags, const Fields& fields) {
    return Frame(NGHTTP2_HEADERS, flags, stream, Hpack(fields, d_));
  }

 private:
  nghttp2_hd_deflater* d_;
};

inline Fields GetFields(const std::string& path = "/") {
  return {{":method", "GET"}, {":scheme", "https"}, {":authority", "example.com"}, {":path", path}};
}

// --- the pair -----------------------------------------------------------------

// The core's shared state: one pool, blocks and counters for every session.
struct Core {
  MemPool pool;
  core::BlockPool blocks{16384};
  Counters counters;
};

class Pair {
 public:
  explicit Pair(Core* core, const Limits& limits = Limits{}, ClientOptions client_options = {})
      : client(client_options), core_(core) {
    auto c = ServerConfig::Make(limits);
    EXPECT_TRUE(c.ok());
    config = c.value();
    server = std::make_unique<ServerSession>(config.get(), &handler, &core->pool, &core->blocks,
                                             &core->counters);
    Zone z(true);
    EXPECT_TRUE(server->Start());
  }
  ~Pair() {
    if (server) {
      Zone z(true);
      server->Close(ErrorCode::kNoError);
      server.reset();
    }
    out.Clear(&core_->blocks);
  }

  // Client bytes to the server.
  bool Feed(const std::string& bytes) {
    Zone z(true);
    fed_ += bytes.size();
    const bool ok = server->Receive(bytes.data(), bytes.size(), now);
    ok_ = ok_ && ok;
    return ok;
  }
  // Server bytes, as they would reach the client.
  std::string Drain(size_t max = 1 << 20) {
    {
      Zone z(true);
      EXPECT_TRUE(server->Send(&out, max));
    }
    std::string s;
    iovec iov[64];
    const int n = out.Gather(iov, 64);
    for (int i = 0; i < n; ++i) s.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
    out.Consume(&core_->blocks, s.size());
    return s;
  }
  // Moves bytes both ways until neither side has anything to say.
  void Pump(int max_rounds = 10000) {
    for (int round = 0; round < max_rounds; ++round) {
      bool progress = false;
      std::string up;
      for (;;) {
        const uint8_t* d = nullptr;
        const ssize_t n = nghttp2_session_mem_send(client.s, &d);
        if (n <= 0) break;
        up.append(reinterpret_cast<const char*>(d), static_cast<size_t>(n));
      }
      if (!up.empty() && !server_done_) {
        progress = true;
        Feed(up);
      }
      const std::string down = Drain();
      if (!down.empty()) {
        progress = true;
        nghttp2_session_mem_recv(client.s, reinterpret_cast<const uint8_t*>(down.data()),
                                 down.size());
      }
      if (server->Done()) server_done_ = true;
      if (!progress) return;
    }
    ADD_FAILURE() << "the pair did not settle";
  }
  bool ok() const { return ok_; }
  size_t fed_bytes() const { return fed_; }

  Recorder handler;
  std::shared_ptr<const ServerConfig> config;
  std::unique_ptr<ServerSession> server;
  Client client;
  core::ByteQueue out;
  core::Instant now = core::Millis(1000);

 private:
  Core* core_;
  bool ok_ = true;
  bool server_done_ = false;
  size_t fed_ = 0;
};

}  // namespace hms::h2::testing
