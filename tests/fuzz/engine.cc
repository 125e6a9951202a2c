// Fuzz target: whole connections through one core's worker over loopback
// TCP, through a listening socket on 127.0.0.1:0 (the operations and the
// property are in engine_driver.h). TCP's own ways stay covered here: a
// close that is only a FIN (the worker answers what is in flight, then finds
// the peer gone) and a real reset. engine_mem feeds the same inputs through
// socketpairs, without ports and many times faster.
#include <unistd.h>

#include <string>

#include "engine_driver.h"

namespace {

uint16_t g_port = 0;  // the gateway's listener

int Connect(hms::proxy::Engine&) {
  const int fd = hms::testing::ConnectLoopback(g_port);
  FUZZ_CHECK(fd >= 0);
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
    g_port = static_cast<uint16_t>(std::stoi(addr.substr(addr.rfind(':') + 1)));
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
