// Blocking HTTP/1.1 client of the control plane; see http_client.h.
#include "http_client.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "hms/core/clock.h"

namespace hms::control {
namespace {

// Heads of etcd's answers are a few hundred bytes; anything near this is not
// the server we meant to talk to.
constexpr size_t kMaxHeadBytes = 64 * 1024;


Error NetError(std::string message) { return Error{std::move(message), Side::kUpstream, true}; }

}  // namespace

std::string HttpTarget::Text() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

HttpClient::HttpClient(std::vector<HttpTarget> targets, int timeout_ms)
    : targets_(std::move(targets)), timeout_ms_(timeout_ms) {}

HttpClient::~HttpClient() { Close(); }

void HttpClient::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  reusable_ = false;
  rbuf_.clear();
}

HttpClient::Wait HttpClient::WaitFor(short events, int64_t deadline_ms) {
  for (;;) {
    pollfd fds[2] = {{fd_, events, 0}, {cancel_fd_, POLLIN, 0}};
    const int64_t left = deadline_ms - core::NowMs();
    if (left <= 0) return Wait::kTimeout;
    const int n = poll(fds, cancel_fd_ >= 0 ? 2 : 1, static_cast<int>(left));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Wait::kError;
    }
    if (n == 0) return Wait::kTimeout;
    if (cancel_fd_ >= 0 && (fds[1].revents & POLLIN) != 0) return Wait::kCancelled;
    if (fds[0].revents != 0) return Wait::kReady;
  }
}

Result<bool> HttpClient::Connect(int64_t deadline_ms) {
  Close();
  std::string errors;
  for (size_t i = 0; i < targets_.size(); ++i) {
    const size_t index = (first_target_ + i) % targets_.size();
    const HttpTarget& t = targets_[index];
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    const std::string port = std::to_string(t.port);
    const int gai = getaddrinfo(t.host.c_str(), port.c_str(), &hints, &res);
    if (gai != 0) {
      errors += (errors.empty() ? "" : "; ") + t.Text() + ": " + gai_strerror(gai);
      continue;
    }
    // Each target gets the full connect timeout: one blackholed member must
    // not use up the time of the next.
    const int64_t target_deadline = std::min(deadline_ms, core::NowMs() + timeout_ms_);
    std::string err = "no address";
    for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
      fd_ = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
      if (fd_ < 0) {
        err = std::strerror(errno);
        continue;
      }
      int rc = connect(fd_, ai->ai_addr, ai->ai_addrlen);
      if (rc != 0 && errno == EINPROGRESS) {
        const Wait w = WaitFor(POLLOUT, target_deadline);
        if (w == Wait::kReady) {
          int so_error = 0;
          socklen_t len = sizeof(so_error);
          getsockopt(fd_, SOL_SOCKET, SO_ERROR, &so_error, &len);
          rc = so_error == 0 ? 0 : -1;
          errno = so_error;
        } else if (w == Wait::kCancelled) {
          freeaddrinfo(res);
          Close();
          return NetError("cancelled");
        } else {
          rc = -1;
          errno = ETIMEDOUT;
        }
      }
      if (rc == 0) {
        const int one = 1;
        setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        freeaddrinfo(res);
        first_target_ = index;
        last_target_ = t.Text();
        return true;
      }
      err = std::strerror(errno);
      close(fd_);
      fd_ = -1;
    }
    freeaddrinfo(res);
    errors += (errors.empty() ? "" : "; ") + t.Text() + ": " + err;
  }
  return NetError("cannot connect to " + errors);
}

Result<bool> HttpClient::SendAll(std::string_view data, int64_t deadline_ms) {
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      const Wait w = WaitFor(POLLOUT, deadline_ms);
      if (w == Wait::kReady) continue;
      if (w == Wait::kCancelled) return NetError("cancelled");
      return NetError(last_target_ + ": send timed out");
    }
    return NetError(last_target_ + ": send: " + std::strerror(errno));
  }
  return true;
}

