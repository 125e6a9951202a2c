// A small blocking HTTP/1.1 client for the control plane (the etcd store):
// one TCP connection at a time, requests written by hand, responses read with
// the project's own parser (http::ParseResponse, http::ChunkedDecoder), so
// there is no second HTTP stack. Every socket operation is bounded by a
// deadline and, when set, cut short by a cancel descriptor becoming readable.
//
// An HttpClient belongs to one thread at a time (the caller's, or the etcd
// watch thread's); it is not safe to share across threads. Control-plane only:
// it blocks and allocates.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "hms/common/result.h"
#include "hms/http/parser.h"

namespace hms::control {

struct HttpTarget {
  std::string host;  // name or address; IPv6 without brackets
  uint16_t port = 0;
  std::string Text() const;  // "host:port", "[v6]:port"
};

struct HttpResponse {
  int status = 0;
  std::string body;  // de-chunked
};

class HttpClient {
 public:
  // `targets` are tried in order on connect failure; the one that answered is
  // tried first next time. `timeout_ms` bounds each request (connect, send and
  // the whole response).
  HttpClient(std::vector<HttpTarget> targets, int timeout_ms);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // A descriptor whose readability aborts any wait (the watch thread's stop
  // signal); -1 for none. Not owned.
  void set_cancel_fd(int fd) { cancel_fd_ = fd; }

  // POST `path` with a JSON body and reads the whole response. An idle
  // keep-alive connection is reused; when the server closed it meanwhile
  // (nothing came back at all), the request is sent once more on a fresh one.
  Result<HttpResponse> Post(std::string_view path, std::string_view body);
  // GET, same rules.
  Result<HttpResponse> Get(std::string_view path);

  // Streaming: sends the POST and reads the response head only, on a fresh
  // connection. Returns the status. The body then comes through ReadStream.
  Result<int> OpenStream(std::string_view path, std::string_view body);
  enum class StreamRead : uint8_t { kData, kIdle, kCancelled, kEnd };
  // Waits up to `wait_ms` for body bytes and appends the de-chunked data to
  // *out. kIdle: nothing arrived in time (the stream is still open); kEnd: the
  // body is complete (the stream is closed). An error closes the stream.
  Result<StreamRead> ReadStream(std::string* out, int wait_ms);

  void Close();
  const std::string& last_target() const { return last_target_; }

 private:
  enum class Wait : uint8_t { kReady, kTimeout, kCancelled, kError };
  Wait WaitFor(short events, int64_t deadline_ms);
  Result<bool> Connect(int64_t deadline_ms);
  Result<bool> SendAll(std::string_view data, int64_t deadline_ms);
  // Reads more bytes into rbuf_. 0 = EOF.
  Result<size_t> Fill(int64_t deadline_ms, bool* cancelled, bool* timed_out);
  Result<bool> ReadHead(int64_t deadline_ms, http::Method method, int* status);
  // Moves decoded body bytes from rbuf_ to *out; true once the body is complete.
  Result<bool> DecodeBody(std::string* out);
  Result<HttpResponse> Request(std::string_view method, std::string_view path,
                               std::string_view body);
  Result<HttpResponse> RequestOnce(std::string_view method, std::string_view path,
                                   std::string_view body, bool* nothing_back);
  std::string BuildRequest(std::string_view method, std::string_view path,
                           std::string_view body) const;

  std::vector<HttpTarget> targets_;
  size_t first_target_ = 0;
  int timeout_ms_;
  int cancel_fd_ = -1;
  int fd_ = -1;
  bool reusable_ = false;  // fd_ is an idle keep-alive connection
  std::string last_target_;
  std::string rbuf_;  // bytes read and not yet consumed
  // Response body framing of the response being read.
  http::BodyKind body_kind_ = http::BodyKind::kNone;
  uint64_t body_left_ = 0;  // kContentLength: bytes still to come
  bool keep_alive_ = false;
  http::ChunkedDecoder chunked_;
};

}  // namespace hms::control
