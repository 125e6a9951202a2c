// h2-probe: one request through a ClientSession over a real socket to an
// upstream on 127.0.0.1, for the interop tests (tests/integration/
// test_h2_client.py: a python3-grpcio server). Test-only; blocking I/O.
//
//   h2-probe PORT METHOD PATH [--body-hex HEX] [NAME:VALUE ...]
//
// Prints what the engine's handler would see, one line each: `status N`,
// `field NAME VALUE`, `data HEX`, `trailer NAME VALUE`, and last
// `end complete=B never_processed=B code=N`. Exits 0 when the stream ended,
// 1 on a socket error or after 10 s.
#include <poll.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "hms/core/block_pool.h"
#include "hms/h2/client_session.h"
#include "../../support/loopback.h"

namespace {

using hms::h2::ClientSession;

class Printer : public hms::h2::ClientHandler {
 public:
  void OnResponse(ClientSession&, int32_t, uint64_t, uint16_t status, const hms::http::Header* f,
                  uint16_t count, bool) override {
    std::printf("status %u\n", status);
    for (uint16_t i = 0; i < count; ++i) Print("field", f[i]);
  }
  void OnData(ClientSession& s, int32_t id, uint64_t, const char* p, size_t n) override {
    std::printf("data ");
    for (size_t i = 0; i < n; ++i) std::printf("%02x", static_cast<unsigned char>(p[i]));
    std::printf("\n");
    s.Consume(id, n);
  }
  void OnResponseEnd(ClientSession&, int32_t, uint64_t, const hms::http::Header* t,
                     uint16_t count) override {
    for (uint16_t i = 0; i < count; ++i) Print("trailer", t[i]);
  }
  void OnSendable(ClientSession&, int32_t, uint64_t) override {}
  void OnStreamClose(ClientSession&, int32_t, uint64_t, const hms::h2::StreamEnd& e) override {
    std::printf("end complete=%d never_processed=%d code=%u\n", e.complete, e.never_processed,
                static_cast<unsigned>(e.code));
    closed = true;
  }
  bool closed = false;

 private:
  static void Print(const char* what, const hms::http::Header& h) {
    std::printf("%s %.*s %.*s\n", what, static_cast<int>(h.name.size()), h.name.data(),
                static_cast<int>(h.value.size()), h.value.data());
  }
};

std::string FromHex(const char* hex) {
  std::string out;
  for (size_t i = 0; hex[i] != '\0' && hex[i + 1] != '\0'; i += 2) {
    out.push_back(static_cast<char>(std::strtoul(std::string(hex + i, 2).c_str(), nullptr, 16)));
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: h2-probe PORT METHOD PATH [--body-hex HEX] [NAME:VALUE ...]\n");
    return 2;
  }
  std::string body;
  bool has_body = false;
  std::vector<std::string> kept;
  std::vector<hms::http::Header> fields;
  kept.reserve(static_cast<size_t>(argc));
  for (int i = 4; i < argc; ++i) {
    if (std::strcmp(argv[i], "--body-hex") == 0 && i + 1 < argc) {
      body = FromHex(argv[++i]);
      has_body = true;
      continue;
    }
    kept.emplace_back(argv[i]);
    const std::string& f = kept.back();
    const size_t colon = f.find(':', 1);
    if (colon == std::string::npos) continue;
    fields.push_back({std::string_view(f).substr(0, colon), std::string_view(f).substr(colon + 1)});
  }
  const int fd = hms::testing::ConnectLoopback(static_cast<uint16_t>(std::atoi(argv[1])));
  if (fd < 0) {
    std::fprintf(stderr, "connect: %s\n", std::strerror(-fd));
    return 1;
  }
  hms::h2::MemPool pool;
  hms::core::BlockPool blocks(16384);
  hms::h2::Counters counters;
  Printer printer;
  const auto config = hms::h2::ClientConfig::Make(hms::h2::Limits{}).value();
  ClientSession s(config.get(), &printer, &pool, &blocks, &counters);
  s.Start();
  const std::string authority = "127.0.0.1:" + std::string(argv[1]);
  const int32_t id = s.Submit(hms::h2::RequestLine{argv[2], "http", authority, argv[3]},
                              fields.data(), static_cast<uint16_t>(fields.size()), 1, !has_body);
  if (id <= 0) return 1;
  if (has_body) s.SendData(id, body.data(), body.size(), true);
  hms::core::ByteQueue out;
  for (int rounds = 0; rounds < 1000 && !printer.closed; ++rounds) {
    s.Send(&out, 1 << 20);
    while (!out.empty()) {
      iovec iov[16];
      const ssize_t n = writev(fd, iov, out.Gather(iov, 16));
      if (n <= 0) return 1;
      out.Consume(&blocks, static_cast<size_t>(n));
    }
    pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 10) <= 0) continue;  // 10 ms, up to 1000 times: 10 s
    char buf[16384];
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    s.Receive(buf, static_cast<size_t>(n), 1);
  }
  s.Close(hms::h2::ErrorCode::kNoError);
  close(fd);
  return printer.closed ? 0 : 1;
}