Result<size_t> HttpClient::Fill(int64_t deadline_ms, bool* cancelled, bool* timed_out) {
  *cancelled = false;
  *timed_out = false;
  char buf[16384];
  for (;;) {
    const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    if (n >= 0) {
      rbuf_.append(buf, static_cast<size_t>(n));
      return static_cast<size_t>(n);
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return NetError(last_target_ + ": recv: " + std::strerror(errno));
    }
    const Wait w = WaitFor(POLLIN, deadline_ms);
    if (w == Wait::kReady) continue;
    if (w == Wait::kCancelled) {
      *cancelled = true;
      return size_t{0};
    }
    if (w == Wait::kTimeout) {
      *timed_out = true;
      return size_t{0};
    }
    return NetError(last_target_ + ": poll: " + std::strerror(errno));
  }
}

Result<bool> HttpClient::ReadHead(int64_t deadline_ms, http::Method method, int* status) {
  for (;;) {
    http::ResponseHead head;
    const int n = http::ParseResponse(rbuf_.data(), rbuf_.size(), kMaxHeadBytes, method, &head);
    if (n > 0) {
      if (head.status >= 100 && head.status < 200) {  // interim: skip
        rbuf_.erase(0, static_cast<size_t>(n));
        continue;
      }
      *status = head.status;
      body_kind_ = head.body;
      body_left_ = head.content_length;
      keep_alive_ = head.keep_alive;
      chunked_.Reset();
      rbuf_.erase(0, static_cast<size_t>(n));
      return true;
    }
    if (n == http::kError) {
      return NetError(last_target_ + ": malformed response (" +
                      std::string(http::ParseErrorReason(head.error)) + ")");
    }
    bool cancelled, timed_out;
    Result<size_t> got = Fill(deadline_ms, &cancelled, &timed_out);
    if (!got) return got.error();
    if (cancelled) return NetError("cancelled");
    if (timed_out)
      return NetError(last_target_ + ": no response within " + std::to_string(timeout_ms_) + " ms");
    if (got.value() == 0) {
      return NetError(last_target_ + ": connection closed before a response");
    }
  }
}

Result<bool> HttpClient::DecodeBody(std::string* out) {
  switch (body_kind_) {
    case http::BodyKind::kNone:
      return true;
    case http::BodyKind::kContentLength: {
      const size_t take = static_cast<size_t>(std::min<uint64_t>(body_left_, rbuf_.size()));
      out->append(rbuf_, 0, take);
      rbuf_.erase(0, take);
      body_left_ -= take;
      return body_left_ == 0;
    }
    case http::BodyKind::kChunked: {
      size_t pos = 0;
      while (!chunked_.done() && pos < rbuf_.size()) {
        http::ChunkedDecoder::Step step;
        if (!chunked_.Next(rbuf_.data() + pos, rbuf_.size() - pos, &step)) {
          return NetError(last_target_ + ": bad chunked framing (" +
                          std::string(http::ParseErrorReason(chunked_.error())) + ")");
        }
        if (step.consumed == 0) break;
        if (step.data_len > 0) out->append(rbuf_, pos + step.data_offset, step.data_len);
        pos += step.consumed;
      }
      rbuf_.erase(0, pos);
      return chunked_.done();
    }
    case http::BodyKind::kUntilClose:
      out->append(rbuf_);
      rbuf_.clear();
      return false;  // complete only at EOF
  }
  return true;
}

std::string HttpClient::BuildRequest(std::string_view method, std::string_view path,
                                     std::string_view body) const {
  std::string req;
  req.reserve(160 + body.size());
  req.append(method).append(" ").append(path).append(" HTTP/1.1\r\nHost: ");
  req.append(last_target_).append("\r\n");
  if (method != "GET") {
    req.append("Content-Type: application/json\r\nContent-Length: ");
    req.append(std::to_string(body.size())).append("\r\n");
  }
  req.append("\r\n").append(body);
  return req;
}

