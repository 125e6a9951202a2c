// Fuzz target: whole connections through one core's worker over loopback
// TCP, through a listening socket on 127.0.0.1:0 (the operations and the
// property are in engine_driver.h). TCP's own ways stay covered here: a
// close that is only a FIN (the worker answers what is in flight, then finds
// the peer gone) and a real reset. engine_mem feeds the same inputs through
// socketpairs, without ports and many times faster.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "engine_driver.h"

namespace {

sockaddr_in g_gateway{};

int Connect(hms::proxy::Engine&) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  FUZZ_CHECK(fd >= 0);
  FUZZ_CHECK(connect(fd, reinterpret_cast<const sockaddr*>(&g_gateway), sizeof g_gateway) == 0);
  return fd;
}

// A millisecond for the worker to take the piece on its own, as recv would
// hand it (and to read what it answered).
void AfterSend(int fd) { engine_fuzz::ReadSent(fd, 1); }

hms::proxy::Engine* Get() {
  static hms::proxy::Engine* engine = [] {
    hms::proxy::Engine* e = engine_fuzz::StartEngine(/*bind=*/true).release();
    if (e == nullptr) return e;
    const std::string& addr = e->bound_addresses().at(0);
    g_gateway.sin_family = AF_INET;
    g_gateway.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_gateway.sin_port = htons(static_cast<uint16_t>(std::stoi(addr.substr(addr.rfind(':') + 1))));
    return e;
  }();
  return engine;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  hms::proxy::Engine* engine = Get();
  if (engine == nullptr || size > 8192) return 0;
  engine_fuzz::Run(*engine, {Connect, AfterSend, 20}, data, size);
  return 0;
}