Result<HttpResponse> HttpClient::RequestOnce(std::string_view method, std::string_view path,
                                             std::string_view body, bool* nothing_back) {
  *nothing_back = false;
  const bool reused = fd_ >= 0 && reusable_;
  reusable_ = false;
  if (!reused) {
    Result<bool> c = Connect(core::NowMs() + timeout_ms_);
    if (!c) return c.error();
  }
  const int64_t deadline = core::NowMs() + timeout_ms_;
  Result<bool> sent = SendAll(BuildRequest(method, path, body), deadline);
  if (!sent) {
    *nothing_back = reused;
    Close();
    return sent.error();
  }
  HttpResponse resp;
  // A reused connection the server closed while idle answers with EOF or a
  // reset before any byte: the request was never processed.
  if (reused && rbuf_.empty()) {
    bool cancelled, timed_out;
    Result<size_t> got = Fill(deadline, &cancelled, &timed_out);
    if (!got || (got.value() == 0 && !cancelled && !timed_out)) {
      *nothing_back = true;
      Close();
      return got ? NetError(last_target_ + ": connection closed") : got.error();
    }
    if (cancelled) {
      Close();
      return NetError("cancelled");
    }
  }
  Result<bool> head =
      ReadHead(deadline, method == "GET" ? http::Method::kGet : http::Method::kPost, &resp.status);
  if (!head) {
    Close();
    return head.error();
  }
  for (;;) {
    Result<bool> done = DecodeBody(&resp.body);
    if (!done) {
      Close();
      return done.error();
    }
    if (done.value()) break;
    bool cancelled, timed_out;
    Result<size_t> got = Fill(deadline, &cancelled, &timed_out);
    if (!got) {
      Close();
      return got.error();
    }
    if (cancelled || timed_out) {
      Close();
      return NetError(cancelled ? "cancelled"
                                : last_target_ + ": response incomplete after " +
                                      std::to_string(timeout_ms_) + " ms");
    }
    if (got.value() == 0) {
      if (body_kind_ == http::BodyKind::kUntilClose) {
        Close();
        return resp;
      }
      Close();
      return NetError(last_target_ + ": connection closed mid-response");
    }
  }
  if (keep_alive_ && rbuf_.empty()) {
    reusable_ = true;
  } else {
    Close();
  }
  return resp;
}

Result<HttpResponse> HttpClient::Request(std::string_view method, std::string_view path,
                                         std::string_view body) {
  bool nothing_back = false;
  Result<HttpResponse> r = RequestOnce(method, path, body, &nothing_back);
  if (!r && nothing_back) r = RequestOnce(method, path, body, &nothing_back);
  return r;
}

Result<HttpResponse> HttpClient::Post(std::string_view path, std::string_view body) {
  return Request("POST", path, body);
}

Result<HttpResponse> HttpClient::Get(std::string_view path) { return Request("GET", path, ""); }

Result<int> HttpClient::OpenStream(std::string_view path, std::string_view body) {
  Result<bool> c = Connect(core::NowMs() + timeout_ms_);
  if (!c) return c.error();
  const int64_t deadline = core::NowMs() + timeout_ms_;
  Result<bool> sent = SendAll(BuildRequest("POST", path, body), deadline);
  if (!sent) {
    Close();
    return sent.error();
  }
  int status = 0;
  Result<bool> head = ReadHead(deadline, http::Method::kPost, &status);
  if (!head) {
    Close();
    return head.error();
  }
  return status;
}

Result<HttpClient::StreamRead> HttpClient::ReadStream(std::string* out, int wait_ms) {
  if (fd_ < 0) return NetError("stream is not open");
  const int64_t deadline = core::NowMs() + wait_ms;
  for (;;) {
    const size_t before = out->size();
    Result<bool> done = DecodeBody(out);
    if (!done) {
      Close();
      return done.error();
    }
    if (done.value()) {
      Close();
      return StreamRead::kEnd;
    }
    if (out->size() > before) return StreamRead::kData;
    bool cancelled, timed_out;
    Result<size_t> got = Fill(deadline, &cancelled, &timed_out);
    if (!got) {
      Close();
      return got.error();
    }
    if (cancelled) return StreamRead::kCancelled;
    if (timed_out) return StreamRead::kIdle;
    if (got.value() == 0) {
      const bool until_close = body_kind_ == http::BodyKind::kUntilClose;
      Close();
      if (until_close) return StreamRead::kEnd;
      return NetError(last_target_ + ": stream closed");
    }
  }
}

}  // namespace hms::control
